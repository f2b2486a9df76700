"""The ``--db PATH|URL`` option and the store plumbing shared by the commands that use one.

``simulate``, ``watch`` and ``demo`` get ``--db`` through
:func:`linkstate.cli._options.add_run_options` (the options live there, light
to import for ``--help``); ``status``, ``history``,
``relink`` and ``reset`` open an existing file with :func:`open_store`. Every
:class:`linkstate.store.StoreError` becomes a :class:`linkstate.cli.common.CommandError`:
one line naming the file and the fix, never a traceback, with the exit status
of its kind (:func:`store_exit_status`).

:func:`open_store` is the one place that chooses the back end: a
``postgresql://`` URL opens the PostgreSQL store, anything else is a SQLite
file's path.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Protocol

from linkstate._channel import Channel
from linkstate._lifecycle import State
from linkstate._machine import TransitionRecord
from linkstate.cli._render import ago
from linkstate.cli.common import CommandError, ExitStatus, channel_or_exit, shown
from linkstate.store._journal import Journal, open_journal
from linkstate.store._lease import LeaseInfo, is_postgres_url
from linkstate.store._sqlite import (
    LinkRow,
    SQLiteStore,
    StateStore,
    StoreConflictError,
    StoreError,
    StoreOwnedElsewhereError,
    StoreRequestError,
    StoreRowError,
    operator_reset,
    require_link,
)

__all__ = [
    "journal_from_args",
    "open_store",
    "operate",
    "store_errors",
    "store_exit_status",
    "stored_channel",
]


class OpenedStore(StateStore, Protocol):
    """A store the commands open and close with ``with``."""

    def __enter__(self) -> OpenedStore: ...
    def __exit__(self, *exc_info: object) -> None: ...
    def read_links(self) -> tuple[list[LinkRow], list[StoreRowError]]:
        """Every readable link, and an error for each row that cannot be read."""
        ...


def store_exit_status(exc: StoreError) -> ExitStatus:
    """The exit status of a store error: what kind of problem it is.

    2 for a request that does not fit what the store holds; 4 when another
    process drives the link (owned elsewhere, or it changed the stored state
    under this one); 3 for a store that failed.
    """
    if isinstance(exc, StoreRequestError):
        return ExitStatus.usage
    if isinstance(exc, StoreOwnedElsewhereError | StoreConflictError):
        return ExitStatus.owned_elsewhere
    return ExitStatus.store


@contextmanager
def store_errors() -> Iterator[None]:
    """Turn a :class:`StoreError` (alone, or the one error of trio's groups) into a CommandError.

    A :class:`CommandError` that is the one error of a group (a usage problem
    found inside the event loop, such as a busy port) is raised bare, so that
    it is still one line.
    """
    try:
        yield
    except StoreError as exc:
        raise CommandError(str(exc), store_exit_status(exc)) from exc
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, StoreError):
            raise CommandError(str(leaf), store_exit_status(leaf)) from leaf
        if isinstance(leaf, CommandError):
            raise leaf from None
        raise


def open_store(path: str, *, create: bool = False, read_only: bool = False) -> OpenedStore:
    """Open the state database at ``path`` (a file, or a ``postgresql://`` URL); it must exist.

    ``create`` makes it (the file, or the tables) when missing. ``read_only`` is
    for the commands that only read (``status``, ``history``): on SQLite they
    then work on a read-only mount or a file this user may only read; a
    PostgreSQL role's own grants decide that on the server.
    """
    with store_errors():
        if is_postgres_url(path):
            try:
                from linkstate.store._postgres import PostgresStore
            except ImportError as exc:
                raise CommandError(
                    f"--db postgresql://... needs psycopg, which is not installed ({exc}); "
                    "install it with pip install 'linkstate[postgres]'"
                ) from exc
            return PostgresStore(path, create=create)
        return SQLiteStore(path, create=create, read_only=read_only)


@asynccontextmanager
async def journal_from_args(args: argparse.Namespace) -> AsyncIterator[Journal | None]:
    """A running journal on ``--db`` for the body, or None without ``--db``."""
    path: str | None = getattr(args, "db", None)
    if path is None:
        yield None
        return
    with store_errors(), open_store(path, create=True) as store:
        async with open_journal(store) as journal:
            yield journal


def operate(args: argparse.Namespace, *, only: frozenset[State] | None) -> TransitionRecord:
    """Fire ``reset`` on ``args.link`` in ``args.db``, as the operator; print what happened."""
    with store_errors(), open_store(args.db) as store:
        row = require_link(store, args.link)
        record = operator_reset(
            store, args.link, stored_channel(row.channel), note=args.note, only=only
        )
    print(
        f"{shown(record.link)}: {record.src} -> {record.dst} ({record.reason}); the link "
        "connects again the next time it is started"
    )
    return record


def stored_channel(name: str) -> Channel:
    """The channel a stored link was run with; ``linkstate demo``'s own is not registered."""
    from linkstate.cli import demo  # here: the demo imports trio, the operator commands need not

    if name == demo.DEMO_CHANNEL:
        return demo.demo_channel(channel_or_exit("websocket"))
    return channel_or_exit(name)


def store_leases(store: object) -> dict[str, LeaseInfo] | None:
    """Every link's lease, from a store shared by several hosts; None for one that has none."""
    leases = getattr(store, "leases", None)
    return leases() if callable(leases) else None


def describe_lease(info: LeaseInfo | None, now: float) -> tuple[str, str, str]:
    """``(owner, token, expiry)`` for the status table; ``-`` where there is nothing."""
    if info is None or info.token == 0:
        return "-", "-", "-"
    if info.owner is None:
        return "-", str(info.token), "released"
    expires = info.expires_at if info.expires_at is not None else now
    if info.live:
        return info.owner, str(info.token), f"in {max(0.0, expires - now):.0f} s"
    return info.owner, str(info.token), f"expired {ago(expires, now)}"
