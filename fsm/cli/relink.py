"""``linkstate relink LINK --db PATH``: the operator relinked a link in ``needs_relink``."""

from __future__ import annotations

import argparse
from typing import Any, Final

from linkstate._lifecycle import State
from linkstate.cli._options import add_operator_arguments

__all__ = ["ORDER", "register", "run"]

ORDER: Final = 64


def register(subparsers: Any) -> None:
    """Add the ``relink`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "relink",
        help="after relinking an account: move its link from needs_relink back to idle",
        description=(
            "Record that the operator relinked the account (scanned a new QR code, resolved "
            "the session conflict): the link moves from needs_relink to idle through the "
            "lifecycle's reset trigger, and the next start connects it. Recorded in the "
            "link's history. A link in any other state is an error; for failed or stopped "
            "links use `linkstate reset`."
        ),
    )
    add_operator_arguments(parser, note="operator relinked")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``linkstate relink``."""
    from linkstate.cli._store import operate  # here: --help needs no store

    operate(args, only=frozenset({State.needs_relink}))
    return 0
