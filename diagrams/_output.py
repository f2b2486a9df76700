"""Diagram formats, and writing diagrams to files: one picture, four formats.

``dot`` and ``mermaid`` are text and need nothing but this package; ``svg``
and ``png`` are rendered from the DOT source (see :mod:`linkstate.diagrams`).
A file's format follows its extension.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import Final

from linkstate import LinkstateError
from linkstate._channel import Channel, available_channels, load_channel
from linkstate.diagrams._dot import to_dot
from linkstate.diagrams._mermaid import to_mermaid
from linkstate.diagrams._picture import GENERIC_NAME, Picture, lifecycle_picture
from linkstate.diagrams._renderer import Renderer, find_renderer, render

__all__ = [
    "EXTENSIONS",
    "GENERIC_NAME",
    "DiagramError",
    "Format",
    "diagram_names",
    "format_for_path",
    "picture_for",
    "produce",
    "write_all",
    "write_diagram",
]


class DiagramError(LinkstateError, ValueError):
    """A diagram cannot be produced as asked (unknown extension, empty trace...)."""


class Format(StrEnum):
    """An output format."""

    dot = "dot"
    mermaid = "mermaid"
    svg = "svg"
    png = "png"

    @property
    def binary(self) -> bool:
        """True for formats that are not text."""
        return self is Format.png

    @property
    def extension(self) -> str:
        """The extension ``--all`` writes this format with."""
        return _WRITE_EXTENSION[self]


_WRITE_EXTENSION: Final = {
    Format.dot: ".dot",
    Format.mermaid: ".mmd",
    Format.svg: ".svg",
    Format.png: ".png",
}

EXTENSIONS: Final = {
    ".dot": Format.dot,
    ".gv": Format.dot,
    ".mmd": Format.mermaid,
    ".mermaid": Format.mermaid,
    ".svg": Format.svg,
    ".png": Format.png,
}
"""File extensions and the format each one means."""


def format_for_path(path: Path) -> Format:
    """The format that ``path``'s extension names.

    Raises:
        DiagramError: the extension is not one of :data:`EXTENSIONS`.

    """
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise DiagramError(
            f"cannot tell the diagram format from {path.name!r}: use one of the extensions "
            f"{', '.join(EXTENSIONS)}"
        )
    return fmt


def diagram_names() -> tuple[str, ...]:
    """Every diagram ``--all`` writes: the bare lifecycle, then each installed channel."""
    return (GENERIC_NAME, *(name for name in available_channels() if name != GENERIC_NAME))


def picture_for(name: str | None, *, load: Callable[[str], Channel] = load_channel) -> Picture:
    """The picture for a channel name, or of the bare lifecycle for None or ``lifecycle``.

    ``load`` finds the channel by name (the command line passes its own, which
    skips the registry for a bundled channel).

    Raises:
        linkstate.ChannelError: no channel has that name (from the default ``load``).

    """
    if name is None or name == GENERIC_NAME:
        return lifecycle_picture()
    return lifecycle_picture(load(name))


def produce(picture: Picture, fmt: Format, renderer: Renderer | None = None) -> bytes:
    """``picture`` in ``fmt``, as bytes (UTF-8 for the text formats)."""
    if fmt is Format.mermaid:
        return to_mermaid(picture).encode()
    source = to_dot(picture)
    if fmt is Format.dot:
        return source.encode()
    return render(source, fmt.value, renderer)


def write_diagram(
    picture: Picture, path: Path, fmt: Format | None = None, renderer: Renderer | None = None
) -> Path:
    """Write ``picture`` to ``path`` in ``fmt`` (default: from the extension)."""
    data = produce(picture, fmt if fmt is not None else format_for_path(path), renderer)
    path.write_bytes(data)
    return path


def write_all(directory: Path, formats: Iterable[Format] = tuple(Format)) -> list[Path]:
    """Write every diagram of :func:`diagram_names` in every format into ``directory``.

    The renderer is looked up once, before anything is written, so a machine
    without one fails at once instead of leaving half the files behind.
    """
    chosen = tuple(formats)
    renderer = find_renderer() if any(f in (Format.svg, Format.png) for f in chosen) else None
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in diagram_names():
        picture = picture_for(name)
        for fmt in chosen:
            written.append(
                write_diagram(picture, directory / f"{name}{fmt.extension}", fmt, renderer)
            )
    return written
