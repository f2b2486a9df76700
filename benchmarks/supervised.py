"""100k links supervised in one trio process on a virtual clock: memory, start time, GC.

Run: ``.venv/bin/python benchmarks/supervised.py [--size N] [--rounds R]``

Each link is a real :class:`linkstate.runtime.Supervisor` (default settings, one
shared ``LinkMachine``) over a stub transport whose connection opens at once
and stays open, waiting in ``trio.sleep_forever``: the steady state of a
healthy gateway, without the memory of any particular transport. trio's
``MockClock`` jumps over every wait, so the figures are pure CPU and memory.

Every measurement runs in a fresh child process (this script with
``--child``), so one variant's heap never disturbs the next and no child pays
for tearing 100k tasks down. Figures:

* **memory per link** (tracemalloc, at N/10 links: tracing slows allocation
  several times over): a supervised open link, everything included, next to
  a bare trio task that sleeps (the baseline), and where it goes, by the
  line of linkstate code under which it was allocated (at N/100 links: a
  deep traceback per allocation is slower still). The RSS growth per link at
  N links is printed as a check.
* **time to start** all N links, from the first ``start`` until every link
  is ``open``, through a :class:`linkstate.runtime.Fleet` with no wrapper, as
  a gateway starts them (the fleet holds the collector off itself), against
  starting N bare sleeping trio tasks (target: at most 4x). The two
  alternate for ``--rounds`` rounds on a machine others share, and each
  figure is its best round; the ratio of every round is printed as well.
  Once, for comparison: plain Supervisors in a nursery, with CPython's
  collector defaults.

  Times are the child's CPU time (``time.process_time``): on a machine
  shared with others the wall time counts their work as well, and on a quiet
  one the two agree (the start's wall time is printed too).
* **the garbage collector**: collections and pause times (``gc.callbacks``)
  while the links start, and the pause of one full collection afterwards,
  which is what a latency-sensitive process sees whenever CPython decides
  the old generation needs a look, then the same after
  :func:`linkstate.runtime.freeze_survivors` (the fleet has frozen its
  links already).
"""

from __future__ import annotations

import gc
import json
import linecache
import os
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import anyio
import sniffio
import trio
import trio.testing
from anyio.abc import TaskGroup
from harness import Table, fmt_bytes, fmt_ratio, fmt_time, parser, print_lines, target, traced

from linkstate import LinkMachine, load_channel
from linkstate.runtime._fleet import open_fleet
from linkstate.runtime._heap import freeze_survivors
from linkstate.runtime._supervisor import Supervisor
from linkstate.testing import VirtualTimeLoop

TARGET_BYTES = 4096
# Issue 15: porting the runtime to anyio must not cost trio more than the
# figure before the port.
CEILING_BYTES = 5.95 * 1024
CHILD_TIMEOUT = 600.0
TRACE_DEPTH = 32
"""Frames kept per allocation in the breakdown: enough to reach the linkstate frame under trio's."""
ROUNDS = 2
"""Rounds of the bare tasks and the fleet, alternating; each figure is its best round."""
SITE_FLOOR = 40.0
"""Allocation sites below this many bytes per link are left out of the breakdown."""


@dataclass
class GcWatch:
    """Collections and their pauses, from ``gc.callbacks``."""

    pauses: list[tuple[int, float]] = field(default_factory=list)
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.pauses.append((info["generation"], time.process_time() - self._started))

    def summary(self) -> dict[str, float]:
        """Collections (all, and of the oldest generation), total and longest pause."""
        return {
            "collections": len(self.pauses),
            "full": sum(1 for generation, _ in self.pauses if generation == 2),
            "paused": sum(pause for _, pause in self.pauses),
            "longest": max((pause for _, pause in self.pauses), default=0.0),
        }


def _rss() -> int:
    """Resident set size in bytes (Linux), else the peak RSS."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _full_pause() -> float:
    start = time.process_time()
    gc.collect()
    return time.process_time() - start


# -- children: each brings something up, measures it, prints and exits -----------


class StubConnection:
    """An open, quiet connection: the cheapest thing the supervisor accepts.

    It waits in ``trio.sleep_forever``, the lightest wait trio has; a real
    transport adds its own buffers and reader task on top.
    """

    __slots__ = ()

    @property
    def last_activity(self) -> float:
        """Always active."""
        return trio.current_time()

    async def wait_closed(self) -> object:
        """Never closes."""
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Nothing to close."""


class AsyncioStubConnection(StubConnection):
    """The same quiet connection on asyncio: it waits in ``anyio.sleep_forever``."""

    __slots__ = ()

    @property
    def last_activity(self) -> float:
        """Always active."""
        return anyio.current_time()

    async def wait_closed(self) -> object:
        """Never closes."""
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


class StubTransport:
    """Connects at once, every time, to a fresh :class:`StubConnection` (of the back end)."""

    __slots__ = ()

    async def connect(self, tasks: TaskGroup) -> StubConnection:
        """Hand out a new open connection."""
        if sniffio.current_async_library() == "asyncio":
            return AsyncioStubConnection()
        return StubConnection()


TRANSPORT: Final = StubTransport()


@cache
def _machine() -> LinkMachine:
    """The shared machine, built before anything is measured.

    Loading a channel scans the installed entry points: a fixed cost that is
    no link's.
    """
    return LinkMachine(load_channel("whatsapp"), rng=random.Random(1))


def _supervisors(n: int) -> list[Supervisor]:
    machine = _machine()
    return [
        Supervisor(machine.channel, TRANSPORT, link_id=f"link-{i}", machine=machine)
        for i in range(n)
    ]


def _bring_up(kind: str, n: int, on_up: Callable[[], None]) -> None:
    """Start ``n`` supervised links, bare tasks or nothing; call ``on_up`` once all are up.

    ``on_up`` runs inside the event loop, with everything alive; it reports and
    ends the process, so nothing is ever torn down. A ``kind`` ending in
    ``-asyncio`` runs on asyncio (on :class:`linkstate.testing.VirtualTimeLoop`
    with autojump, asyncio's stand-in for ``MockClock``), else on trio.
    """
    kind, on_asyncio = kind.removesuffix("-asyncio"), kind.endswith("-asyncio")
    # Each back end's own cheapest wait and task group: on trio, anyio's task
    # group wraps every task it starts (about 1.5 KB more per task), and a
    # gateway that starts its links itself uses trio's nursery.
    forever = anyio.sleep_forever if on_asyncio else trio.sleep_forever
    open_group: Callable[[], AbstractAsyncContextManager[Any]] = (
        anyio.create_task_group if on_asyncio else trio.open_nursery
    )

    async def main() -> None:
        async with open_group() as tasks:
            if kind == "supervised":
                supervisors = _supervisors(n)
                for supervisor in supervisors:
                    tasks.start_soon(supervisor.run)
                # Virtual time only moves once every task is blocked: one
                # virtual second later every link has connected and is open.
                while any(s.link.state != "open" for s in supervisors):
                    await anyio.sleep(1.0)
            elif kind == "fleet":
                # What a gateway writes: a Fleet, which handles the collector itself.
                async with open_fleet(rng=random.Random(1)) as fleet:
                    channel = _machine().channel
                    for i in range(n):
                        fleet.start(f"link-{i}", channel, TRANSPORT)
                    # One virtual second: the fleet's hold has ended by then too.
                    await anyio.sleep(1.0)
                    # Not fleet.statuses(): a snapshot of 100k links is no part of a start.
                    members = fleet._members.values()
                    if any(
                        m.supervisor is None or m.supervisor.link.state != "open" for m in members
                    ):
                        raise AssertionError("a fleet link is not open after a virtual second")
                    on_up()
            elif kind == "tasks":
                for _ in range(n):
                    tasks.start_soon(forever)
                await anyio.sleep(1.0)
            on_up()

    if on_asyncio:
        VirtualTimeLoop(autojump=True).run_until_complete(main())
    else:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.0))
    raise AssertionError("on_up must end the process")


def _report_and_exit(figures: dict[str, object]) -> None:
    print(json.dumps(figures), flush=True)
    # Skip tearing 100k tasks and their heap down: the figures are out.
    os._exit(0)


def child_start(kind: str, n: int) -> None:
    """Time bringing ``n`` links (or tasks) up, watching the collector; report, exit."""
    watch = GcWatch()
    gc.collect()
    rss = _rss()
    gc.callbacks.append(watch)
    began, began_wall = time.process_time(), time.perf_counter()

    def on_up() -> None:
        seconds, wall = time.process_time() - began, time.perf_counter() - began_wall
        gc.callbacks.remove(watch)
        figures: dict[str, object] = {
            "seconds": seconds,
            "wall": wall,
            **watch.summary(),
            "rss": (_rss() - rss) / n,
        }
        figures["full_pause"] = _full_pause()
        freeze_survivors()  # the fleet froze its links already: then nearly nothing is left
        figures["frozen_pause"] = _full_pause()
        _report_and_exit(figures)

    _bring_up(kind, n, on_up)


def child_memory(kind: str, n: int) -> None:
    """tracemalloc growth while ``n`` links (or tasks, or nothing) are up; report, exit."""
    gc.collect()
    tracemalloc.start(1)
    base = tracemalloc.get_traced_memory()[0]

    def on_up() -> None:
        gc.collect()
        _report_and_exit({"bytes": tracemalloc.get_traced_memory()[0] - base})

    _bring_up(kind, n, on_up)


def child_sites(kind: str, n: int) -> None:
    """Where ``n`` links' memory goes, by the linkstate line that allocated it; report, exit."""
    gc.collect()
    tracemalloc.start(TRACE_DEPTH)
    before = tracemalloc.take_snapshot()

    def on_up() -> None:
        gc.collect()
        _report_and_exit({"sites": _sites(before, tracemalloc.take_snapshot(), n)})

    _bring_up(kind, n, on_up)


def _sites(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int
) -> list[tuple[str, float]]:
    """Bytes per link by the line of linkstate code that caused them (trio's own: its task)."""
    sites: dict[str, float] = {}
    for stat in after.compare_to(before, "traceback"):
        ours = [f for f in stat.traceback if f"{os.sep}linkstate{os.sep}" in f.filename]
        if ours:
            frame = ours[-1]
            code = linecache.getline(frame.filename, frame.lineno).strip()
            label = f"{Path(frame.filename).name}:{frame.lineno} {code}"
        else:
            label = "(no linkstate frame: the task, the stub connection, the benchmark)"
        sites[label] = sites.get(label, 0.0) + stat.size_diff / n
    return sorted(sites.items(), key=lambda item: -item[1])


def _child_main(mode: str, n: int) -> None:
    what, kind = mode.split(":")
    _machine()
    children = {"memory": child_memory, "sites": child_sites, "start": child_start}
    children[what](kind, n)


# -- the parent -------------------------------------------------------------------


def child(mode: str, n: int) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its figures."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--size", str(n)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {mode} at {n} links failed:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


START_MODES: Final = {
    "start:tasks": "bare trio tasks (baseline)",
    "start:fleet": "Fleet.start, no wrapper (the fleet holds the GC itself)",
    "start:supervised": "Supervisors in a nursery, CPython's GC defaults",
}
START_GOAL: Final = 4.0
"""Starting N links through a Fleet, at most this many times N bare tasks (issue 19)."""


def run(size: int, rounds: int = ROUNDS) -> dict[str, Any]:
    """Every measurement; mode -> figures (the best round's), and the ratio of each round."""
    small = max(size // 10, 10)
    # Alternating, so that a burst of load from elsewhere hits both alike.
    tries: dict[str, list[dict[str, Any]]] = {"start:tasks": [], "start:fleet": []}
    for _ in range(rounds):
        for mode, figures in tries.items():
            figures.append(child(mode, size))
    results: dict[str, Any] = {
        mode: min(figures, key=lambda f: f["seconds"]) for mode, figures in tries.items()
    }
    results["round_ratios"] = [
        fleet["seconds"] / tasks["seconds"]
        for tasks, fleet in zip(tries["start:tasks"], tries["start:fleet"], strict=True)
    ]
    results["start:supervised"] = child("start:supervised", size)
    # The trio run itself (runner, clock, this module) is a fixed cost: measured
    # with nothing started, and subtracted.
    fixed = child("memory:empty", small)["bytes"]
    memory: dict[str, Any] = {
        "supervised": (child("memory:supervised", small)["bytes"] - fixed) / small,
        "tasks": (child("memory:tasks", small)["bytes"] - fixed) / small,
        "supervisor_object": traced(lambda: _supervisors(small))[1] / small,
        "sites": child("sites:supervised", max(size // 100, 10))["sites"],
    }
    # The same on asyncio, from the same run (each in a fresh child as well).
    fixed_asyncio = child("memory:empty-asyncio", small)["bytes"]
    memory["supervised_asyncio"] = (
        child("memory:supervised-asyncio", small)["bytes"] - fixed_asyncio
    ) / small
    tasks_asyncio = child("memory:tasks-asyncio", small)["bytes"]
    memory["tasks_asyncio"] = (tasks_asyncio - fixed_asyncio) / small
    results["memory"] = memory
    return results


def report(results: dict[str, Any], size: int) -> list[str]:
    """Print the tables and targets; return the target lines."""
    small = max(size // 10, 10)
    memory = results["memory"]
    per_link = memory["supervised"]
    table = Table(
        f"Memory per link (tracemalloc, {small:,} links, everything still alive)",
        ["what", "bytes/link", "vs bare task"],
    )
    for name, value, baseline in (
        ("trio: supervised open link, everything included", per_link, memory["tasks"]),
        (
            "  Supervisor object + Link alone, before running",
            memory["supervisor_object"],
            memory["tasks"],
        ),
        ("bare trio task, sleeping (baseline)", memory["tasks"], memory["tasks"]),
        (
            "asyncio: supervised open link, everything included",
            memory["supervised_asyncio"],
            memory["tasks_asyncio"],
        ),
        (
            "bare asyncio task, sleeping (baseline)",
            memory["tasks_asyncio"],
            memory["tasks_asyncio"],
        ),
    ):
        table.add(name, fmt_bytes(value), fmt_ratio(value / baseline))
    table.print()
    sites = Table(
        "Where a supervised open link's memory goes (by the linkstate line that allocated it)",
        ["bytes/link", "allocated under"],
    )
    for label, value in memory["sites"]:
        if value >= SITE_FLOOR:
            sites.add(fmt_bytes(value), label)
    sites.print()

    tasks = results["start:tasks"]
    start = Table(
        f"Starting {size:,} links on trio's MockClock (each variant in a fresh process; "
        "tasks and fleet: best round)",
        [
            "variant",
            "start all (CPU)",
            "wall",
            "per link",
            "vs bare tasks",
            "GC runs (full)",
            "GC paused",
            "longest pause",
            "full GC after",
            "same, frozen",
            "RSS/link",
        ],
    )
    for mode, name in START_MODES.items():
        f = results[mode]
        start.add(
            name,
            fmt_time(f["seconds"]),
            fmt_time(f["wall"]),
            fmt_time(f["seconds"] / size),
            fmt_ratio(f["seconds"] / tasks["seconds"]),
            f"{f['collections']:,.0f} ({f['full']:.0f})",
            f"{fmt_time(f['paused'])} ({f['paused'] / f['seconds']:.0%})",
            fmt_time(f["longest"]),
            fmt_time(f["full_pause"]),
            fmt_time(f["frozen_pause"]),
            fmt_bytes(f["rss"]),
        )
    start.print()

    fleet = results["start:fleet"]
    default = results["start:supervised"]
    ratios = ", ".join(fmt_ratio(ratio) for ratio in results["round_ratios"])
    lines = [
        target(
            "memory per supervised link", fmt_bytes(per_link), "<= 4 KB", per_link <= TARGET_BYTES
        ),
        target(
            "memory per supervised link, trio (ceiling)",
            fmt_bytes(per_link),
            "<= 5.95 KB",
            per_link <= CEILING_BYTES,
        ),
        target(
            f"start of {size:,} links through a Fleet / bare trio tasks",
            fmt_ratio(fleet["seconds"] / tasks["seconds"]),
            f"<= {START_GOAL:g}x",
            fleet["seconds"] <= START_GOAL * tasks["seconds"],
        ),
        f"rounds  fleet / bare tasks, each round: {ratios}",
        f"gc      the fleet's hold: {fleet['paused'] / fleet['seconds']:.0%} of its start in the "
        f"collector, against {default['paused'] / default['seconds']:.0%} for Supervisors with "
        f"the defaults; a full collection afterwards takes {fmt_time(default['full_pause'])} "
        f"with the defaults, {fmt_time(fleet['full_pause'])} once the fleet froze its links",
    ]
    print_lines(lines)
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with --child, one measurement) and print its figures."""
    cli = parser(__doc__.splitlines()[0], size=100_000, size_help="supervised links")
    cli.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        help=f"rounds of bare tasks and fleet, alternating (default {ROUNDS})",
    )
    cli.add_argument("--child", help="internal: run one measurement and print it as JSON")
    args = cli.parse_args(argv)
    if args.child:
        _child_main(args.child, args.size)
    report(run(args.size, args.rounds), args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
