"""Diagrams drawn from the declared lifecycle and a channel's table.

One :class:`~linkstate.diagrams.Picture` is built from
:data:`linkstate.LIFECYCLE` (plus a channel's close table, found through
the channel registry) and written as DOT, Mermaid, SVG or PNG::

    from pathlib import Path
    from linkstate.diagrams import picture_for, write_diagram
    write_diagram(picture_for("whatsapp"), Path("whatsapp.svg"))

:func:`write_trace` draws the path one link actually took;
:func:`live_picture` draws a channel's lifecycle with a live link's state
highlighted and its recent path numbered (the status page of ``linkstate serve``).
"""

from linkstate.diagrams._dot import to_dot
from linkstate.diagrams._mermaid import to_mermaid
from linkstate.diagrams._output import (
    EXTENSIONS,
    GENERIC_NAME,
    DiagramError,
    Format,
    diagram_names,
    format_for_path,
    picture_for,
    produce,
    write_all,
    write_diagram,
)
from linkstate.diagrams._picture import REGENERATE, Picture, lifecycle_picture
from linkstate.diagrams._renderer import (
    Renderer,
    RendererNotFoundError,
    RenderError,
    find_renderer,
    render,
)
from linkstate.diagrams._trace import live_picture, trace_picture, write_trace

__all__ = [
    "EXTENSIONS",
    "GENERIC_NAME",
    "REGENERATE",
    "DiagramError",
    "Format",
    "Picture",
    "RenderError",
    "Renderer",
    "RendererNotFoundError",
    "diagram_names",
    "find_renderer",
    "format_for_path",
    "lifecycle_picture",
    "live_picture",
    "picture_for",
    "produce",
    "render",
    "to_dot",
    "to_mermaid",
    "trace_picture",
    "write_all",
    "write_diagram",
    "write_trace",
]
