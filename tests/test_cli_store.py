"""``--db`` on simulate, and status / history / relink / reset, on real SQLite files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from linkstate.cli import main
from linkstate.cli.demo import Scene, serve_story
from linkstate.store._sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent


def simulate(capsys: pytest.CaptureFixture[str], db: Path, *argv: str) -> dict[str, Any]:
    """Run ``simulate ... --db DB --link acct1`` in-process; the final JSON object."""
    code = main(
        ["simulate", "whatsapp", *argv, "--db", str(db), "--link", "acct1", "--format", "json"]
    )
    captured = capsys.readouterr()
    final = json.loads(captured.out.splitlines()[-1])
    # The output contract: 1 when the link ends needing a person, else 0.
    assert code == (1 if final["final"] in ("needs_relink", "failed") else 0), captured.err
    last: dict[str, Any] = json.loads(captured.out.splitlines()[-1])
    return last


def command(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_done_when(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "x.db"
    first = simulate(capsys, db, "--close", "440")
    assert (first["final"], first["connects"]) == ("needs_relink", 1)
    second = simulate(capsys, db, "--close", "428")
    assert (second["final"], second["connects"], second["sleeps"]) == ("needs_relink", 0, 0)
    assert second["message"] == first["message"] and "session conflict" in second["message"]

    code, out, err = command(capsys, "status", "--db", str(db))
    assert code == 0 and err == ""
    header, row, message = out.splitlines()
    assert header.split()[:3] == ["LINK", "CHANNEL", "STATE"]
    assert row.split()[:3] == ["acct1", "whatsapp", "needs_relink"]
    assert "440 connectionReplaced: relink" in row
    assert message.strip() == first["message"]

    code, out, err = command(capsys, "relink", "acct1", "--db", str(db))
    assert code == 0 and "needs_relink -> idle" in out, err
    third = simulate(capsys, db, "--close", "428")
    assert (third["final"], third["connects"]) == ("stopped", 2)

    code, out, _ = command(capsys, "status", "--db", str(db), "--json")
    (row_json,) = [json.loads(line) for line in out.splitlines()]
    assert (row_json["link"], row_json["state"], row_json["attempt"]) == ("acct1", "stopped", 1)

    code, out, _ = command(capsys, "history", "acct1", "--db", str(db))
    lines = out.splitlines()
    assert len(lines) == 3 + 1 + 6
    assert "needs_relink -> idle" in lines[3] and "reset" in lines[3]
    assert lines[3].endswith("operator relinked")
    code, out, _ = command(capsys, "history", "acct1", "--db", str(db), "--json", "--limit", "2")
    assert [json.loads(line)["trigger"] for line in out.splitlines()] == ["opened", "abort"]


def test_a_stopped_link_resumes_and_reset_needs_a_terminal_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "x.db"
    assert simulate(capsys, db, "--close", "428")["final"] == "stopped"
    resumed = simulate(capsys, db, "--close", "405")
    assert (resumed["final"], resumed["connects"]) == ("failed", 1)
    code, _, err = command(capsys, "relink", "acct1", "--db", str(db))
    assert code == 2 and err.count("\n") == 1
    assert "'acct1' is in state 'failed'" in err and "linkstate reset" in err
    code, out, err = command(capsys, "reset", "acct1", "--db", str(db), "--note", "upgraded")
    assert code == 0 and "failed -> idle (upgraded)" in out
    code, _, err = command(capsys, "reset", "acct1", "--db", str(db))
    assert code == 2 and "'acct1' is in state 'idle'" in err and "nothing needs an operator" in err
    code, _, err = command(capsys, "reset", "acct2", "--db", str(db))
    assert code == 2 and "no link 'acct2'" in err and "links: acct1" in err


def test_unusable_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.db"
    for argv in (["status"], ["history", "acct1"], ["relink", "acct1"]):
        code, out, err = command(capsys, *argv, "--db", str(missing))
        assert (code, out) == (2, "") and err.count("\n") == 1
        assert "no state database at" in err and str(missing) in err
    assert not missing.exists()

    broken = tmp_path / "broken.db"
    broken.write_bytes(b"\x00garbage" * 1000)
    for argv in (["status"], ["simulate", "whatsapp", "--close", "440", "--link", "a"]):
        code, out, err = command(capsys, *argv, "--db", str(broken))
        assert (code, out) == (3, ""), err  # ExitStatus.store: the store failed
        assert err.count("\n") == 1 and "corrupted" in err and f"mv {broken}" in err


def test_a_link_of_another_channel_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "x.db"
    simulate(capsys, db, "--close", "440")
    code, _, err = command(
        capsys, "simulate", "websocket", "--close", "1000", "--db", str(db), "--link", "acct1"
    )
    assert code == 2 and "stored for channel 'whatsapp', not 'websocket'" in err


async def test_watch_keeps_a_failed_link_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "x.db")
    argv = ["--db", db, "--link", "edge", "--format", "json"]
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_story, (Scene(0.0, 1008, "policy"),))
        url = f"ws://127.0.0.1:{port}"
        with trio.fail_after(60):  # a guard against a hang; the CLI runs its own trio
            first = await trio.to_thread.run_sync(main, ["watch", "websocket", url, *argv])
            first_out = capsys.readouterr().out
            second = await trio.to_thread.run_sync(main, ["watch", "websocket", url, *argv])
        nursery.cancel_scope.cancel()
    assert (first, second) == (1, 1)  # both end in a state that needs a person
    assert json.loads(first_out.splitlines()[-1])["connects"] == 1
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (last["final"], last["connects"], last["status"]) == ("failed", 0, 1008)


# -- kill -9 -----------------------------------------------------------------------

# A fleet on a virtual clock that writes transitions as fast as the disk lets it:
# acct1 reaches needs_relink early, twenty other links reconnect forever.
CHILD = """
import random, sys
import trio, trio.testing
from linkstate.channels.whatsapp import CHANNEL
from linkstate.runtime._fleet import open_fleet
from linkstate.store._journal import open_journal
from linkstate._policy import ReconnectPolicy
from linkstate.runtime._scripted import Close, ScriptedTransport
from linkstate.store._sqlite import SQLiteStore

async def main(path):
    busy = ReconnectPolicy(initial=0.5, cap=0.5, flap_closes=0)
    with SQLiteStore(path) as store:
        async with open_journal(store) as journal, open_fleet(journal=journal) as fleet:
            fleet.start("acct1", CHANNEL, ScriptedTransport([Close(428, after=1), Close(440)]))
            for i in range(20):
                steps = [Close(428, after=1.0)] * 100_000
                fleet.start(f"busy{i:02}", CHANNEL, ScriptedTransport(steps), policy=busy)
            # Report progress on stdout, where the parent blocks on readline: it
            # learns what is committed without polling the file or sleeping.
            while True:
                await trio.sleep(1.0)
                await journal.flush()
                print(fleet.status("acct1").state, journal.statistics().committed, flush=True)

trio.run(main, sys.argv[1], clock=trio.testing.MockClock(autojump_threshold=0))
"""


def spawn(db: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(child: subprocess.Popen[str], done: Any) -> int:
    """Read the child's progress lines until ``done(acct1_state, committed)``; bounded.

    Each line is written after the child's journal flushed, so everything it
    counts is already committed to the file.
    """
    assert child.stdout is not None
    for line in child.stdout:
        state, committed = line.split()
        if done(state, int(committed)):
            return int(committed)
    raise AssertionError(f"the child ended early: {child.stderr.read() if child.stderr else ''}")


def busy_seq(rows: dict[str, tuple[str, int]]) -> int:
    return sum(seq for link_id, (_, seq) in rows.items() if link_id.startswith("busy"))


def stored(db: Path) -> dict[str, tuple[str, int]]:
    with SQLiteStore(db, create=False) as store:
        assert store.check() == []  # opens cleanly, every row agrees with its history
        return {row.link_id: (row.state, row.seq) for row in store.links()}


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


def test_kill_9_in_the_middle_of_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "x.db"
    child = spawn(db)
    try:
        committed = wait_for(child, lambda acct1, n: acct1 == "needs_relink" and n > 300)
    finally:
        kill(child)
    before = stored(db)
    assert before["acct1"][0] == "needs_relink"
    assert busy_seq(before) + before["acct1"][1] >= committed  # nothing reported was lost

    # Restart the same program: the busy links carry on, acct1 does not connect.
    child = spawn(db)
    try:
        wait_for(child, lambda acct1, n: acct1 == "needs_relink" and n > 200)
    finally:
        kill(child)
    after = stored(db)
    assert busy_seq(after) > busy_seq(before)
    assert after["acct1"] == before["acct1"]  # not one transition: it never connected
    with SQLiteStore(db, create=False) as store:
        acct1 = store.load("acct1")
        assert acct1 is not None and acct1.status == 440 and acct1.message is not None

    # And the command line agrees.
    again = simulate(capsys, db, "--close", "428")
    assert (again["final"], again["connects"]) == ("needs_relink", 0)
