"""``linkstate status --db PATH|URL [--json]``: every stored link, where it is and since when.

On a store shared by several hosts (``--db postgresql://...``) each link's
lease is shown too: its owner, its fencing token and when it expires.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any, Final

from linkstate.cli._options import add_db_option
from linkstate.cli._render import ago, describe_verdict, timestamp
from linkstate.cli.common import ExitStatus, print_json, shown

if TYPE_CHECKING:
    from linkstate.store._lease import LeaseInfo
    from linkstate.store._sqlite import LinkRow

__all__ = ["ORDER", "register", "render", "run"]

ORDER: Final = 60

_COLUMNS: Final = ("LINK", "CHANNEL", "STATE", "SINCE", "ATTEMPTS", "LAST CLOSE")
_LEASE_COLUMNS: Final = ("OWNER", "TOKEN", "LEASE")


def register(subparsers: Any) -> None:
    """Add the ``status`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="list the links in a state database and their states",
        description=(
            "List every link stored in the state database: its state and since when, its "
            "reconnect attempts, its last close with the verdict, and for a terminal state "
            "the operator message. On a postgresql:// store, also each link's lease: its "
            "owner host, fencing token and expiry. Reads only; safe while other processes write."
        ),
    )
    add_db_option(parser, required=True)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per link, one a line"
    )
    parser.set_defaults(run=run)


def render(
    rows: list[LinkRow], now: float, leases: dict[str, LeaseInfo] | None = None
) -> list[str]:
    """The text table, with each terminal link's operator message under its row.

    With ``leases`` (a shared store), three more columns: owner, token, lease expiry.
    """
    from linkstate.cli._store import describe_lease  # here: --help needs no store

    header = _COLUMNS + (_LEASE_COLUMNS if leases is not None else ())
    table: list[tuple[str, ...]] = [header] + [
        (
            shown(row.link_id),
            shown(row.channel),
            row.state,
            f"{timestamp(row.since)} ({ago(row.since, now)})",
            str(row.attempt),
            describe_verdict(row.status, row.rule, row.verdict) or "-",
            *(describe_lease(leases.get(row.link_id), now) if leases is not None else ()),
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(table[0], widths, strict=True)).rstrip()]
    for row, cells in zip(rows, table[1:], strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if row.terminal and row.message:
            lines.append(f"    {shown(row.message)}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Run ``linkstate status``."""
    # Here: the store is for running the command, not for its --help.
    from linkstate.cli._store import open_store, store_errors, store_leases
    from linkstate.store._lease import LeaseInfo

    with store_errors(), open_store(args.db, read_only=True) as store:
        rows, unreadable = store.read_links()
        leases = store_leases(store)
    if args.json:
        # JSON Lines, keyed `link` like every other output.
        for row in rows:
            fields = row.to_json()
            if leases is not None:
                info = leases.get(row.link_id)
                fields.update(
                    info.to_json()
                    if info is not None
                    else LeaseInfo(row.link_id, None, 0, None, live=False).to_json()
                )
            print_json({"link": fields.pop("link_id"), **fields})
    elif rows:
        print("\n".join(render(rows, time.time(), leases)))
    elif not unreadable:
        print(f"no links in {getattr(store, 'path', args.db)} yet")
    # The others are shown above; each damaged row is named, and the exit
    # status says the store needs a person.
    for problem in unreadable:
        print(f"linkstate status: error: {problem}", file=sys.stderr)
    return ExitStatus.store if unreadable else ExitStatus.ok
