"""The PostgreSQL store's own promises: schema, leases, the fence, hosts; on a real server.

The contract every store keeps (atomic batches, compare-and-set, bounded
history) is tested against PostgreSQL too, in ``test_store.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from linkstate._lifecycle import Trigger
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.store._lease import LeaseLostError
from linkstate.store._postgres import SCHEMA_VERSION, PostgresStore, is_postgres_url
from linkstate.store._sqlite import (
    Claim,
    LinkRow,
    StoreConflictError,
    StoreError,
    StoreOwnedElsewhereError,
)

LINKS = {"acct1": "whatsapp", "acct2": "whatsapp", "acct3": "whatsapp"}


@pytest.fixture
def stores(pg_url: str) -> Iterator[Callable[[str | None], PostgresStore]]:
    opened: list[PostgresStore] = []

    def open_as(owner: str | None) -> PostgresStore:
        store = PostgresStore(pg_url, owner=owner)
        opened.append(store)
        return store

    yield open_as
    for store in opened:
        store.close()


def start(
    link: Link, machine: LinkMachine, claim: Claim | None = None
) -> tuple[TransitionRecord, LinkRow]:
    record = machine.fire(link, Trigger.start, 1.0)
    return record, under(claim, LinkRow.from_link(link, channel="whatsapp", now=1.0, wall=1000.0))


def under(claim: Claim | None, row: LinkRow) -> LinkRow:
    """The row as a writer holding ``claim`` hands it to ``write`` (as the journal does)."""
    if claim is None:
        return row
    return replace(row, owner=claim.owner, token=claim.token)


def expire(url: str, link_id: str) -> None:
    """The lease lapses on the server's clock: what a missed renewal leads to, without waiting."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE links SET lease_expires = clock_timestamp() - interval '1 second' "
            "WHERE link_id = %s",
            (link_id,),
        )


def wait_until_blocked_by(url: str, blocker: int) -> None:
    """Return once another backend waits for a lock that ``blocker`` holds.

    A condition, polled: never a guess at how long a thread takes to get there.
    """
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            found = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                (blocker,),
            ).fetchone()
            if found is not None and found[0] > 0:
                return
            time.sleep(0.005)
    raise AssertionError(f"nobody ever waited for backend {blocker}'s lock")


# -- schema --------------------------------------------------------------------------


def test_schema_is_created_once_and_versioned(pg_url: str) -> None:
    with PostgresStore(pg_url) as first, PostgresStore(pg_url) as second:
        assert first.links() == second.links() == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM linkstate_schema").fetchall() == [
            (SCHEMA_VERSION,)
        ]
        conn.execute("UPDATE linkstate_schema SET version = 99")
    with pytest.raises(StoreError, match=r"schema version 99, this linkstate reads version 1"):
        PostgresStore(pg_url)


def test_another_applications_tables_are_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE links (url text)")
    with pytest.raises(StoreError, match=r"not linkstate's.*search_path"):
        PostgresStore(pg_url)


def test_readers_do_not_create_tables(pg_url: str) -> None:
    with pytest.raises(StoreError, match=r"no linkstate tables in database postgres"):
        PostgresStore(pg_url, create=False)


def test_an_unreachable_server_is_one_clear_error(tmp_path: Any) -> None:
    url = f"postgresql://nobody@/linkstate?host={tmp_path}"
    assert is_postgres_url(url) and not is_postgres_url(str(tmp_path / "x.db"))
    with pytest.raises(StoreError, match=r"cannot reach PostgreSQL \(database linkstate on .*"):
        PostgresStore(url, connect_timeout=1)


# -- leases --------------------------------------------------------------------------


def test_acquire_renew_release(stores: Callable[[str | None], PostgresStore], pg_url: str) -> None:
    a, b = stores("host-a"), stores("host-b")
    taken = a.acquire(LINKS, ttl=30, limit=2)
    assert len(taken) == 2 and {lease.token for lease in taken} == {1}
    assert not any(lease.taken_over for lease in taken)
    # A valid lease is never taken, whatever the taker's clock says: b gets the third only.
    rest = b.acquire(LINKS, ttl=30)
    assert [lease.link_id for lease in rest] == sorted(set(LINKS) - {x.link_id for x in taken})
    assert a.renew_held(ttl=30) == dict.fromkeys(sorted(a.held()), "idle")
    # Released leases go at once, without a grace period: the holder has closed its sockets.
    a.release_held([taken[0].link_id])
    again = b.acquire(LINKS, ttl=30)
    assert [(x.link_id, x.token, x.taken_over) for x in again] == [(taken[0].link_id, 2, False)]
    # An expired lease is taken over, with the grace period.
    expire(pg_url, taken[1].link_id)
    over = b.acquire(LINKS, ttl=30)
    assert [(x.link_id, x.token, x.taken_over) for x in over] == [(taken[1].link_id, 2, True)]
    assert a.renew_held(ttl=30) == {} and a.held() == {}
    info = a.leases()
    assert {x.owner for x in info.values()} == {"host-b"} and all(x.live for x in info.values())
    assert info[taken[1].link_id].to_json()["lease_token"] == 2


def test_a_fenced_write_needs_the_current_token(
    stores: Callable[[str | None], PostgresStore], pg_url: str
) -> None:
    a, b = stores("host-a"), stores("host-b")
    machine = LinkMachine(WHATSAPP)
    with pytest.raises(LeaseLostError, match=r"holds no lease on it.*open_leased_fleet"):
        a.claim("acct1", "host-a")
    a.acquire({"acct1": "whatsapp"}, ttl=30)
    claim = a.claim("acct1", "host-a")
    assert (claim.token, claim.row) == (1, None)
    link = machine.new_link("acct1")
    a.write([start(link, machine, claim)])
    expire(pg_url, "acct1")
    b.acquire({"acct1": "whatsapp"}, ttl=30)
    opened = machine.fire(link, Trigger.opened, 2.0)
    row = LinkRow.from_link(link, channel="whatsapp", now=2.0, wall=1001.0)
    with pytest.raises(LeaseLostError, match=r"token 1 is no longer current \(now held by host-b"):
        a.write([(opened, under(claim, row))])
    with pytest.raises(LeaseLostError, match="no longer current"):
        a.claim("acct1", "host-a")
    assert "acct1" not in a.held()
    # A write without a claim (an operator's) is refused while a live link is leased.
    operator = stores(None)
    stored = operator.load("acct1")
    assert stored is not None
    assert (stored.state, stored.seq, stored.owner) == (
        "connecting",
        1,
        "host-b",
    )
    with pytest.raises(StoreOwnedElsewhereError, match=r"is run by host-b.*stop that host"):
        operator.write([(opened, row)])
    # And a claim on it is refused until the lease lapses.
    with pytest.raises(LeaseLostError, match="leased to host-b"):
        operator.claim("acct1", "cli")
    expire(pg_url, "acct1")
    taken = operator.claim("acct1", "cli")
    assert (taken.token, taken.previous) == (3, "host-b")
    with pytest.raises(StoreConflictError, match="stored in state 'connecting'"):
        operator.write([start(machine.new_link("acct1"), machine, taken)])


def test_the_fence_holds_when_the_stale_write_waits_for_the_takeover(
    stores: Callable[[str | None], PostgresStore], pg_url: str
) -> None:
    """The interleaving that defeated the first design, on the corrected one.

    The lease lapses at instant T. A's write reads the row a moment before T
    (the lease is valid, its token current), while B's acquisition a moment
    after T holds the row's lock, uncommitted: A waits for it. B commits. A's
    UPDATE then evaluates its WHERE again on B's row and must change nothing.
    The test plays B's acquisition as the UPDATE it makes, so that the order
    is forced, not left to the clock.
    """
    a = stores("host-a")
    machine = LinkMachine(WHATSAPP)
    a.acquire({"acct1": "whatsapp"}, ttl=30)
    claim = a.claim("acct1", "host-a")
    link = machine.new_link("acct1")
    a.write([start(link, machine, claim)])
    opened = machine.fire(link, Trigger.opened, 2.0)
    row = LinkRow.from_link(link, channel="whatsapp", now=2.0, wall=1001.0)
    entry = (opened, under(claim, row))
    outcome: list[BaseException | None] = []
    with psycopg.connect(pg_url) as taker:
        taker.execute(
            "UPDATE links SET lease_owner = 'host-b', lease_token = lease_token + 1, "
            "lease_expires = clock_timestamp() + interval '30 seconds' WHERE link_id = 'acct1'"
        )

        def stale_write() -> None:
            try:
                a.write([entry])
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        writer = threading.Thread(target=stale_write)
        writer.start()
        wait_until_blocked_by(pg_url, taker.info.backend_pid)
        taker.commit()
        writer.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], LeaseLostError), outcome
    stored = stores(None).load("acct1")
    assert stored is not None and (stored.state, stored.seq) == ("connecting", 1)


def test_the_first_designs_exists_fence_lets_the_stale_write_through(pg_url: str) -> None:
    """Why the lease moved onto the link's row: the note's ``EXISTS`` fence, demonstrated.

    A's write reads the lease table from its statement's snapshot and never
    locks it. Blocked behind another lock on the link's row while B takes the
    lease over, it commits anyway. This is the defect, reproduced; the store
    does not use this design.
    """
    with psycopg.connect(pg_url, autocommit=True) as setup:
        setup.execute("CREATE TABLE old_links (link_id text PRIMARY KEY, state text)")
        setup.execute("CREATE TABLE old_leases (link_id text PRIMARY KEY, token bigint)")
        setup.execute("INSERT INTO old_links VALUES ('acct1', 'connecting')")
        setup.execute("INSERT INTO old_leases VALUES ('acct1', 1)")
    with (
        psycopg.connect(pg_url) as holder,
        psycopg.connect(pg_url) as stale,
        psycopg.connect(pg_url, autocommit=True) as taker,
    ):
        holder.execute("SELECT * FROM old_links WHERE link_id = 'acct1' FOR UPDATE")
        counted: list[int] = []

        def stale_write() -> None:
            cursor = stale.execute(
                "UPDATE old_links SET state = 'open' WHERE link_id = 'acct1' "
                "AND state = 'connecting' AND EXISTS (SELECT 1 FROM old_leases "
                "WHERE link_id = 'acct1' AND token = 1)"
            )
            counted.append(cursor.rowcount)
            stale.commit()

        writer = threading.Thread(target=stale_write)
        writer.start()
        wait_until_blocked_by(pg_url, holder.info.backend_pid)
        taker.execute("UPDATE old_leases SET token = 2 WHERE link_id = 'acct1'")
        holder.commit()
        writer.join(30)
    assert counted == [1]  # the stale holder wrote after losing its lease


# -- hosts ---------------------------------------------------------------------------


def test_hosts_heartbeat_and_leave(stores: Callable[[str | None], PostgresStore]) -> None:
    a, b = stores("host-a"), stores("host-b")
    assert a.heartbeat(ttl=30) == 1
    assert b.heartbeat(ttl=30) == 2
    assert [owner for owner, _ in a.hosts()] == ["host-a", "host-b"]
    b.leave()
    assert a.heartbeat(ttl=30) == 1
    with pytest.raises(Exception, match=r"without owner=.*new_owner"):
        stores(None).heartbeat(ttl=30)
