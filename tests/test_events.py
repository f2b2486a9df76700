"""CloseEvent normalisation: every shape a client library reports, and hostile input."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkstate._events import (
    MAX_REASON_LENGTH,
    CloseEvent,
    Initiator,
    Phase,
    normalise,
    parse_status,
    sanitise_reason,
)
from linkstate._reading import MAX_RETRY_AFTER

# -- the status, in every form ------------------------------------------------


class BoomOutput:
    def __init__(self, status: int) -> None:
        self.statusCode = status
        self.payload = {"statusCode": status, "message": "Stream Errored (conflict)"}


class BoomError(Exception):
    """Shaped like Baileys' Boom: the number sits at output.statusCode."""

    def __init__(self, status: int) -> None:
        super().__init__("Stream Errored (conflict)")
        self.output = BoomOutput(status)


class CodedError(Exception):
    def __init__(self, code: object) -> None:
        super().__init__(f"failed with {code}")
        self.code = code


FORMS_OF_440: list[object] = [
    440,
    "440",
    " 440 ",
    440.0,
    "440.0",
    {"status": 440},
    {"status": "440"},
    {"statusCode": 440},
    {"code": " 440 "},
    {"output": {"statusCode": 440}},
    {"output": {"payload": {"statusCode": 440}}},
    {"error": {"output": {"statusCode": 440}}},
    {"error": {"error": {"output": {"statusCode": "440"}}}},
    {"connection": "close", "lastDisconnect": {"error": {"output": {"statusCode": 440}}}},
    {"lastDisconnect": {"error": BoomError(440), "date": "2026-11-23"}},
    {"status": "440", "isLoggedOut": False, "error": "Unknown Stream Errored (conflict)"},
    BoomError(440),
    CodedError(440),
    CodedError("440"),
]


@pytest.mark.parametrize("raw", FORMS_OF_440, ids=repr)
def test_every_form_of_440_normalises_to_the_int(raw: object) -> None:
    assert normalise(raw).status == 440


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        -1,
        0,
        -440,
        10_000,
        10**30,
        440.5,
        math.nan,
        math.inf,
        "",
        "abc",
        "4 40",
        "٤٤٠",
        b"440",
        None,
        [],
        [440],
        object(),
    ],
    ids=repr,
)
def test_unreadable_status_values_give_none(value: object) -> None:
    assert parse_status(value) is None


def test_status_search_prefers_the_outer_object() -> None:
    raw = {"status": 428, "error": {"output": {"statusCode": 440}}}
    assert normalise(raw).status == 428


def test_non_numeric_code_becomes_the_symbolic_code() -> None:
    event = normalise({"code": "ECONNRESET", "message": "socket hang up"})
    assert event.status is None
    assert event.code == "ECONNRESET"
    assert event.reason == "socket hang up"


def test_bare_symbolic_string_is_code_and_reason() -> None:
    event = normalise("too_many_websockets")
    assert event.code == "too_many_websockets"
    assert event.status is None


# -- the rest of the event ----------------------------------------------------------


def test_reason_phase_initiator_and_retry_after_are_captured() -> None:
    event = normalise(
        {
            "error_code": 429,
            "description": "Too Many Requests: retry after 17",
            "parameters": {"retry_after": 17},
            "phase": "handshake",
            "initiator": "remote",
        }
    )
    assert event == CloseEvent(
        status=429,
        reason="Too Many Requests: retry after 17",
        initiator=Initiator.remote,
        phase=Phase.handshake,
        retry_after=17.0,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"retry_after": "5"}, 5.0),
        ({"retryAfter": 2.5}, 2.5),
        ({"retry_after_ms": 1500}, 1.5),
        ({"headers": {"Retry-After": "30"}}, 30.0),
        ({"retry_after": -3}, None),
        # Capped, never dropped: a week and a week and a second mean the same.
        ({"retry_after": 10**12}, MAX_RETRY_AFTER),
        ({"retry_after": 604_800}, MAX_RETRY_AFTER),
        ({"retry_after": 604_801}, MAX_RETRY_AFTER),
        ({"retry_after": "604801"}, MAX_RETRY_AFTER),
        ({"retry_after": 10**400}, MAX_RETRY_AFTER),
        ({"headers": {"Retry-After": "604801"}}, MAX_RETRY_AFTER),
        ({"retry_after": float("nan")}, None),
        ({"retry_after": True}, None),
        ({"retry_after": "soon"}, None),
    ],
)
def test_retry_after_hint(raw: dict[str, object], expected: float | None) -> None:
    assert normalise(raw).retry_after == expected


def test_keyword_overrides_win() -> None:
    event = normalise(
        {"status": 428, "phase": "established"},
        phase=Phase.handshake,
        initiator=Initiator.local,
        flags=frozenset({"soft_logout"}),
    )
    assert (event.phase, event.initiator, event.flags) == (
        Phase.handshake,
        Initiator.local,
        frozenset({"soft_logout"}),
    )


def test_exception_text_is_the_reason_when_nothing_else_is() -> None:
    assert normalise(ValueError("boom\nline two")).reason == "boom line two"


# -- hostile input -----------------------------------------------------------------------


class Hostile:
    """Every attribute read raises; str() raises too."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"no {name} for you")


class HostileError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot render")

    @property
    def status(self) -> int:
        raise KeyError("status")


class Bottomless:
    """Answers every attribute with another of itself."""

    def __getattr__(self, name: str) -> Bottomless:
        return Bottomless()


def test_hostile_objects_give_an_empty_event() -> None:
    assert normalise(Hostile()).status is None
    assert normalise(HostileError()).reason == "HostileError"
    assert normalise(Bottomless()).status is None


def test_cycles_terminate() -> None:
    cyclic: dict[str, Any] = {"reason": "loop"}
    cyclic["error"] = cyclic
    cyclic["lastDisconnect"] = {"error": cyclic}
    assert normalise(cyclic) == CloseEvent(reason="loop")


def test_bytes_are_text_not_status() -> None:
    event = normalise(b"440")
    assert event.status is None
    assert event.reason == "440"


def test_huge_control_character_reason_is_sanitised() -> None:
    nasty = "\x1b[31mred\x1b[0m\r\nFAKE LOG LINE\u202egnp.exe\x00" + "A" * 1_000_000
    event = normalise({"status": 1006, "reason": nasty})
    assert event.status == 1006
    assert len(event.reason) <= MAX_REASON_LENGTH
    assert event.reason.endswith("…")
    assert all(ch.isprintable() for ch in event.reason)
    assert "\n" not in event.reason and "\x1b" not in event.reason


def test_sanitise_keeps_ordinary_text() -> None:
    assert sanitise_reason("  Stream Errored (conflict)  ") == "Stream Errored (conflict)"


# -- properties ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "status",
                    "statusCode",
                    "code",
                    "output",
                    "payload",
                    "error",
                    "lastDisconnect",
                    "reason",
                    "message",
                    "retry_after",
                    "parameters",
                    "phase",
                    "initiator",
                    "flags",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
anything = (
    json_values
    | st.binary()
    | st.builds(CodedError, json_values)
    | st.builds(ValueError, st.text())
)


@given(anything)
def test_normalise_never_raises_and_is_idempotent(raw: object) -> None:
    event = normalise(raw)
    assert isinstance(event, CloseEvent)
    assert normalise(event) == event
    assert event.status is None or 1 <= event.status < 10_000
    assert len(event.reason) <= MAX_REASON_LENGTH
    assert all(ch.isprintable() for ch in event.reason)


@given(anything)
def test_json_round_trip_reads_back_the_same_event(raw: object) -> None:
    event = normalise(raw)
    assert normalise(json.loads(json.dumps(event.to_json()))) == event


@given(st.sampled_from(FORMS_OF_440))
def test_440_in_every_form_is_440(raw: object) -> None:
    assert normalise(raw).status == 440
