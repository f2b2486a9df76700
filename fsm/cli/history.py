"""``linkstate history LINK --db PATH``: a link's stored transitions, oldest first."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Final

from linkstate.cli._options import add_db_option
from linkstate.cli._render import describe_close, timestamp
from linkstate.cli.common import CommandError, link_id, print_json

if TYPE_CHECKING:
    from linkstate.store._sqlite import StoredTransition

__all__ = ["ORDER", "register", "render", "run"]

ORDER: Final = 62


def register(subparsers: Any) -> None:
    """Add the ``history`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "history",
        help="show a link's stored transitions",
        description=(
            "Show the transitions stored for one link, oldest first: when (UTC), from which "
            "state to which, the trigger, the close and its verdict, and operator actions. "
            "The store keeps the newest transitions of each link (200 by default)."
        ),
    )
    parser.add_argument("link", metavar="LINK", type=link_id, help="the link's id")
    add_db_option(parser, required=True)
    parser.add_argument(
        "--limit", type=int, default=None, metavar="N", help="only the newest N transitions"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.set_defaults(run=run)


def render(entry: StoredTransition) -> str:
    """One line for people: time, states, trigger, close, and the reason or message."""
    record = entry.record
    parts = [describe_close(record)]
    if record.delay is not None:
        parts.append(f"attempt {record.attempt}, retry in {record.delay:.2f} s")
    if record.stop_reason is not None:
        parts.append(f"stopped: {record.stop_reason}")
    if record.reason:
        parts.append(record.reason)
    detail = "; ".join(part for part in parts if part)
    what = f"{record.src} -> {record.dst}"
    return f"{timestamp(entry.wall)}  {what:<28} {record.trigger:<17} {detail}".rstrip()


def run(args: argparse.Namespace) -> int:
    """Run ``linkstate history``."""
    if args.limit is not None and args.limit < 1:
        raise CommandError(f"--limit {args.limit} must be at least 1")
    # Here: the store is for running the command, not for its --help.
    from linkstate.cli._store import open_store, store_errors
    from linkstate.store._sqlite import require_link

    with store_errors(), open_store(args.db, read_only=True) as store:
        require_link(store, args.link)
        entries = store.history(args.link, args.limit)
    for entry in entries:
        if args.json:
            print_json(entry.to_json())
        else:
            print(render(entry))
    return 0
