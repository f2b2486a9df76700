"""The conformance kit (``linkstate.testing._kit``) run on every installed channel.

New channels are picked up through the entry-point registry; their golden
examples, where the reference facts give some, live in ``expectations.py``.
"""

from __future__ import annotations

import pytest
from expectations import EXPECTED
from hypothesis import given, settings
from hypothesis import strategies as st
from linkstate._channel import available_channels, load_channel
from linkstate._events import CloseEvent
from linkstate.testing._kit import (
    CloseError,
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
