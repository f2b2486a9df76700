"""The PostgreSQL state store: several gateway hosts share links, fenced by lease tokens.

Theory of operation
-------------------
:class:`PostgresStore` keeps every rule of the SQLite store (``_sqlite.py``'s
header): atomic batches, compare-and-set on the state, bounded history, one
clear :class:`StoreError` per failure, and nothing returned before it is
committed. It adds leases (``_lease.py``) and a hosts table.

The fence. Each link's lease (owner, token, expiry) is on the link's own row,
the row every write updates. A fenced write is one statement::

    UPDATE links SET ... WHERE link_id = $id AND state = $src
       AND lease_owner = $me AND lease_token = $token
       AND lease_expires > clock_timestamp()

Under READ COMMITTED an ``UPDATE`` that waits for another transaction's row
lock evaluates its ``WHERE`` again on the row version that transaction
committed. So a stale holder blocked behind the new holder's acquisition sees
the new token and changes nothing. The first design note fenced with ``AND
EXISTS (SELECT ... FROM leases ...)``: that subquery reads the other table
from the statement's snapshot without locking it, and lets exactly that stale
write through (``tests/test_postgres_store.py`` forces the interleaving).

Clocks. Every expiry is on the server's clock, read with ``clock_timestamp()``:
``now()`` is the transaction's start, which a write that waited for a lock
would see in the past. Row times (``since``, ``updated``) stay on the writer's
wall clock, as in SQLite, because the runtime converts them at the boundary.

Threads. psycopg's synchronous API, called from the journal's worker thread
(its async API needs asyncio; this works under trio and asyncio alike). A
``psycopg_pool`` pool gives each call its own connection, so the lease
renewal, on a thread of its own, never waits behind a batch commit. Each
connection is checked before it is handed out, so a server restart costs a
reconnect, not an error. Writes are not retried after a connection error:
the commit may have happened, and the caller must not be told otherwise.

Lock order. A journal batch and a renewal both lock many link rows; each
takes them in link-id order, so they queue instead of deadlocking.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from linkstate._errors import ArgumentError, LinkstateError
from linkstate._lifecycle import TERMINAL_STATES, State
from linkstate._machine import TransitionRecord
from linkstate.store._lease import Lease, LeaseInfo, LeaseLostError, is_postgres_url
from linkstate.store._sqlite import (
    _LINK_COLUMNS,
    DEFAULT_KEEP,
    Claim,
    Entry,
    LinkRow,
    StoredTransition,
    StoreError,
    StoreOwnedElsewhereError,
    StoreRowError,
    _row_values,
    record_json,
    row_problems,
    seq_conflict,
    state_conflict,
    stored_transitions,
    wall_clock,
)

__all__ = ["SCHEMA_VERSION", "PostgresStore", "is_postgres_url"]

SCHEMA_VERSION: Final = 1
"""The version this linkstate reads and writes; a later release migrates from it."""

# Any constant: serialises schema creation between processes that start together.
_SCHEMA_LOCK: Final = 0x4C4E4B53

_SCHEMA: Final = (
    """
    CREATE TABLE linkstate_schema (
        version integer NOT NULL,
        created timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    """
    CREATE TABLE links (
        link_id       text PRIMARY KEY,
        channel       text NOT NULL,
        state         text NOT NULL,
        since         double precision NOT NULL,  -- the writer's wall clock, Unix seconds
        attempt       integer NOT NULL,
        repeats       integer NOT NULL,
        recent_closes text NOT NULL,              -- JSON list of wall-clock times
        opened_at     double precision,
        delay         double precision,
        status        integer,
        code          text,
        reason        text,
        rule          text,
        verdict       text,
        stop_reason   text,
        message       text,
        seq           bigint NOT NULL,            -- transitions ever written for this link
        updated       double precision NOT NULL,
        -- The lease, on the row every write updates (see the module header).
        lease_owner   text,                       -- NULL: free (never leased, or released)
        lease_token   bigint NOT NULL DEFAULT 0,  -- +1 per acquisition, never reused
        lease_expires timestamptz                 -- on the server's clock
    )
    """,
    """
    CREATE TABLE history (
        link_id text NOT NULL,
        seq     bigint NOT NULL,
        wall    double precision NOT NULL,
        record  text NOT NULL,                    -- TransitionRecord.to_json()
        PRIMARY KEY (link_id, seq)
    )
    """,
    """
    CREATE TABLE hosts (
        owner      text PRIMARY KEY,
        started    timestamptz NOT NULL DEFAULT clock_timestamp(),
        expires_at timestamptz NOT NULL           -- on the server's clock
    )
    """,
)

_ROW_COLUMNS: Final = _LINK_COLUMNS  # the same columns, in the same order, as SQLite
_SET_COLUMNS: Final = _ROW_COLUMNS[1:]  # every column a write sets (link_id is the key)

# SQLSTATE classes and codes, mapped to what went wrong and what to do about it.
# The first matching prefix wins; {where} and {detail} are filled in.
_ERROR_ADVICE: Final = (
    (
        ("08", "57P"),  # connection exceptions; admin shutdown, crash shutdown, cannot connect now
        "cannot reach PostgreSQL ({where}): {detail}; check that the server runs and that the "
        "--db URL's host, port and database are right",
    ),
    (
        ("28",),  # invalid authorisation
        "PostgreSQL refused the login ({where}): {detail}; check the user and password in the "
        "--db URL (or ~/.pgpass)",
    ),
    (
        ("3D",),  # invalid catalog name: the database does not exist
        "no such PostgreSQL database ({where}): {detail}; create it (createdb NAME) or fix the "
        "database name in the --db URL",
    ),
    (
        ("42501",),
        "PostgreSQL denied access ({where}): {detail}; grant this user the right to create and "
        "write the linkstate tables, or use the user that created them",
    ),
    (
        ("25006",),  # read-only transaction: a standby
        "the PostgreSQL server is read-only ({where}): {detail}; point --db at the primary",
    ),
    (
        ("53",),  # insufficient resources: disk full, out of memory, too many connections
        "the PostgreSQL server is out of resources ({where}): {detail}; free disk space on the "
        "server, or raise max_connections",
    ),
)

# Two transactions that lock the same rows can still deadlock with a third
# writer (an operator's reset); PostgreSQL then aborts one. Retried this often.
_RETRIES: Final = 3
_RETRYABLE: Final = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def _describe(url: str) -> str:
    """``database linkstate on db1:5432``: where the store is, without the password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unreadable URL"
    host = str(params.get("host") or "the default socket")
    port = params.get("port")
    name = params.get("dbname") or params.get("user") or "the default database"
    return f"database {name} on {host}{f':{port}' if port else ''}"


def _store_error(exc: BaseException, where: str, doing: str) -> StoreError:
    state = getattr(exc, "sqlstate", None) or ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    detail = f"{text} while {doing}"
    if isinstance(exc, PoolTimeout) or (not state and isinstance(exc, psycopg.OperationalError)):
        state = "08"
    for prefixes, advice in _ERROR_ADVICE:
        if state.startswith(prefixes):
            return StoreError(advice.format(where=where, detail=detail))
    return StoreError(
        f"PostgreSQL state store ({where}): {detail}; check the server's log, or use a fresh "
        "database in --db"
    )


class PostgresStore:
    """A :class:`linkstate.store.StateStore` on PostgreSQL, with leases; see the module header.

    Args:
        url: A libpq URL, ``postgresql://user@host:5432/dbname``.
        create: Create the tables when the database has none; with False, a
            database without them is a :class:`StoreError` (for commands that
            only read or act on existing links).
        keep: Transitions kept per link.
        owner: A gateway host's name (:func:`linkstate.store.new_owner`):
            its leases are acquired and renewed by its keeper
            (:func:`linkstate.runtime.open_leased_fleet`), and a
            :meth:`claim` succeeds only on a lease it holds. None for a
            single process (``linkstate watch``) or an operator: then
            :meth:`claim` takes a lease of ``lease_ttl`` seconds itself.
        lease_ttl: Seconds a claim's lease lasts after each :meth:`renew`.
        pool_size: Connections at most; the journal uses one, the lease
            renewal another.
        connect_timeout: Seconds to wait for a connection.
        wall: The wall clock, for ``updated`` and history times.

    Every method may be called from any thread.

    """

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        keep: int = DEFAULT_KEEP,
        owner: str | None = None,
        lease_ttl: float = 15.0,
        pool_size: int = 4,
        connect_timeout: float = 5.0,
        wall: Callable[[], float] = wall_clock,
    ) -> None:
        _check_ttl(lease_ttl)
        if keep < 1:
            raise ArgumentError(f"keep={keep!r} must be at least 1 transition per link")
        if pool_size < 1:
            raise ArgumentError(f"pool_size={pool_size!r} must be at least 1 connection")
        self.url = url
        self.path = _describe(url)  # named like SQLiteStore.path: the messages show it
        self.keep = keep
        self.owner = owner
        self.lease_ttl = lease_ttl
        self.wall = wall
        self._held: dict[str, Lease] = {}
        self._held_lock = threading.Lock()
        options: dict[str, Any] = {
            "connect_timeout": max(1, round(connect_timeout)),
            # Over TCP, a partition must fail a call in seconds, not after the
            # kernel's retransmissions (minutes); ignored on a Unix socket.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 2,
            "tcp_user_timeout": max(1000, round(connect_timeout * 2000)),
        }
        try:
            # One connection of our own first: a wrong URL or a stopped server is
            # one clear error now, not a pool that retries in the background.
            with psycopg.connect(url, **options) as conn:
                self._prepare(conn, create)
        except psycopg.Error as exc:
            raise _store_error(exc, self.path, "opening it") from exc
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs=options,
            timeout=connect_timeout,
            check=ConnectionPool.check_connection,
            open=True,
            name="linkstate",
        )

    # -- schema ----------------------------------------------------------------

    def _prepare(self, conn: psycopg.Connection[Any], create: bool) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            ours = _exists(conn, "linkstate_schema")
            if not ours:
                if _exists(conn, "links") or _exists(conn, "history"):
                    raise StoreError(
                        f"{self.path} has tables named links or history that are not "
                        "linkstate's; use another database (or a schema of its own, "
                        "?options=-csearch_path%3Dlinkstate) in --db"
                    )
                if not create:
                    raise StoreError(
                        f"no linkstate tables in {self.path}; check the URL, or run a gateway "
                        "or `linkstate simulate --db URL` on it first"
                    )
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO linkstate_schema (version) VALUES (%s)", (SCHEMA_VERSION,)
                )
                return
            found = conn.execute("SELECT max(version) FROM linkstate_schema").fetchone()
            version = None if found is None else found[0]
            if version != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has linkstate schema version {version}, this linkstate reads "
                    f"version {SCHEMA_VERSION}; use the linkstate that wrote it, or a fresh "
                    "database"
                )

    # -- plumbing --------------------------------------------------------------

    @contextmanager
    def _connection(self, doing: str) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except StoreError:
            raise
        except (psycopg.Error, PoolTimeout) as exc:
            raise _store_error(exc, self.path, doing) from exc

    def _transact(self, doing: str, body: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        """Run ``body`` in one transaction; retry a deadlock or serialisation failure."""
        for attempt in range(_RETRIES):
            try:
                with self._connection(doing) as conn, conn.transaction():
                    return body(conn)
            except StoreError as exc:
                if not isinstance(exc.__cause__, _RETRYABLE) or attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- StateStore ------------------------------------------------------------

    def load(self, link_id: str) -> LinkRow | None:
        """The stored row of ``link_id``, or None (a leased link never written is ``idle``)."""
        with self._connection(f"loading link {link_id!r}") as conn:
            return _load(conn, link_id)

    def links(self) -> list[LinkRow]:
        """Every stored link, by id (links only leased, never written, are left out)."""
        with self._connection("listing links") as conn:
            rows = conn.execute(_SELECT_ROWS + " WHERE seq > 0 ORDER BY link_id").fetchall()
        return [_row_from_sql(row) for row in rows]

    def read_links(self) -> tuple[list[LinkRow], list[StoreRowError]]:
        """Every link, and no damaged rows: the server's column types keep each row whole."""
        return self.links(), []

    def history(self, link_id: str, limit: int | None = None) -> list[StoredTransition]:
        """The link's newest ``limit`` transitions, oldest first."""
        with self._connection(f"reading the history of {link_id!r}") as conn:
            rows = conn.execute(
                "SELECT wall, record FROM history WHERE link_id = %s ORDER BY seq DESC LIMIT %s",
                (link_id, limit),
            ).fetchall()
        return stored_transitions(rows, link_id, self.path)

    def write(self, entries: Sequence[Entry]) -> None:
        """Store the transitions and rows in one transaction, each fenced by its lease."""
        if not entries:
            return
        for record, row in entries:
            if record.link != row.link_id:
                raise ArgumentError(
                    f"record of link {record.link!r} stored with the row of link "
                    f"{row.link_id!r}; pair each transition with the row of its own link"
                )
        # Lock rows in link-id order (see the module header); a stable sort keeps
        # each link's own transitions in the order they happened.
        ordered = sorted(entries, key=lambda entry: entry[1].link_id)
        doing = f"writing {len(entries)} transition(s)"

        def one_by_one(conn: psycopg.Connection[Any]) -> None:
            for record, row in ordered:
                self._write_one(conn, record, row)

        if any(row.token is None for _, row in ordered):
            self._transact(doing, one_by_one)
            return
        try:
            self._transact(doing, self._write_pipelined(ordered))
        except _RefusedError:
            # Rolled back. Written again one statement at a time, which names the
            # entry refused and why (or stores the batch, if the refusal is gone).
            self._transact(doing, one_by_one)

    def _write_pipelined(
        self, ordered: Sequence[Entry]
    ) -> Callable[[psycopg.Connection[Any]], None]:
        """A batch of fenced writes as one pipeline: sent together, answered together.

        One round trip for the batch instead of one per statement; each
        statement is still fenced on its own (:data:`_WRITE_FENCED`), and the
        transaction commits only if every one of them moved its row.
        """

        def body(conn: psycopg.Connection[Any]) -> None:
            with conn.pipeline():
                cursors = [
                    conn.execute(_WRITE_FENCED, self._params(record, row))
                    for record, row in ordered
                ]
            if any(cursor.fetchone() is None for cursor in cursors):
                raise _RefusedError

        return body

    def _params(self, record: TransitionRecord, row: LinkRow) -> dict[str, object]:
        wall = self.wall()
        params: dict[str, object] = dict(
            zip(_SET_COLUMNS, _row_values(row, row.seq, wall)[1:], strict=True)
        )
        params.update(
            link_id=row.link_id,
            src=record.src,
            expect=row.seq,
            owner=row.owner,
            token=row.token,
            wall=wall,
            record=record_json(record),
            keep=self.keep,
        )
        return params

    def _write_one(
        self, conn: psycopg.Connection[Any], record: TransitionRecord, row: LinkRow
    ) -> None:
        params = self._params(record, row)
        if row.token is not None:
            if conn.execute(_WRITE_FENCED, params).fetchone() is None:
                raise _refusal(conn, record, row)
            return
        found = conn.execute(_UPDATE_ROW + _UNFENCED + sql.SQL(" RETURNING seq"), params).fetchone()
        if found is None and record.src == State.idle.value:
            # Never stored: a writer without a claim creates the row.
            found = conn.execute(_INSERT_ROW, params).fetchone()
        if found is None:
            raise _refusal(conn, record, row)
        seq = found[0]
        conn.execute(
            "INSERT INTO history (link_id, seq, wall, record) VALUES (%s, %s, %s, %s)",
            (row.link_id, seq, params["wall"], params["record"]),
        )
        if seq > self.keep:  # a round trip saved on every younger link
            conn.execute(
                "DELETE FROM history WHERE link_id = %s AND seq <= %s",
                (row.link_id, seq - self.keep),
            )

    def close(self) -> None:
        """Close the pool; idempotent."""
        self._pool.close()

    # -- claims: the StateStore's owners, as leases --------------------------------

    def claim(self, link_id: str, owner: str) -> Claim:
        """Take ``link_id`` for ``owner``; refused while another owner's lease is valid.

        On a gateway host's store (opened with ``owner=``) only a lease its
        keeper holds can be claimed, with that lease's token: the keeper alone
        decides what the host runs. Otherwise the claim takes a lease of
        ``lease_ttl`` seconds itself, if it is free, expired or ``owner``'s.

        Raises:
            LeaseLostError: another owner holds a valid lease on the link, or
                this host's keeper does not hold it.

        """
        if self.owner is not None:
            return self._claim_held(link_id, owner)

        def body(conn: psycopg.Connection[Any]) -> Claim:
            conn.execute(_CREATE_MISSING, (self.wall(), self.wall(), [link_id], [""]))
            found = conn.execute(
                "SELECT lease_owner, lease_expires > clock_timestamp() FROM links "
                "WHERE link_id = %s FOR UPDATE",
                (link_id,),
            ).fetchone()
            holder, live = found if found is not None else (None, False)
            if holder is not None and live and holder != owner:
                raise LeaseLostError(
                    f"link {link_id!r} is leased to {holder} until its lease expires; stop "
                    "that process, or wait for the lease to lapse, and try again",
                    link_id=link_id,
                    owner=holder,
                )
            taken = conn.execute(
                "UPDATE links SET lease_owner = %s, lease_token = lease_token + 1, "
                "lease_expires = clock_timestamp() + %s * interval '1 second' "
                "WHERE link_id = %s RETURNING lease_token",
                (owner, self.lease_ttl, link_id),
            ).fetchone()
            assert taken is not None
            previous = holder if holder is not None and holder != owner else None
            return Claim(link_id, owner, taken[0], _load(conn, link_id), previous)

        claim: Claim = self._transact(f"claiming link {link_id!r}", body)
        return claim

    def _claim_held(self, link_id: str, owner: str) -> Claim:
        with self._held_lock:
            lease = self._held.get(link_id)
        if lease is None or owner != lease.owner:
            raise LeaseLostError(
                f"link {link_id!r}: this host ({self.owner}) holds no lease on it, so it may not "
                "run it; another host drives it. Start links through open_leased_fleet, whose "
                "keeper acquires their leases",
                link_id=link_id,
            )

        def body(conn: psycopg.Connection[Any]) -> Claim:
            found = conn.execute(
                "SELECT lease_owner, lease_token, lease_expires > clock_timestamp() FROM links "
                "WHERE link_id = %s",
                (link_id,),
            ).fetchone()
            if found is None or tuple(found) != (lease.owner, lease.token, True):
                with self._held_lock:
                    if self._held.get(link_id) == lease:
                        del self._held[link_id]
                raise LeaseLostError(
                    f"link {link_id!r}: the lease of {lease.owner} with token {lease.token} is "
                    "no longer current; another host took it over. This host does not run it",
                    link_id=link_id,
                    owner=None if found is None else found[0],
                )
            return Claim(link_id, owner, lease.token, _load(conn, link_id))

        claim: Claim = self._transact(f"claiming link {link_id!r}", body)
        return claim

    def renew(self, claims: Sequence[Claim]) -> list[Claim]:
        """Extend the leases of ``claims`` by ``lease_ttl``, in one statement; the lost ones."""
        if not claims:
            return []
        ordered = sorted(claims, key=lambda claim: claim.link_id)
        rows = self._transact(
            f"renewing {len(ordered)} claim(s)",
            lambda conn: conn.execute(
                _RENEW,
                {
                    "ids": [claim.link_id for claim in ordered],
                    "tokens": [claim.token for claim in ordered],
                    "owners": [claim.owner for claim in ordered],
                    "ttl": self.lease_ttl,
                },
            ).fetchall(),
        )
        renewed = {link_id for link_id, _, _ in rows}
        return [claim for claim in claims if claim.link_id not in renewed]

    def release(self, claim: Claim) -> None:
        """Give the link's lease up, if ``claim`` still holds it; idempotent.

        On a gateway host's store this does nothing: the keeper releases a
        lease once the link has stopped (a link in ``needs_relink`` keeps its
        host, which notices an operator's reset).
        """
        if self.owner is not None:
            return
        self._transact(
            f"releasing link {claim.link_id!r}",
            lambda conn: conn.execute(
                _RELEASE,
                {"ids": [claim.link_id], "tokens": [claim.token], "owners": [claim.owner]},
            ),
        )

    # -- leases ----------------------------------------------------------------

    def acquire(
        self, links: Mapping[str, str], ttl: float, *, limit: int | None = None
    ) -> list[Lease]:
        """Take up to ``limit`` of ``links`` (id -> channel) that are free, expired or ours.

        Links this store already holds are left out. One transaction: rows
        are created for links never seen, then the candidates are locked
        (skipping rows another transaction holds: a host that is writing them
        is alive) and their tokens incremented. The candidates are ordered by
        a hash of link and owner, so that hosts that start together try
        different links first.
        """
        owner = self._require_owner("acquire")
        _check_ttl(ttl)
        with self._held_lock:
            # Held ones are renewed, not taken again (that would bump their token).
            ids = sorted(set(links) - set(self._held))
        if not ids or limit == 0:
            return []
        wall = self.wall()

        def body(conn: psycopg.Connection[Any]) -> list[Lease]:
            conn.execute(_CREATE_MISSING, (wall, wall, ids, [links[i] for i in ids]))
            return [
                Lease(link_id, owner, token, expires, taken_over=bool(taken))
                for link_id, token, expires, taken in conn.execute(
                    _ACQUIRE, {"ids": ids, "owner": owner, "ttl": ttl, "limit": limit}
                ).fetchall()
            ]

        leases: list[Lease] = self._transact(f"acquiring leases on {len(ids)} link(s)", body)
        with self._held_lock:
            self._held.update((lease.link_id, lease) for lease in leases)
        return leases

    def renew_held(self, ttl: float) -> dict[str, str]:
        """Extend every lease held, in one statement; the renewed ones' link states by id."""
        owner = self._require_owner("renew")
        _check_ttl(ttl)
        with self._held_lock:
            held = dict(self._held)
        if not held:
            return {}
        ids = sorted(held)
        rows = self._transact(
            f"renewing {len(ids)} lease(s)",
            lambda conn: conn.execute(
                _RENEW,
                {
                    "ids": ids,
                    "tokens": [held[i].token for i in ids],
                    "owners": [owner] * len(ids),
                    "ttl": ttl,
                },
            ).fetchall(),
        )
        states = {link_id: state for link_id, state, _ in rows}
        if len(states) < len(held):
            with self._held_lock:
                for link_id, lease in held.items():
                    # Only drop the lease renewed: a new acquisition may have replaced it.
                    if link_id not in states and self._held.get(link_id) == lease:
                        del self._held[link_id]
        return states

    def release_held(self, link_ids: Sequence[str]) -> None:
        """Give up these leases now (keeping the token), so another host may take them at once."""
        owner = self._require_owner("release")
        with self._held_lock:
            held = [self._held.pop(i) for i in sorted(set(link_ids)) if i in self._held]
        if not held:
            return
        self._transact(
            f"releasing {len(held)} lease(s)",
            lambda conn: conn.execute(
                _RELEASE,
                {
                    "ids": [lease.link_id for lease in held],
                    "tokens": [lease.token for lease in held],
                    "owners": [owner] * len(held),
                },
            ),
        )

    def held(self) -> dict[str, Lease]:
        """The leases this store holds, by link id."""
        with self._held_lock:
            return dict(self._held)

    def leases(self) -> dict[str, LeaseInfo]:
        """Every link's lease, by id."""
        with self._connection("reading the leases") as conn:
            rows = conn.execute(
                "SELECT link_id, lease_owner, lease_token, extract(epoch FROM lease_expires), "
                "lease_owner IS NOT NULL AND lease_expires > clock_timestamp() FROM links"
            ).fetchall()
        return {
            link_id: LeaseInfo(
                link_id,
                owner,
                token,
                None if expires is None else float(expires),
                bool(live),
            )
            for link_id, owner, token, expires, live in rows
        }

    # -- hosts -----------------------------------------------------------------

    def heartbeat(self, ttl: float) -> int:
        """Mark this host alive for ``ttl`` seconds; how many hosts are alive (this one too)."""
        owner = self._require_owner("heartbeat")
        _check_ttl(ttl)

        def body(conn: psycopg.Connection[Any]) -> int:
            conn.execute(
                "INSERT INTO hosts AS h (owner, expires_at) "
                "VALUES (%(owner)s, clock_timestamp() + %(ttl)s * interval '1 second') "
                "ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at",
                {"owner": owner, "ttl": ttl},
            )
            # Long-dead hosts are removed, so the table stays the size of the fleet.
            conn.execute(
                "DELETE FROM hosts WHERE expires_at < clock_timestamp() - interval '1 hour'"
            )
            found = conn.execute(
                "SELECT count(*) FROM hosts WHERE expires_at > clock_timestamp()"
            ).fetchone()
            return 1 if found is None else max(1, int(found[0]))

        live: int = self._transact("heartbeating", body)
        return live

    def leave(self) -> None:
        """Remove this host from the hosts table (a clean shutdown)."""
        owner = self._require_owner("leave")
        self._transact(
            "leaving the hosts table",
            lambda conn: conn.execute("DELETE FROM hosts WHERE owner = %s", (owner,)),
        )

    def hosts(self) -> list[tuple[str, float]]:
        """Live hosts and their heartbeat expiry (server clock, Unix seconds), by owner."""
        with self._connection("listing hosts") as conn:
            rows = conn.execute(
                "SELECT owner, extract(epoch FROM expires_at) FROM hosts "
                "WHERE expires_at > clock_timestamp() ORDER BY owner"
            ).fetchall()
        return [(owner, float(expires)) for owner, expires in rows]

    def _require_owner(self, doing: str) -> str:
        if self.owner is None:
            raise ArgumentError(
                f"cannot {doing} leases on a PostgresStore opened without owner=; pass "
                "owner=new_owner() for a gateway host"
            )
        return self.owner

    # -- checks ----------------------------------------------------------------

    def check(self) -> list[str]:
        """Problems found: each written link's row must agree with its newest history entry."""
        with self._connection("checking it") as conn:
            rows = conn.execute(
                "SELECT l.link_id, l.state, l.seq, h.seq, h.record FROM links AS l "
                "LEFT JOIN history AS h ON h.link_id = l.link_id "
                "AND h.seq = (SELECT max(seq) FROM history WHERE link_id = l.link_id) "
                "WHERE l.seq > 0"
            ).fetchall()
        return row_problems(rows)

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(found and found[0])


def _check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise ArgumentError(f"ttl={ttl!r} must be a positive number of seconds")


def _row_from_sql(values: Sequence[Any]) -> LinkRow:
    *columns, owner, token = values
    data = dict(zip(_ROW_COLUMNS, columns, strict=True))
    closes = json.loads(str(data.pop("recent_closes")))
    return LinkRow(
        recent_closes=tuple(float(t) for t in closes),
        owner=owner,
        token=token if owner is not None else None,
        **data,
    )


_SELECT_ROWS: Final = f"SELECT {', '.join(_ROW_COLUMNS)}, lease_owner, lease_token FROM links"

# %(expect)s is the seq the writer expects this write to give (0: not checked).
_UPDATE_ROW: Final = sql.SQL(
    "UPDATE links SET {assignments}, seq = seq + 1 WHERE link_id = %(link_id)s "
    "AND state = %(src)s AND (%(expect)s = 0 OR seq = %(expect)s - 1)"
).format(
    assignments=sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name))
        for name in _SET_COLUMNS
        if name != "seq"
    )
)

_INSERT_ROW: Final = sql.SQL(
    "INSERT INTO links (link_id, {columns}) VALUES (%(link_id)s, {values}) "
    "ON CONFLICT (link_id) DO NOTHING RETURNING seq"
).format(
    columns=sql.SQL(", ").join(sql.Identifier(name) for name in _SET_COLUMNS),
    values=sql.SQL(", ").join(
        sql.SQL("1") if name == "seq" else sql.Placeholder(name) for name in _SET_COLUMNS
    ),
)

# A link leased before it was ever written gets an idle row at seq 0.
_CREATE_MISSING: Final = (
    "INSERT INTO links (link_id, channel, state, since, attempt, repeats, recent_closes, seq, "
    "updated) SELECT id, ch, 'idle', %s, 0, 0, '[]', 0, %s FROM unnest(%s::text[], %s::text[]) "
    "AS t(id, ch) ON CONFLICT (link_id) DO NOTHING"
)

# Lock the free, expired or own candidates (SKIP LOCKED: a row being written
# belongs to a live holder), then take them. The UPDATE sees the locked rows'
# latest versions, so the old owner read here is the real previous holder.
_ACQUIRE: Final = """
    WITH candidates AS (
        SELECT link_id, lease_owner AS old_owner FROM links
         WHERE link_id = ANY(%(ids)s::text[])
           AND (lease_owner IS NULL OR lease_owner = %(owner)s
                OR lease_expires <= clock_timestamp())
         ORDER BY md5(link_id || %(owner)s)
         LIMIT %(limit)s
           FOR UPDATE SKIP LOCKED
    )
    UPDATE links AS l
       SET lease_owner = %(owner)s,
           lease_token = l.lease_token + 1,
           lease_expires = clock_timestamp() + %(ttl)s * interval '1 second'
      FROM candidates AS c
     WHERE l.link_id = c.link_id
    RETURNING l.link_id, l.lease_token, extract(epoch FROM l.lease_expires)::float8,
              c.old_owner IS NOT NULL AND c.old_owner <> %(owner)s
"""

# One statement for every lease a host holds. Locked in id order first, like a
# journal batch, so the two never deadlock.
_RENEW: Final = """
    WITH mine AS (
        SELECT l.link_id, r.token, r.owner FROM links AS l
          JOIN unnest(%(ids)s::text[], %(tokens)s::bigint[], %(owners)s::text[])
            AS r(link_id, token, owner)
            ON l.link_id = r.link_id AND l.lease_token = r.token AND l.lease_owner = r.owner
         WHERE l.lease_expires > clock_timestamp()
         ORDER BY l.link_id
           FOR UPDATE OF l
    )
    UPDATE links AS l
       SET lease_expires = clock_timestamp() + %(ttl)s * interval '1 second'
      FROM mine
     WHERE l.link_id = mine.link_id AND l.lease_token = mine.token
       AND l.lease_owner = mine.owner AND l.lease_expires > clock_timestamp()
    RETURNING l.link_id, l.state, extract(epoch FROM l.lease_expires)::float8
"""

_RELEASE: Final = """
    UPDATE links AS l SET lease_owner = NULL, lease_expires = clock_timestamp()
      FROM unnest(%(ids)s::text[], %(tokens)s::bigint[], %(owners)s::text[])
        AS r(link_id, token, owner)
     WHERE l.link_id = r.link_id AND l.lease_token = r.token AND l.lease_owner = r.owner
"""

# The fence of a write under a claim (see the module header), and of one
# without: an operator's, refused while a live link is leased to someone.
_FENCED: Final = sql.SQL(
    " AND lease_owner = %(owner)s AND lease_token = %(token)s AND lease_expires > clock_timestamp()"
)
_UNFENCED: Final = sql.SQL(
    " AND (lease_owner IS NULL OR lease_expires <= clock_timestamp()"
    " OR state IN ('needs_relink', 'failed', 'stopped'))"
)


# A write under a claim in one statement: the row's fenced update, its history
# row, and the trim of the history beyond keep (nothing while seq <= keep), so
# that a batch's writes can be pipelined (PostgresStore._write_pipelined). The
# CTEs share one snapshot: the DELETE never sees the row the INSERT adds, and
# a refused update (no row) inserts and deletes nothing.
_WRITE_FENCED: Final = sql.SQL(
    "WITH moved AS ({update}), "
    "added AS (INSERT INTO history (link_id, seq, wall, record) "
    "SELECT link_id, seq, %(wall)s, %(record)s FROM moved), "
    "trimmed AS (DELETE FROM history WHERE link_id = %(link_id)s "
    "AND seq <= (SELECT seq FROM moved) - %(keep)s) "
    "SELECT seq FROM moved"
).format(update=_UPDATE_ROW + _FENCED + sql.SQL(" RETURNING link_id, seq"))


class _RefusedError(LinkstateError):
    """A pipelined batch had a write its fence refused; never leaves this module."""


def _load(conn: psycopg.Connection[Any], link_id: str) -> LinkRow | None:
    row = conn.execute(_SELECT_ROWS + " WHERE link_id = %s", (link_id,)).fetchone()
    # A row at seq 0 was only leased, never written: to the interface, not stored.
    return None if row is None or row[_ROW_COLUMNS.index("seq")] == 0 else _row_from_sql(row)


def _refusal(conn: psycopg.Connection[Any], record: TransitionRecord, row: LinkRow) -> StoreError:
    """Why a write changed nothing: the lease moved, another writer wrote, or the state moved."""
    stored = conn.execute(
        "SELECT state, seq, lease_owner, lease_token, lease_expires > clock_timestamp() "
        "FROM links WHERE link_id = %s",
        (row.link_id,),
    ).fetchone()
    state, seq, owner, token, live = stored or (State.idle.value, 0, None, 0, False)
    live = bool(live) and owner is not None
    if row.token is not None and (owner != row.owner or token != row.token or not live):
        now_held = f"held by {owner}, token {token}" if live else "expired"
        return LeaseLostError(
            f"link {row.link_id!r}: transition {record.trigger!r} refused, the lease of "
            f"{row.owner} with token {row.token} is no longer current (now {now_held}). This "
            "process stops the link without recording anything; if it keeps happening, check "
            "this host's connection to PostgreSQL and its pauses",
            link_id=row.link_id,
            owner=owner if live else None,
        )
    if row.token is None and live and State(state) not in TERMINAL_STATES:
        return StoreOwnedElsewhereError(
            f"link {row.link_id!r} is run by {owner} (state {state!r}, lease token {token}); "
            "stop that host first, then try again",
            link_id=row.link_id,
            owner=owner,
        )
    if state != record.src:
        return state_conflict(row.link_id, state, record)
    if row.token is not None:
        return StoreOwnedElsewhereError(
            f"link {row.link_id!r} is owned elsewhere: another writer changed it (#{seq}, this "
            f"writer expected #{row.seq - 1}). This process stops without recording anything",
            link_id=row.link_id,
            owner=owner,
        )
    return seq_conflict(row.link_id, seq, row.seq)
