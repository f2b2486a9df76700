"""Run every benchmark at full size, one after another, and time the whole run.

Run: ``make bench``, or ``.venv/bin/python benchmarks/run_all.py [--list] [--only NAME ...]``

Each script runs in its own interpreter with its default (full) size and
prints its own figures next to the baselines it measured in the same run.
The whole run is meant to finish in under 5 minutes on 2 cores; the summary
at the end says how long each script took.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
BUDGET: Final = 300.0
"""Seconds the whole run may take on 2 cores."""

# In the order of the table in docs/benchmarks.md.
SCRIPTS: Final = (
    "registration.py",
    "event_cost.py",
    "supervised.py",
    "storm.py",
    "extract_cost.py",
    "adapter_frames.py",
    "store_write.py",
    "postgres_leases.py",
    "diagram_cost.py",
    "cli_startup.py",
    "metrics_cost.py",
    "adapters.py",
)


def main(argv: list[str] | None = None) -> int:
    """Run the scripts; exit non-zero if one fails."""
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--list", action="store_true", help="print the scripts and exit")
    cli.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these scripts")
    args = cli.parse_args(argv)
    if args.list:
        print("\n".join(SCRIPTS))
        return 0
    timings: list[tuple[str, float, int]] = []
    began = time.perf_counter()
    for name in args.only or SCRIPTS:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        code = subprocess.run([sys.executable, str(HERE / name)], check=False).returncode
        timings.append((name, time.perf_counter() - start, code))
        print(flush=True)
    total = time.perf_counter() - began
    print("== summary")
    for name, seconds, code in timings:
        print(f"{name:<18} {seconds:7.1f} s  {'ok' if code == 0 else f'FAILED ({code})'}")
    verdict = "within" if total <= BUDGET else "OVER"
    print(f"{'total':<18} {total:7.1f} s  ({verdict} the {BUDGET:.0f} s budget)")
    return 0 if all(code == 0 for _, _, code in timings) else 1


if __name__ == "__main__":
    sys.exit(main())
