"""The WhatsApp channel: every table row, Baileys shapes, and the operator messages."""

from __future__ import annotations

import pytest

from linkstate._channel import available_channels, load_channel
from linkstate._events import CloseEvent
from linkstate._verdicts import Rule, Verdict
from linkstate.channels.whatsapp import CHANNEL, TABLE

# WhatsApp Web's close codes as Baileys documents and handles them, restated as expectations.
EXPECTED = {
    440: Verdict.relink,
    401: Verdict.relink,
    403: Verdict.relink,
    406: Verdict.relink,
    411: Verdict.relink,
    402: Verdict.fatal,
    405: Verdict.fatal,
    409: Verdict.fatal,
    400: Verdict.fatal,
    415: Verdict.fatal,
    418: Verdict.fatal,
    501: Verdict.fatal,
    413: Verdict.relink,
    414: Verdict.relink,
    499: Verdict.retry,
    515: Verdict.retry_now,
    428: Verdict.retry,
    408: Verdict.retry,
    500: Verdict.retry,
    503: Verdict.retry,
}


@pytest.mark.parametrize("rule", TABLE.rows(), ids=lambda r: r.label)
def test_every_row_classifies_to_its_own_verdict(rule: Rule) -> None:
    event = CloseEvent(status=rule.status, code=rule.code, reason=rule.reason_contains or "")
    if rule is TABLE.unknown:
        event = CloseEvent(status=999)
    assert TABLE.classify(event) is rule


@pytest.mark.parametrize(("status", "verdict"), sorted(EXPECTED.items()))
def test_reference_verdicts(status: int, verdict: Verdict) -> None:
    _, rule = CHANNEL.classify({"error": {"output": {"statusCode": status}}})
    assert rule.verdict is verdict


def test_no_status_and_unknown_status_retry() -> None:
    assert CHANNEL.classify(ValueError("socket hang up"))[1].verdict is Verdict.retry
    assert CHANNEL.classify(498)[1].verdict is Verdict.retry


def test_408_qr_attempts_ended_is_relink() -> None:
    _, rule = CHANNEL.classify(
        {
            "output": {
                "statusCode": 408,
                "payload": {"statusCode": 408, "message": "QR refs attempts ended"},
            }
        }
    )
    assert rule.verdict is Verdict.relink and rule.name == "qrAttemptsEnded"


def test_stream_error_conflict_node_without_a_number_is_440() -> None:
    raw = {
        "error": {
            "message": "Stream Errored (conflict)",
            "data": {"tag": "conflict", "attrs": {"type": "replaced"}},
        }
    }
    event, rule = CHANNEL.classify(raw)
    assert event.status == 440 and rule.verdict is Verdict.relink


def test_440_message_says_what_happened_and_what_to_do() -> None:
    event, rule = CHANNEL.classify(440)
    text = rule.operator_message(event, link="acct1", channel="whatsapp")
    for needle in (
        "440",
        "session conflict",
        "conflicting WhatsApp Web session",
        "linkstate relink acct1",
        "stopped",
    ):
        assert needle in text


def test_every_terminal_row_tells_the_operator_what_to_do() -> None:
    for rule in TABLE.rows():
        if rule.verdict.terminal:
            event = CloseEvent(status=rule.status, code=rule.code, reason="why")
            text = rule.operator_message(event, link="L", channel="c")
            assert str(rule.status) in text if rule.status is not None else "why" in text
            assert any(word in text for word in ("relink", "reset", "Upgrade", "Enable"))


def test_channel_is_found_through_the_entry_point_registry() -> None:
    assert "whatsapp" in available_channels()
    assert load_channel("whatsapp") is CHANNEL


@pytest.mark.parametrize(
    "close",
    [
        # OpenClaw's onClose object, with and without a status (its handler-error shape).
        {"status": 401, "isLoggedOut": True, "error": "Connection Failure"},
        {"status": None, "isLoggedOut": True, "error": "closed"},
        {"status": 428, "isLoggedOut": True, "error": "Connection Terminated"},
        # OpenClaw's status sink: lastDisconnect.loggedOut.
        {"connection": "close", "lastDisconnect": {"loggedOut": True, "error": "x"}},
    ],
)
def test_openclaw_logged_out_flag_is_relink_whatever_the_status(close: object) -> None:
    _, rule = CHANNEL.classify(close)
    assert (rule.name, rule.verdict) == ("loggedOut", Verdict.relink)


def test_openclaw_logged_out_false_leaves_the_status_to_decide() -> None:
    _, rule = CHANNEL.classify({"status": 440, "isLoggedOut": False, "error": "conflict"})
    assert rule.name == "connectionReplaced"
    _, rule = CHANNEL.classify({"status": None, "isLoggedOut": False, "error": "closed"})
    assert (rule.name, rule.verdict) == ("noStatus", Verdict.retry)
