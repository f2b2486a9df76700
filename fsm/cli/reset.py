"""``linkstate reset LINK --db PATH``: the operator fixed a terminal link; back to ``idle``."""

from __future__ import annotations

import argparse
from typing import Any, Final

from linkstate.cli._options import add_operator_arguments

__all__ = ["ORDER", "register", "run"]

ORDER: Final = 66


def register(subparsers: Any) -> None:
    """Add the ``reset`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "reset",
        help="after fixing the cause: move a terminal link back to idle",
        description=(
            "Record that the operator acted on a link in a terminal state (needs_relink, "
            "failed or stopped): it moves back to idle through the lifecycle's reset trigger, "
            "with a fresh retry budget, and the next start connects it. Recorded in the "
            "link's history. A link that is not terminal is an error: nothing needs resetting."
        ),
    )
    add_operator_arguments(parser, note="operator reset")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``linkstate reset``."""
    from linkstate.cli._store import operate  # here: --help needs no store

    operate(args, only=None)
    return 0
