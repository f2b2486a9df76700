"""What persisting transitions costs: commit modes, group commit, and the trio loop's latency.

Run: ``.venv/bin/python benchmarks/store_write.py [--links N] [--rounds R]``

Three measurements, each on a fresh SQLite file in a temporary directory (on
the same disk as /tmp):

1. ``SQLiteStore.write`` with one transition per transaction, for
   ``synchronous=FULL`` (the default: fsync per commit) and ``NORMAL``. This
   is the floor: what one link alone pays per transition. Then the same
   writes fenced by a claim, as a supervisor writes them (token and expected
   ``seq`` checked in the transaction), as a ratio of the unfenced ones.
2. The :class:`linkstate.store.Journal` with N links writing at once on trio's
   real clock, each waiting for its commit as the supervisor does. The
   writer groups whatever arrived during the previous commit, so the cost
   of an fsync is shared. Reports transitions per second and the mean batch.
3. The loop's latency while (2) runs. A task that wants to wake every
   millisecond records how late it wakes (99th percentile). With the store called in a worker
   thread (the default) the loop keeps running; the same run with
   ``inline=True`` shows what a blocking call on the trio thread would do.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import trio

from linkstate._lifecycle import Trigger
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate.channels.whatsapp import CHANNEL
from linkstate.store._journal import open_journal
from linkstate.store._sqlite import LinkRow, SQLiteStore

MACHINE = LinkMachine(CHANNEL, ReconnectPolicy(flap_closes=0))


def single_writes(directory: Path, synchronous: str, count: int, *, fenced: bool = False) -> float:
    """Transitions per second, one transaction each (under a claim with ``fenced``)."""
    name = f"single-{synchronous}{'-fenced' if fenced else ''}.db"
    with SQLiteStore(directory / name, synchronous=synchronous) as store:
        claim = store.claim("one", "benchmark") if fenced else None
        link = MACHINE.new_link("one")
        start = time.perf_counter()
        for i in range(count):
            if link.state in ("idle", "reconnecting", "connecting"):
                trigger = {"idle": Trigger.start, "reconnecting": Trigger.backoff_elapsed}.get(
                    link.state, Trigger.opened
                )
                record = MACHINE.fire(link, trigger, float(i))
            else:
                record = MACHINE.close(link, 428, float(i))
            row = LinkRow.from_link(link, channel="whatsapp", now=i, wall=i)
            if claim is not None:
                row = replace(row, owner=claim.owner, token=claim.token, seq=i + 1)
            store.write([(record, row)])
        return count / (time.perf_counter() - start)


async def journal_run(
    directory: Path, synchronous: str, links: int, rounds: int, inline: bool | None
) -> tuple[float, float, float]:
    """(transitions per second, mean batch, 99th percentile of loop lateness in ms).

    ``inline=None`` is the baseline: the same machine work with no store at all.
    """
    lateness: list[float] = []
    done = trio.Event()

    async def heartbeat() -> None:
        while not done.is_set():
            due = trio.current_time() + 0.001
            await trio.sleep(0.001)
            lateness.append(trio.current_time() - due)

    name = f"journal-{synchronous}-{'inline' if inline else 'thread'}.db"
    with SQLiteStore(directory / name, synchronous=synchronous) as store:
        async with open_journal(store, inline=bool(inline)) as journal:

            async def persist(record: TransitionRecord, link: Link) -> None:
                if inline is None:
                    await trio.lowlevel.checkpoint()
                else:
                    await journal.append(record, link, channel="whatsapp")

            async def drive(link: Link) -> None:
                for _ in range(rounds):
                    for trigger in (
                        Trigger.start if link.state == "idle" else Trigger.backoff_elapsed,
                        Trigger.opened,
                    ):
                        await persist(MACHINE.fire(link, trigger, trio.current_time()), link)
                    await persist(MACHINE.close(link, 428, trio.current_time()), link)

            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(heartbeat)
                async with trio.open_nursery() as writers:
                    for i in range(links):
                        writers.start_soon(drive, MACHINE.new_link(f"l{i:05}"))
                elapsed = time.perf_counter() - start
                done.set()
            stats = journal.statistics()
    count = links * rounds * 3
    lateness.sort()
    p99 = lateness[int(len(lateness) * 0.99)] if lateness else 0.0
    return count / elapsed, stats.committed / max(stats.commits, 1), p99 * 1000


def main() -> None:
    """Run the three measurements and print a table."""
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("--links", type=int, default=1000, help="links writing at once (1000)")
    cli.add_argument("--rounds", type=int, default=5, help="reconnect cycles per link (5)")
    cli.add_argument("--single", type=int, default=300, help="single-link transitions (300)")
    args = cli.parse_args()
    with tempfile.TemporaryDirectory(prefix="linkstate-bench-") as tmp:
        directory = Path(tmp)
        print(f"SQLite files in {directory}")
        print(f"{'measurement':<58} {'FULL':>12} {'NORMAL':>12}")
        single = {s: single_writes(directory, s, args.single) for s in ("FULL", "NORMAL")}
        print(
            f"{'one link, one transaction per transition (transitions/s)':<58} "
            f"{single['FULL']:>12,.0f} {single['NORMAL']:>12,.0f}"
        )
        fenced = {
            s: single_writes(directory, s, args.single, fenced=True) / single[s]
            for s in ("FULL", "NORMAL")
        }
        print(
            f"{'  the same, fenced by a claim (ratio to unfenced)':<58} "
            f"{fenced['FULL']:>12,.2f} {fenced['NORMAL']:>12,.2f}"
        )
        for inline in (None, False, True):
            rows = {
                s: trio.run(journal_run, directory, s, args.links, args.rounds, inline)
                for s in ("FULL", "NORMAL")
            }
            how = {None: "no store (baseline)", False: "writer thread", True: "store inline"}
            label = f"{args.links} links, {how[inline]}"
            print(
                f"{label + ' (transitions/s)':<58} "
                f"{rows['FULL'][0]:>12,.0f} {rows['NORMAL'][0]:>12,.0f}"
            )
            print(
                f"{'  mean transitions per commit':<58} "
                f"{rows['FULL'][1]:>12,.1f} {rows['NORMAL'][1]:>12,.1f}"
            )
            print(
                f"{'  99th percentile lateness of a 1 ms timer (ms)':<58} "
                f"{rows['FULL'][2]:>12,.1f} {rows['NORMAL'][2]:>12,.1f}"
            )


if __name__ == "__main__":
    main()
