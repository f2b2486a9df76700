"""Fault injection: real ``linkstate watch`` processes, a real peer, real signals, a real file.

Issue 13's list, each as a test that counts what it injected and what was
lost (printed past pytest's capture, one ``faults[...]`` line per test), and
asserts that nothing was:

- two processes on one link: exactly one keeps it, the other exits 4 and
  records nothing, not even the 3000 its successor made the peer send;
- SIGTERM, SIGINT and ``kill -9`` at random points: what was printed is
  stored, a signalled link ends ``stopped`` with exit 0;
- five SIGTERM restarts of a healthy link leave it healthy;
- a commit that fails (the database locked by another process, or a full
  disk): one line, exit 3, the verdict not shown, and the next start does
  not connect;
- the wall clock stepped between runs, through the store's seam
  (``LINKSTATE_WALL_OFFSET``), in either direction.

A handful of trials by default; ``LINKSTATE_LONG=1`` runs at least 50 of
each random one::

    LINKSTATE_LONG=1 .venv/bin/python -P -m pytest -q -s tests/faults
"""

from __future__ import annotations

import random
import resource
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from faultkit import LONG, STOP_SIGNALS, Command, Peer, Watch, kill_stragglers, tallied

from linkstate.store._sqlite import WALL_OFFSET_ENV, SQLiteStore


@pytest.fixture(autouse=True)
def no_stragglers() -> Iterator[None]:
    """A test that fails half-way must not leave its ``watch`` processes running."""
    yield
    kill_stragglers()


def stored(db: Path, link: str) -> tuple[str, int | None, str | None, list[int | None]]:
    """The link's state, last status, stop reason, and every status in its history."""
    with SQLiteStore(db, create=False) as store:
        row = store.load(link)
        assert row is not None
        assert store.check() == []
        statuses = [t.record.status for t in store.history(link)]
    return row.state, row.status, row.stop_reason, statuses


@pytest.mark.parametrize("trial", range(10 if LONG else 1))
def test_two_processes_on_one_link_exactly_one_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], trial: int
) -> None:
    db = tmp_path / "x.db"
    with tallied("two processes", capsys) as tally, Peer() as peer:
        peer.conflict = True  # one session per account: the newer connection wins
        old = Watch(peer, db, "acct1")
        old.wait_open()
        new = Watch(peer, db, "acct1")
        tally.injected["second process"] += 1
        new.wait_open()
        code, err = old.finish()
        assert code == 4, err  # ExitStatus.owned_elsewhere
        assert err.count("\n") == 1 and "owned elsewhere" in err, err
        assert old.lines[-1]["stop_reason"] == "owned_elsewhere"
        # Nothing the old process printed was lost, and it stored no 3000.
        tally.check_committed(db, "acct1", old)
        state, _, _, statuses = stored(db, "acct1")
        if 3000 in statuses:
            tally.lost["a close caused by our own second process, stored"] += 1
        if state != "open":
            tally.lost["the new owner lost the link"] += 1

        # The new owner's real verdict is stored, not refused as a conflict.
        peer.close_all(1008, "policy")
        tally.injected["verdict 1008 to the new owner"] += 1
        code, err = new.finish()
        assert code == 1, err
        tally.check_committed(db, "acct1", new)
        tally.check_state(db, "acct1", "failed", "the new owner's 1008 not stored")
        assert peer.accepted == 2  # the old process never reconnected
    assert not tally.lost, tally.report()


def test_five_sigterm_restarts_leave_a_healthy_link_healthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "x.db"
    with tallied("SIGTERM restarts", capsys) as tally, Peer() as peer:
        for _ in range(5):
            watch = Watch(peer, db, "acct1")
            watch.wait_open()
            watch.signal(signal.SIGTERM)
            tally.injected["SIGTERM"] += 1
            code, err = watch.finish()
            assert code == 0, err  # stopped by the operator
            last = watch.lines[-1]
            assert (last["final"], last["stop_reason"]) == ("stopped", "aborted")
            tally.check_committed(db, "acct1", watch)
            tally.check_state(db, "acct1", "stopped", "SIGTERM left the link live")
        # A restart is not a close: no close counted, no attempt spent.
        with SQLiteStore(db, create=False) as store:
            row = store.load("acct1")
        assert row is not None
        assert (row.state, row.attempt, row.recent_closes, row.verdict) == ("stopped", 0, (), None)
        assert peer.closed_by_peer == [] and peer.accepted == 5
    assert not tally.lost, tally.report()


@pytest.mark.parametrize("command", ["demo", "simulate"])
def test_sigterm_stops_the_demo_and_simulate_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    db = tmp_path / "x.db"
    argv = {
        # The demo's server holds each connection for a minute; simulate's
        # script keeps the link busy on its virtual clock until stopped.
        "demo": ("demo", "--hold", "60", "--db", str(db)),
        "simulate": (
            *("simulate", "whatsapp", *("--close", "428") * 5000),
            *("--flap-closes", "0", "--db", str(db)),
        ),
    }[command]
    # The demo runs its plain websocket link first: the signal stops it; the story never starts.
    link = "demo-websocket" if command == "demo" else "link"
    with tallied(f"SIGTERM {command}", capsys) as tally:
        process = Command(*argv)
        process.wait_open()
        process.signal(signal.SIGTERM)
        tally.injected["SIGTERM"] += 1
        code, err = process.finish()
        assert code == 0, err
        last = process.lines[-1]
        assert last["final"] == "stopped"
        assert last["connects"] < 5000  # stopped by the signal, not by the end of its script
        tally.check_committed(db, link, process)
        tally.check_state(db, link, "stopped", "SIGTERM left the link live")
    assert not tally.lost, tally.report()


@pytest.mark.parametrize("trial", range(50 if LONG else 2))
def test_signals_at_random_points_lose_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], trial: int
) -> None:
    rng = random.Random(trial)
    db = tmp_path / "x.db"
    with tallied(f"random signals #{trial}", capsys) as tally, Peer() as peer:
        # A busy peer: every connection closes soon, with a restart or a drop.
        peer.script = [(rng.uniform(0.05, 0.3), rng.choice((1011, 1001))) for _ in range(400)]
        for _ in range(3):
            watch = Watch(peer, db, "acct1", "--flap-closes", "0", "--healthy-after", "0.01")
            watch.wait_open()
            time.sleep(rng.uniform(0.0, 1.5))  # a random point of a busy run
            signum = rng.choice((*STOP_SIGNALS, signal.SIGKILL))
            watch.signal(signum)
            tally.injected[signal.Signals(signum).name] += 1
            code, err = watch.finish()
            tally.check_committed(db, "acct1", watch)
            if signum == signal.SIGKILL:
                assert code == -signal.SIGKILL
                continue
            assert code == 0, err
            assert watch.lines[-1]["final"] == "stopped"
            tally.check_state(db, "acct1", "stopped", f"{signal.Signals(signum).name} left it live")
    assert not tally.lost, tally.report()


@contextmanager
def locked(db: Path, watch: Watch) -> Iterator[str]:
    """Another process holds the database's write lock (longer than the store's 5 s)."""
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield "locked"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


@contextmanager
def full(db: Path, watch: Watch) -> Iterator[str]:
    """The disk is full for ``watch``: no file of it may grow (``RLIMIT_FSIZE``, no root).

    Writing into bytes that exist still works, as on a full disk: the limit
    is the write-ahead log's size now, so its next commit cannot append.
    """
    size = (db.parent / f"{db.name}-wal").stat().st_size
    resource.prlimit(watch.process.pid, resource.RLIMIT_FSIZE, (size, size))
    yield "cannot write state database"


@pytest.mark.parametrize("fault", [locked, full], ids=["locked", "disk full"])
def test_a_verdict_whose_commit_fails_is_not_shown_and_the_next_start_does_not_connect(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fault: Callable[[Path, Watch], AbstractContextManager[str]],
) -> None:
    db = tmp_path / "x.db"
    with tallied(f"commit failure: {fault.__name__}", capsys) as tally, Peer() as peer:
        watch = Watch(peer, db, "acct1")
        watch.wait_open()
        with fault(db, watch) as says:
            peer.close_all(3000, "unauthorized")  # a relink verdict, which cannot commit now
            tally.injected[f"database {fault.__name__} during a verdict"] += 1
            code, err = watch.finish()
        assert code == 3, err  # ExitStatus.store, one line, no traceback
        assert err.count("\n") == 1 and err.startswith("linkstate watch: error: "), err
        assert says in err and "NOT in the database" in err
        if any(line.get("dst") == "needs_relink" for line in watch.lines):
            tally.lost["a verdict shown as stored, but not"] += 1
        tally.check_committed(db, "acct1", watch)

        again = Watch(peer, db, "acct1")
        code, err = again.finish()
        assert code == 1, err
        last = again.lines[-1]
        assert (last["final"], last["status"], last["connects"]) == ("needs_relink", 3000, 0)
        if peer.accepted != 1:
            tally.lost["the next start connected as if nothing happened"] += 1
        tally.check_state(db, "acct1", "needs_relink", "the parked verdict not committed")
    assert not tally.lost, tally.report()


@pytest.mark.parametrize(
    ("step", "window", "expected"),
    [(-3600.0, 2.0, "reconnecting"), (+3600.0, 30.0, "failed")],
    ids=["back: not flapping", "forward: still flapping"],
)
def test_a_clock_step_between_runs_does_not_fool_flap_detection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], step: float, window: float, expected: str
) -> None:
    db = tmp_path / "x.db"
    flaps = ("--flap-closes", "3", "--flap-window", str(window))
    with tallied(f"clock step {step:+g} s", capsys) as tally, Peer() as peer:
        # Run 1: two closes in quick succession, then a clean stop on the third connection.
        peer.script = [(0.0, 1001), (0.0, 1001), (3600.0, 1000)]
        first = Watch(peer, db, "acct1", *flaps)
        first.wait_for(lambda line: line.get("dst") == "open" and line.get("attempt") == 2)
        first.signal(signal.SIGTERM)
        assert first.finish()[0] == 0
        # Run 2, on a wall clock stepped by `step`.
        tally.injected[f"wall clock step {step:+g} s"] += 1
        env = {WALL_OFFSET_ENV: str(step)}
        if step < 0:
            # Healthy for longer than the flap window, then one ordinary close:
            # the two stored closes must not read as an hour in the future.
            peer.script += [(window + 0.5, 1001)]
        else:
            # One more close at once: three within the window (the few
            # seconds between the runs are well inside it) is flapping,
            # however old the stored ones look on the stepped clock.
            peer.script += [(0.0, 1001)]
        second = Watch(peer, db, "acct1", *flaps, env=env)
        index = second.wait_for(lambda line: line.get("trigger") == "closed")
        state = second.lines[index]["dst"]
        if state != expected:
            tally.lost[f"a {step:+g} s step made the close {state}"] += 1
        second.signal(signal.SIGTERM)
        second.finish()
    assert not tally.lost, tally.report()
