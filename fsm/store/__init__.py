"""Terminal verdicts that outlive the process: the state store and its journal.

:class:`SQLiteStore` implements :class:`StateStore` on one SQLite file (WAL,
``synchronous=FULL``); :class:`Journal` is the single writer task that group
commits transitions and reports each only after its commit.
"""

from linkstate.store._journal import (
    DEFAULT_MAX_BATCH,
    Journal,
    JournalStatistics,
    Receipt,
    open_journal,
)
from linkstate.store._sqlite import (
    DEFAULT_KEEP,
    Entry,
    LinkRow,
    SQLiteStore,
    StateStore,
    StoreConflictError,
    StoredTransition,
    StoreError,
    operator_reset,
    require_link,
    resume_stopped,
)

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_MAX_BATCH",
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
    "require_link",
    "resume_stopped",
]
