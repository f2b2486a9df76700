"""The ``linkstate`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)`` and an ``ORDER`` number that places it in ``--help``.
Modules are discovered, so adding a command means adding one file.

The CLI is the one place that ties ``fsm``, ``channels`` and ``diagrams``
together: it finds channels through the entry-point registry and imports
``diagrams`` only inside the commands that draw.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from linkstate.cli.common import CommandError

__all__ = ["build_parser", "command_modules", "main"]

_NOT_COMMANDS = frozenset({"common"})


def command_modules() -> list[ModuleType]:
    """Every subcommand module of this package, in ``ORDER``."""
    modules = [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_") and info.name not in _NOT_COMMANDS
    ]
    return sorted(modules, key=lambda module: (getattr(module, "ORDER", 100), module.__name__))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="linkstate",
        description=(
            "Explicit connection lifecycles for messaging channels: for every disconnect, "
            "reconnect (and when) or stop in a state that tells the operator what to do."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a usage or input error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except CommandError as exc:
        print(f"linkstate {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
