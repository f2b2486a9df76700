"""What the PostgreSQL store and its leases cost, each against a bare psycopg loop in the same run.

Run: ``.venv/bin/python benchmarks/postgres_leases.py [--leases N ...] [--links N] [--dead N]``

It starts a throwaway, durable PostgreSQL cluster (``initdb`` into a temporary
directory, fsync on, Unix socket only; ``tests/pgcluster.py``), or uses
``--db URL``. Three measurements:

1. Lease renewals per second, batched: one :meth:`PostgresStore.renew` for
   every lease a host holds (10k and 100k by default). Baseline: the bare
   batched statement, ``UPDATE links SET lease_expires = ... WHERE link_id =
   ANY(...)``, with no token check and no lock order; and, at 10k or fewer,
   one ``UPDATE`` per lease in one transaction, what renewing without
   batching costs in round trips alone.
2. Transitions committed per second through the journal: N links each run
   reconnect cycles, every transition fenced by its lease and committed
   before the next one fires (as the supervisor does). Baseline: a bare
   psycopg loop doing the same two statements per transition (update the
   row, insert the history row), one commit each.
3. The time a dead host's links take to be served again by a live host: host
   A takes every lease and dies (never renews); host B, a leased fleet, takes
   them after expiry and connects each after ``grace``. Baseline: a bare
   psycopg loop polling for expired leases, which takes them at ``ttl`` plus
   one poll. The difference is the grace period and the keeper's round,
   both on purpose.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import psycopg
import trio
from anyio.abc import TaskGroup

from linkstate import Channel, load_channel
from linkstate._lifecycle import Trigger
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate.runtime import LeasedLink, LeasePolicy, open_leased_fleet
from linkstate.store._journal import open_journal
from linkstate.store._postgres import PostgresStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pgcluster import Cluster, find_bindir  # the tests' cluster helper

CHANNEL: Channel = load_channel("whatsapp")
MACHINE = LinkMachine(CHANNEL, ReconnectPolicy(flap_closes=0))


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """``--db``, or a fresh durable throwaway cluster's database."""
    if url is not None:
        yield url
        return
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit(
            "PostgreSQL's initdb not found: install postgresql (Debian: apt-get install "
            "postgresql), or pass --db postgresql://..."
        )
    cluster = Cluster(bindir, durable=True)
    try:
        yield cluster.database()
    finally:
        cluster.close()


def fresh(url: str, name: str) -> str:
    """A schema of its own for one measurement, as the URL's search path."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{name}"


# -- 1. renewals -----------------------------------------------------------------------


def renewals(url: str, count: int, repeat: int) -> tuple[float, float, float | None]:
    """(ours, bare batched, bare one-by-one or None): renewals per second."""
    url = fresh(url, f"renew{count}")
    with PostgresStore(url, owner="bench-host") as store:
        ids = {f"l{i:06}": "whatsapp" for i in range(count)}
        assert len(store.acquire(ids, ttl=600)) == count
        ours = best(repeat, lambda: store.renew_held(ttl=600))
        assert len(store.held()) == count
    with psycopg.connect(url, autocommit=True) as conn:
        every = list(ids)
        bare = best(
            repeat,
            lambda: conn.execute(
                "UPDATE links SET lease_expires = clock_timestamp() + interval '600 seconds' "
                "WHERE link_id = ANY(%s)",
                (every,),
            ),
        )
        single = None
        if count <= 10_000:

            def one_by_one() -> None:
                # One transaction, so that this counts round trips, not fsyncs.
                with conn.transaction(), conn.cursor() as cursor:
                    for link_id in every:
                        cursor.execute(
                            "UPDATE links SET lease_expires = clock_timestamp() + "
                            "interval '600 seconds' WHERE link_id = %s",
                            (link_id,),
                        )

            single = count / best(1, one_by_one)
    return count / ours, count / bare, single


def best(repeat: int, fn: Any) -> float:
    """The fastest of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


# -- 2. transitions through the journal ----------------------------------------------


async def journal(url: str, links: int, rounds: int) -> tuple[float, float]:
    """(transitions/s, mean transitions per commit) through the journal, fenced."""
    url = fresh(url, "journal")
    with PostgresStore(url, owner="bench-host") as store:
        store.acquire({f"l{i:05}": "whatsapp" for i in range(links)}, ttl=600)
        async with open_journal(store, owner="bench-host") as writer:

            async def drive(link: Link) -> None:
                # As a supervisor does: claim the link, then write under the claim.
                claim = await writer.claim(link.link_id, on_lost=lambda exc: None)

                async def append(record: TransitionRecord) -> None:
                    await writer.wait(writer.submit(record, link, channel="whatsapp", claim=claim))

                for _ in range(rounds):
                    first = Trigger.start if link.state == "idle" else Trigger.backoff_elapsed
                    for trigger in (first, Trigger.opened):
                        await append(MACHINE.fire(link, trigger, trio.current_time()))
                    await append(MACHINE.close(link, 428, trio.current_time()))

            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for i in range(links):
                    nursery.start_soon(drive, MACHINE.new_link(f"l{i:05}"))
            elapsed = time.perf_counter() - start
            stats = writer.statistics()
        assert store.check() == []
    return stats.committed / elapsed, stats.committed / max(1, stats.commits)


def bare_transitions(url: str, count: int) -> float:
    """Transitions per second: a bare psycopg loop, two statements and a commit each."""
    url = fresh(url, "bare")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE links (link_id text PRIMARY KEY, state text, seq bigint)")
        conn.execute("CREATE TABLE history (link_id text, seq bigint, record text)")
        conn.execute("INSERT INTO links VALUES ('l', 'idle', 0)")
        conn.commit()
        start = time.perf_counter()
        for seq in range(1, count + 1):
            conn.execute("UPDATE links SET state = 'open', seq = %s WHERE link_id = 'l'", (seq,))
            conn.execute("INSERT INTO history VALUES ('l', %s, '{}')", (seq,))
            conn.commit()
        return count / (time.perf_counter() - start)


# -- 3. a dead host's links -------------------------------------------------------------


class _Open:
    """A connection that stays open: the platform is not what is measured here."""

    last_activity = 0.0

    def __init__(self) -> None:
        self.closed = anyio.Event()

    async def wait_closed(self) -> object:
        await self.closed.wait()
        return None

    async def aclose(self) -> None:
        self.closed.set()


class _Connects:
    """A transport whose connect succeeds at once; records when each link first opened."""

    def __init__(self, link_id: str, opened: dict[str, float]) -> None:
        self.link_id = link_id
        self.opened = opened

    async def connect(self, tasks: TaskGroup) -> _Open:
        self.opened.setdefault(self.link_id, time.monotonic())
        return _Open()


async def dead_host(url: str, count: int, policy: LeasePolicy) -> tuple[float, float]:
    """(ours, bare): seconds from the dead host's last renewal until every link is served."""
    url = fresh(url, "dead")
    ids = {f"l{i:05}": "whatsapp" for i in range(count)}
    with PostgresStore(url, owner="host-a") as dead:
        dead.acquire(ids, ttl=policy.ttl)
    died = time.monotonic()  # host A never renews again
    opened: dict[str, float] = {}
    links = {i: LeasedLink(CHANNEL, _Connects(i, opened)) for i in ids}
    with PostgresStore(url, owner="host-b") as store:
        async with open_leased_fleet(store, links, policy=policy):
            while len(opened) < count:
                await trio.sleep(0.01)
    ours = max(opened.values()) - died

    url = fresh(url, "deadbare")
    with PostgresStore(url, owner="host-a") as dead:
        dead.acquire(ids, ttl=policy.ttl)
    died = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        taken = 0
        while taken < count:
            taken += conn.execute(
                "UPDATE links SET lease_owner = 'host-b', lease_token = lease_token + 1 "
                "WHERE lease_owner = 'host-a' AND lease_expires <= clock_timestamp()"
            ).rowcount
            time.sleep(0.01)
    return ours, time.monotonic() - died


def main() -> None:
    """Run the measurements and print a table with the ratios."""
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("--db", default=None, help="a postgresql:// URL (default: a throwaway one)")
    cli.add_argument(
        "--leases", type=int, nargs="+", default=[10_000, 100_000], help="leases per host"
    )
    cli.add_argument("--repeat", type=int, default=3, help="renewal rounds timed (best of)")
    cli.add_argument("--links", type=int, default=500, help="links writing at once (500)")
    cli.add_argument("--rounds", type=int, default=3, help="reconnect cycles per link (3)")
    cli.add_argument("--dead", type=int, default=500, help="links of the dead host (500)")
    cli.add_argument("--ttl", type=float, default=3.0, help="lease ttl for (3), seconds")
    args = cli.parse_args()
    policy = LeasePolicy(ttl=args.ttl, renew_every=args.ttl / 6, margin=args.ttl / 3, grace=1.0)
    with database(args.db) as url:
        print(f"{'measurement':<62} {'ours':>12} {'bare':>12} {'ratio':>7}")
        for count in args.leases:
            ours, bare, single = renewals(url, count, args.repeat)
            print(
                f"{f'{count:,} leases, one batched renewal (renewals/s)':<62} "
                f"{ours:>12,.0f} {bare:>12,.0f} {ours / bare:>7.2f}"
            )
            if single is not None:
                print(
                    f"{'  bare, one UPDATE per lease (renewals/s)':<62} {'':>12} "
                    f"{single:>12,.0f} {ours / single:>7.2f}"
                )
        rate, batch = trio.run(journal, url, args.links, args.rounds)
        bare = bare_transitions(url, min(2000, args.links * args.rounds * 3))
        print(
            f"{f'{args.links} links through the journal, fenced (transitions/s)':<62} "
            f"{rate:>12,.0f} {bare:>12,.0f} {rate / bare:>7.2f}"
        )
        print(f"{'  mean transitions per commit':<62} {batch:>12,.1f}")
        ours, bare = trio.run(dead_host, url, args.dead, policy)
        print(
            f"{f'{args.dead} links of a dead host served again (s; ttl {policy.ttl:g})':<62} "
            f"{ours:>12,.2f} {bare:>12,.2f} {ours / bare:>7.2f}"
        )
        print(f"  of which grace {policy.grace:g} s, keeper rounds of {policy.renew_every:g} s")


if __name__ == "__main__":
    main()
