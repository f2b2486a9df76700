"""Persistence of each link's state and history, so that terminal verdicts outlive the process.

Theory of operation
-------------------
A :class:`StateStore` holds one :class:`LinkRow` per link (where it is, its
last close, its counters) and a bounded history of its transitions. The
interface is eight methods, small enough for a PostgreSQL or Redis backend
(``docs/multi-host.md``); :class:`SQLiteStore` is the embedded default.

Rules every backend keeps:

1. ``write`` is atomic: all of a batch's history rows and link rows are
   stored, or none. A crash at any point, ``kill -9`` included, leaves the
   state before or after the batch, never half of it.
2. ``write`` is a compare-and-set on the state: a transition is stored only
   if the stored state is the one it leaves (``record.src``; a link not yet
   stored is ``idle``). Otherwise :class:`StoreConflictError`: something else is
   driving the link, and overwriting its verdict is exactly the bug we exist
   to prevent.
3. One owner per link, checked on every write. A process that runs a link
   first takes a :class:`Claim` (:meth:`StateStore.claim`), which grows the
   link's fencing token by one. Each of its rows carries that token and the
   ``seq`` it expects the write to give; the store compares both in the same
   transaction as the state compare-and-set. A write whose token is not the
   newest, or whose ``seq`` shows a write it did not know of, raises
   :class:`StoreOwnedElsewhereError` and changes nothing. **The newest claim
   wins**: in an overlapping restart the new process takes the link over, and
   the old one learns it on its next write (or at :meth:`StateStore.renew`)
   and stops without recording anything, so it can never store a close the
   new process caused. A backend with leases (``docs/multi-host.md``) instead
   refuses :meth:`StateStore.claim` itself while another owner's lease is
   valid, with the same error. A write into a terminal state releases the
   claim in the same transaction; a write without a token (an operator's
   ``reset``) is refused while a live link has a claim.
4. History is bounded: a link keeps its newest ``keep`` transitions.
5. Every failure is a :class:`StoreError` naming the file and the fix.
6. A terminal verdict is never shown as stored when it is not. When the
   commit of a transition into ``needs_relink`` or ``failed`` fails (a full
   disk, a lock held too long), :class:`SQLiteStore` parks it in a side
   file, ``PATH-verdicts``, whose space was allocated when the store opened
   (overwriting allocated bytes needs no free space), and says so in the
   :class:`StoreError`. The next :meth:`claim` of that link commits the
   parked verdict first (if the link is still where the verdict left it), so
   the next start stops at the verdict instead of connecting again.

Clocks. The runtime's clock (``trio.current_time``, or a virtual clock) means
nothing in another process. So the store keeps wall-clock times (Unix
seconds) and converts at its boundary: :meth:`LinkRow.from_link` and
:meth:`LinkRow.to_link` take the caller's ``now`` together with the wall
clock's reading at that instant, and shift every time field by the
difference. A resumed link therefore sees its ``since``, ``opened_at`` and
``recent_closes`` at the right distance in the past, whatever clock it runs on.

The wall clock can step (an NTP correction, a VM restore, an operator), so
it is trusted only within one row: every row's times are written with one
reading, relative to its ``updated``. How long ago ``updated`` was comes
from the boot-time clock (``CLOCK_BOOTTIME``, which never steps and counts
suspend) when the row was written during this boot; only across a reboot,
or when that clock went backwards (a restored VM), from the wall clock, and
then never less than zero. :meth:`SQLiteStore.load` returns rows rebased
onto the wall clock of now, so a step in either direction between two runs
neither invents recent closes (a step back: "flapping" after one close) nor
ages them away (a step forward: an unhealthy connection counted healthy).
The seam for tests is the environment variable ``LINKSTATE_WALL_OFFSET``
(seconds added to the wall clock every store and journal reads); nothing
but the fault tests sets it.

Why WAL and ``synchronous=FULL``. In WAL mode a commit appends to the log and
readers never block the writer, so ``linkstate status`` can read while a
fleet writes. Any synchronous level keeps the file consistent after a crash;
what ``FULL`` adds is that a commit is on disk (fsynced) before ``write``
returns, so a reported terminal verdict survives a power cut or an OS crash,
not only a killed process. ``NORMAL`` may lose the last commits to a power
cut. The price is one fsync per commit, which the single writer of
:mod:`linkstate.store` shares among every transition waiting at that moment
(group commit); ``benchmarks/store_write.py`` measures both levels.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import secrets
import socket
import sqlite3
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from functools import cache
from itertools import chain, repeat
from json.encoder import encode_basestring_ascii as _json_string
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar, cast, runtime_checkable

from linkstate._channel import Channel
from linkstate._errors import ArgumentError, LinkstateError
from linkstate._events import CloseEvent, sanitise_reason
from linkstate._lifecycle import TERMINAL_STATES, State, StopReason, Trigger
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._verdicts import Rule, Verdict

__all__ = [
    "DEFAULT_KEEP",
    "WALL_OFFSET_ENV",
    "Claim",
    "Entry",
    "LinkRow",
    "SQLiteStore",
    "StateStore",
    "StoreConflictError",
    "StoreError",
    "StoreOwnedElsewhereError",
    "StoreRequestError",
    "StoreRowError",
    "StoredTransition",
    "boot_clock",
    "new_owner",
    "operator_reset",
    "require_link",
    "row_problems",
    "seq_conflict",
    "state_conflict",
    "stored_transitions",
    "wall_clock",
]

DEFAULT_KEEP: Final = 200
"""Transitions kept per link: a few days of a flapping link, a few kilobytes each."""

# "LNKS": marks a SQLite file as ours, so we never write into someone else's database.
_APPLICATION_ID: Final = 0x4C4E4B53
_SCHEMA_VERSION: Final = 2

# The wall and boot clocks are read a few microseconds apart, and NTP slews
# the wall clock by up to 0.5 ms/s: a difference this small is no step, and
# moving a row's times by it would only make every load differ from the last.
_STEP_IGNORED: Final = 1.0

WALL_OFFSET_ENV: Final = "LINKSTATE_WALL_OFFSET"
"""Seconds added to the wall clock the store and the journal read: a seam for the fault tests."""

# A parked verdict's slot in PATH-verdicts: one JSON object padded with
# spaces to this size (an operator message is a few hundred bytes). 32
# slots, one per link: more links reaching a verdict while the disk stays
# full is a long outage, and the StoreError then says the verdict was not kept.
_SLOT: Final = 4096
_SLOTS: Final = 32

_CLAIMS_TABLE: Final = """
    CREATE TABLE claims (
        link_id TEXT PRIMARY KEY,
        owner   TEXT,                   -- NULL once released
        token   INTEGER NOT NULL,       -- fencing token: grows on every claim
        wall    REAL NOT NULL           -- when claimed or released
    ) WITHOUT ROWID
"""

_SCHEMA: Final = (
    """
    CREATE TABLE links (
        link_id       TEXT PRIMARY KEY,
        channel       TEXT NOT NULL,
        state         TEXT NOT NULL,
        since         REAL NOT NULL,   -- wall clock, Unix seconds
        attempt       INTEGER NOT NULL,
        repeats       INTEGER NOT NULL,
        recent_closes TEXT NOT NULL,   -- JSON list of wall-clock times
        opened_at     REAL,
        delay         REAL,
        status        INTEGER,
        code          TEXT,
        reason        TEXT,
        rule          TEXT,
        verdict       TEXT,
        stop_reason   TEXT,
        message       TEXT,
        seq           INTEGER NOT NULL, -- transitions ever written for this link
        updated       REAL NOT NULL,
        boot          TEXT,            -- the boot id when written
        mono          REAL             -- CLOCK_BOOTTIME when written
    )
    """,
    """
    CREATE TABLE history (
        link_id TEXT NOT NULL,
        seq     INTEGER NOT NULL,
        wall    REAL NOT NULL,
        record  TEXT NOT NULL,          -- TransitionRecord.to_json()
        PRIMARY KEY (link_id, seq)
    ) WITHOUT ROWID
    """,
    _CLAIMS_TABLE,
)

# Version 1 had no owners and no boot clock; both are additions.
_MIGRATE_FROM_1: Final = (
    _CLAIMS_TABLE,
    "ALTER TABLE links ADD COLUMN boot TEXT",
    "ALTER TABLE links ADD COLUMN mono REAL",
)

_LINK_COLUMNS: Final = (
    "link_id", "channel", "state", "since", "attempt", "repeats", "recent_closes", "opened_at",
    "delay", "status", "code", "reason", "rule", "verdict", "stop_reason", "message", "seq",
    "updated",
)  # fmt: skip

# A row as load() returns it: the link's columns, its claim, and the clocks it was written at.
_SELECT_ROWS: Final = (
    f"SELECT {', '.join('l.' + name for name in _LINK_COLUMNS)}, c.owner, c.token, l.boot, "
    "l.mono FROM links AS l LEFT JOIN claims AS c ON c.link_id = l.link_id"
)

# The SQL of one batch of writes (SQLiteStore._write_batch), as data: each kind
# of statement, the values each of its rows takes, and its text. Rules:
#
# - One statement per table per batch, not one per row. An executemany resets,
#   binds and steps its statement once per row, and CPython's sqlite3 lets go of
#   the GIL around every step, which the journal's worker thread must then win
#   back from a busy event loop (up to the interpreter's switch interval, 5 ms).
#   A statement that reads its rows from a VALUES list is bound once and is one
#   step: a link row costs about a third of its executemany cost.
# - {rows} is that VALUES list: the batch's rows, padded with rows of NULLs up
#   to the next size in _BATCH_SIZES, which every statement skips (a NULL link
#   id matches nothing). Preparing costs about 6 us a row, so sqlite3's
#   statement cache must hold a few texts, not one per batch size.
# - A batch with more values than the connection allows parameters
#   (SQLITE_LIMIT_VARIABLE_NUMBER: 999 before SQLite 3.32) runs as several
#   statements of the largest size that fits, all in the batch's transaction.
# - The fence read returns the whole batch's links and claims as one JSON row
#   (json_group_array), so that reading it is one step too.
# - Claims are released with one UPDATE per transition into a terminal state:
#   those are rare, and UPDATE ... FROM would need SQLite 3.33.
#
# benchmarks/store_write.py runs exactly these statements (through
# _batch_statements) in its bare sqlite3 loop, the floor the store is measured against.
_BATCH_SQL: Final[dict[str, tuple[int, str]]] = {
    "fence": (
        1,
        "SELECT json_group_array(json_array(b.column1, l.state, l.seq, c.owner, c.token)) "
        "FROM (VALUES {rows}) AS b LEFT JOIN links AS l ON l.link_id = b.column1 "
        "LEFT JOIN claims AS c ON c.link_id = b.column1 WHERE b.column1 IS NOT NULL",
    ),
    "history": (
        4,
        "INSERT INTO history (link_id, seq, wall, record) "
        "SELECT * FROM (VALUES {rows}) WHERE column1 IS NOT NULL",
    ),
    "trim": (
        2,
        "DELETE FROM history WHERE (link_id, seq) IN (SELECT h.link_id, h.seq "
        "FROM (VALUES {rows}) AS b JOIN history AS h "
        "ON h.link_id = b.column1 AND h.seq <= b.column2)",
    ),
    "links": (
        len(_LINK_COLUMNS) + 2,
        f"INSERT OR REPLACE INTO links ({', '.join(_LINK_COLUMNS)}, boot, mono) "
        "SELECT * FROM (VALUES {rows}) WHERE column1 IS NOT NULL",
    ),
}
# What the store asks of SQLite's JSON functions when it opens a file for writing.
_JSON_PROBE: Final = "SELECT json_group_array(json_array(1))"
_BATCH_SIZES: Final = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
_RELEASE_SQL: Final = "UPDATE claims SET owner = NULL, wall = ? WHERE link_id = ? AND token = ?"
# Enough for every text above in each size, and the store's other statements.
_CACHED_STATEMENTS: Final = 256

_TERMINAL_VALUES: Final = frozenset(state.value for state in TERMINAL_STATES)
_NEVER_STORED: Final = (State.idle.value, 0)
_NEVER_CLAIMED: Final[tuple[str | None, int | None]] = (None, None)


class StoreError(LinkstateError, RuntimeError):
    """The state store cannot be used; the message names the file and the fix."""


class StoreRequestError(StoreError):
    """What was asked of the store does not fit what it holds; the message names the fix.

    A missing file, an unknown link, a link in a state the operator action
    does not apply to, a link stored for another channel: mistakes in what was
    typed (exit status 2 at the command line), not a failing store (3).
    """


class StoreConflictError(StoreError):
    """A transition was refused because the stored state is not the one it leaves."""


class StoreRowError(StoreError):
    """One stored row cannot be read back (edited by hand, or written by another program).

    Attributes:
        link_id: The link whose row it is; the other links are still readable.

    """

    def __init__(self, message: str, link_id: str) -> None:
        super().__init__(message)
        self.link_id = link_id


class StoreOwnedElsewhereError(StoreError):
    """Another owner (a newer process, another host) has the link; this writer must stop.

    Not a crash: the writer stops quietly and records nothing (rule 3 of
    :mod:`linkstate.store`). ``owner`` names the owner that has it, when known.
    """

    def __init__(self, message: str, *, link_id: str, owner: str | None = None) -> None:
        super().__init__(message)
        self.link_id = link_id
        self.owner = owner


def wall_clock() -> float:
    """The wall clock (Unix seconds) every store and journal reads by default.

    ``time.time()``, plus :data:`WALL_OFFSET_ENV` seconds when that
    environment variable is set (only tests set it, to step the clock).
    """
    return time.time() + _wall_offset()


@cache
def _wall_offset() -> float:
    text = os.environ.get(WALL_OFFSET_ENV)
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        raise StoreError(
            f"{WALL_OFFSET_ENV}={text!r} is not a number of seconds; unset it (only tests set it)"
        ) from None


def boot_clock() -> float:
    """Seconds since boot, suspend included: never steps, shared by every process of a boot."""
    return time.clock_gettime(getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))


@cache
def _boot_id() -> str:
    """The id of this boot (Linux), so that boot-clock readings of another boot are not compared."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        # No boot id: the boot time, to the second, tells boots apart as well.
        return f"boot@{round(time.time() - boot_clock())}"


def new_owner() -> str:
    """A writer identity for claims: host, process id and a random part per call."""
    return f"{socket.gethostname()}:pid {os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class Claim:
    """One writer's ownership of one link (rule 3 of :mod:`linkstate.store`).

    Attributes:
        link_id: The link.
        owner: The writer's identity (:func:`new_owner`).
        token: The fencing token: every row written under this claim carries it.
        row: The link's stored row when it was claimed (None if never stored).
        previous: The owner whose claim this one took over while that owner
            still had it (an overlapping restart, or a process that died
            without releasing); None when the link was free.

    """

    link_id: str
    owner: str
    token: int
    row: LinkRow | None
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class LinkRow:
    """What the store holds for one link; every time is wall-clock (Unix seconds).

    Attributes:
        link_id: The link's id.
        channel: The channel's registry name.
        state: The lifecycle state.
        since: When the link entered ``state``.
        attempt: The reconnect-attempt counter.
        repeats: Consecutive closes by the same table row (for escalation).
        recent_closes: Times of the latest closes of open connections.
        opened_at: When the current connection opened, if open.
        delay: The latest backoff delay scheduled, in seconds.
        status: The status of the last close.
        code: The symbolic code of the last close.
        reason: The sanitised reason text of the last close.
        rule: The label of the table row that classified the last close.
        verdict: The verdict the guards decided on for the last close
            (:attr:`linkstate.Link.verdict`).
        stop_reason: Why the link is in a terminal state.
        message: The operator message of the terminal state.
        seq: How many transitions were ever written for this link (in a row
            handed to ``write``: the ``seq`` its writer expects the write to
            give, or 0 for "not checked").
        owner: The owner of the link's claim (in a row handed to ``write``:
            the writer's), or None.
        token: That claim's fencing token, or None for a write without a claim.
        updated: When the row was last written.

    """

    link_id: str
    channel: str
    state: str
    since: float
    attempt: int = 0
    repeats: int = 0
    recent_closes: tuple[float, ...] = ()
    opened_at: float | None = None
    delay: float | None = None
    status: int | None = None
    code: str | None = None
    reason: str | None = None
    rule: str | None = None
    verdict: str | None = None
    stop_reason: str | None = None
    message: str | None = None
    seq: int = 0
    owner: str | None = field(default=None, compare=False)
    token: int | None = field(default=None, compare=False)
    updated: float = field(default=0.0, compare=False)

    @property
    def terminal(self) -> bool:
        """True when the stored state is terminal."""
        return State(self.state) in TERMINAL_STATES

    @classmethod
    def from_link(
        cls,
        link: Link,
        *,
        channel: str,
        now: float,
        wall: float,
        claim: Claim | None = None,
        seq: int = 0,
    ) -> LinkRow:
        """Snapshot ``link`` (times on the caller's clock, read at ``now``) in wall-clock time.

        ``wall`` is the wall clock's reading at the same instant as ``now``.
        With ``claim``, the row is written under it, expecting ``seq``
        (rule 3 of :mod:`linkstate.store`).
        """
        shift = wall - now
        event, rule = link.last_event, link.last_rule
        closes, verdict, stop = link.recent_closes, link.verdict, link.stop_reason
        values = (
            link.link_id,
            channel,
            link.state,
            link.since + shift,
            link.attempt,
            link.repeats,
            tuple([t + shift for t in closes]) if closes else (),
            None if link.opened_at is None else link.opened_at + shift,
            link.delay,
            None if event is None else event.status,
            None if event is None else event.code,
            None if event is None else event.reason,
            None if rule is None else _label(rule),
            # _value_: the plain string, as .value gives it, without the enum's property.
            None if verdict is None else verdict._value_,
            None if stop is None else stop._value_,
            link.message,
            seq,
            None if claim is None else claim.owner,
            None if claim is None else claim.token,
            wall,
        )
        if cls is not LinkRow:  # a subclass may add fields or checks of its own
            return cls(*values)
        return _filled(LinkRow, _LINK_ROW_SLOTS, values)

    def to_link(self, *, now: float, wall: float, channel: Channel | None = None) -> Link:
        """Rebuild the :class:`Link`, with times on the caller's clock (read at ``now``).

        ``channel`` finds the table row of the last close again by its label;
        without it (or when the table no longer has that row) ``last_rule`` is None.
        """
        shift = now - wall
        link = Link(self.link_id, State(self.state), self.since + shift)
        link.attempt = self.attempt
        link.repeats = self.repeats
        link.recent_closes = tuple(t + shift for t in self.recent_closes)
        link.opened_at = None if self.opened_at is None else self.opened_at + shift
        link.delay = self.delay
        if self.status is not None or self.code is not None or self.rule is not None:
            link.last_event = CloseEvent(
                status=self.status, code=self.code, reason=self.reason or ""
            )
        if channel is not None and self.rule is not None:
            link.last_rule = next((r for r in channel.table.rows() if r.label == self.rule), None)
        link.verdict = None if self.verdict is None else Verdict(self.verdict)
        link.stop_reason = None if self.stop_reason is None else StopReason(self.stop_reason)
        link.message = self.message
        return link

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict of every field."""
        value = {f.name: getattr(self, f.name) for f in fields(self)}
        value["recent_closes"] = list(self.recent_closes)
        return value


def _label(rule: Rule) -> str:
    """``rule.label``, remembered: a property that formats a string on every call."""
    known = _LABELS.get(id(rule))
    if known is not None and known[0] is rule:  # the rule is kept alive, so its id is its own
        return known[1]
    label = rule.label
    if len(_LABELS) < _MAX_LABELS:
        _LABELS[id(rule)] = (rule, label)
    return label


# Table rows are few and live as long as their channels; the bound is for a program
# that makes tables on the fly (then the labels beyond it are formatted each time).
_MAX_LABELS: Final = 4096
_LABELS: dict[int, tuple[Rule, str]] = {}

# The slots of LinkRow, in field order: LinkRow.from_link fills them.
_LINK_ROW_SLOTS: Final = tuple(getattr(LinkRow, f.name).__set__ for f in fields(LinkRow))

T = TypeVar("T")


def _filled(cls: type[T], setters: Sequence[Callable[[T, Any], None]], values: Sequence[Any]) -> T:
    """A frozen slotted dataclass with ``values`` in its slots (``setters``, in field order).

    The same object as ``cls(*values)``, without ``__init__``: a frozen
    dataclass's ``object.__setattr__`` per field and keyword binding are most
    of the cost of the snapshot the journal takes of every transition.
    """
    made = object.__new__(cls)
    # zip(strict=True) would double the loop's cost; the callers pass one value per field.
    for set_slot, value in zip(setters, values):  # noqa: B905
        set_slot(made, value)
    return made


@dataclass(frozen=True, slots=True)
class StoredTransition:
    """One history entry: the transition and the wall-clock time it was stored at."""

    wall: float
    record: TransitionRecord

    def to_json(self) -> dict[str, object]:
        """The record's fields plus ``wall``."""
        return {"wall": self.wall, **self.record.to_json()}


Entry = tuple[TransitionRecord, LinkRow]
"""One transition and the link's row after it."""


@runtime_checkable
class StateStore(Protocol):
    """Where links' states and histories live; see the module header for the rules."""

    def load(self, link_id: str) -> LinkRow | None:
        """The stored row of ``link_id``, or None if it was never stored."""
        ...

    def claim(self, link_id: str, owner: str) -> Claim:
        """Take ``link_id`` for ``owner`` and return the claim with the link's row.

        Raises:
            StoreOwnedElsewhereError: another owner's claim may not be taken
                over (a lease backend: while it is valid). SQLite never raises
                it: the newest claim wins.
            StoreError: the store cannot be written.

        """
        ...

    def renew(self, claims: Sequence[Claim]) -> list[Claim]:
        """Confirm (a lease backend: extend) ``claims``; return those no longer held."""
        ...

    def release(self, claim: Claim) -> None:
        """Give the link up, if ``claim`` still holds it; idempotent."""
        ...

    def write(self, entries: Sequence[Entry]) -> None:
        """Store transitions and the rows after them, atomically, in order.

        Raises:
            StoreOwnedElsewhereError: a row's token or ``seq`` is not the newest.
            StoreConflictError: a transition leaves a state the link is not in.
            StoreError: the store cannot be written.

        """
        ...

    def history(self, link_id: str, limit: int | None = None) -> list[StoredTransition]:
        """The link's newest ``limit`` transitions (all kept ones for None), oldest first."""
        ...

    def links(self) -> list[LinkRow]:
        """Every stored link, by id."""
        ...

    def close(self) -> None:
        """Release the store's resources; idempotent."""
        ...


# SQLite's errors for a file that cannot be opened as asked (missing, or no access).
_ACCESS_ERRORS: Final = ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")

# SQLite's error names, mapped to what went wrong and what to do about it. The
# first matching prefix wins; {path} and {detail} are filled in.
_ERROR_ADVICE: Final = (
    (
        ("SQLITE_BUSY", "SQLITE_LOCKED"),
        "state database {path} is locked by another process ({detail}); stop the other "
        "process that writes to it, or give this one its own --db",
    ),
    (
        ("SQLITE_NOTADB", "SQLITE_CORRUPT"),
        "state database {path} is corrupted or not a SQLite file ({detail}); move it aside "
        "(mv {path} {path}.broken) and start with a fresh --db, or restore a backup",
    ),
    (
        _ACCESS_ERRORS,
        "cannot write state database {path} ({detail}); check that its directory exists and "
        "that this user may write to it",
    ),
    (
        ("SQLITE_FULL", "SQLITE_IOERR"),
        "cannot write state database {path} ({detail}); free disk space or check the disk",
    ),
)


def _store_error(exc: sqlite3.Error, path: str, doing: str) -> StoreError:
    name = getattr(exc, "sqlite_errorname", "") or ""
    detail = f"{exc} while {doing}"
    for prefixes, advice in _ERROR_ADVICE:
        if name.startswith(prefixes):
            return StoreError(advice.format(path=path, detail=detail))
    return StoreError(f"state database {path}: {detail}; check the file, or use a fresh --db")


class SQLiteStore:
    """The embedded :class:`StateStore`: one SQLite file in WAL mode.

    Args:
        path: The database file.
        create: Create the file when it does not exist; with False a missing
            file is a :class:`StoreError` (for commands that only read or act
            on existing links).
        keep: Transitions kept per link.
        synchronous: ``FULL`` (default; see the module header) or ``NORMAL``.
        timeout: Seconds to wait for another process's write lock.
        wall: The wall clock, for ``updated`` and history times.
        boot: The boot-time clock (see the module header on clocks).
        boot_id: This boot's id; rows written in another boot are rebased
            by the wall clock alone.
        read_only: Open the file for reading only (``status``, ``history``):
            no write access is needed, so a file on a read-only mount, or one
            this user may only read, can be inspected. Writes then fail.

    A store may be used from any one thread at a time (the journal's writer
    uses it from worker threads, one call at a time).

    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        keep: int = DEFAULT_KEEP,
        synchronous: str = "FULL",
        timeout: float = 5.0,
        wall: Callable[[], float] = wall_clock,
        boot: Callable[[], float] = boot_clock,
        boot_id: str | None = None,
        read_only: bool = False,
    ) -> None:
        if keep < 1:
            raise ArgumentError(f"keep={keep!r} must be at least 1 transition per link")
        if synchronous not in ("FULL", "NORMAL"):
            raise ArgumentError(f"synchronous={synchronous!r} must be 'FULL' or 'NORMAL'")
        self.path = os.fspath(path)
        self.keep = keep
        self.synchronous = synchronous
        self.timeout = timeout
        self.wall = wall
        self.boot = boot
        self.boot_id = _boot_id() if boot_id is None else boot_id
        self.verdicts_path = f"{self.path}-verdicts"
        self.read_only = read_only
        if (not create or read_only) and not Path(self.path).is_file():
            raise StoreRequestError(
                f"no state database at {self.path}; check the path, or run `linkstate simulate` "
                "or `linkstate watch` with --db first"
            )
        try:
            self._db = _connect(self.path, timeout, read_only=read_only)
        except sqlite3.Error as exc:
            access = getattr(exc, "sqlite_errorname", "").startswith(_ACCESS_ERRORS)
            if read_only and access:  # the advice for writers (write access) is not this one
                raise StoreError(
                    f"cannot read state database {self.path} ({exc} while opening it); check "
                    "that this user may read it"
                ) from exc
            raise _store_error(exc, self.path, "opening it") from exc
        try:
            self._prepare(synchronous)
        except sqlite3.Error as exc:
            self._db.close()
            raise _store_error(exc, self.path, "opening it") from exc
        except StoreError:
            self._db.close()
            raise
        if create and not read_only:
            self._allocate_verdicts()

    def _prepare(self, synchronous: str) -> None:
        db = self._db
        # Reading the header is what detects a file that is not a database.
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        if app_id != _APPLICATION_ID and (app_id != 0 or tables):
            raise StoreError(
                f"{self.path} is a SQLite database of another application, not a linkstate "
                "state database; pass a different --db path"
            )
        if self.read_only:
            self._check_readable(app_id)
            return
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(
                f"state database {self.path} cannot use WAL mode (got {mode!r}); put it on a "
                "local file system"
            )
        db.execute(f"PRAGMA synchronous={synchronous}")
        try:
            db.execute(_JSON_PROBE).fetchone()
        except sqlite3.OperationalError:
            # Found now, not as a "no such function" on the first write of a verdict.
            raise StoreError(
                f"the SQLite of this Python ({sqlite3.sqlite_version}) has no JSON functions, "
                f"which writing {self.path} needs; use a Python whose sqlite3 module has them "
                "(SQLite 3.38 or newer, or one built with JSON1)"
            ) from None
        if app_id == 0:
            self._create_schema()
            return
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 1:
            self._migrate(_MIGRATE_FROM_1)
            version = _SCHEMA_VERSION
        if version != _SCHEMA_VERSION:
            raise StoreError(
                f"state database {self.path} has schema version {version}, this linkstate "
                f"reads version {_SCHEMA_VERSION}; use the linkstate that wrote it, or a fresh --db"
            )

    def _check_readable(self, app_id: int) -> None:
        """What a reader needs: linkstate data, in the schema this linkstate reads."""
        if app_id == 0:
            raise StoreRequestError(
                f"state database {self.path} holds no linkstate data yet; run `linkstate "
                "simulate` or `linkstate watch` with this --db first"
            )
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version != _SCHEMA_VERSION:
            # A writer migrates an older file; a reader may not write.
            raise StoreError(
                f"state database {self.path} has schema version {version}, this linkstate "
                f"reads version {_SCHEMA_VERSION}; run a linkstate command that writes to it "
                "(from where it is writable) to migrate it, or use the linkstate that wrote it"
            )

    def _create_schema(self) -> None:
        with self._transaction():
            # Another process may have created it while we waited for the lock.
            if self._db.execute("PRAGMA application_id").fetchone()[0] != _APPLICATION_ID:
                for statement in _SCHEMA:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA application_id={_APPLICATION_ID}")
                self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def _migrate(self, statements: Sequence[str]) -> None:
        with self._transaction():
            # Another process may have migrated it while we waited for the lock.
            if self._db.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
                for statement in statements:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; roll back on any error."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already (disk full)
                db.execute("ROLLBACK")
            raise

    # -- StateStore ------------------------------------------------------------

    def load(self, link_id: str) -> LinkRow | None:
        """The stored row of ``link_id``, rebased onto the wall clock of now; or None."""
        try:
            return self._load(link_id)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, f"loading link {link_id!r}") from exc

    def _load(self, link_id: str) -> LinkRow | None:
        row = self._db.execute(f"{_SELECT_ROWS} WHERE l.link_id = ?", (link_id,)).fetchone()
        return None if row is None else self._row_from_sql(row)

    def links(self) -> list[LinkRow]:
        """Every stored link, by id, rebased onto the wall clock of now.

        A row that cannot be read is a :class:`StoreRowError`; see :meth:`read_links`.
        """
        rows, bad = self.read_links()
        if bad:
            raise bad[0]
        return rows

    def read_links(self) -> tuple[list[LinkRow], list[StoreRowError]]:
        """Every readable link by id, and an error for each row that cannot be read.

        One damaged row must not hide every other link from ``linkstate status``.
        """
        try:
            rows = self._db.execute(f"{_SELECT_ROWS} ORDER BY l.link_id").fetchall()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, "listing links") from exc
        good: list[LinkRow] = []
        bad: list[StoreRowError] = []
        for values in rows:
            try:
                good.append(self._row_from_sql(values))
            except StoreRowError as exc:
                bad.append(exc)
        return good, bad

    def _row_from_sql(self, values: Sequence[Any]) -> LinkRow:
        *columns, owner, token, boot, mono = values
        data = _checked(dict(zip(_LINK_COLUMNS, columns, strict=True)), self.path)
        return self._rebase(_row_from_json({**data, "owner": owner, "token": token}), boot, mono)

    def _rebase(self, row: LinkRow, boot: object, mono: object) -> LinkRow:
        """``row`` with its times moved onto the wall clock of now (module header, clocks)."""
        wall = self.wall()
        elapsed = max(0.0, wall - row.updated)
        if boot == self.boot_id and isinstance(mono, float):
            since_written = self.boot() - mono
            if since_written >= 0:  # else a restored VM: the boot clock went back too
                elapsed = since_written
        shift = wall - elapsed - row.updated
        if abs(shift) < _STEP_IGNORED:
            return row
        return replace(
            row,
            since=row.since + shift,
            recent_closes=tuple(t + shift for t in row.recent_closes),
            opened_at=None if row.opened_at is None else row.opened_at + shift,
            updated=row.updated + shift,
        )

    # -- owners ----------------------------------------------------------------

    def claim(self, link_id: str, owner: str) -> Claim:
        """Take ``link_id`` for ``owner``: the newest claim wins (module header, rule 3).

        A verdict parked for the link (rule 6) is committed first, in the same
        transaction, when the link is still in the state it leaves.
        """
        try:
            with self._transaction():
                parked = self._commit_parked(link_id)
                held = self._db.execute(
                    "SELECT owner, token FROM claims WHERE link_id = ?", (link_id,)
                ).fetchone()
                previous, token = held if held is not None else (None, 0)
                self._db.execute(
                    "INSERT OR REPLACE INTO claims (link_id, owner, token, wall) "
                    "VALUES (?, ?, ?, ?)",
                    (link_id, owner, token + 1, self.wall()),
                )
                row = self._load(link_id)
            self._clear_parked(parked)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, f"claiming link {link_id!r}") from exc
        except OSError as exc:
            raise StoreError(
                f"cannot read or clear {self.verdicts_path} ({exc}), where verdicts that failed "
                f"to commit are kept; check that this user may write next to {self.path}"
            ) from exc
        return Claim(link_id, owner, token + 1, row, previous)

    def renew(self, claims: Sequence[Claim]) -> list[Claim]:
        """The claims of ``claims`` that another claim took over since (one query)."""
        if not claims:
            return []
        try:
            held = dict(self._db.execute("SELECT link_id, token FROM claims").fetchall())
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, "checking who owns the links") from exc
        return [claim for claim in claims if held.get(claim.link_id) != claim.token]

    def release(self, claim: Claim) -> None:
        """Give the link up if ``claim`` still holds it."""
        try:
            with self._transaction():
                self._db.execute(
                    "UPDATE claims SET owner = NULL, wall = ? WHERE link_id = ? AND token = ?",
                    (self.wall(), claim.link_id, claim.token),
                )
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, f"releasing link {claim.link_id!r}") from exc

    def history(self, link_id: str, limit: int | None = None) -> list[StoredTransition]:
        """The link's newest ``limit`` transitions, oldest first."""
        # SQLite's integers are 64-bit: a larger limit asks for everything kept.
        bound = -1 if limit is None or limit > _MAX_SQL_INT else limit
        try:
            rows = self._db.execute(
                "SELECT wall, record FROM history WHERE link_id = ? ORDER BY seq DESC LIMIT ?",
                (link_id, bound),
            ).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, f"reading the history of {link_id!r}") from exc
        return stored_transitions(rows, link_id, self.path)

    def write(self, entries: Sequence[Entry]) -> None:
        """Store the transitions and rows in one transaction (see the module header)."""
        if not entries:
            return
        try:
            with self._transaction():
                self._write_batch(entries)
        except sqlite3.Error as exc:
            error = _store_error(exc, self.path, f"writing {len(entries)} transition(s)")
            raise self._park(entries, error) from exc

    def _write_batch(self, entries: Sequence[Entry]) -> None:
        """Inside a transaction: check every entry in order, then write them all.

        Why a batch at a time: the journal hands over hundreds of transitions
        per commit, and five statements per transition, each a Python call
        into sqlite3, cost more than SQLite's own work. So the batch's links
        and claims are read with one query (the fence read of
        :data:`_BATCH_SQL`), every check runs in Python against what the
        entries before it left (a link may change twice in one batch), and
        each table is written with one statement. The outcome is that of
        writing the entries one by one: a refused entry raises before anything
        is written, and the caller's transaction rolls back.
        """
        db = self._db
        stored, held = _read_fences(db, list(dict.fromkeys(row.link_id for _, row in entries)))
        # One reading per transaction: every row of a commit is stored at one instant.
        wall = self.wall()
        boot_id, boot = self.boot_id, self.boot()
        keep = self.keep
        history: list[tuple[object, ...]] = []
        rows: dict[str, tuple[object, ...]] = {}
        released: list[tuple[object, ...]] = []
        newest: dict[str, int] = {}
        for record, row in entries:
            link_id = row.link_id
            state, seq = stored.get(link_id, _NEVER_STORED)
            owner, token = held.get(link_id, _NEVER_CLAIMED)
            _check_fence(record, row, (state, seq), (owner, token))
            if row.token is not None and record.dst in _TERMINAL_VALUES:
                # Released with the terminal write, in its transaction: a process
                # killed right after it leaves no claim behind to block the operator.
                released.append((wall, link_id, row.token))
                if token == row.token:
                    held[link_id] = (None, token)
            seq += 1
            stored[link_id] = (record.dst, seq)
            newest[link_id] = seq
            history.append((link_id, seq, wall, record_json(record)))
            rows[link_id] = (*_row_values(row, seq, wall), boot_id, boot)
        limit = _parameter_limit(db)
        # A link at #keep or below has nothing to trim: its statement is left out.
        trim = [(link_id, seq - keep) for link_id, seq in newest.items() if seq > keep]
        for kind, values in (("history", history), ("trim", trim), ("links", list(rows.values()))):
            for text, parameters in _batch_statements(limit, kind, values):
                db.execute(text, parameters)
        if released:
            db.executemany(_RELEASE_SQL, released)

    def _write_one(self, record: TransitionRecord, row: LinkRow) -> None:
        self._write_batch([(record, row)])

    # -- parked verdicts (module header, rule 6) -------------------------------

    def _allocate_verdicts(self) -> None:
        """Make PATH-verdicts hold its slots, written out, while there is space for them."""
        size = _SLOT * _SLOTS
        try:
            with open(self.verdicts_path, "a+b") as file:
                if os.fstat(file.fileno()).st_size >= size:
                    return
                file.seek(0)
                old = file.read()
                # Written out, not a sparse truncate: the blocks must exist, so
                # that parking later overwrites them without needing free space.
                file.truncate(0)
                file.write(old.ljust(size, b" "))
                file.flush()
                os.fsync(file.fileno())
        except OSError as exc:
            raise StoreError(
                f"cannot prepare {self.verdicts_path} ({exc}), where verdicts that fail to "
                f"commit are kept; free disk space, or check that this user may write next "
                f"to {self.path}"
            ) from exc

    def _slots(self, file: int) -> list[dict[str, Any] | None]:
        data = os.pread(file, _SLOT * _SLOTS, 0)
        slots: list[dict[str, Any] | None] = []
        for i in range(_SLOTS):
            text = data[i * _SLOT : (i + 1) * _SLOT].strip()
            try:
                value = json.loads(text) if text else None
            except ValueError:  # a torn slot (a crash while parking): nothing usable in it
                value = None
            slots.append(value if isinstance(value, dict) else None)
        return slots

    @contextmanager
    def _verdicts(self) -> Iterator[int]:
        """PATH-verdicts, opened and locked against other processes (no-op if it is missing)."""
        try:
            file = os.open(self.verdicts_path, os.O_RDWR)
        except FileNotFoundError:
            yield -1
            return
        try:
            fcntl.flock(file, fcntl.LOCK_EX)
            yield file
        finally:
            os.close(file)

    def _park(self, entries: Sequence[Entry], error: StoreError) -> StoreError:
        """Park the terminal verdicts among ``entries``; ``error``, saying where they went."""
        terminal = [
            (record, row)
            for record, row in entries
            if record.dst in (State.needs_relink.value, State.failed.value)
        ]
        if not terminal:
            return error
        parked: list[str] = []
        try:
            with self._verdicts() as file:
                if file < 0:
                    return error
                slots = self._slots(file)
                for record, row in terminal:
                    value = {"link": row.link_id, "record": record.to_json(), "row": row.to_json()}
                    text = json.dumps(value).encode()
                    taken = [i for i, v in enumerate(slots) if v and v.get("link") == row.link_id]
                    free = [i for i, v in enumerate(slots) if v is None]
                    if not (taken or free) or len(text) >= _SLOT:
                        continue
                    index = (taken or free)[0]
                    slots[index] = value
                    os.pwrite(file, text.ljust(_SLOT, b" "), index * _SLOT)
                    parked.append(row.link_id)
                os.fsync(file)
        except OSError:
            parked = []
        if not parked:
            return type(error)(
                f"{error}. The terminal verdict is NOT stored anywhere, and could not be kept "
                f"in {self.verdicts_path} either"
            )
        names = ", ".join(repr(link) for link in parked)
        return type(error)(
            f"{error}. The terminal verdict of {names} is NOT in the database; it is kept in "
            f"{self.verdicts_path} and is committed on the next start, which will not connect"
        )

    def _commit_parked(self, link_id: str) -> list[int]:
        """Inside a transaction: write the verdict parked for ``link_id``, if any.

        Returns the slots to clear once the transaction committed (not before:
        a commit that fails again must find the verdict still parked).
        """
        slots: list[int] = []
        with self._verdicts() as file:
            if file < 0:
                return slots
            for index, value in enumerate(self._slots(file)):
                if value is None or value.get("link") != link_id:
                    continue
                try:
                    record = TransitionRecord(**value["record"])
                    row: LinkRow | None = _row_from_json(value["row"])
                except (TypeError, KeyError, ValueError):
                    row = None
                if row is not None:
                    stored = self._db.execute(
                        "SELECT state FROM links WHERE link_id = ?", (link_id,)
                    ).fetchone()
                    # Only where the verdict left from: if the link moved on
                    # since (an operator, another owner), that is the truth now.
                    if (stored[0] if stored else State.idle.value) == record.src:
                        # Written as the claim that holds the link now (the
                        # parking process's, if nobody took it over since).
                        held = self._db.execute(
                            "SELECT token FROM claims WHERE link_id = ?", (link_id,)
                        ).fetchone()
                        token = None if held is None else held[0]
                        self._write_one(record, replace(row, token=token, seq=0))
                slots.append(index)
        return slots

    def _clear_parked(self, slots: list[int]) -> None:
        """Empty ``slots`` of PATH-verdicts: their verdicts are committed (or were stale)."""
        if not slots:
            return
        with self._verdicts() as file:
            for index in slots:
                os.pwrite(file, b" " * _SLOT, index * _SLOT)

    def close(self) -> None:
        """Close the connection; idempotent."""
        self._db.close()

    # -- checks ----------------------------------------------------------------

    def check(self) -> list[str]:
        """Problems found in the file: SQLite's integrity check plus this store's invariants.

        Each link's row must agree with its newest history entry (same state,
        same sequence number). An empty list means the file is sound.
        """
        try:
            problems = [
                text for (text,) in self._db.execute("PRAGMA integrity_check") if text != "ok"
            ]
            rows = self._db.execute(
                "SELECT l.link_id, l.state, l.seq, h.seq, h.record FROM links AS l "
                "LEFT JOIN history AS h ON h.link_id = l.link_id "
                "AND h.seq = (SELECT max(seq) FROM history WHERE link_id = l.link_id)"
            ).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, "checking it") from exc
        return problems + row_problems(rows)

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_MAX_SQL_INT: Final = 2**63 - 1

# What each column of a stored row must hold to be read back. SQLite keeps
# whatever it is given (its column types are advice), so a row edited by hand
# or written by another program is checked here, and reported by its link id
# instead of breaking every reader of the file. Each column: its kind ("time"
# and "number" are finite numbers, "count" a whole number >= 0; the enum kinds
# are values of State, Verdict and StopReason) and whether it may be NULL.
_COLUMN_KINDS: Final[dict[str, tuple[str, bool]]] = {
    "link_id": ("text", False),
    "channel": ("text", False),
    "state": ("state", False),
    "since": ("time", False),
    "attempt": ("count", False),
    "repeats": ("count", False),
    "recent_closes": ("times", False),
    "opened_at": ("time", True),
    "delay": ("number", True),
    "status": ("int", True),
    "code": ("text", True),
    "reason": ("text", True),
    "rule": ("text", True),
    "verdict": ("verdict", True),
    "stop_reason": ("stop_reason", True),
    "message": ("text", True),
    "seq": ("count", False),
    "updated": ("time", False),
}

# Enough for any flap window a policy can hold; more is not a row we wrote.
_MAX_RECENT_CLOSES: Final = 10_000


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _valid(kind: str, value: object) -> bool:
    match kind:
        case "text":
            return isinstance(value, str)
        case "time" | "number":
            return _finite_number(value)
        case "count":
            return isinstance(value, int) and value >= 0
        case "int":
            return isinstance(value, int)
        case "state":
            return value in _STATES
        case "verdict":
            return value in _VERDICTS
        case "stop_reason":
            return value in _STOP_REASONS
        case "times":
            return (
                isinstance(value, list)
                and len(value) <= _MAX_RECENT_CLOSES
                and all(_finite_number(t) for t in value)
            )
    raise AssertionError(kind)  # pragma: no cover - every kind above is handled


_STATES: Final = frozenset(s.value for s in State)
_VERDICTS: Final = frozenset(v.value for v in Verdict)
_STOP_REASONS: Final = frozenset(r.value for r in StopReason)


def _bad_row(path: str, link_id: str, what: str) -> StoreRowError:
    return StoreRowError(
        f"state database {path}: the row of link {link_id!r} cannot be read ({what}); it was "
        "edited by hand or written by another program. Restore the file from a backup, or "
        "delete that link's row with sqlite3 and start the link afresh",
        link_id,
    )


def _checked(data: dict[str, Any], path: str) -> dict[str, Any]:
    """The columns of a stored row, ``recent_closes`` parsed; a StoreRowError if one is bad."""
    link_id = data["link_id"] if isinstance(data["link_id"], str) else repr(data["link_id"])
    try:
        data["recent_closes"] = json.loads(str(data["recent_closes"]))
    except (ValueError, RecursionError):
        raise _bad_row(path, link_id, "recent_closes is not a JSON list") from None
    for name, (kind, nullable) in _COLUMN_KINDS.items():
        value = data[name]
        if not (value is None and nullable) and not _valid(kind, value):
            shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}..."
            raise _bad_row(path, link_id, f"{name} holds {shown}, which is not a valid {kind}")
    return data


def _entry_from_sql(link_id: str, wall: object, text: object, path: str) -> StoredTransition:
    try:
        fields_ = json.loads(str(text))
        record = TransitionRecord(**fields_)
    except (ValueError, TypeError, RecursionError):
        raise _bad_row(path, link_id, "a history entry is not a stored transition") from None
    if not _finite_number(wall):
        raise _bad_row(path, link_id, f"a history entry has the time {wall!r}")
    return StoredTransition(cast("float", wall), record)


def _connect(path: str, timeout: float, *, read_only: bool) -> sqlite3.Connection:
    """Open ``path``; read-only needs no write access to the file or its directory."""

    def connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
        return sqlite3.connect(
            target,
            timeout=timeout,
            isolation_level=None,
            check_same_thread=False,
            uri=uri,
            cached_statements=_CACHED_STATEMENTS,
        )

    if not read_only:
        return connect(path)
    uri = Path(path).absolute().as_uri()
    db = connect(f"{uri}?mode=ro", uri=True)
    try:
        db.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        return db
    except sqlite3.OperationalError as exc:
        db.close()
        if getattr(exc, "sqlite_errorname", "") != "SQLITE_CANTOPEN":
            raise
    # A WAL database whose -shm file does not exist and cannot be created (a
    # read-only mount, a directory this user may not write): SQLite reads it
    # only as immutable, which nothing on this side can break: we never write.
    return connect(f"{uri}?mode=ro&immutable=1", uri=True)


def stored_transitions(
    rows: Sequence[Sequence[Any]], link_id: str, where: str
) -> list[StoredTransition]:
    """History rows ``(wall, record JSON)``, newest first, as transitions oldest first.

    A damaged entry is a :class:`StoreRowError` naming the link and ``where``
    (the file or server), on any back end.
    """
    return [_entry_from_sql(link_id, wall, text, where) for wall, text in reversed(rows)]


def row_problems(rows: Sequence[Sequence[Any]]) -> list[str]:
    """Links whose row disagrees with its newest history entry (``check``, on any back end).

    Each of ``rows`` is ``(link_id, state, seq, newest history seq, its record JSON)``.
    """
    problems = []
    for link_id, state, seq, last_seq, record in rows:
        last_dst = None if record is None else json.loads(record)["dst"]
        if last_seq != seq or last_dst != state:
            problems.append(
                f"link {link_id!r}: row says {state!r} at #{seq}, newest history entry "
                f"says {last_dst!r} at #{last_seq}"
            )
    return problems


def state_conflict(link_id: str, state: str, record: TransitionRecord) -> StoreConflictError:
    """The compare-and-set's refusal: the link is in ``state``, not where ``record`` leaves."""
    return StoreConflictError(
        f"link {link_id!r} is stored in state {state!r}, but this transition "
        f"({record.trigger!r}) leaves {record.src!r}: another process or an operator "
        "changed it. Stop the other process driving this link (one process per link; "
        "see docs/multi-host.md) and start it again"
    )


def seq_conflict(link_id: str, seq: int, expected: int) -> StoreConflictError:
    """The refusal of a write without a claim that expected another ``seq``."""
    return StoreConflictError(
        f"link {link_id!r} is at #{seq}, but this write expected #{expected - 1}: "
        "another process or an operator changed it meanwhile; look again and retry"
    )


def _row_from_json(data: dict[str, Any]) -> LinkRow:
    """A row from :meth:`LinkRow.to_json`'s dict (``recent_closes`` as a list)."""
    closes = tuple(float(t) for t in data["recent_closes"])
    return LinkRow(**{**data, "recent_closes": closes})


def _row_to_sql(row: LinkRow) -> tuple[object, ...]:
    """The values of :data:`_LINK_COLUMNS` for ``row`` as it is (another backend's write)."""
    return _row_values(row, row.seq, row.updated)


def _row_values(row: LinkRow, seq: int, updated: float) -> tuple[object, ...]:
    """The values of :data:`_LINK_COLUMNS` for ``row``, stored as ``seq`` at ``updated``.

    Spelled out rather than read through :func:`dataclasses.fields`: it runs
    once per transition written, and the generic way costs several times more.
    """
    return (
        row.link_id, row.channel, row.state, row.since, row.attempt, row.repeats,
        _times_json(row.recent_closes), row.opened_at, row.delay, row.status, row.code,
        row.reason, row.rule, row.verdict, row.stop_reason, row.message, seq, updated,
    )  # fmt: skip


class _Unusual(LinkstateError):  # noqa: N818 - a signal inside this module, never raised out of it
    """A value the fast JSON writers below do not spell: ``json.dumps`` takes over."""


def _text(value: object) -> str:
    if type(value) is str:
        return _json_string(value)
    if value is None:
        return "null"
    raise _Unusual


def _number(value: object) -> str:
    # Exactly what json.dumps writes: repr() for int and finite float (v - v is
    # 0.0 only when finite); bool, NaN, infinities and subclasses are left to it.
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float and value - value == 0.0:
        return float.__repr__(value)
    if value is None:
        return "null"
    raise _Unusual


def record_json(record: TransitionRecord) -> str:
    """``json.dumps(record.to_json())``, the text of a history row, in a third of the time.

    The journal writes one per transition, and ``json.dumps`` spends most of
    its time on its own set-up for so small a dict. Any value it would spell
    differently (NaN, a bool, a subclass) falls back to ``json.dumps`` itself;
    ``tests/test_store.py`` holds the two equal on arbitrary records.
    """
    r = record
    try:
        return (
            f'{{"t": {_number(r.t)}, "link": {_text(r.link)}, "src": {_text(r.src)}, '
            f'"dst": {_text(r.dst)}, "trigger": {_text(r.trigger)}, "status": {_number(r.status)}, '
            f'"code": {_text(r.code)}, "rule": {_text(r.rule)}, "verdict": {_text(r.verdict)}, '
            f'"attempt": {_number(r.attempt)}, "delay": {_number(r.delay)}, '
            f'"stop_reason": {_text(r.stop_reason)}, "message": {_text(r.message)}, '
            f'"reason": {_text(r.reason)}}}'
        )
    except _Unusual:
        return json.dumps(r.to_json())


def _times_json(times: tuple[float, ...]) -> str:
    """``json.dumps(list(times))`` (``recent_closes``), without its set-up cost."""
    if not times:
        return "[]"
    try:
        return f"[{', '.join(map(_number, times))}]"
    except _Unusual:
        return json.dumps(list(times))


def _batch_statements(
    limit: int, kind: str, rows: Sequence[tuple[object, ...]]
) -> list[tuple[str, list[object]]]:
    """The statements, ``(text, parameters)``, that run ``kind`` of :data:`_BATCH_SQL` on ``rows``.

    ``limit`` is the connection's limit on parameters per statement. One
    statement unless the rows need more parameters than that (see the table's rules).
    """
    width = _BATCH_SQL[kind][0]
    cap = max(1, min(_BATCH_SIZES[-1], limit // width))
    statements = []
    for at in range(0, len(rows), cap):
        part = rows[at : at + cap]
        size = min(cap, _BATCH_SIZES[bisect_left(_BATCH_SIZES, len(part))])
        values = list(chain.from_iterable(part))
        values.extend(repeat(None, width * (size - len(part))))
        statements.append((_batch_text(kind, size), values))
    return statements


@cache
def _batch_text(kind: str, size: int) -> str:
    width, text = _BATCH_SQL[kind]
    row = f"({', '.join('?' * width)})"
    return text.format(rows=", ".join([row] * size))


def _parameter_limit(db: sqlite3.Connection) -> int:
    return db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def _read_fences(
    db: sqlite3.Connection, ids: Sequence[str]
) -> tuple[dict[str, tuple[str, int]], dict[str, tuple[str | None, int | None]]]:
    """The stored ``(state, seq)`` and ``(owner, token)`` of the links ``ids``: one query.

    The store's (and its benchmark's, which runs the same SQL).
    """
    stored: dict[str, tuple[str, int]] = {}
    held: dict[str, tuple[str | None, int | None]] = {}
    limit = _parameter_limit(db)
    for text, values in _batch_statements(limit, "fence", [(link_id,) for link_id in ids]):
        (found,) = db.execute(text, values).fetchone()
        # state and token are NOT NULL: NULL means the link has no row, or no claim.
        for link_id, state, seq, owner, token in json.loads(found):
            if state is not None:
                stored[link_id] = (state, seq)
            if token is not None:
                held[link_id] = (owner, token)
    return stored, held


def _check_fence(
    record: TransitionRecord,
    row: LinkRow,
    stored: tuple[str, int],
    held: tuple[str | None, int | None],
) -> None:
    """Raise unless ``record`` may be written over the ``stored`` state and seq, and claim.

    Rules 2 and 3 of the module header: the claim's token and the expected
    ``seq`` first (a newer owner wins over everything), then a write without
    a claim against a live owner, then the state compare-and-set.
    """
    link_id = row.link_id
    (state, seq), (owner, token) = stored, held
    if record.link != link_id:
        raise ArgumentError(
            f"record of link {record.link!r} stored with the row of link {link_id!r}; "
            "pair each transition with the row of its own link"
        )
    if row.token is not None and (token != row.token or (row.seq and row.seq != seq + 1)):
        who = (
            f"{owner or 'another writer'} took it over (token {token})"
            if token != row.token
            else f"another writer changed it (#{seq}, this writer expected #{row.seq - 1})"
        )
        raise StoreOwnedElsewhereError(
            f"link {link_id!r} is owned elsewhere: {who}. This process (token "
            f"{row.token}) stops without recording anything; run one process per link",
            link_id=link_id,
            owner=owner,
        )
    if row.token is None and owner is not None and state not in _TERMINAL_VALUES:
        raise StoreOwnedElsewhereError(
            f"link {link_id!r} is run by {owner} (state {state!r}); stop that process "
            "first, then try again",
            link_id=link_id,
            owner=owner,
        )
    if state != record.src:
        raise state_conflict(link_id, state, record)
    if row.token is None and row.seq and row.seq != seq + 1:
        raise seq_conflict(link_id, seq, row.seq)


# -- operator actions --------------------------------------------------------------


def operator_reset(
    store: StateStore,
    link_id: str,
    channel: Channel,
    *,
    note: str,
    only: frozenset[State] | None = None,
    wall: Callable[[], float] = wall_clock,
) -> TransitionRecord:
    """Move a terminal link back to ``idle`` through the lifecycle's ``reset`` trigger.

    The transition is written to the link's history with ``note`` as its
    reason. ``only`` narrows the states accepted (``relink`` accepts only
    ``needs_relink``).

    Raises:
        StoreError: the link is unknown, not in an accepted state, or changed
            meanwhile (:class:`StoreConflictError`).

    """
    row = require_link(store, link_id)
    accepted = only or TERMINAL_STATES
    if State(row.state) not in accepted:
        names = ", ".join(sorted(s.value for s in accepted))
        raise StoreRequestError(
            f"link {link_id!r} is in state {row.state!r}; trigger 'reset' applies only to "
            f"{names}. " + _not_resettable_hint(row)
        )
    now = wall()
    link = row.to_link(now=now, wall=now, channel=channel)
    record = LinkMachine(channel).fire(link, Trigger.reset, now)
    record = replace(record, reason=sanitise_reason(note))
    after = LinkRow.from_link(link, channel=row.channel, now=now, wall=now)
    # The seq it expects: a write that slipped in since the load is a conflict.
    store.write([(record, replace(after, seq=row.seq + 1))])
    return record


def require_link(store: StateStore, link_id: str) -> LinkRow:
    """The stored row of ``link_id``.

    Raises:
        StoreError: no such link; the message lists some that exist.

    """
    row = store.load(link_id)
    if row is None:
        known = ", ".join(r.link_id for r in store.links()[:10]) or "none"
        where = getattr(store, "path", "the state database")
        raise StoreRequestError(
            f"no link {link_id!r} in {where} (links: {known}); check the id and --db"
        )
    return row


def _not_resettable_hint(row: LinkRow) -> str:
    if row.state == State.failed.value:
        return "A failed link needs its cause fixed; then run `linkstate reset` for it"
    if row.terminal:
        return "Use `linkstate reset` for it"
    return (
        "It is not in a terminal state, so nothing needs an operator: it connects whenever "
        "the process that runs it is running"
    )
