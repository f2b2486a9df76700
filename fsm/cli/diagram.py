"""``linkstate diagram``: draw the lifecycle, or a channel's, as DOT, Mermaid, SVG or PNG.

Also the ``--diagram FILE`` option that every supervising command shares
(:func:`add_trace_option`, :func:`record_trace`; wired in ``_supervise``). ``diagrams`` is
imported inside the functions that draw, so other commands start without it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

from linkstate._channel import ChannelError
from linkstate.cli.common import CommandError, channel_or_exit

if TYPE_CHECKING:
    from linkstate._machine import TransitionRecord
    from linkstate.diagrams import Format
    from linkstate.runtime._supervisor import Supervisor

__all__ = [
    "ORDER",
    "add_trace_option",
    "record_trace",
    "register",
    "run",
    "writable_target",
]

ORDER: Final = 60

_FORMATS: Final = ("dot", "mermaid", "svg", "png")

# A renderer that failed is not the user's typing: a distinct exit status.
_RENDER_FAILED: Final = 1


def register(subparsers: Any) -> None:
    """Add the ``diagram`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "diagram",
        help="draw the lifecycle (with a channel's close codes) as DOT, Mermaid, SVG or PNG",
        description=(
            "Draw the declared lifecycle. With CHANNEL, the close edges also carry that "
            "channel's codes and a legend shows its table; without one (or with `lifecycle`), "
            "the bare definition. Text formats go to stdout unless -o is given; PNG goes to "
            "stdout only when stdout is not a terminal. --all -o DIR writes every diagram in "
            "every format (the committed ones: `linkstate diagram --all -o docs/diagrams`)."
        ),
    )
    parser.add_argument(
        "channel",
        metavar="CHANNEL",
        nargs="?",
        help="a channel name such as whatsapp, or `lifecycle` (the default) for none",
    )
    parser.add_argument(
        "--format",
        "-f",
        choices=_FORMATS,
        help="the output format; default: from the -o extension, else dot",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        type=Path,
        help="the file to write (a directory with --all)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="write the lifecycle and every installed channel, in every format, into -o DIR",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``linkstate diagram``."""
    from linkstate.diagrams import DiagramError, RendererNotFoundError, RenderError

    try:
        if args.all:
            return _run_all(args)
        return _run_one(args)
    except (ChannelError, DiagramError, RendererNotFoundError) as exc:
        raise CommandError(str(exc)) from exc
    except RenderError as exc:
        raise CommandError(str(exc), exit_status=_RENDER_FAILED) from exc


def _run_all(args: argparse.Namespace) -> int:
    from linkstate.diagrams import Format, write_all

    if args.channel is not None:
        raise CommandError(
            f"--all writes every channel, so it takes no CHANNEL (got {args.channel!r}); "
            "drop one of them"
        )
    if args.output is None:
        raise CommandError("--all needs a directory: pass -o DIR, e.g. -o docs/diagrams")
    if args.output.exists() and not args.output.is_dir():
        raise CommandError(f"--all writes into a directory, but {args.output} is a file")
    formats = tuple(Format) if args.format is None else (Format(args.format),)
    with _writing(args.output):
        written = write_all(args.output, formats)
    for path in written:
        print(path)
    return 0


def _run_one(args: argparse.Namespace) -> int:
    from linkstate.diagrams import picture_for, produce

    fmt = _chosen_format(args.format, args.output)
    # channel_or_exit finds a bundled channel without reading the registry.
    data = produce(picture_for(args.channel, load=channel_or_exit), fmt)
    if args.output is not None:
        with _writing(args.output):
            args.output.write_bytes(data)
        return 0
    _to_stdout(data, binary=fmt.binary)
    return 0


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn a failed write (missing directory, a directory, no permission) into one line."""
    try:
        yield
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise CommandError(
            f"cannot write {path}: {why}; pass -o a path in a directory you can write"
        ) from exc


def writable_target(path: Path) -> str | None:
    """Why ``path`` cannot be written as a file, checked before a run; None when it can."""
    if path.is_dir():
        return f"{path} is a directory; name a file in it"
    parent = path.parent
    if not parent.is_dir():
        return f"the directory {parent} does not exist; create it or name another"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the directory {parent} is not writable; name a file in one you can write"
    return None


def _chosen_format(name: str | None, output: Path | None) -> Format:
    from linkstate.diagrams import DiagramError, Format, format_for_path

    if name is not None:
        return Format(name)
    if output is not None:
        try:
            return format_for_path(output)
        except DiagramError as exc:
            raise DiagramError(f"{exc}, or pass --format") from exc
    return Format.dot


def _to_stdout(data: bytes, *, binary: bool, stream: BinaryIO | None = None) -> None:
    out = stream if stream is not None else sys.stdout.buffer
    if binary and out.isatty():
        raise CommandError(
            "PNG is binary and stdout is a terminal: pass -o FILE, or redirect stdout to a file"
        )
    sys.stdout.flush()
    out.write(data)
    out.flush()


# -- the --diagram option of simulate and watch ---------------------------------


def add_trace_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--diagram FILE``: draw the path taken, in the format of FILE's extension."""
    parser.add_argument(
        "--diagram",
        metavar="FILE",
        type=_trace_path,
        default=None,
        help="when the run ends, draw the path taken into FILE: arrows numbered in order, "
        "the final state highlighted; the format follows the extension "
        "(.dot, .mmd, .svg, .png)",
    )


def _trace_path(text: str) -> Path:
    """Argparse type: a path whose extension names a format we can write here, now."""
    from linkstate.diagrams import (
        DiagramError,
        Format,
        RendererNotFoundError,
        find_renderer,
        format_for_path,
    )

    path = Path(text)
    problem = writable_target(path)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    try:
        # Checked before the run, so a long watch does not end in an error.
        if format_for_path(path) in (Format.svg, Format.png):
            find_renderer()
    except (DiagramError, RendererNotFoundError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return path


def record_trace(args: argparse.Namespace, supervisor: Supervisor) -> Callable[[], None]:
    """With ``--diagram``, record every transition; call the result at the end to draw them."""
    path: Path | None = getattr(args, "diagram", None)
    if path is None:
        return lambda: None
    records: list[TransitionRecord] = []
    supervisor.subscribe(records.append)

    def draw() -> None:
        from linkstate.diagrams import DiagramError, RendererNotFoundError, RenderError, write_trace

        try:
            write_trace(records, path)
        except (DiagramError, RendererNotFoundError) as exc:
            raise CommandError(f"--diagram {path}: {exc}") from exc
        except RenderError as exc:
            raise CommandError(f"--diagram {path}: {exc}", exit_status=_RENDER_FAILED) from exc

    return draw
