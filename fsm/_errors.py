"""The root of every error linkstate raises.

Each error class also derives from the built-in exception that callers caught
before the root existed (``TableError`` is a ``ValueError``, ``StoreError`` a
``RuntimeError``...), so ``except ValueError`` keeps working beside
``except LinkstateError``.
"""

from __future__ import annotations

__all__ = ["ArgumentError", "LinkstateError"]


class LinkstateError(Exception):
    """Base class of every error linkstate raises; catch it to handle them all."""


class ArgumentError(LinkstateError, ValueError):
    """A constructor or function got a value it cannot use; the message names it and the fix."""
