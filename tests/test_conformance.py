"""The conformance kit (``linkstate.testing``) run on every installed channel.

New channels are picked up through the entry-point registry; their golden
examples, where the reference facts give some, live in ``expectations.py``.
"""

from __future__ import annotations

import random

import pytest
from expectations import EXPECTED
from hypothesis import given, settings
from hypothesis import strategies as st

from linkstate._channel import Channel, available_channels, load_channel
from linkstate._events import CloseEvent
from linkstate._machine import LinkMachine
from linkstate._policy import ReconnectPolicy
from linkstate.testing import (
    CloseError,
    ConformanceMachine,
    RuntimeMachine,
    assert_conformance,
    close_events,
    close_forms,
    junk,
    row_forms,
)

WHATSAPP = load_channel("whatsapp")


@pytest.mark.parametrize("name", available_channels())
def test_channel_conforms(name: str) -> None:
    assert_conformance(load_channel(name), expected=EXPECTED.get(name, ()))


def test_every_bundled_channel_has_golden_examples() -> None:
    assert set(EXPECTED) <= set(available_channels())
    assert "whatsapp" in EXPECTED


def test_forms_of_440_cover_every_shape_a_client_library_uses() -> None:
    row = WHATSAPP.table.classify(CloseEvent(status=440))
    forms = row_forms(WHATSAPP, row)
    assert 440 in forms and "440" in forms and " 440 " in forms
    assert CloseEvent(status=440) in forms
    assert {"output": {"statusCode": 440}} in forms
    assert {"lastDisconnect": {"error": {"output": {"payload": {"statusCode": "440"}}}}} in forms
    assert any(isinstance(form, CloseError) and form.status == 440 for form in forms)


def test_forms_of_a_narrowed_row_carry_the_narrowing_text() -> None:
    row = next(r for r in WHATSAPP.table.rules if r.reason_contains)
    forms = row_forms(WHATSAPP, row)
    assert 408 not in forms  # a bare 408 is the plain row
    assert all(WHATSAPP.classify(form)[1] is row for form in forms)


@settings(max_examples=50)
@given(st.data())
def test_generated_forms_keep_their_row(data: st.DataObject) -> None:
    row = data.draw(st.sampled_from(WHATSAPP.table.rows()))
    assert WHATSAPP.classify(data.draw(close_forms(WHATSAPP, row)))[1] is row


@settings(max_examples=50)
@given(junk())
def test_junk_is_classified_by_some_row(raw: object) -> None:
    assert WHATSAPP.classify(raw)[1] in WHATSAPP.table.rows()


@settings(max_examples=50)
@given(close_events(WHATSAPP))
def test_close_events_never_crash_the_classifier(raw: object) -> None:
    event, rule = WHATSAPP.classify(raw)
    assert isinstance(event, CloseEvent) and rule in WHATSAPP.table.rows()


# -- the machines are configured by class attributes -------------------------------------

SLOW_POLICY = ReconnectPolicy(initial=2.0, cap=4.0, max_attempts=2)


def test_a_machine_without_a_channel_names_the_attribute_and_the_fix() -> None:
    class Unset(ConformanceMachine):
        pass

    with pytest.raises(
        TypeError,
        match=r"^Unset has no class attribute 'channel': set it in the class body to the "
        r"channel under test, e\.g\. `channel = CHANNEL`",
    ):
        Unset.TestCase().runTest()


def test_a_machine_whose_channel_is_not_a_channel_says_what_to_set() -> None:
    class Misnamed(RuntimeMachine):
        channel = "whatsapp"  # type: ignore[assignment]

    with pytest.raises(
        TypeError,
        match=r"^Misnamed\.channel is a str, not a linkstate\.Channel: set it to the Channel "
        r"object itself",
    ):
        Misnamed.TestCase().runTest()


def test_class_attributes_reach_the_core_machine() -> None:
    built: list[ReconnectPolicy] = []

    def factory(channel: Channel, policy: ReconnectPolicy, rng: random.Random) -> LinkMachine:
        built.append(policy)
        return LinkMachine(channel, policy, rng=rng)

    class Configured(ConformanceMachine):
        channel = WHATSAPP
        policy = SLOW_POLICY
        machine_factory = factory

    machine = Configured()
    assert built == [SLOW_POLICY]
    assert machine.model.policy is SLOW_POLICY
    assert machine.machine.channel is WHATSAPP
    assert ConformanceMachine.policy is not SLOW_POLICY  # the default is untouched


def test_class_attributes_reach_the_supervisor() -> None:
    class Configured(RuntimeMachine):
        channel = WHATSAPP
        policy = SLOW_POLICY
        watchdog = 3.0
        connect_timeout = 4.0

    machine = Configured()
    try:
        supervisor = machine.supervisor
        assert supervisor is not None
        assert (supervisor.watchdog, supervisor.connect_timeout) == (3.0, 4.0)
        assert machine.model.policy is SLOW_POLICY
        assert machine.machine.policy is SLOW_POLICY
    finally:
        machine.teardown()
