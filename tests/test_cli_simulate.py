"""``linkstate simulate``: the real supervisor on a virtual clock, from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from linkstate.cli import main

SEED_440 = '{"status": 440, "isLoggedOut": false, "error": "Unknown Stream Errored (conflict)"}'
SCRIPT = Path(sys.executable).with_name("linkstate")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    code = main(["simulate", *argv, "--format", "json"])
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines()]
    # The output contract: 1 when the link ends needing a person, else 0.
    assert code == (1 if lines[-1]["final"] in ("needs_relink", "failed") else 0)
    return lines


def test_440_needs_relink_with_one_connect_and_no_sleep(capsys: pytest.CaptureFixture[str]) -> None:
    *transitions, last = run_json(capsys, "whatsapp", "--close", "440")
    assert (last["final"], last["connects"], last["sleeps"]) == ("needs_relink", 1, 0)
    assert "440" in last["message"] and "session conflict" in last["message"]
    assert [(t["src"], t["dst"]) for t in transitions] == [
        ("idle", "connecting"),
        ("connecting", "open"),
        ("open", "needs_relink"),
    ]
    for key in ("t", "src", "dst", "trigger", "status", "verdict", "attempt", "delay"):
        assert key in transitions[-1]
    assert (transitions[-1]["status"], transitions[-1]["verdict"]) == (440, "relink")


@pytest.mark.parametrize("code", ['"440"', SEED_440])
def test_string_and_seed_forms_of_440(capsys: pytest.CaptureFixture[str], code: str) -> None:
    last = run_json(capsys, "whatsapp", "--close", code)[-1]
    assert (last["final"], last["connects"], last["sleeps"]) == ("needs_relink", 1, 0)


def test_428_then_440(capsys: pytest.CaptureFixture[str]) -> None:
    *transitions, last = run_json(capsys, "whatsapp", "--close", "428", "--close", "440")
    assert (last["final"], last["connects"], last["sleeps"]) == ("needs_relink", 2, 1)
    backoff = next(t for t in transitions if t["dst"] == "reconnecting")
    assert (backoff["status"], backoff["verdict"], backoff["attempt"]) == (428, "retry", 1)
    elapsed = next(t for t in transitions if t["trigger"] == "backoff_elapsed")
    # The virtual clock advanced by exactly the delay the machine chose.
    assert elapsed["t"] == pytest.approx(backoff["t"] + backoff["delay"], abs=1e-6)


def test_slack_escalation_ends_with_the_fatal_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["slack", *["--fail", "too_many_websockets"] * 3]
    *transitions, last = run_json(capsys, *argv)
    assert (last["final"], last["verdict"], last["stop_reason"]) == ("failed", "fatal", "fatal")
    assert [t["verdict"] for t in transitions if t["trigger"] == "connect_failed"] == [
        "retry",
        "retry",
        "fatal",
    ]


def test_script_runs_out_and_the_run_ends_with_an_abort(
    capsys: pytest.CaptureFixture[str],
) -> None:
    *transitions, last = run_json(capsys, "whatsapp", "--close", "428")
    assert (last["final"], last["stop_reason"], last["connects"]) == ("stopped", "aborted", 2)
    assert (transitions[-1]["src"], transitions[-1]["trigger"]) == ("open", "abort")


def test_retry_now_counts_as_a_sleep(capsys: pytest.CaptureFixture[str]) -> None:
    last = run_json(capsys, "whatsapp", "--close", "515", "--close", "440")[-1]
    assert (last["connects"], last["sleeps"]) == (2, 1)


def test_policy_options_set_the_schedule_and_budget(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["whatsapp", *["--close", "428"] * 4, "--initial", "3", "--factor", "2"]
    argv += ["--jitter", "none", "--max-attempts", "2", "--flap-closes", "0"]
    *transitions, last = run_json(capsys, *argv)
    assert [t["delay"] for t in transitions if t["delay"] is not None] == [3.0, 6.0]
    assert (last["final"], last["stop_reason"], last["connects"]) == ("failed", "budget_spent", 3)


def test_handshake_failures_in_order_with_closes(capsys: pytest.CaptureFixture[str]) -> None:
    transitions = run_json(capsys, "whatsapp", "--fail", "428", "--close", "401")[:-1]
    assert [t["trigger"] for t in transitions] == [
        "start",
        "connect_failed",
        "backoff_elapsed",
        "opened",
        "closed",
    ]
    assert transitions[-1]["dst"] == "needs_relink"


def test_seed_makes_the_run_repeatable(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["whatsapp", "--close", "428", "--close", "500", "--seed", "5"]
    assert run_json(capsys, *argv) == run_json(capsys, *argv)


def test_max_time_stops_on_the_virtual_clock(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["whatsapp", "--close", "428", "--initial", "600", "--cap", "600", "--jitter", "none"]
    *transitions, last = run_json(capsys, *argv, "--max-time", "100")
    assert (last["final"], transitions[-1]["src"], transitions[-1]["t"]) == (
        "stopped",
        "reconnecting",
        100.0,
    )


def test_text_format_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["simulate", "whatsapp", "--close", "428", "--close", "440", "--format", "text"]) == 1
    )
    out = capsys.readouterr().out
    assert "open -> reconnecting" in out and "428 connectionClosed: retry" in out
    assert "final state: needs_relink after 2 connects, 1 backoff sleep" in out
    assert "operator message: WhatsApp status 440: session conflict" in out


def test_operator_message_is_not_printed_twice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "whatsapp", "--close", "440", "--format", "text"]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("session conflict") == 1
    assert captured.err == ""


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["nosuch", "--close", "440"], "unknown channel 'nosuch'"),
        (["whatsapp", "--close", "{oops"], "cannot read --close CODE"),
        (["whatsapp", "--close", '{"error":' * 2000 + "1" + "}" * 2000], "--close CODE: its JSON"),
        (["whatsapp", "--fail", "9" * 4301], "cannot read --fail CODE: it holds a number"),
        (["whatsapp", "--close", "440", "--initial", "9", "--cap", "1"], "cap=1.0 must be"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert main(["simulate", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_the_console_script(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [str(SCRIPT), "simulate", "whatsapp", "--close", "428", "--close", "440"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1, result.stderr  # ends in needs_relink
    last = json.loads(result.stdout.splitlines()[-1])  # not a tty: json by default
    assert (last["final"], last["connects"], last["sleeps"]) == ("needs_relink", 2, 1)
    assert result.stderr == ""
