"""Nothing a peer or a library hands over makes ``normalise`` or a bundled ``classify`` raise.

The inputs are the kit's :func:`linkstate.testing.hostile` objects (inside
:func:`~linkstate.testing.junk`): raising dunders, hostile builtin subclasses,
keys that cannot be compared, JSON nested past the recursion limit,
ten-million-character text and unbounded flags. CI runs a few hundred
examples; the long run (see docs/testing.md) runs 100,000 per test::

    LINKSTATE_LONG=1 .venv/bin/python -P -m pytest -q tests/test_hostile.py
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from linkstate import CloseEvent, LinkMachine, Phase, Trigger, normalise
from linkstate._channel import Channel, available_channels, load_channel
from linkstate.testing import hostile, junk

# The long run is opt-in: it takes minutes, so CI runs the short one.
EXAMPLES = 100_000 if os.environ.get("LINKSTATE_LONG") else 300
HOSTILE = settings(
    max_examples=EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
CHANNELS = [load_channel(name) for name in available_channels()]


@HOSTILE
@given(junk())
def test_normalise_never_raises(raw: object) -> None:
    event = normalise(raw, phase=Phase.handshake, flags=frozenset({"x"}))
    assert type(event) is CloseEvent and event.phase is Phase.handshake
    assert len(event.reason) <= 200 and len(event.flags) <= 33


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda channel: channel.name)
@HOSTILE
@given(raw=hostile())
def test_bundled_channels_never_raise(channel: Channel, raw: object) -> None:
    assert type(channel.extract(raw)) is CloseEvent
    event, rule = channel.classify(raw, phase=Phase.established)
    assert rule in channel.table.rows() and event.phase is Phase.established


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda channel: channel.name)
def test_json_nested_past_the_recursion_limit_is_junk_not_a_crash(channel: Channel) -> None:
    # 60,001 characters: under the 64 KiB of JSON text the readers parse, and
    # 6,000 levels deep, past the interpreter's recursion limit.
    deep = '{"error":' * 6_000 + "1" + "}" * 6_000
    assert channel.classify(deep)[1] in channel.table.rows()


def test_flags_are_bounded() -> None:
    event = normalise({"status": 440, "flags": [f"f{i}" for i in range(10_000)]})
    assert event.status == 440 and len(event.flags) == 32


def test_a_hostile_flags_container_loses_its_flags_not_the_status() -> None:
    class Flags(list[str]):
        def __iter__(self) -> object:  # type: ignore[override]
            raise RuntimeError("hostile")

    event = normalise({"status": 440, "flags": Flags(["soft_logout"])})
    assert event.status == 440 and event.flags == frozenset()


def test_a_str_subclass_is_read_by_str_methods_not_its_own() -> None:
    class Text(str):
        def strip(self, chars: str | None = None) -> str:
            raise RuntimeError("hostile")

    assert normalise(Text(" too_many_websockets ")).code == "too_many_websockets"


class _Raising(Exception):
    pass


def _boom(*_: object) -> object:
    raise _Raising("hostile")


# Builtin subclasses whose hashing, comparing and arithmetic raise: a reader
# that hands one on inside the event makes every later classifier raise.
HostileInt = type("HostileInt", (int,), {n: _boom for n in ("__hash__", "__eq__", "__int__")})
HostileStr = type("HostileStr", (str,), {n: _boom for n in ("__hash__", "__eq__", "__str__")})
HostileFloat = type(
    "HostileFloat", (float,), {n: _boom for n in ("__hash__", "__lt__", "__gt__", "__mul__")}
)


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda channel: channel.name)
def test_a_hostile_int_status_is_read_as_the_plain_int_it_holds(channel: Channel) -> None:
    # Found by the long run (issue 13): {"status": <int subclass whose hash raises>}.
    event, rule = channel.classify({"status": HostileInt(440)})
    assert type(event.status) is int and event.status == 440
    assert rule is channel.table.classify(CloseEvent(status=440))


def test_hostile_codes_and_hints_become_plain_values() -> None:
    event = normalise({"code": HostileStr("too_many_websockets"), "retry_after": HostileFloat(7)})
    assert type(event.code) is str and event.code == "too_many_websockets"
    assert type(event.retry_after) is float and event.retry_after == 7.0
    whatsapp = load_channel("whatsapp")
    machine = LinkMachine(whatsapp)
    link = machine.new_link("l")
    machine.fire(link, Trigger.start, 0.0)
    machine.fire(link, Trigger.opened, 0.0)
    record = machine.close(link, {"status": HostileInt(428), "retry_after": HostileFloat(9)}, 1.0)
    assert (record.status, record.verdict, record.dst) == (428, "retry", "reconnecting")
    assert record.delay is not None and record.delay >= 9.0
