"""A reconnect storm: every link dropped at once with a retryable code, three policies.

Run: ``.venv/bin/python benchmarks/storm.py [--size N] [--plot PATH]``

At t = 0 all N open links close with WhatsApp status 428 (``retry``). Each
link then does what our machine decides: waits the policy's delay, fires
``backoff_elapsed`` (a reconnect attempt) and, if the server takes it, is
``open`` again; if not, the failed connect is classified (503, ``retry``) and
the link backs off again. Two servers:

* **back at once**: every attempt succeeds. This is the storm as the issue
  states it, and shows the herd the policy itself makes.
* **overloaded**: the server admits at most one tenth of the links per second
  (a token bucket holding 100 ms of that) and refuses the rest with 503, the
  way a gateway fleet's upstream usually fails in a storm. Run at N/10 links
  and watched for ``HORIZON`` seconds: without jitter the herd comes back in
  lockstep waves that each get 100 ms of capacity, and simulating all of
  them at 100k links would take minutes.

Three policies: our default (full jitter), the same schedule without jitter,
and OpenClaw's (2 s, x1.8, one-sided +0-25 % jitter, cap 30 s, 12 attempts).

Figures: reconnect attempts per second in 100 ms bins; *peak/mean* is the
busiest bin's rate over the mean rate from the drop to the last attempt (1x
is perfectly flat; without jitter it only measures the bin width, as all
attempts land in the same instant); the time until 99 % of the links are
open again; links that gave up (``failed``, retry budget spent).

Engine, and why: the storm runs our ``LinkMachine`` directly on a simulated
clock (a heap of wake-up times). The supervisor adds nothing to the timing:
it sleeps exactly ``link.delay`` and fires what the machine recorded, but
100k supervisors cost about 10-30 s per policy to start and to storm on 2
cores, which does not fit the 5-minute budget for every scenario. The script
therefore cross-checks the model once: the real ``Supervisor`` on trio's
``MockClock`` storms N/20 links with our default policy, and its figures are
printed next to the simulation's at the same size.
"""

from __future__ import annotations

import heapq
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import trio
import trio.testing
from harness import Table, fmt_ratio, fmt_time, parser, print_lines, target

from linkstate import (
    OPENCLAW,
    Jitter,
    Link,
    LinkMachine,
    ReconnectPolicy,
    State,
    TransitionRecord,
    Trigger,
    load_channel,
)
from linkstate.runtime._scripted import Close, ScriptedTransport
from linkstate.runtime._supervisor import Supervisor
from linkstate.testing import VirtualTimeLoop

BIN = 0.1
"""Histogram bin width, seconds."""
DROP = 428
"""WhatsApp connectionClosed: ``retry``."""
REFUSED = 503
"""WhatsApp unavailableService: ``retry``."""
SEED = 8
HORIZON = 600.0
"""How long the overloaded storm is watched, seconds."""
DROP_AT = 60.0
"""When the supervised cross-check drops its links (virtual seconds)."""

DEFAULT = ReconnectPolicy()
POLICIES: dict[str, ReconnectPolicy] = {
    "ours (default, full jitter)": DEFAULT,
    "no jitter": replace(DEFAULT, jitter=Jitter.none),
    "OpenClaw (+0-25 %)": OPENCLAW,
}


@dataclass(frozen=True)
class Storm:
    """What one storm did."""

    policy: str
    server: str
    links: int
    attempts: tuple[float, ...]
    """The time of every reconnect attempt."""
    back: tuple[float, ...]
    """The time each link that came back opened again, sorted."""
    failed: int
    """Links that ended in a terminal state instead."""
    horizon: float = math.inf
    """How long the storm was watched."""
    wall: float = 0.0
    """Real seconds the run took (the supervised runs only)."""

    def histogram(self) -> list[int]:
        """Attempts per ``BIN`` from the drop to the last attempt."""
        bins = [0] * (int(max(self.attempts, default=0.0) / BIN) + 1)
        for t in self.attempts:
            bins[int(t / BIN)] += 1
        return bins

    @property
    def peak_rate(self) -> float:
        """Attempts per second in the busiest bin."""
        return max(self.histogram()) / BIN

    @property
    def mean_rate(self) -> float:
        """Attempts per second from the drop to the end of the last attempt's bin."""
        return len(self.attempts) / (len(self.histogram()) * BIN)

    @property
    def peak_to_mean(self) -> float:
        """The busiest bin over the mean; 1x is flat."""
        return self.peak_rate / self.mean_rate

    @property
    def p99_back(self) -> float:
        """Seconds until 99 % of the links are open again (inf if they never are)."""
        needed = math.ceil(0.99 * self.links)
        return self.back[needed - 1] if len(self.back) >= needed else math.inf


class Server:
    """Admits connects at up to ``rate`` per second (a token bucket); None admits all."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.burst = 1.0 if rate is None else max(1.0, rate * BIN)
        self.tokens = self.burst
        self.last = 0.0

    def admit(self, now: float) -> bool:
        """True if a connect at ``now`` is taken."""
        if self.rate is None:
            return True
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _open_links(machine: LinkMachine, n: int) -> list[Link]:
    """N links that have been open for an hour (healthy: a full retry budget)."""
    links = [machine.new_link(f"link-{i}", now=-3600.0) for i in range(n)]
    for link in links:
        machine.fire(link, Trigger.start, -3600.0)
        machine.fire(link, Trigger.opened, -3600.0)
    return links


def simulate(
    name: str, policy: ReconnectPolicy, n: int, rate: float | None, horizon: float = math.inf
) -> Storm:
    """The storm on a simulated clock: our machine decides every delay and destination."""
    machine = LinkMachine(load_channel("whatsapp"), policy, rng=random.Random(SEED))
    links = _open_links(machine, n)
    server = Server(rate)
    wakeups: list[tuple[float, int]] = []
    for index, link in enumerate(links):
        machine.close(link, DROP, 0.0)
        assert link.delay is not None
        wakeups.append((link.delay, index))
    heapq.heapify(wakeups)
    attempts: list[float] = []
    back: list[float] = []
    failed = 0
    while wakeups and wakeups[0][0] <= horizon:
        now, index = heapq.heappop(wakeups)
        link = links[index]
        machine.fire(link, Trigger.backoff_elapsed, now)
        attempts.append(now)
        if server.admit(now):
            machine.fire(link, Trigger.opened, now)
            back.append(now)
            continue
        machine.close(link, REFUSED, now, trigger=Trigger.connect_failed)
        if link.state == State.reconnecting:
            assert link.delay is not None
            heapq.heappush(wakeups, (now + link.delay, index))
        else:
            failed += 1
    return Storm(name, _server_name(rate), n, tuple(attempts), tuple(back), failed, horizon)


def supervised(name: str, policy: ReconnectPolicy, n: int, backend: str = "trio") -> Storm:
    """The same storm (server back at once) run by real supervisors on a virtual clock.

    On trio, that is ``MockClock``; on asyncio, :class:`linkstate.testing.VirtualTimeLoop`
    with autojump. The runtime is the same code on both (anyio).
    """
    channel = load_channel("whatsapp")
    machine = LinkMachine(channel, policy, rng=random.Random(SEED))
    attempts: list[float] = []
    back: list[float] = []

    def observe(record: TransitionRecord) -> None:
        if record.t < DROP_AT:
            return
        if record.trigger == Trigger.backoff_elapsed:
            attempts.append(record.t - DROP_AT)
        elif record.trigger == Trigger.opened:
            back.append(record.t - DROP_AT)

    machine.subscribe(observe)

    async def storm() -> None:
        # Everyone connects at t = 0 and is dropped at once at DROP_AT.
        async with anyio.create_task_group() as nursery:
            for i in range(n):
                supervisor = Supervisor(
                    channel,
                    ScriptedTransport([Close(DROP, after=DROP_AT)]),
                    link_id=f"link-{i}",
                    machine=machine,
                    connect_timeout=None,
                )
                nursery.start_soon(supervisor.run)
            while len(back) < n:
                await anyio.sleep(1.0)
            nursery.cancel_scope.cancel()

    began = time.perf_counter()
    if backend == "asyncio":
        loop = VirtualTimeLoop(autojump=True)
        try:
            loop.run_until_complete(storm())
        finally:
            loop.close()
    else:
        trio.run(storm, clock=trio.testing.MockClock(autojump_threshold=0.0, rate=0.0))
    wall = time.perf_counter() - began
    return Storm(name, _server_name(None), n, tuple(attempts), tuple(sorted(back)), 0, wall=wall)


def _server_name(rate: float | None) -> str:
    return "back at once" if rate is None else f"admits {rate:,.0f}/s"


def run(size: int) -> tuple[list[Storm], tuple[Storm, Storm, Storm]]:
    """Every policy against both servers, and the supervisor cross-check."""
    overloaded = max(size // 10, 10)
    storms = [simulate(name, policy, size, None) for name, policy in POLICIES.items()]
    storms += [
        simulate(name, policy, overloaded, overloaded / 10, HORIZON)
        for name, policy in POLICIES.items()
    ]
    small = max(size // 20, 10)
    name = next(iter(POLICIES))
    check = (
        simulate(name, DEFAULT, small, None),
        supervised(name, DEFAULT, small),
        supervised(name, DEFAULT, small, "asyncio"),
    )
    return storms, check


def _short(value: float) -> str:
    """An axis label: 0, 250k, 1M."""
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    return f"{value / 1000:g}k" if value else "0"


def _back(storm: Storm) -> str:
    value = storm.p99_back
    return f"> {storm.horizon:g} s" if math.isinf(value) else f"{value:.2f} s"


def report(storms: Sequence[Storm], check: tuple[Storm, Storm, Storm], size: int) -> list[str]:
    """Print the tables and the target; return the target lines."""
    table = Table(
        f"Reconnect storm: all links dropped at t=0 with status {DROP} "
        f"(attempts per second in {BIN * 1000:.0f} ms bins)",
        ["server", "links", "policy", "attempts", "peak/s", "mean/s", "peak/mean", "99% back"],
    )
    for s in storms:
        table.add(
            s.server,
            f"{s.links:,}",
            s.policy,
            f"{len(s.attempts):,}",
            f"{s.peak_rate:,.0f}",
            f"{s.mean_rate:,.0f}",
            fmt_ratio(s.peak_to_mean),
            _back(s) + (f" ({s.failed:,} failed)" if s.failed else ""),
        )
    table.print()
    model, real, on_asyncio = check
    cross = Table(
        f"Cross-check at {model.links:,} links, server back at once: simulated clock "
        "against real supervisors on trio's MockClock and on asyncio's VirtualTimeLoop",
        ["engine", "attempts", "peak/mean", "99% back", "wall time", "vs trio"],
    )
    for engine, s in (
        ("LinkMachine, simulated clock", model),
        ("Supervisor, MockClock", real),
        ("Supervisor, asyncio VirtualTimeLoop", on_asyncio),
    ):
        wall = (fmt_time(s.wall), fmt_ratio(s.wall / real.wall)) if s.wall else ("-", "-")
        cross.add(engine, f"{len(s.attempts):,}", fmt_ratio(s.peak_to_mean), _back(s), *wall)
    cross.print()
    ours = storms[0]
    lines = [
        target(
            "ours, server back at once: peak/mean",
            fmt_ratio(ours.peak_to_mean),
            "<= 1.5x",
            ours.peak_to_mean <= 1.5,
        ),
    ]
    print_lines(lines)
    return lines


def plot(storms: Sequence[Storm], path: Path) -> None:
    """Draw the attempts-per-second histograms: a row per policy, a column per server.

    Each column shares its time axis, long enough for the slowest jittered
    policy to finish; the y axes are separate, since no jitter peaks an order
    of magnitude above the rest.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    servers = list(dict.fromkeys(s.server for s in storms))
    policies = list(dict.fromkeys(s.policy for s in storms))
    fig, axes = plt.subplots(
        len(policies), len(servers), figsize=(7 * len(servers), 2.4 * len(policies)), squeeze=False
    )
    colours = ("tab:blue", "tab:red", "tab:orange")
    thousands = FuncFormatter(lambda value, _: _short(value))
    for col, server in enumerate(servers):
        column = [s for s in storms if s.server == server]
        finished = [max(s.attempts) for s in column if s.attempts and math.isfinite(s.p99_back)]
        width = 1.1 * max(finished, default=HORIZON) + BIN
        for row, s in enumerate(column):
            ax = axes[row][col]
            counts = s.histogram()
            edges = [i * BIN for i in range(len(counts) + 1)]
            rates = [c / BIN for c in counts]
            colour = colours[row % len(colours)]
            # An outline as well as the fill: a 100 ms spike on a long axis is
            # narrower than a pixel and would vanish as a filled bar alone.
            ax.stairs(rates, edges, fill=True, color=colour, alpha=0.35)
            ax.stairs(rates, edges, color=colour, linewidth=1.0)
            ax.set_xlim(0.0, width)
            ax.set_ylim(0.0, 1.12 * max(rates, default=1.0))
            ax.yaxis.set_major_formatter(thousands)
            ax.set_title(
                f"{s.policy}: peak/mean {fmt_ratio(s.peak_to_mean)}, 99% back {_back(s)}",
                fontsize=10,
            )
            ax.set_ylabel("attempts/s")
            ax.grid(alpha=0.3)
        axes[0][col].annotate(
            f"server {server}, {column[0].links:,} links",
            xy=(0.5, 1.28),
            xycoords="axes fraction",
            ha="center",
            fontsize=11,
            fontweight="bold",
        )
        axes[-1][col].set_xlabel("seconds after the drop")
    fig.suptitle(
        f"Reconnect storm: every link dropped at once, reconnect attempts per second "
        f"({BIN * 1000:.0f} ms bins)",
        fontsize=12,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot: {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the storms, print the figures and draw the plot."""
    cli = parser(__doc__.splitlines()[0], size=100_000, size_help="links in the storm")
    cli.add_argument(
        "--plot",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "docs" / "storm.png",
        help="where to write the histogram PNG (default docs/storm.png)",
    )
    args = cli.parse_args(argv)
    storms, check = run(args.size)
    report(storms, check, args.size)
    plot(storms, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
