"""CLI start-up: how long ``linkstate COMMAND`` takes, as a ratio to ``import transitions``.

Run: ``.venv/bin/python benchmarks/cli_startup.py [--size ROUNDS]``

A command line is started afresh for every use, so its start-up is what a
user waits for. The baseline is the floor of any linkstate command: a new
interpreter that imports transitions (``python -c "import transitions"``).
Rounds alternate baseline and commands so that the load of the shared
machine falls on both alike; each figure is the median of its rounds, and the
ratios are medians over medians taken in the same run. Wall time is what a
user waits for; CPU time (user + system, of the child process) is printed
next to it because it is the steadier of the two on a loaded machine.

Every interpreter reads compiled bytecode, as an installed package's users
do (pip compiles on install; an editable tree caches on first import). The
children therefore share a bytecode cache in a temporary directory
(``PYTHONPYCACHEPREFIX``), filled by one warm-up run of each command, and
run without ``PYTHONDONTWRITEBYTECODE``: with it set and no cache, every
start would compile linkstate's modules from source and measure the
compiler instead.

Goal: ``classify`` at most 2x the baseline (issue 14), in wall time. Both
ratios are printed against it: when the machine has more runnable processes
than cores, wall time also counts the waits for a core, and on this shared
machine the wall ratio then ran up to 0.3x above the CPU ratio.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Final

from harness import Table, fmt_ratio, fmt_time, parser, print_lines, target

# The console script's own code, run by the same interpreter.
_CLI: Final = "import sys; from linkstate.cli import main; sys.exit(main(sys.argv[1:]))"
BASELINE: Final = ("python -c 'import transitions'", [sys.executable, "-c", "import transitions"])
COMMANDS: Final = (
    ("linkstate classify whatsapp 440", ["classify", "whatsapp", "440"]),
    ("linkstate check whatsapp", ["check", "whatsapp"]),
    ("linkstate diagram --format dot", ["diagram", "--format", "dot"]),
    ("linkstate --help", ["--help"]),
)
GOAL: Final = 2.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds one process takes from start to exit (its output discarded)."""
    cpu, start = _cpu(), time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - start, _cpu() - cpu


def main() -> None:
    args = parser(__doc__.splitlines()[0], size=15, size_help="rounds").parse_args()
    runs = [BASELINE, *((name, [sys.executable, "-c", _CLI, *argv]) for name, argv in COMMANDS)]
    wall: dict[str, list[float]] = {name: [] for name, _ in runs}
    cpu: dict[str, list[float]] = {name: [] for name, _ in runs}
    with tempfile.TemporaryDirectory(prefix="linkstate-bench-pyc-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for _, argv in runs:
            once(argv, env)  # compile into the cache, and warm the file cache
        for _ in range(max(1, args.size)):
            for name, argv in runs:
                seconds, used = once(argv, env)
                wall[name].append(seconds)
                cpu[name].append(used)
    base = statistics.median(wall[BASELINE[0]])
    base_cpu = statistics.median(cpu[BASELINE[0]])
    table = Table(
        f"CLI start-up, median of {args.size} alternating rounds",
        ["", "time", "ratio", "cpu", "cpu ratio"],
    )
    for name, _ in runs:
        median, median_cpu = statistics.median(wall[name]), statistics.median(cpu[name])
        table.add(
            name,
            fmt_time(median),
            fmt_ratio(median / base),
            fmt_time(median_cpu),
            fmt_ratio(median_cpu / base_cpu),
        )
    table.print()
    ratio = statistics.median(wall[COMMANDS[0][0]]) / base
    cpu_ratio = statistics.median(cpu[COMMANDS[0][0]]) / base_cpu
    print_lines(
        [
            target(
                "classify / import transitions", fmt_ratio(ratio), f"<= {GOAL:g}x", ratio <= GOAL
            ),
            target(
                "classify / import transitions, CPU time",
                fmt_ratio(cpu_ratio),
                f"<= {GOAL:g}x",
                cpu_ratio <= GOAL,
            ),
        ]
    )


if __name__ == "__main__":
    main()
