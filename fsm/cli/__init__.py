"""The ``linkstate`` command line.

Each subcommand lives in its own module of this package, named after the
command, and exposes ``register(subparsers)`` and an ``ORDER`` number that
places it in ``--help``. Modules are discovered by name, so adding a command
means adding one file.

Start-up is kept short: :func:`main` imports only the module of the command
being run (every module only for ``--help`` or a mistyped command), and a
command module imports its heavy dependencies (trio, the store, the runtime,
the checker, ``diagrams``) inside the functions that use them: what it needs
to register its options is in :mod:`linkstate.cli._options`. importlib.metadata, which
costs more than the rest of a ``classify``, is read only for ``--version`` and
for a channel that is not bundled. ``benchmarks/cli_startup.py`` measures it.

The CLI is the one place that ties ``fsm``, ``channels`` and ``diagrams``
together: it finds channels through the entry-point registry (a bundled one
straight from its module, see :func:`linkstate.cli.common.channel_or_exit`)
and imports ``diagrams`` only inside the commands that draw.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, NoReturn

from linkstate.cli.common import CommandError, ExitStatus, reader_gone

__all__ = ["ArgumentParser", "build_parser", "command_modules", "command_names", "main"]

_NOT_COMMANDS = frozenset({"common"})


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` reads it, without shutil."""
    # argparse builds a formatter for every option it adds, and without a width
    # each one imports shutil, which loads the bz2, lzma and zlib extensions:
    # a tenth of a one-shot command's start-up, for one number.
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0 and sys.__stdout__ is not None:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's own formatter, given the terminal's width (see :func:`_columns`)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        # The same margin argparse keeps when it asks shutil itself.
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line that names the subcommand.

    argparse prints the whole usage block before its error; the contract of
    every ``linkstate`` command is one line naming the problem and the fix,
    exit status 2.
    """

    commands: Mapping[str, argparse.ArgumentParser]
    """The subcommands' parsers by name (set by :func:`build_parser`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print ``linkstate SUBCOMMAND: error: MESSAGE (see ... --help)`` and exit 2."""
        self.exit(ExitStatus.usage, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def command_names() -> list[str]:
    """The names of every subcommand module, found without importing any of them."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_") and info.name not in _NOT_COMMANDS
    )


def command_modules(names: Sequence[str] | None = None) -> list[ModuleType]:
    """The subcommand modules (all, or those in ``names``), in ``ORDER``."""
    modules = [importlib.import_module(f"{__name__}.{name}") for name in names or command_names()]
    return sorted(modules, key=lambda module: (getattr(module, "ORDER", 100), module.__name__))


def _version() -> str:
    # Imported here: importlib.metadata costs more than a whole `classify`, and
    # only `--version` needs it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("linkstate")
    except PackageNotFoundError:  # pragma: no cover - run from a tree that is not installed
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: print ``linkstate VERSION`` and exit 0, reading the version only then."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show the version and exit")
        super().__init__(
            option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> NoReturn:
        print(f"linkstate {_version()}")
        parser.exit()


def build_parser(only: str | None = None) -> ArgumentParser:
    """The argument parser with every subcommand registered (or only the one named)."""
    parser = ArgumentParser(
        prog="linkstate",
        description=(
            "Explicit connection lifecycles for messaging channels: for every disconnect, "
            "reconnect (and when) or stop in a state that tells the operator what to do."
        ),
    )
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser
    )
    for module in command_modules([only] if only else None):
        module.register(subparsers)
    parser.commands = subparsers.choices
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named first in ``argv`` when it is a known one, else None."""
    return argv[0] if argv and argv[0] in command_names() else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see ``ExitStatus``)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(_command_in(args_list))
        args, extra = parser.parse_known_args(args_list)
        if extra:
            # argparse reports leftovers from the top-level parser; name the subcommand.
            parser.commands.get(args.command, parser).error(
                f"unrecognized arguments: {' '.join(extra)}"
            )
        args.argv = args_list  # what the operator messages of a run without --db repeat
        try:
            status: int = args.run(args)
        except CommandError as exc:
            print(f"linkstate {args.command}: error: {exc}", file=sys.stderr)
            return exc.exit_status
        sys.stdout.flush()
    except KeyboardInterrupt:
        return ExitStatus.interrupted
    except BrokenPipeError:
        # The reader went away (`linkstate status | head -1`): it read what it
        # wanted, so the command is done; 1 would say a link needs a person.
        # A supervising command never gets here: its printer carries on.
        reader_gone()
        return ExitStatus.ok
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
