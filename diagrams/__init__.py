"""Diagrams drawn from the declared lifecycle and a channel's table."""
