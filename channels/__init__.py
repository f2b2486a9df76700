"""The bundled channel plugins, one module per platform.

Each module builds one :class:`linkstate.Channel` and is registered in
``pyproject.toml`` under the ``linkstate.channels`` entry-point group, exactly
as a third-party plugin would be.
"""
