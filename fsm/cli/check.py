"""``linkstate check [CHANNEL ...|--all]``: prove the lifecycle, alone or with channel tables."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any, Final

from linkstate._channel import available_channels
from linkstate._lifecycle import LIFECYCLE, Definition, LifecycleError
from linkstate.check._checker import Report, check
from linkstate.cli.common import CommandError, channel_or_exit

__all__ = ["ORDER", "load_definition", "register", "reports"]

ORDER: Final = 40

# Exit status when a check finds problems (2 stays reserved for usage errors).
PROBLEMS_FOUND: Final = 1


def register(subparsers: Any) -> None:
    """Add the ``check`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="prove the lifecycle and channel tables: exactly one edge per case",
        description=(
            "Prove the lifecycle definition: every state reachable, terminal states "
            "absorbing, exactly one edge for every state, trigger, verdict, budget and "
            "flapping condition. With CHANNEL names (or --all) also check each channel's "
            "table. Exits 0 when clean, 1 with a report naming state, trigger and verdict."
        ),
    )
    parser.add_argument(
        "channels", metavar="CHANNEL", nargs="*", help="channels to check with the lifecycle"
    )
    parser.add_argument(
        "--all", action="store_true", help="check the bare lifecycle and every installed channel"
    )
    parser.add_argument(
        "--definition",
        metavar="MODULE:NAME",
        help="check this Definition instead of the built-in lifecycle (mypkg.flow:LIFECYCLE)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per subject")
    parser.set_defaults(run=run)


def load_definition(spec: str) -> Definition:
    """Import ``MODULE:NAME`` and return the :class:`Definition` it names.

    Raises:
        CommandError: the spec is malformed, the import fails, or the object
            is not a Definition.
        LifecycleError: the definition refuses to build (undeclared state,
            uncallable guard); the caller reports it as a finding.

    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CommandError(f"--definition {spec!r}: write it as MODULE:NAME, e.g. mypkg.flow:FLOW")
    # For this option only, the current directory is importable, as it is for
    # `python -m`: a definition in ./flow.py is `--definition flow:FLOW`, no PYTHONPATH.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except LifecycleError:
        raise
    except Exception as exc:
        raise CommandError(
            f"--definition {spec!r}: cannot import {module_name!r} ({type(exc).__name__}: "
            f"{exc}); check the module path: the current directory and installed packages "
            "are searched"
        ) from exc
    value = getattr(module, attr, None)
    if not isinstance(value, Definition):
        raise CommandError(
            f"--definition {spec!r}: {attr!r} in {module_name!r} is "
            f"{type(value).__name__}, not a linkstate.Definition"
        )
    return value


def reports(
    channels: list[str], *, all_channels: bool, definition: Definition = LIFECYCLE
) -> list[Report]:
    """The reports for the bare definition (when asked or nothing else is) and each channel."""
    names = list(available_channels()) if all_channels else channels
    loaded = [channel_or_exit(name) for name in names]
    result = [check(definition)] if all_channels or not names else []
    result.extend(check(definition, channel) for channel in loaded)
    return result


def run(args: argparse.Namespace) -> int:
    """Run ``linkstate check``."""
    if args.all and args.channels:
        raise CommandError("give CHANNEL names or --all, not both")
    try:
        definition = LIFECYCLE if args.definition is None else load_definition(args.definition)
    except LifecycleError as exc:
        # A definition that refuses to build is a finding, not a usage error.
        print(f"FAIL  {args.definition}: {exc}")
        return PROBLEMS_FOUND
    found = reports(args.channels, all_channels=args.all, definition=definition)
    for report in found:
        print(json.dumps(report.to_json(), ensure_ascii=False) if args.json else report.render())
    return 0 if all(report.ok for report in found) else PROBLEMS_FOUND
