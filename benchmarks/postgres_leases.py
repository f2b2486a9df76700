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
   psycopg loop replaying exactly the batches the journal committed, with
   the store's statement for a fenced write (``_WRITE_FENCED``: the row's
   fenced update, its history row, the trim), pipelined, one transaction
   per batch, parameters built before the clock starts. Journal and loop
   take turns for ``--repeat`` rounds, best of each (target: the journal at
   50 % of the loop or more).
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import psycopg
import trio
from anyio.abc import TaskGroup
from harness import print_lines, target

from linkstate import Channel, load_channel
from linkstate._lifecycle import Trigger
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate.runtime import LeasedLink, LeasePolicy, open_leased_fleet
from linkstate.store._journal import open_journal
from linkstate.store._postgres import _WRITE_FENCED, PostgresStore
from linkstate.store._sqlite import Entry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pgcluster import Cluster, find_bindir  # the tests' cluster helper

CHANNEL: Channel = load_channel("whatsapp")
GOAL = 0.5
"""The journal's throughput over the bare psycopg loop's (issue 19)."""
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


class RecordingStore(PostgresStore):
    """A :class:`PostgresStore` that keeps every batch it commits, for the bare loop to replay."""

    def __init__(self, url: str, *, owner: str) -> None:
        super().__init__(url, owner=owner)
        self.batches: list[list[Entry]] = []

    def write(self, entries: Sequence[Entry]) -> None:
        """Write, then keep the batch (only batches that committed)."""
        super().write(entries)
        self.batches.append(list(entries))


async def journal(url: str, links: int, rounds: int) -> tuple[float, float, list[list[Entry]]]:
    """(transitions/s, mean transitions per commit, the batches) through the journal, fenced."""
    ids = {f"l{i:05}": "whatsapp" for i in range(links)}
    store = RecordingStore(url, owner="bench-host")
    with store:
        store.acquire(ids, ttl=600)
        async with open_journal(store, owner="bench-host") as writer:
            all_links = [MACHINE.new_link(link_id) for link_id in ids]
            # Claimed before the clock starts, as a supervisor claims before its first
            # transition: every write below is fenced by its lease's token and seq.
            claims = {
                link.link_id: await writer.claim(link.link_id, on_lost=lambda exc: None)
                for link in all_links
            }
            store.batches.clear()

            async def drive(link: Link) -> None:
                claim = claims[link.link_id]

                async def append(record: TransitionRecord) -> None:
                    await writer.wait(writer.submit(record, link, channel="whatsapp", claim=claim))

                for _ in range(rounds):
                    first = Trigger.start if link.state == "idle" else Trigger.backoff_elapsed
                    for trigger in (first, Trigger.opened):
                        await append(MACHINE.fire(link, trigger, trio.current_time()))
                    await append(MACHINE.close(link, 428, trio.current_time()))

            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for link in all_links:
                    nursery.start_soon(drive, link)
            elapsed = time.perf_counter() - start
        assert store.check() == []
        batches = store.batches
    count = sum(len(batch) for batch in batches)
    return count / elapsed, count / max(1, len(batches)), batches


def bare_transitions(url: str, batches: list[list[Entry]], links: int) -> float:
    """Transitions per second: bare psycopg replaying the journal's batches with its SQL.

    A fresh schema gets the same leases (token 1 per link). Then the clock runs
    around the SQL alone: per batch one transaction, the store's statement for
    a fenced write (``_WRITE_FENCED``) once per transition, pipelined as the
    store sends them, each checked to have moved its row. The parameters are
    built before the clock starts, by the store's own ``_params``.
    """
    with PostgresStore(url, owner="bench-host") as store:
        store.acquire({f"l{i:05}": "whatsapp" for i in range(links)}, ttl=600)
        prepared = [
            [
                store._params(record, row)
                for record, row in sorted(batch, key=lambda e: e[1].link_id)
            ]
            for batch in batches
        ]
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        for batch in prepared:
            with conn.transaction():
                with conn.pipeline():
                    cursors = [conn.execute(_WRITE_FENCED, params) for params in batch]
                if any(cursor.fetchone() is None for cursor in cursors):
                    raise SystemExit("the replay diverged: a fenced write moved no row")
        elapsed = time.perf_counter() - start
    return sum(len(batch) for batch in prepared) / elapsed


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
        # The journal and its floor take turns, so a noisy moment hits both alike.
        rate = bare = batch = 0.0
        for turn in range(max(1, args.repeat)):
            ours, size, batches = trio.run(
                journal, fresh(url, f"journal{turn}"), args.links, args.rounds
            )
            if ours > rate:
                rate, batch = ours, size
            floor = bare_transitions(fresh(url, f"bare{turn}"), batches, args.links)
            bare = max(bare, floor)
        print(
            f"{f'{args.links} links through the journal, fenced (transitions/s)':<62} "
            f"{rate:>12,.0f} {bare:>12,.0f} {rate / bare:>7.2f}"
        )
        print(f"{'  mean transitions per commit':<62} {batch:>12,.1f}")
        share = rate / bare
        ours, bare = trio.run(dead_host, url, args.dead, policy)
        print(
            f"{f'{args.dead} links of a dead host served again (s; ttl {policy.ttl:g})':<62} "
            f"{ours:>12,.2f} {bare:>12,.2f} {ours / bare:>7.2f}"
        )
        print(f"  of which grace {policy.grace:g} s, keeper rounds of {policy.renew_every:g} s")
    print_lines([
        target(
            f"journal at {args.links} links / bare psycopg loop, same SQL and batches",
            f"{share:.0%}",
            f">= {GOAL:.0%}",
            share >= GOAL,
        )
    ])  # fmt: skip


if __name__ == "__main__":
    main()
