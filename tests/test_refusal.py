"""The framework rule of issue 12: a refusal at connect time stops, bounded.

A connect failure that carries a server status or code, classified by a
retryable row that is neither ``transient`` nor escalates by its own
``escalate_after``, is a refusal; ``ReconnectPolicy.refuse_after`` of them in a
row fail the link with a message naming the code. Network failures (no status)
and transient rows keep retrying.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkstate._channel import Channel, load_channel
from linkstate._lifecycle import State, Trigger
from linkstate._machine import Link, LinkMachine
from linkstate._policy import PolicyError, ReconnectPolicy
from linkstate.check._checker import Kind, check_refusals

CHANNELS = ("discord", "matrix", "slack", "telegram", "websocket", "whatsapp")


def run_refusals(channel: Channel, raw: object, policy: ReconnectPolicy, tries: int) -> list[str]:
    """Connect ``tries`` times, each refused with ``raw``; the states reached."""
    machine = LinkMachine(channel, policy, rng=random.Random(3))
    link: Link = machine.new_link("l1")
    machine.fire(link, Trigger.start, 0)
    seen: list[str] = []
    for i in range(tries):
        record = machine.close(link, raw, float(i * 100), trigger=Trigger.connect_failed)
        seen.append(record.dst)
        if record.dst != State.reconnecting:
            break
        machine.fire(link, Trigger.backoff_elapsed, float(i * 100 + 50))
    return seen


def test_a_websocket_refusal_fails_on_the_fifth_with_the_code_named() -> None:
    ws = load_channel("websocket")
    policy = ReconnectPolicy()
    assert policy.refuse_after == 5
    machine = LinkMachine(ws, policy, rng=random.Random(1))
    link = machine.new_link("l1")
    machine.fire(link, Trigger.start, 0)
    for i in range(4):
        record = machine.close(link, 4321, float(i * 100), trigger=Trigger.connect_failed)
        assert record.dst == State.reconnecting
        machine.fire(link, Trigger.backoff_elapsed, float(i * 100 + 50))
    record = machine.close(link, 4321, 500.0, trigger=Trigger.connect_failed)
    assert (record.dst, record.stop_reason) == ("failed", "fatal")
    assert record.message is not None and "4321" in record.message
    assert "refused" in record.message


def test_a_close_without_status_keeps_retrying() -> None:
    seen = run_refusals(load_channel("websocket"), TimeoutError("timed out"), ReconnectPolicy(), 20)
    assert seen == [State.reconnecting] * 20


@pytest.mark.parametrize(("name", "raw"), [("telegram", 502), ("websocket", 503)])
def test_a_transient_row_keeps_retrying(name: str, raw: int) -> None:
    seen = run_refusals(load_channel(name), raw, ReconnectPolicy(), 20)
    assert seen == [State.reconnecting] * 20


def test_refuse_after_none_turns_the_rule_off() -> None:
    seen = run_refusals(load_channel("websocket"), 4321, ReconnectPolicy(refuse_after=None), 20)
    assert seen == [State.reconnecting] * 20


def test_refuse_after_must_be_positive() -> None:
    with pytest.raises(PolicyError, match="refuse_after"):
        ReconnectPolicy(refuse_after=0)


def _refusable_cases() -> list[tuple[str, int | str]]:
    """Every (channel, bare status or code) whose row counts as a refusal."""
    cases: list[tuple[str, int | str]] = []
    for name in CHANNELS:
        channel = load_channel(name)
        for rule in channel.table.rules:
            raw = rule.status if rule.status is not None else rule.code
            if raw is None or not rule.refusable:
                continue
            if channel.table.classify(channel.event(raw)) is rule:
                cases.append((name, raw))
    return cases


REFUSABLE = _refusable_cases()


def test_there_are_refusable_rows_in_several_channels() -> None:
    assert len({name for name, _ in REFUSABLE}) >= 3


@given(case=st.sampled_from(REFUSABLE), limit=st.integers(1, 8))
def test_every_refusable_row_stops_within_the_limit(
    case: tuple[str, int | str], limit: int
) -> None:
    name, raw = case
    seen = run_refusals(load_channel(name), raw, ReconnectPolicy(refuse_after=limit), limit + 3)
    assert seen == [State.reconnecting] * (limit - 1) + [State.failed]


def test_check_finds_no_endless_refusal_in_the_shipped_channels() -> None:
    for name in CHANNELS:
        assert check_refusals(load_channel(name)) == []


def test_check_reports_an_endless_refusal_when_the_rule_is_off() -> None:
    # Discord's 4001 and 4002 (we sent something bad) retry with backoff and are no
    # platform's "later": with the rule off they would retry forever.
    findings = check_refusals(load_channel("discord"), policy=ReconnectPolicy(refuse_after=None))
    assert findings and all(f.kind == Kind.endless_refusal for f in findings)
    assert any("transient=True" in f.message for f in findings)
