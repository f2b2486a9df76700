"""Policy presets and what ``max_attempts`` counts, through the core and the real command line.

OpenClaw's WhatsApp monitor counts ``maxAttempts`` N as N connects and N-1
sleeps (``reconnectAttempts += 1`` after each close, stop at ``>= maxAttempts``,
else sleep); linkstate's default counts reconnects, N+1 connects and N sleeps.
``Budget.connects`` is OpenClaw's count, and the ``OPENCLAW`` preset uses it.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkstate import (
    GRPC,
    OPENCLAW,
    PRESETS,
    Budget,
    LinkMachine,
    PolicyError,
    ReconnectPolicy,
    State,
    Trigger,
    load_channel,
)
from linkstate.channels.websocket import POLICY as WEBSOCKET_POLICY
from linkstate.cli import build_parser, main
from linkstate.cli._options import policy_from_args
from linkstate.cli.simulate import MAX_STEPS

SCRIPT = Path(sys.executable).with_name("linkstate")


def connects_and_sleeps(policy: ReconnectPolicy, limit: int = 100) -> tuple[int, int]:
    """Fail every connect with WhatsApp's 428 until the link stops: (connects, sleeps)."""
    machine = LinkMachine(load_channel("whatsapp"), policy, rng=random.Random(0))
    link = machine.new_link("l")
    machine.fire(link, Trigger.start, 0.0)
    connects = sleeps = 0
    now = 0.0
    while connects < limit:
        connects += 1
        record = machine.close(link, 428, now, trigger=Trigger.connect_failed)
        if record.dst != State.reconnecting:
            return connects, sleeps
        sleeps += 1
        now += record.delay or 0.0
        machine.fire(link, Trigger.backoff_elapsed, now)
    raise AssertionError("the link never stopped")


def test_openclaw_makes_twelve_connects_and_eleven_sleeps() -> None:
    assert (OPENCLAW.max_attempts, OPENCLAW.budget) == (12, Budget.connects)
    assert connects_and_sleeps(OPENCLAW) == (12, 11)


@given(attempts=st.integers(1, 15))
def test_each_budget_counts_as_it_says(attempts: int) -> None:
    quiet = {"refuse_after": None, "flap_closes": 0, "initial": 0.1, "cap": 0.1}
    reconnects = ReconnectPolicy(max_attempts=attempts, **quiet)  # type: ignore[arg-type]
    connects = ReconnectPolicy(
        max_attempts=attempts,
        budget=Budget.connects,
        **quiet,  # type: ignore[arg-type]
    )
    assert connects_and_sleeps(reconnects) == (attempts + 1, attempts)
    assert connects_and_sleeps(connects) == (attempts, attempts - 1)
    assert (reconnects.reconnects_allowed, connects.reconnects_allowed) == (
        attempts,
        attempts - 1,
    )


def test_openclaw_schedule_is_openclaws_compute_backoff() -> None:
    # computeBackoff: 2000 * 1.8 ** (attempt - 1), plus 0-25 %, capped at 30 s after the jitter.
    rng = random.Random(7)
    for attempt in range(1, 12):
        base = min(30.0, 2.0 * 1.8 ** (attempt - 1))
        delay = OPENCLAW.backoff_delay(
            attempt, load_channel("whatsapp").classify(428)[1].verdict, rng=rng
        )
        assert base <= delay <= min(30.0, base * 1.25)


def test_a_budget_that_is_not_a_budget_is_refused() -> None:
    with pytest.raises(PolicyError, match="budget='tries' must be one of reconnects, connects"):
        ReconnectPolicy(budget="tries")  # type: ignore[arg-type]


def test_presets_are_the_named_policies() -> None:
    assert {"default": ReconnectPolicy(), "openclaw": OPENCLAW, "grpc": GRPC} == PRESETS


# -- the command line ----------------------------------------------------------------------


def simulate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(["simulate", *argv, "--format", "json"])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_preset_openclaw_on_simulate_counts_as_openclaw(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, lines = simulate(
        capsys, "whatsapp", "--preset", "openclaw", "--fail", "428", "--repeat", "12"
    )
    *transitions, last = lines
    assert code == 1
    assert (last["final"], last["connects"], last["sleeps"]) == ("failed", 12, 11)
    assert "11 reconnect attempts (12 connects)" in last["message"]
    delays = [t["delay"] for t in transitions if t["dst"] == "reconnecting"]
    assert delays[0] == pytest.approx(2.0, abs=0.5) and max(delays) == 30.0


def test_options_change_the_preset(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["whatsapp", "--preset", "openclaw", "--max-attempts", "3", "--fail", "428"]
    _, lines = simulate(capsys, *argv, "--repeat", "5")
    assert (lines[-1]["final"], lines[-1]["connects"], lines[-1]["sleeps"]) == ("failed", 3, 2)
    _, lines = simulate(capsys, *argv, "--budget", "reconnects", "--repeat", "5")
    assert (lines[-1]["connects"], lines[-1]["sleeps"]) == (4, 3)


@pytest.mark.parametrize("command", ["simulate", "watch"])
@pytest.mark.parametrize(("preset", "policy"), [*PRESETS.items(), ("channel", WEBSOCKET_POLICY)])
def test_preset_replaces_the_channels_policy(
    command: str, preset: str, policy: ReconnectPolicy
) -> None:
    argv = [command, "websocket", *(["ws://127.0.0.1:9/"] if command == "watch" else [])]
    args = build_parser(command).parse_args([*argv, "--preset", preset])
    assert policy_from_args(args, WEBSOCKET_POLICY) == policy
    assert build_parser(command).parse_args(argv).preset == "channel"  # the default


def test_repeat_repeats_the_step_before_it(capsys: pytest.CaptureFixture[str]) -> None:
    _, lines = simulate(capsys, "whatsapp", "--close", "428", "--repeat", "3", "--close", "440")
    statuses = [t["status"] for t in lines[:-1] if t["verdict"]]
    assert statuses == [428, 428, 428, 440]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--repeat", "3"], "--repeat 3 has no step to repeat"),
        (["--fail", "428", "--repeat", "0"], "--repeat '0' is not a count"),
        (["--fail", "428", "--repeat", "x"], "--repeat 'x' is not a count"),
        (["--fail", "428", "--repeat", str(MAX_STEPS + 1)], "is not a count"),
        (["--preset", "openclow"], "invalid choice: 'openclow'"),
        (["--budget", "tries"], "--budget"),
    ],
)
def test_a_wrong_repeat_or_preset_is_one_clear_error(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["simulate", "whatsapp", *argv]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert needle in err[-1]


def test_watch_takes_the_preset() -> None:
    # A closed port fails every connect at once: OpenClaw's twelve, then failed.
    out = subprocess.run(
        [
            str(SCRIPT),
            "watch",
            "websocket",
            "ws://127.0.0.1:9/",
            "--preset",
            "openclaw",
            "--initial",
            "0",
            "--cap",
            "0",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    last = json.loads(out.stdout.splitlines()[-1])
    assert out.returncode == 1, out.stderr
    assert (last["final"], last["connects"], last["sleeps"]) == ("failed", 12, 11)


# -- issue 12's "Done when", typed as a user types them ----------------------------------------


def linkstate(*argv: str) -> tuple[int, str]:
    out = subprocess.run(
        [str(SCRIPT), *argv], capture_output=True, text=True, timeout=120, check=False
    )
    return out.returncode, out.stdout


@pytest.mark.parametrize(
    ("argv", "verdict"),
    [
        (["whatsapp", '{"isLoggedOut": true}'], "relink"),
        (["websocket", "3000"], "relink"),
        (["telegram", "409"], "retry"),
    ],
)
def test_done_when_classify(argv: list[str], verdict: str) -> None:
    _, out = linkstate("classify", *argv)
    assert json.loads(out.splitlines()[0])["verdict"] == verdict


@pytest.mark.parametrize(
    ("argv", "final", "connects", "sleeps", "needle"),
    [
        # Telegram's 409 five times in a row: failed, another instance may be polling.
        (["telegram", "--close", "409", "--repeat", "5"], "failed", 5, 4, "Another instance"),
        # Slack's token_expired, ten failing connects: it stops at the first, naming the code.
        (
            ["slack", "--fail", "token_expired", "--repeat", "10"],
            "needs_relink",
            1,
            0,
            "token_expired",
        ),
        # Twelve failing connects under OpenClaw's policy: twelve connects, eleven sleeps.
        (
            ["whatsapp", "--preset", "openclaw", "--fail", "428", "--repeat", "12"],
            "failed",
            12,
            11,
            "(12 connects)",
        ),
    ],
)
def test_done_when_simulate(
    argv: list[str], final: str, connects: int, sleeps: int, needle: str
) -> None:
    code, out = linkstate("simulate", *argv, "--format", "json")
    last = json.loads(out.splitlines()[-1])
    assert (code, last["final"], last["connects"], last["sleeps"]) == (1, final, connects, sleeps)
    assert needle in last["message"]
