"""``Rule.escalate_after``: a retryable close that keeps happening becomes fatal.

Flap detection counts closes of *open* connections, so an error that arrives
while connecting (Slack's ``too_many_websockets``) never trips it. A row's
``escalate_after=N`` makes the N-th close in a row classified by that row,
with no healthy connection in between, ``fatal``. Also here: the server's
delay floors (Slack 30 s, Telegram ``retry_after``, Matrix ``retry_after_ms``)
as the machine applies them.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from linkstate._channel import Channel, load_channel
from linkstate._lifecycle import State, StopReason, Trigger
from linkstate._machine import Link, LinkMachine
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import CloseTable, Rule, TableError, Verdict
from linkstate.runtime._fleet import open_fleet
from linkstate.runtime._scripted import Reject, ScriptedTransport
from linkstate.runtime._supervisor import Supervisor
from linkstate.store._journal import open_journal
from linkstate.store._sqlite import SQLiteStore

SLACK = load_channel("slack")
TOO_MANY = "too_many_websockets"
LIMIT = 3
POLICY = ReconnectPolicy(healthy_after=60.0, flap_closes=5, flap_window=60.0)


def machine_for(channel: Channel = SLACK, policy: ReconnectPolicy = POLICY) -> LinkMachine:
    return LinkMachine(channel, policy, rng=random.Random(7))


def refused(machine: LinkMachine, link: Link, raw: object, now: float) -> str:
    """A connect attempt refused with ``raw``; back in ``connecting`` if it may retry."""
    record = machine.close(link, raw, now, trigger=Trigger.connect_failed)
    if record.dst == State.reconnecting:
        machine.fire(link, Trigger.backoff_elapsed, now + 1)
    return record.dst


def started(machine: LinkMachine) -> Link:
    link = machine.new_link("app-1")
    machine.fire(link, Trigger.start, 0)
    return link


def test_the_slack_row_escalates_after_three() -> None:
    assert SLACK.table.classify(SLACK.event(TOO_MANY)).escalate_after == LIMIT


def test_too_many_websockets_at_connect_time_fails_on_the_third_in_a_row() -> None:
    machine = machine_for()
    link = started(machine)
    assert refused(machine, link, TOO_MANY, 0) == State.reconnecting
    assert link.delay is not None and link.delay >= 30.0
    assert refused(machine, link, TOO_MANY, 40) == State.reconnecting
    record = machine.close(link, TOO_MANY, 80, trigger=Trigger.connect_failed)
    assert (record.dst, record.stop_reason, record.verdict) == ("failed", "fatal", "fatal")
    assert record.rule == TOO_MANY
    assert record.message is not None
    assert "other instances" in record.message and "app-1" in record.message
    assert link.stop_reason is StopReason.fatal


async def test_the_supervisor_reports_the_escalated_verdict_everywhere(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    transport = ScriptedTransport([Reject(TOO_MANY)] * LIMIT)
    with SQLiteStore(tmp_path / "x.db") as store:
        async with open_journal(store) as journal:
            supervisor = Supervisor(
                SLACK, transport, link_id="app-1", rng=random.Random(7), journal=journal
            )
            outcome = await supervisor.run()
            # A second run of the failed link only logs the stored message again.
            await Supervisor(SLACK, transport, link_id="app-1", journal=journal).run()
        row = store.load("app-1")
    assert (outcome.state, outcome.verdict, outcome.stop_reason) == ("failed", "fatal", "fatal")
    assert outcome.records[-1].verdict == "fatal"
    assert row is not None and (row.state, row.verdict) == ("failed", "fatal")
    operator = [r for r in caplog.records if getattr(r, "operator_message", False)]
    assert [getattr(r, "verdict", None) for r in operator] == ["fatal", "fatal"]
    # Loaded again, the link still says fatal, the verdict its table row alone never gives.
    again = row.to_link(now=0.0, wall=row.updated, channel=SLACK)
    assert again.verdict is Verdict.fatal and again.last_rule is not None
    assert again.last_rule.verdict is Verdict.retry


async def test_a_fleet_status_shows_the_escalated_verdict(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fleet(rng=random.Random(7)) as fleet:
        fleet.start("app-1", SLACK, ScriptedTransport([Reject(TOO_MANY)] * LIMIT))
        await fleet.wait("app-1")
        status = fleet.status("app-1")
    assert (status.state, status.verdict) == ("failed", "fatal")


def test_a_different_close_in_between_restarts_the_count() -> None:
    machine = machine_for()
    link = started(machine)
    for now, raw in enumerate([TOO_MANY, TOO_MANY, {"message": "timeout"}, TOO_MANY, TOO_MANY]):
        assert refused(machine, link, raw, now * 40) == State.reconnecting
    assert refused(machine, link, TOO_MANY, 400) == State.failed


def test_a_healthy_connection_in_between_restarts_the_count() -> None:
    machine = machine_for()
    link = started(machine)
    refused(machine, link, TOO_MANY, 0)
    refused(machine, link, TOO_MANY, 40)
    machine.fire(link, Trigger.opened, 100)
    # Up for longer than healthy_after: the earlier refusals no longer count.
    assert machine.close(link, TOO_MANY, 100 + POLICY.healthy_after).dst == State.reconnecting
    assert link.repeats == 1


def test_short_lived_opens_do_not_restart_the_count() -> None:
    machine = machine_for(policy=ReconnectPolicy(healthy_after=60.0, flap_closes=0))
    link = started(machine)
    for now in (0.0, 40.0):
        machine.fire(link, Trigger.opened, now)
        assert machine.close(link, TOO_MANY, now + 1).dst == State.reconnecting
        machine.fire(link, Trigger.backoff_elapsed, now + 35)
    machine.fire(link, Trigger.opened, 80)
    assert machine.close(link, TOO_MANY, 81).dst == State.failed


def test_reset_clears_the_count() -> None:
    machine = machine_for()
    link = started(machine)
    for now in (0, 40, 80):
        refused(machine, link, TOO_MANY, now)
    assert link.state == State.failed
    machine.fire(link, Trigger.reset, 100)
    assert link.repeats == 0
    machine.fire(link, Trigger.start, 101)
    assert refused(machine, link, TOO_MANY, 102) == State.reconnecting


@given(st.lists(st.sampled_from([TOO_MANY, "warning", "ratelimited", "x"]), max_size=12))
def test_escalation_fires_exactly_on_the_nth_consecutive(closes: list[str]) -> None:
    # refuse_after off: "warning" and "x" five in a row are refusals (tests/test_refusal.py).
    machine = machine_for(policy=ReconnectPolicy(flap_closes=0, refuse_after=None))
    link = started(machine)
    streak = 0
    for step, raw in enumerate(closes):
        streak = streak + 1 if raw == TOO_MANY else 0
        dst = refused(machine, link, raw, step * 100.0)
        assert (dst == State.failed) is (streak == LIMIT)
        if dst == State.failed:
            return


# -- the rule and its checks ------------------------------------------------------------------


def escalating(**overrides: object) -> Rule:
    fields: dict[str, object] = {
        "verdict": Verdict.retry,
        "name": "busy",
        "meaning": "the server is busy",
        "code": "busy",
        "escalate_after": 2,
        "message": "still busy on {link}; run `linkstate reset {link}`",
    }
    fields.update(overrides)
    return Rule(**fields)  # type: ignore[arg-type]


def table_with(rule: Rule) -> CloseTable:
    default = Rule(Verdict.retry, "other", "anything else")
    return CloseTable(channel="t", rules=(rule,), unknown=default, no_status=default)


def test_verdict_after_counts_from_one() -> None:
    rule = escalating(escalate_after=3)
    assert [rule.verdict_after(n) for n in (1, 2, 3, 4)] == [
        Verdict.retry,
        Verdict.retry,
        Verdict.fatal,
        Verdict.fatal,
    ]
    assert Rule(Verdict.retry_now, "n", "never escalates").verdict_after(1000) is Verdict.retry_now


@pytest.mark.parametrize(
    "overrides",
    [
        {"escalate_after": 1},
        {"escalate_after": 0},
        {"message": None},
        {"verdict": Verdict.fatal},
        {"verdict": Verdict.relink},
    ],
    ids=["one", "zero", "no-message", "fatal", "relink"],
)
def test_bad_escalation_is_a_table_error(overrides: dict[str, object]) -> None:
    with pytest.raises(TableError, match="escalate_after"):
        table_with(escalating(**overrides))


def test_a_good_escalating_row_builds() -> None:
    assert table_with(escalating()).rules[0].escalate_after == 2


# -- server delay floors, as the machine applies them ---------------------------------------------


@pytest.mark.parametrize(
    ("channel", "raw", "floor"),
    [
        ("slack", "too_many_websockets", 30.0),
        ("slack", {"ok": False, "error": "ratelimited", "headers": {"Retry-After": "45"}}, 45.0),
        (
            "telegram",
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests",
                "parameters": {"retry_after": 120},
            },
            120.0,
        ),
        ("matrix", {"errcode": "M_LIMIT_EXCEEDED", "error": "x", "retry_after_ms": 20000}, 20.0),
    ],
)
def test_server_delay_is_a_floor(channel: str, raw: object, floor: float) -> None:
    machine = LinkMachine(load_channel(channel), rng=random.Random(1))
    link = machine.new_link("l")
    machine.fire(link, Trigger.start, 0)
    machine.fire(link, Trigger.opened, 0)
    record = machine.close(link, raw, 1)
    assert record.dst == State.reconnecting
    assert record.delay is not None and record.delay >= floor
