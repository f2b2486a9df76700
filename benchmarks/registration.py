"""Registration time and memory per link: ours against transitions and python-statemachine.

Run: ``.venv/bin/python benchmarks/registration.py [--size N]``

Four ways to give N links a lifecycle, all with the same states, edges and guards:

* ours: ``LinkMachine.new_link``, a slotted ``Link`` driven by one shared machine;
* transitions ``add_model`` on one shared ``Machine`` (it decorates each model
  with a method per trigger and state check, and scans its model list on every
  call, so N registrations cost O(N²));
* one transitions ``Machine`` per link;
* one python-statemachine instance per link.

Ours is measured at N/10 and N to show linear growth. ``add_model`` is timed
at N/10, 2N/10 and 4N/10 and projected to N by fitting time per model as a
straight line in the number of models (quadratic in total). The per-instance
baselines are timed at N/10 and projected linearly; their instances are
independent, so their memory per link is measured on ``MEMORY_SAMPLE``
instances. Measuring the baselines at 100k directly would take minutes and
gigabytes; every projected figure is marked ``~``.

Time is measured with the cyclic garbage collector off, as :mod:`timeit`
does: a collection's cost depends on everything else the process holds, not
on the registration. ``benchmarks/supervised.py`` measures the collector.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass

from harness import (
    Plain,
    Table,
    best_of,
    fmt_bytes,
    fmt_ratio,
    fmt_time,
    parser,
    print_lines,
    psm_class,
    target,
    timed,
    traced,
    transitions_machine,
)

from linkstate import LinkMachine, load_channel

# Below this many links every variant is measured directly, with no projection.
DIRECT_LIMIT = 20_000
# Instances whose memory is measured for the per-instance baselines.
MEMORY_SAMPLE = 2_000
# How many times our timing is repeated (the best counts). The baselines take
# seconds per run, so one run each is steady enough and keeps the budget.
REPEAT = 3

Builder = Callable[[int], object]


@dataclass
class Measured:
    """One variant at one size."""

    variant: str
    links: int
    seconds: float
    memory_per_link: float | None
    projected: bool = False

    @property
    def time_per_link(self) -> float:
        """Registration seconds per link."""
        return self.seconds / self.links


def ours() -> Builder:
    """Our registration: one ``LinkMachine``, one ``Link`` per link."""
    machine = LinkMachine(load_channel("whatsapp"), rng=random.Random(1))
    return lambda n: [machine.new_link(f"link-{i}") for i in range(n)]


def add_model(n: int) -> object:
    """transitions' documented way: one machine, ``add_model`` per link."""
    machine = transitions_machine()
    models = [Plain(f"link-{i}") for i in range(n)]
    for model in models:
        machine.add_model(model)
    return machine, models


def machine_per_link(n: int) -> object:
    """One transitions ``Machine`` per link."""
    return [transitions_machine(Plain(f"link-{i}")) for i in range(n)]


def psm() -> Builder:
    """One python-statemachine instance per link (the class is generated once)."""
    cls = psm_class()
    return lambda n: [cls(Plain(f"link-{i}")) for i in range(n)]


def measure(
    variant: str, build: Builder, n: int, *, repeat: int = 1, memory: int | None = None
) -> Measured:
    """Best-of time of ``build(n)``, and the tracemalloc memory of ``build(memory)``."""
    seconds = best_of(repeat, lambda: timed(lambda: build(n))[1])
    per_link = None if memory is None else traced(lambda: build(memory))[1] / memory
    return Measured(variant, n, seconds, per_link)


def _memory_per_link(points: list[Measured]) -> float:
    per_link = points[0].memory_per_link
    assert per_link is not None, "the first point of a projection measures memory"
    return per_link


def project_quadratic(points: list[Measured], n: int) -> Measured:
    """Fit time per link = a + b * links through ``points`` and project to ``n`` links."""
    xs = [p.links for p in points]
    ys = [p.time_per_link for p in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    per_link = mean_y + slope * (n - mean_x)
    return Measured(points[0].variant, n, per_link * n, _memory_per_link(points), projected=True)


def project_linear(points: list[Measured], n: int) -> Measured:
    """Project the largest measurement to ``n`` links at the same cost per link."""
    last = points[-1]
    return Measured(
        last.variant, n, last.time_per_link * n, _memory_per_link(points), projected=True
    )


def run(size: int) -> list[Measured]:
    """Measure every variant; returns the figures at N/10 and at N (some projected)."""
    small = max(size // 10, 10)
    results: list[Measured] = []
    build_ours = ours()
    results += [
        measure("ours (LinkMachine.new_link)", build_ours, n, repeat=REPEAT, memory=n)
        for n in (small, size)
    ]
    if size <= DIRECT_LIMIT:
        for name, build in (
            ("transitions add_model", add_model),
            ("transitions Machine per link", machine_per_link),
            ("python-statemachine per link", psm()),
        ):
            results += [measure(name, build, n, memory=n) for n in (small, size)]
        return results
    points = [
        measure("transitions add_model", add_model, n, memory=n if n == small else None)
        for n in (small, 2 * small, 4 * small)
    ]
    results += [*points, project_quadratic(points, size)]
    sample = min(small, MEMORY_SAMPLE)
    for name, build in (
        ("transitions Machine per link", machine_per_link),
        ("python-statemachine per link", psm()),
    ):
        point = measure(name, build, small, memory=sample)
        results += [point, project_linear([point], size)]
    return results


def report(results: list[Measured], size: int) -> list[str]:
    """Print the tables; return the target lines (also printed)."""
    small = max(size // 10, 10)
    ref = {r.links: r for r in results if r.variant.startswith("ours")}
    table = Table(
        "Registration: time and memory per link (tracemalloc; time is best of "
        f"{REPEAT}; ~ = projected, see the script's docstring)",
        ["variant", "links", "time/link", "memory/link", "time vs ours", "memory vs ours"],
    )
    for r in results:
        mark = "~" if r.projected else ""
        base = ref.get(r.links)
        table.add(
            r.variant,
            f"{r.links:,}",
            mark + fmt_time(r.time_per_link),
            "-" if r.memory_per_link is None else mark + fmt_bytes(r.memory_per_link),
            "-" if base is None else mark + fmt_ratio(r.time_per_link / base.time_per_link),
            "-"
            if base is None or r.memory_per_link is None or base.memory_per_link is None
            else mark + fmt_ratio(r.memory_per_link / base.memory_per_link),
        )
    table.print()

    growth = Table(
        f"Growth: time per link as links grow from {small:,} (1.0x = linear total time)",
        ["variant", "sizes", "time/link growth"],
    )
    by_variant: dict[str, list[Measured]] = {}
    for r in results:
        by_variant.setdefault(r.variant, []).append(r)
    for variant, points in by_variant.items():
        first = points[0]
        steps = ", ".join(
            f"{'~' if p.projected else ''}{p.links:,}: "
            f"{fmt_ratio(p.time_per_link / first.time_per_link)}"
            for p in points[1:]
        )
        growth.add(variant, f"{first.links:,} -> {points[-1].links:,}", steps)
    growth.print()

    ours_small = ref[small]
    add = next(r for r in results if r.variant == "transitions add_model" and r.links == small)
    assert add.memory_per_link is not None and ours_small.memory_per_link is not None
    memory_ratio = add.memory_per_link / ours_small.memory_per_link
    time_ratio = add.time_per_link / ours_small.time_per_link
    ours_growth = ref[size].time_per_link / ours_small.time_per_link
    at = f"at {small:,} links"
    lines = [
        target(
            f"memory {at}, add_model / ours", fmt_ratio(memory_ratio), ">= 10x", memory_ratio >= 10
        ),
        target(f"time {at}, add_model / ours", fmt_ratio(time_ratio), ">= 10x", time_ratio >= 10),
        target(
            f"linear growth, ours' time per link {small:,} -> {size:,}",
            fmt_ratio(ours_growth),
            "< 1.5x; 1x is linear",
            ours_growth < 1.5,
        ),
    ]
    print_lines(lines)
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    cli = parser(__doc__.splitlines()[0], size=100_000, size_help="the largest number of links")
    args = cli.parse_args(argv)
    report(run(args.size), args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
