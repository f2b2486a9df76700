"""Persistence of each link's state and history, so that terminal verdicts outlive the process.

Theory of operation
-------------------
A :class:`StateStore` holds one :class:`LinkRow` per link (where it is, its
last close, its counters) and a bounded history of its transitions. The
interface is five methods, small enough for a PostgreSQL or Redis backend
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
3. History is bounded: a link keeps its newest ``keep`` transitions.
4. Every failure is a :class:`StoreError` naming the file and the fix.

Clocks. The runtime's clock (``trio.current_time``, or a virtual clock) means
nothing in another process. So the store keeps wall-clock times (Unix
seconds) and converts at its boundary: :meth:`LinkRow.from_link` and
:meth:`LinkRow.to_link` take the caller's ``now`` together with the wall
clock's reading at that instant, and shift every time field by the
difference. A resumed link therefore sees its ``since``, ``opened_at`` and
``recent_closes`` at the right distance in the past, whatever clock it runs on.

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

import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Final, Protocol, cast, runtime_checkable

from linkstate._channel import Channel
from linkstate._errors import ArgumentError, LinkstateError
from linkstate._events import CloseEvent, sanitise_reason
from linkstate._lifecycle import TERMINAL_STATES, State, StopReason, Trigger
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._verdicts import Verdict

__all__ = [
    "DEFAULT_KEEP",
    "Entry",
    "LinkRow",
    "SQLiteStore",
    "StateStore",
    "StoreConflictError",
    "StoreError",
    "StoreRowError",
    "StoredTransition",
    "operator_reset",
    "require_link",
]

DEFAULT_KEEP: Final = 200
"""Transitions kept per link: a few days of a flapping link, a few kilobytes each."""

# "LNKS": marks a SQLite file as ours, so we never write into someone else's database.
_APPLICATION_ID: Final = 0x4C4E4B53
_SCHEMA_VERSION: Final = 1

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
        updated       REAL NOT NULL
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
)

_LINK_COLUMNS: Final = (
    "link_id", "channel", "state", "since", "attempt", "repeats", "recent_closes", "opened_at",
    "delay", "status", "code", "reason", "rule", "verdict", "stop_reason", "message", "seq",
    "updated",
)  # fmt: skip


class StoreError(LinkstateError, RuntimeError):
    """The state store cannot be used; the message names the file and the fix."""


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
        seq: How many transitions were ever written for this link.
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
    updated: float = field(default=0.0, compare=False)

    @property
    def terminal(self) -> bool:
        """True when the stored state is terminal."""
        return State(self.state) in TERMINAL_STATES

    @classmethod
    def from_link(cls, link: Link, *, channel: str, now: float, wall: float) -> LinkRow:
        """Snapshot ``link`` (times on the caller's clock, read at ``now``) in wall-clock time.

        ``wall`` is the wall clock's reading at the same instant as ``now``.
        """
        shift = wall - now
        event, rule = link.last_event, link.last_rule
        return cls(
            link_id=link.link_id,
            channel=channel,
            state=link.state,
            since=link.since + shift,
            attempt=link.attempt,
            repeats=link.repeats,
            recent_closes=tuple(t + shift for t in link.recent_closes),
            opened_at=None if link.opened_at is None else link.opened_at + shift,
            delay=link.delay,
            status=None if event is None else event.status,
            code=None if event is None else event.code,
            reason=None if event is None else event.reason,
            rule=None if rule is None else rule.label,
            verdict=None if link.verdict is None else link.verdict.value,
            stop_reason=None if link.stop_reason is None else link.stop_reason.value,
            message=link.message,
            updated=wall,
        )

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

    def write(self, entries: Sequence[Entry]) -> None:
        """Store transitions and the rows after them, atomically, in order.

        Raises:
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
        wall: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        if keep < 1:
            raise ArgumentError(f"keep={keep!r} must be at least 1 transition per link")
        if synchronous not in ("FULL", "NORMAL"):
            raise ArgumentError(f"synchronous={synchronous!r} must be 'FULL' or 'NORMAL'")
        self.path = os.fspath(path)
        self.keep = keep
        self.wall = wall
        self.read_only = read_only
        if (not create or read_only) and not Path(self.path).is_file():
            raise StoreError(
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
            if app_id == 0:
                raise StoreError(
                    f"state database {self.path} holds no linkstate data yet; run `linkstate "
                    "simulate` or `linkstate watch` with this --db first"
                )
            self._check_version()
            return
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(
                f"state database {self.path} cannot use WAL mode (got {mode!r}); put it on a "
                "local file system"
            )
        db.execute(f"PRAGMA synchronous={synchronous}")
        if app_id == 0:
            self._create_schema()
            return
        self._check_version()

    def _check_version(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version != _SCHEMA_VERSION:
            raise StoreError(
                f"state database {self.path} has schema version {version}, this linkstate "
                f"reads version {_SCHEMA_VERSION}; use the linkstate that wrote it, or a fresh --db"
            )

    def _create_schema(self) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have created it while we waited for the lock.
            if db.execute("PRAGMA application_id").fetchone()[0] != _APPLICATION_ID:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA application_id={_APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already (disk full)
                db.execute("ROLLBACK")
            raise

    # -- StateStore ------------------------------------------------------------

    def load(self, link_id: str) -> LinkRow | None:
        """The stored row of ``link_id``, or None."""
        try:
            row = self._db.execute(
                f"SELECT {', '.join(_LINK_COLUMNS)} FROM links WHERE link_id = ?", (link_id,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, f"loading link {link_id!r}") from exc
        return None if row is None else _row_from_sql(row, self.path)

    def links(self) -> list[LinkRow]:
        """Every stored link, by id; a row that cannot be read is a :class:`StoreRowError`."""
        rows, bad = self.read_links()
        if bad:
            raise bad[0]
        return rows

    def read_links(self) -> tuple[list[LinkRow], list[StoreRowError]]:
        """Every readable link by id, and an error for each row that cannot be read.

        One damaged row must not hide every other link from ``linkstate status``.
        """
        try:
            rows = self._db.execute(
                f"SELECT {', '.join(_LINK_COLUMNS)} FROM links ORDER BY link_id"
            ).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, "listing links") from exc
        good: list[LinkRow] = []
        bad: list[StoreRowError] = []
        for values in rows:
            try:
                good.append(_row_from_sql(values, self.path))
            except StoreRowError as exc:
                bad.append(exc)
        return good, bad

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
        return [_entry_from_sql(link_id, wall, text, self.path) for wall, text in reversed(rows)]

    def write(self, entries: Sequence[Entry]) -> None:
        """Store the transitions and rows in one transaction (see the module header)."""
        if not entries:
            return
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for record, row in entries:
                    self._write_one(record, row)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (disk full)
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, f"writing {len(entries)} transition(s)") from exc

    def _write_one(self, record: TransitionRecord, row: LinkRow) -> None:
        db = self._db
        if record.link != row.link_id:
            raise ArgumentError(
                f"record of link {record.link!r} stored with the row of link {row.link_id!r}; "
                "pair each transition with the row of its own link"
            )
        stored = db.execute(
            "SELECT state, seq FROM links WHERE link_id = ?", (row.link_id,)
        ).fetchone()
        state, seq = stored if stored is not None else (State.idle.value, 0)
        if state != record.src:
            raise StoreConflictError(
                f"link {row.link_id!r} is stored in state {state!r}, but this transition "
                f"({record.trigger!r}) leaves {record.src!r}: another process or an operator "
                "changed it. Stop the other process driving this link (one process per link; "
                "see docs/multi-host.md) and start it again"
            )
        seq += 1
        wall = self.wall()
        db.execute(
            "INSERT INTO history (link_id, seq, wall, record) VALUES (?, ?, ?, ?)",
            (row.link_id, seq, wall, json.dumps(record.to_json())),
        )
        db.execute(
            "DELETE FROM history WHERE link_id = ? AND seq <= ?", (row.link_id, seq - self.keep)
        )
        values = _row_to_sql(replace(row, seq=seq, updated=wall))
        db.execute(
            f"INSERT OR REPLACE INTO links ({', '.join(_LINK_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_LINK_COLUMNS))})",
            values,
        )

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
        for link_id, state, seq, last_seq, record in rows:
            last_dst = None if record is None else json.loads(record)["dst"]
            if last_seq != seq or last_dst != state:
                problems.append(
                    f"link {link_id!r}: row says {state!r} at #{seq}, newest history entry "
                    f"says {last_dst!r} at #{last_seq}"
                )
        return problems

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _row_to_sql(row: LinkRow) -> tuple[object, ...]:
    value = row.to_json()
    value["recent_closes"] = json.dumps(value["recent_closes"])
    return tuple(value[name] for name in _LINK_COLUMNS)


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
        f"delete that link's row with sqlite3 and start the link afresh",
        link_id,
    )


def _row_from_sql(values: Sequence[object], path: str) -> LinkRow:
    data = dict(zip(_LINK_COLUMNS, values, strict=True))
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
    closes = cast("list[float]", data.pop("recent_closes"))
    return LinkRow(recent_closes=tuple(float(t) for t in closes), **data)  # type: ignore[arg-type]


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
            target, timeout=timeout, isolation_level=None, check_same_thread=False, uri=uri
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


# -- operator actions --------------------------------------------------------------


def operator_reset(
    store: StateStore,
    link_id: str,
    channel: Channel,
    *,
    note: str,
    only: frozenset[State] | None = None,
    wall: Callable[[], float] = time.time,
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
        raise StoreError(
            f"link {link_id!r} is in state {row.state!r}; trigger 'reset' applies only to "
            f"{names}. " + _not_resettable_hint(row)
        )
    now = wall()
    link = row.to_link(now=now, wall=now, channel=channel)
    record = LinkMachine(channel).fire(link, Trigger.reset, now)
    record = replace(record, reason=sanitise_reason(note))
    store.write([(record, LinkRow.from_link(link, channel=row.channel, now=now, wall=now))])
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
        raise StoreError(f"no link {link_id!r} in {where} (links: {known}); check the id and --db")
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
