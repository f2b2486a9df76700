"""Terminal verdicts that outlive the process: the state store and its journal.

:class:`SQLiteStore` implements :class:`StateStore` on one SQLite file (WAL,
``synchronous=FULL``); :class:`Journal` is the single writer task that group
commits transitions and reports each only after its commit.
"""

from linkstate.store._journal import Journal, JournalStatistics, Receipt, open_journal
from linkstate.store._sqlite import (
    Entry,
    LinkRow,
    SQLiteStore,
    StateStore,
    StoreConflictError,
    StoredTransition,
    StoreError,
    operator_reset,
)

__all__ = [
    "Entry",
    "Journal",
    "JournalStatistics",
    "LinkRow",
    "Receipt",
    "SQLiteStore",
    "StateStore",
    "StoreConflictError",
    "StoreError",
    "StoredTransition",
    "open_journal",
    "operator_reset",
]
