"""Terminal verdicts that outlive the process: the state store and its journal.

:class:`SQLiteStore` implements :class:`StateStore` on one SQLite file (WAL,
``synchronous=FULL``); :class:`Journal` is the single writer task that group
commits transitions and reports each only after its commit. A :class:`Claim`
makes one writer the owner of a link; a write from any other is refused with
:class:`StoreOwnedElsewhereError`.
"""

from linkstate.store._journal import Journal, JournalStatistics, Receipt, open_journal
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
    new_owner,
    operator_reset,
)

__all__ = [
    "Claim",
    "Entry",
    "Journal",
    "JournalStatistics",
    "LinkRow",
    "Receipt",
    "SQLiteStore",
    "StateStore",
    "StoreConflictError",
    "StoreError",
    "StoreOwnedElsewhereError",
    "StoreRequestError",
    "StoredTransition",
    "new_owner",
    "open_journal",
    "operator_reset",
]
