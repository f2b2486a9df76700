"""Shapes a channel trusts, a row's own delay window, and what ``linkstate check`` says of both."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkstate import (
    ArgumentError,
    Channel,
    CloseEvent,
    CloseTable,
    LinkMachine,
    ReconnectPolicy,
    Rule,
    TableError,
    Trigger,
    Verdict,
    load_channel,
)
from linkstate.check import Kind, check
from linkstate.plugin import Shapes, TrustedFlag

R = Verdict.retry


def table(*rules: Rule) -> CloseTable:
    return CloseTable(
        channel="t",
        rules=rules,
        unknown=Rule(R, "unknown", "a code this table does not list"),
        no_status=Rule(R, "noStatus", "a network error"),
    )


LOGGED_OUT = Rule(Verdict.relink, "loggedOut", "logged out", status=401, message="{link}: relink")
KICKED = Rule(Verdict.fatal, "kicked", "kicked", code="E1", flag="kicked", message="{link}: x")
PLAIN_E1 = Rule(R, "e1", "the plain E1", code="E1")
TRUSTING = Channel(
    name="t",
    title="T",
    table=table(LOGGED_OUT, KICKED, PLAIN_E1, Rule(R, "slow", "slow down", code="slow_down")),
    shapes=Shapes(
        flags=(
            TrustedFlag(keys=("isLoggedOut",), flag="logged_out", status=401),
            TrustedFlag(keys=("kicked",), flag="kicked"),
        ),
        code_paths=(("data", "error"),),
        code_patterns=(r"API error: ([a-z_]+)",),
    ),
)
TRUSTING_NOTHING = dataclasses.replace(TRUSTING, shapes=Shapes())


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ({"isLoggedOut": True}, "loggedOut"),
        ({"status": 500, "isLoggedOut": True}, "loggedOut"),  # the flag wins over the number
        ('{"isLoggedOut": true}', "loggedOut"),  # raw JSON text reads like its dict
        ({"error": {"isLoggedOut": True}}, "loggedOut"),  # on a wrapped error too
        ({"code": "E1", "kicked": True}, "kicked"),
        ({"code": "E1", "kicked": False}, "e1"),
        ({"code": "class_name", "data": {"error": "slow_down"}}, "slow"),  # path beats code
        ("API error: slow_down", "slow"),
        (RuntimeError("API error: slow_down"), "slow"),
        ({"isLoggedOut": 1}, "noStatus"),  # only True counts
        ({"isLoggedOut": "true"}, "noStatus"),
        ("API error: Not A Code", "noStatus"),
    ],
)
def test_trusted_shapes_are_read(raw: object, rule: str) -> None:
    assert TRUSTING.classify(raw)[1].name == rule


def test_a_channel_that_trusts_nothing_reads_none_of_it() -> None:
    for raw in ({"isLoggedOut": True}, "API error: slow_down", {"data": {"error": "slow_down"}}):
        assert TRUSTING_NOTHING.classify(raw)[1].name == "noStatus"


def test_the_openclaw_flag_is_whatsapps_alone() -> None:
    close = {"isLoggedOut": True}
    assert load_channel("whatsapp").classify(close)[1].verdict is Verdict.relink
    for name in ("discord", "slack", "telegram", "matrix", "websocket"):
        assert load_channel(name).classify(close)[1].verdict is R, name


@given(
    raw=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["isLoggedOut", "kicked", "data", "error", "code", "x"]),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_reading_shapes_never_raises_and_keeps_the_generic_reading_otherwise(raw: object) -> None:
    event = TRUSTING.event(raw)
    plain = TRUSTING_NOTHING.event(raw)
    assert isinstance(event, CloseEvent)
    assert (event.reason, event.retry_after, event.phase) == (
        plain.reason,
        plain.retry_after,
        plain.phase,
    )
    assert plain.flags <= event.flags


class Hostile:
    """An object whose every attribute read raises."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(name)


def test_a_hostile_object_keeps_the_generic_reading() -> None:
    assert TRUSTING.event(Hostile()) == TRUSTING_NOTHING.event(Hostile())


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: TrustedFlag(keys=(), flag="x"), "must name at least one key"),
        (lambda: TrustedFlag(keys=("a",), flag="not a flag"), "is not a flag name"),
        (lambda: TrustedFlag(keys=("a",), flag="x", status=0), "status=0 is not a status"),
        (lambda: Shapes(code_paths=((),)), "is not a path"),
        (lambda: Shapes(code_patterns=("(",)), "is not a regular expression"),
        (lambda: Shapes(code_patterns=("no group",)), "has 0 groups; give exactly one"),
    ],
)
def test_a_wrong_shape_is_one_clear_error(build: object, needle: str) -> None:
    with pytest.raises(ArgumentError, match=needle):
        build()  # type: ignore[operator]


def test_check_reports_a_trusted_flag_that_can_change_no_verdict() -> None:
    dead = dataclasses.replace(
        TRUSTING,
        shapes=Shapes(
            flags=(
                TrustedFlag(keys=("gone",), flag="gone"),
                TrustedFlag(keys=("banned",), flag="banned", status=402),
            )
        ),
    )
    report = check(channel=dead)
    findings = [f for f in report.findings if f.kind is Kind.dead_shape]
    assert [f.message.split(";")[0] for f in findings] == [
        "channel 't': trusted flag gone sets flag 'gone', which no row narrows on",
        "channel 't': trusted flag banned stands for status 402, which no row lists",
    ]
    assert check(channel=TRUSTING).ok


# -- a row's own delay window ---------------------------------------------------------------


def test_websocket_1012_waits_a_random_5_to_30_seconds_whatever_the_policy() -> None:
    channel = load_channel("websocket")
    fast = ReconnectPolicy(initial=0, cap=0, retry_now_max=0)
    delays = []
    for seed in range(200):
        machine = LinkMachine(channel, fast, rng=random.Random(seed))
        link = machine.new_link("l")
        machine.fire(link, Trigger.start, 0.0)
        machine.fire(link, Trigger.opened, 0.0)
        record = machine.close(link, 1012, 1.0)
        assert record.delay is not None
        delays.append(record.delay)
    assert 5.0 <= min(delays) < 7.0 and 28.0 < max(delays) <= 30.0


def test_a_server_hint_still_raises_a_windowed_delay() -> None:
    channel = load_channel("websocket")
    machine = LinkMachine(channel, rng=random.Random(1))
    link = machine.new_link("l")
    machine.fire(link, Trigger.start, 0.0)
    machine.fire(link, Trigger.opened, 0.0)
    record = machine.close(link, {"status": 1012, "retry_after": 90}, 1.0)
    assert record.delay == 90.0


@pytest.mark.parametrize(
    "rule",
    [
        Rule(R, "w", "window below its floor", status=1, min_delay=5, max_delay=4),
        Rule(R, "w", "an endless window", status=1, max_delay=float("inf")),
        Rule(Verdict.fatal, "w", "a stop has no delay", status=1, max_delay=3, message="x"),
    ],
)
def test_a_window_that_cannot_work_is_refused(rule: Rule) -> None:
    with pytest.raises(TableError, match="a delay window needs a retryable verdict"):
        table(rule)
