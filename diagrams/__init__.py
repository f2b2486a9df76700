"""Diagrams drawn from the declared lifecycle and a channel's table.

One :class:`~diagrams.picture.Picture` is built from
:data:`fsm.lifecycle.LIFECYCLE` (plus a channel's close table, found through
the channel registry) and written as DOT, Mermaid, SVG or PNG::

    from pathlib import Path
    from diagrams import picture_for, write_diagram
    write_diagram(picture_for("whatsapp"), Path("whatsapp.svg"))

:func:`write_trace` draws the path one link actually took.
"""

from diagrams.dot import to_dot
from diagrams.mermaid import to_mermaid
from diagrams.output import (
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
from diagrams.picture import REGENERATE, Picture, lifecycle_picture
from diagrams.renderer import Renderer, RendererNotFoundError, RenderError, find_renderer, render
from diagrams.trace import trace_picture, write_trace

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
