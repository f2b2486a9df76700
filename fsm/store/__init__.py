"""Terminal verdicts that outlive the process: the state store and its journal.

:class:`SQLiteStore` implements :class:`StateStore` on one SQLite file (WAL,
``synchronous=FULL``); :class:`PostgresStore` on PostgreSQL, shared by several
gateway hosts with fenced leases (``docs/multi-host.md``; the ``postgres``
extra). :class:`Journal` is the single writer task that group commits
transitions and reports each only after its commit. A :class:`Claim` makes
one writer the owner of a link; a write from any other is refused with
:class:`StoreOwnedElsewhereError`.
"""

from typing import TYPE_CHECKING

from linkstate._errors import LinkstateError
from linkstate.store._journal import Journal, JournalStatistics, Receipt, Writer, open_journal
from linkstate.store._lease import Lease, LeaseInfo, LeaseLostError, LeaseStore
from linkstate.store._sqlite import (
    Claim,
    Entry,
    LinkRow,
    SQLiteStore,
    StateStore,
    StoreConflictError,
    StoredTransition,
    StoreError,
    StoreOwnedElsewhereError,
    StoreRequestError,
    StoreRowError,
    new_owner,
    operator_reset,
)

if TYPE_CHECKING:
    from linkstate.store._postgres import PostgresStore

__all__ = [
    "Claim",
    "Entry",
    "Journal",
    "JournalStatistics",
    "Lease",
    "LeaseInfo",
    "LeaseLostError",
    "LeaseStore",
    "LinkRow",
    "PostgresStore",
    "Receipt",
    "SQLiteStore",
    "StateStore",
    "StoreConflictError",
    "StoreError",
    "StoreOwnedElsewhereError",
    "StoreRequestError",
    "StoreRowError",
    "StoredTransition",
    "Writer",
    "new_owner",
    "open_journal",
    "operator_reset",
]


def __getattr__(name: str) -> object:
    # psycopg is an extra: imported when the PostgreSQL store is first named.
    if name == "PostgresStore":
        from linkstate.store._postgres import PostgresStore

        return PostgresStore
    raise _NoSuchNameError(f"module {__name__!r} has no attribute {name!r}")


class _NoSuchNameError(LinkstateError, AttributeError):
    """A name the package does not have (the import machinery expects an AttributeError)."""
