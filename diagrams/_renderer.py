"""Rendering DOT to SVG or PNG with whichever Graphviz renderer this machine has.

The ``graphviz`` package only builds DOT text; turning it into pixels needs a
``dot`` program. We look, in this order, for:

1. the system Graphviz ``dot`` on ``PATH`` (``apt-get install graphviz``);
2. ``graphviz-pure``, the dot-compatible binary that the PyPI package of the
   same name installs beside the Python interpreter, which needs no root
   (``pip install 'linkstate[render]'``, part of the README setup). It is
   searched on ``PATH`` and in the interpreter's scripts directory, so it is
   found even when the virtual environment is not activated.

When neither exists, :class:`RendererNotFoundError` names both fixes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from linkstate import ArgumentError, LinkstateError

__all__ = [
    "RENDERED_FORMATS",
    "RenderError",
    "Renderer",
    "RendererNotFoundError",
    "find_renderer",
    "render",
]

# The programs we accept, in order of preference: the system's own first.
_PROGRAMS: Final = ("dot", "graphviz-pure")

RENDERED_FORMATS: Final = frozenset({"svg", "png"})
"""The output formats :func:`render` produces."""

# Rendering our diagrams takes milliseconds; a renderer still busy after this
# long is stuck, and the user is better served by an error.
_TIMEOUT_SECONDS: Final = 60.0


class RendererNotFoundError(LinkstateError, RuntimeError):
    """Neither the system ``dot`` nor ``graphviz-pure`` is installed."""


class RenderError(LinkstateError, RuntimeError):
    """The renderer rejected the DOT source or failed."""


@dataclass(frozen=True, slots=True)
class Renderer:
    """A dot-compatible program found on this machine."""

    executable: Path
    """Where it is."""

    @property
    def name(self) -> str:
        """The program's name (``dot`` or ``graphviz-pure``)."""
        return self.executable.name


def default_scripts_dirs() -> tuple[Path, ...]:
    """Where pip puts console scripts for this interpreter, without repeats."""
    dirs = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    return tuple(dict.fromkeys(dirs))


def find_renderer(
    *, search_path: str | None = None, scripts_dirs: Iterable[Path] | None = None
) -> Renderer:
    """Find a renderer: ``dot`` on the path first, then ``graphviz-pure``.

    Args:
        search_path: The ``PATH`` to search; the environment's when None.
        scripts_dirs: Extra directories to search for ``graphviz-pure``;
            this interpreter's scripts directories when None.

    Raises:
        RendererNotFoundError: neither program exists; the message names both fixes.

    """
    path = os.environ.get("PATH", os.defpath) if search_path is None else search_path
    dirs = default_scripts_dirs() if scripts_dirs is None else tuple(scripts_dirs)
    for program in _PROGRAMS:
        found = shutil.which(program, path=path)
        if found is None and program != "dot":
            found = shutil.which(program, path=os.pathsep.join(str(d) for d in dirs))
        if found is not None:
            return Renderer(Path(found))
    searched = ", ".join(str(d) for d in dirs) or "no scripts directory"
    raise RendererNotFoundError(
        f"cannot render SVG or PNG: no Graphviz renderer found (looked for `dot` on PATH and "
        f"`graphviz-pure` on PATH and in {searched}). Install one: "
        "`apt-get install graphviz` (system Graphviz, needs root) or "
        "`pip install 'linkstate[render]'` (graphviz-pure, no root needed). "
        "DOT and Mermaid output need neither"
    )


def render(source: str, fmt: str, renderer: Renderer | None = None) -> bytes:
    """Render DOT ``source`` to ``fmt`` (``svg`` or ``png``) and return the bytes.

    Raises:
        ArgumentError: ``fmt`` is not one of :data:`RENDERED_FORMATS`.
        RendererNotFoundError: no renderer is installed (see :func:`find_renderer`).
        RenderError: the renderer failed; the message carries its stderr.

    """
    if fmt not in RENDERED_FORMATS:
        raise ArgumentError(f"cannot render {fmt!r}; choose one of {sorted(RENDERED_FORMATS)}")
    program = renderer if renderer is not None else find_renderer()
    command: Sequence[str] = (str(program.executable), f"-T{fmt}")
    try:
        done = subprocess.run(
            command,
            input=source.encode(),
            capture_output=True,
            timeout=_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RenderError(f"{program.name} failed to run: {exc}; check the installation") from exc
    if done.returncode != 0 or not done.stdout:
        detail = done.stderr.decode(errors="replace").strip() or "no output"
        raise RenderError(f"{program.name} -T{fmt} exited with status {done.returncode}: {detail}")
    return done.stdout
