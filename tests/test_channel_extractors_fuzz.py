"""Anything a remote peer sends is classified without crashing: the extractors never raise.

The extractors are called directly (``Channel.event`` would hide a crash
behind its generic fallback). The JSON values are biased towards the keys the
extractors look at, so the interesting branches are reached, not only the
"not a dict" ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkstate._events import MAX_REASON_LENGTH, CloseEvent
from linkstate._reading import MAX_RETRY_AFTER
from linkstate._verdicts import Rule
from linkstate.channels import discord, matrix, slack, telegram, whatsapp
from linkstate.plugin import header, json_text, seconds

KEYS = st.sampled_from(
    [
        "op",
        "d",
        "type",
        "reason",
        "ok",
        "error",
        "errcode",
        "soft_logout",
        "retry_after_ms",
        "error_code",
        "description",
        "parameters",
        "retry_after",
        "status",
        "code",
        "headers",
        "Retry-After",
        "message",
        "flags",
        "phase",
        "initiator",
        "data",
        "output",
        "statusCode",
        "lastDisconnect",
        "tag",
        "attrs",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        ["disconnect", "too_many_websockets", "M_UNKNOWN_TOKEN", "4004", "409", "op7", "{", "1e309"]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=25,
)
EXTRACTORS: dict[str, Callable[[object], CloseEvent]] = {
    "discord": discord.extract,
    "slack": slack.extract,
    "telegram": telegram.extract,
    "matrix": matrix.extract,
    "whatsapp": whatsapp.extract,
}
CHANNELS = {
    "discord": discord.CHANNEL,
    "slack": slack.CHANNEL,
    "telegram": telegram.CHANNEL,
    "matrix": matrix.CHANNEL,
    "whatsapp": whatsapp.CHANNEL,
}


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
@given(raw=JSON)
def test_extractor_never_raises_on_json(name: str, raw: object) -> None:
    event = EXTRACTORS[name](raw)
    assert isinstance(event, CloseEvent)
    assert len(event.reason) <= MAX_REASON_LENGTH
    assert event.status is None or 1 <= event.status < 10_000


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
@given(raw=JSON.map(json.dumps))
def test_extractor_never_raises_on_json_text(name: str, raw: str) -> None:
    assert isinstance(EXTRACTORS[name](raw), CloseEvent)


@pytest.mark.parametrize("name", sorted(CHANNELS))
@given(raw=JSON)
def test_classification_is_total(name: str, raw: object) -> None:
    channel = CHANNELS[name]
    _, rule = channel.classify(raw)
    assert isinstance(rule, Rule)
    assert rule in channel.table.rows()


@given(headers=JSON | st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=12))))
def test_header_reading_never_raises(headers: object) -> None:
    value = header(headers, "Retry-After")
    assert value is None or isinstance(value, str)


@given(value=JSON)
def test_seconds_and_json_text_never_raise(value: object) -> None:
    result = seconds(value)
    assert result is None or isinstance(result, float)
    json_text(value)


class Hostile:
    """An object whose every attribute read raises, like a broken proxy."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"no {name}")


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
def test_extractor_survives_hostile_objects(name: str) -> None:
    assert EXTRACTORS[name](Hostile()).status is None


def test_a_huge_json_integer_is_capped_not_a_crash() -> None:
    # json.loads gives an int with 400 digits; float() of it raises OverflowError.
    # It is the longest wait there is: capped at a week, like any other long hint.
    raw = json.loads(
        '{"ok": false, "error_code": 429, "parameters": {"retry_after": 1%s}}' % ("0" * 400)
    )
    event = telegram.extract(raw)
    assert (event.status, event.retry_after) == (429, MAX_RETRY_AFTER)
