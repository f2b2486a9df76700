"""CLI start-up: how long ``linkstate COMMAND`` takes, as a ratio to ``import transitions``.

Run: ``.venv/bin/python benchmarks/cli_startup.py [--size ROUNDS]``

A command line is started afresh for every use, so its start-up is what a
user waits for. The baseline is the floor of any linkstate command: a new
interpreter that imports transitions (``python -c "import transitions"``).
Rounds alternate baseline and commands so that the load of the shared
machine falls on both alike; each figure is the median of its rounds, and the
ratios are medians over medians taken in the same run.

Goal: ``classify`` at most 2x the baseline (issue 14).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
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


def once(argv: list[str]) -> float:
    """Seconds one process takes from start to exit (its output discarded)."""
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    args = parser(__doc__.splitlines()[0], size=15, size_help="rounds").parse_args()
    runs = [BASELINE, *((name, [sys.executable, "-c", _CLI, *argv]) for name, argv in COMMANDS)]
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    once(BASELINE[1])  # warm the file cache before the first round
    for _ in range(max(1, args.size)):
        for name, argv in runs:
            times[name].append(once(argv))
    base = statistics.median(times[BASELINE[0]])
    table = Table(f"CLI start-up, median of {args.size} alternating rounds", ["", "time", "ratio"])
    for name, _ in runs:
        median = statistics.median(times[name])
        table.add(name, fmt_time(median), fmt_ratio(median / base))
    table.print()
    ratio = statistics.median(times[COMMANDS[0][0]]) / base
    print_lines(
        [target("classify / import transitions", fmt_ratio(ratio), f"<= {GOAL:g}x", ratio <= GOAL)]
    )


if __name__ == "__main__":
    main()
