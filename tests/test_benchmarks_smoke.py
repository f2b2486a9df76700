"""Every script in benchmarks/ still runs, at a tiny size, and prints its figures.

Not a timed test: it asserts no performance number, only that each script
runs to the end and prints the figures it promises. The performance figures
themselves come from ``make bench`` (benchmarks/run_all.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# script -> (tiny arguments, lines of output it must print)
SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    "registration.py": (
        ["--size", "200"],
        [
            "ours (LinkMachine.new_link)",
            "transitions add_model",
            "transitions Machine per link",
            "python-statemachine per link",
            "target  memory at 20 links",
            "target  time at 20 links",
            "target  linear growth",
        ],
    ),
    "event_cost.py": (
        ["--size", "40"],
        [
            "ours: LinkMachine.close(link, 428)",
            "transitions, bare trigger",
            "python-statemachine send()",
            "hand-written dict FSM",
            "target  ours close / bare transitions trigger",
            "target  python-statemachine event / ours close",
        ],
    ),
    "supervised.py": (
        ["--size", "60", "--rounds", "1"],
        [
            "supervised open link, everything included",
            "bare trio task, sleeping (baseline)",
            "asyncio: supervised open link, everything included",
            "bare asyncio task, sleeping (baseline)",
            "_supervisor.py",
            "Supervisors in a nursery, CPython's GC defaults",
            "Fleet.start, no wrapper",
            "target  start of 60 links through a Fleet / bare trio tasks",
            "rounds  fleet / bare tasks, each round:",
            "target  memory per supervised link",
            "target  memory per supervised link, trio (ceiling)",
        ],
    ),
    "storm.py": (
        ["--size", "200"],
        [
            "ours (default, full jitter)",
            "no jitter",
            "OpenClaw (+0-25 %)",
            "Supervisor, MockClock",
            "Supervisor, asyncio VirtualTimeLoop",
            "target  ours, server back at once: peak/mean",
        ],
    ),
    "store_write.py": (
        ["--links", "3", "--rounds", "1", "--single", "3", "--repeat", "1"],
        [
            "one link, one transaction per transition",
            "3 links, writer thread",
            "3 links, writer process",
            "bare sqlite3 loop, same SQL and batches",
            "info    the worker thread's journal at 3 links / its bare loop, FULL",
            "target  journal (writer='process') at 3 links / bare sqlite3 loop, FULL",
        ],
    ),
    "postgres_leases.py": (
        ["--leases", "200", "--repeat", "1", "--links", "3", "--rounds", "1", "--dead", "3"],
        [
            "200 leases, one batched renewal",
            "bare, one UPDATE per lease",
            "3 links through the journal, fenced",
            "3 links of a dead host served again",
        ],
    ),
    "diagram_cost.py": (["--repeat", "1"], ["lifecycle"]),
    "extract_cost.py": (
        ["--size", "3"],
        [
            "discord",
            "slack",
            "telegram",
            "matrix",
            "the shapes a channel trusts",
            "isLoggedOut",
            "normalise alone",
            "target  normalise(Baileys close) / normalise(440)",
        ],
    ),
    "adapter_frames.py": (
        ["--size", "3"],
        ["heartbeat ACK", "events_api envelope", "target  worst adapter look"],
    ),
    "cli_startup.py": (
        ["--size", "1"],
        ["import transitions", "linkstate classify whatsapp 440", "target  classify"],
    ),
    "metrics_cost.py": (
        ["--size", "50"],
        ["FleetMetrics.observe(record)", "scrape of 50 links", "target  observe / close"],
    ),
    "adapters.py": (
        ["--size", "5"],
        [
            "python-telegram-bot (Updater.start_polling)",
            "aiogram (Dispatcher.start_polling)",
            "matrix-nio (sync_forever)",
            "target  worst adapter time / library's own loop",
        ],
    ),
    "run_all.py": (["--list"], ["registration.py", "storm.py"]),
}


def run_script(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_every_script_is_covered() -> None:
    scripts = {p.name for p in BENCHMARKS.glob("*.py")} - {"harness.py"}
    assert scripts == set(SCRIPTS), "add the new benchmark script to SCRIPTS"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_runs_and_prints_its_figures(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    args, expected = SCRIPTS[name]
    if name == "postgres_leases.py":
        # The session's cluster (skipped locally without PostgreSQL, never in CI).
        args = [*args, "--ttl", "1.2", "--db", request.getfixturevalue("pg_url")]
    if name == "storm.py":
        args = [*args, "--plot", str(tmp_path / "storm.png")]
    output = run_script(name, *args)
    missing = [line for line in expected if line not in output]
    assert not missing, f"{name} did not print {missing}:\n{output}"
    if name == "storm.py":
        assert (tmp_path / "storm.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
