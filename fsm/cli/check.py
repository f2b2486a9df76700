"""``linkstate check [CHANNEL ...|--all]``: prove the lifecycle, alone or with channel tables."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from linkstate._channel import available_channels
from linkstate._lifecycle import LIFECYCLE, Definition, LifecycleError
from linkstate.cli.common import CommandError, channel_or_exit

if TYPE_CHECKING:
    from linkstate.check._checker import Report

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
        help="check this Definition instead of the built-in lifecycle: a module's "
        "(mypkg.flow:FLOW; the current directory is searched too) or a file's (flows.py:FLOW)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per subject")
    parser.set_defaults(run=run)


def load_definition(spec: str) -> Definition:
    """Import ``MODULE:NAME`` or ``path/to/file.py:NAME`` and return the :class:`Definition`.

    Raises:
        CommandError: the spec is malformed, the import fails, or the object
            is not a Definition.
        LifecycleError: the definition refuses to build (undeclared state,
            uncallable guard); the caller reports it as a finding.

    """
    # rpartition: a module name never holds a colon, but a path may.
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise CommandError(
            f"--definition {spec!r}: write it as MODULE:NAME or path/to/file.py:NAME, "
            "e.g. mypkg.flow:FLOW or flows.py:FLOW"
        )
    # A module name has neither a slash nor a .py; an existing file is a file.
    is_file = target.endswith(".py") or "/" in target or os.sep in target or Path(target).is_file()
    module = _import_file(target, spec) if is_file else _import_module(target, spec)
    if not hasattr(module, attr):
        raise CommandError(
            f"--definition {spec!r}: {target!r} defines no {attr!r}; name the Definition "
            "object after the colon"
        )
    value = getattr(module, attr)
    if not isinstance(value, Definition):
        raise CommandError(
            f"--definition {spec!r}: {attr!r} in {target!r} is "
            f"{type(value).__name__}, not a linkstate.Definition; name the Definition "
            "object after the colon"
        )
    return value


def _import_module(module_name: str, spec: str) -> ModuleType:
    # For this option only, the current directory is importable, as it is for
    # `python -m`: a definition in ./flow.py is `--definition flow:FLOW`, no PYTHONPATH.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except LifecycleError:
        raise
    except Exception as exc:
        raise CommandError(
            f"--definition {spec!r}: cannot import {module_name!r} ({type(exc).__name__}: "
            f"{exc}); check the module path: the current directory and installed packages "
            "are searched, or pass the file itself: path/to/flow.py:NAME"
        ) from exc


# The name a definition file runs under: its own, so that its classes and
# functions say where they come from, but never one that could replace an
# installed module of the same name (a flows file called json.py).
_FILE_MODULE_PREFIX: Final = "linkstate_definition_file."


def _import_file(path_text: str, spec: str) -> ModuleType:
    path = Path(path_text)
    if not path.is_file():
        raise CommandError(
            f"--definition {spec!r}: there is no file {path_text!r}; give the path of the "
            "Python file that defines it, relative to the current directory or absolute"
        )
    name = _FILE_MODULE_PREFIX + path.stem
    found = importlib.util.spec_from_file_location(name, path)
    if found is None or found.loader is None:
        raise CommandError(
            f"--definition {spec!r}: {path_text!r} is not a Python file; name a .py file"
        )
    # As for `python path/to/flow.py`, the file's directory is importable, so
    # the file may import the modules beside it.
    directory = str(path.resolve().parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module  # dataclasses in the file look their module up
    try:
        found.loader.exec_module(module)
    except LifecycleError:
        del sys.modules[name]
        raise
    except Exception as exc:
        del sys.modules[name]
        raise CommandError(
            f"--definition {spec!r}: running {path_text!r} failed ({type(exc).__name__}: "
            f"{exc}); fix the file, or run it with python to see the whole traceback"
        ) from exc
    return module


def reports(
    channels: list[str], *, all_channels: bool, definition: Definition = LIFECYCLE
) -> list[Report]:
    """The reports for the bare definition (when asked or nothing else is) and each channel."""
    from linkstate.check._checker import check  # here: the checker runs a check, not --help

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
