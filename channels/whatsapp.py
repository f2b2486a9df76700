"""WhatsApp Web (Baileys-style multi-device protocol).

How closes arrive: Baileys emits ``connection.update`` with
``{connection: "close", lastDisconnect: {error, date}}``; ``error`` is usually
a Boom error with the number at ``output.statusCode`` (sometimes only at
``output.payload.statusCode`` or ``status``), and wrappers nest it again. The
generic :func:`linkstate.normalise` finds all of those. What is particular to
WhatsApp is read here: a stream-error child node such as
``{tag: "conflict", attrs: {type: "replaced"}}`` in ``error.data`` means 440
even when no number came with it; and whatsmeow's typed events, as the
Python package neonize delivers them (protobuf messages such as
``neonize.StreamReplaced``), become the status Baileys would have reported.

The classic trap is 440 (connectionReplaced): another client opened the same
session and the newest wins. Reconnecting kicks the other client, which kicks
us back, forever. It is ``relink`` on the first event.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from linkstate._channel import Channel
from linkstate._events import CloseEvent, normalise, read_safely
from linkstate._verdicts import CloseTable, Rule, Verdict
from linkstate.plugin import Facts, facts, get

__all__ = ["CHANNEL", "TABLE", "extract"]

_RELINK_HOW: Final = "relink with `{relink_command}` (or your gateway's login command)"

# One row per close reason. Rows for one status are tried in order, so a row
# narrowed by reason text comes before the plain row for the same status.
TABLE: Final = CloseTable(
    channel="whatsapp",
    rules=(
        Rule(
            Verdict.relink,
            "connectionReplaced",
            "another client opened the same session; the newest wins",
            status=440,
            message=(
                "WhatsApp status {status}: session conflict on link {link}. Another WhatsApp "
                "Web client took over this session. Close or log out the conflicting WhatsApp "
                f"Web session, then {_RELINK_HOW}. Monitoring of this link has stopped and "
                "will not reconnect on its own."
            ),
        ),
        Rule(
            Verdict.relink,
            "loggedOut",
            "the device was unlinked from the phone; credentials are void",
            status=401,
            message=(
                "WhatsApp status {status}: link {link} was logged out from the phone, so its "
                f"credentials are void. Delete the stored session, then {_RELINK_HOW} by "
                "scanning a new QR code. Monitoring of this link has stopped."
            ),
        ),
        Rule(
            Verdict.relink,
            "forbidden",
            "the main device is gone or the account is locked",
            status=403,
            message=(
                "WhatsApp status {status}: access forbidden for link {link} (main device gone "
                "or account locked). Check the phone's WhatsApp account, then "
                f"{_RELINK_HOW}. Monitoring of this link has stopped."
            ),
        ),
        Rule(
            Verdict.relink,
            "unknownLogout",
            "logged out for an unknown reason, or banned",
            status=406,
            message=(
                "WhatsApp status {status}: link {link} was logged out (unknown logout or ban). "
                f"Check the account on the phone, then {_RELINK_HOW}. Monitoring has stopped."
            ),
        ),
        Rule(
            Verdict.relink,
            "multideviceMismatch",
            "the QR code was scanned without multi-device",
            status=411,
            message=(
                "WhatsApp status {status}: multi-device mismatch on link {link}. Enable "
                f"multi-device on the phone, then {_RELINK_HOW}. Monitoring has stopped."
            ),
        ),
        Rule(
            Verdict.fatal,
            "temporaryBan",
            "the account is temporarily banned; the ban carries an expiry",
            status=402,
            message=(
                "WhatsApp status {status}: link {link} is temporarily banned ({reason}). Wait "
                "for the ban to expire and review what the account sends, then run "
                "`{reset_command}`. Monitoring has stopped."
            ),
        ),
        Rule(
            Verdict.fatal,
            "clientOutdated",
            "the client version is too old",
            status=405,
            message=(
                "WhatsApp status {status}: the client is outdated for link {link}. Upgrade the "
                "WhatsApp library, then run `{reset_command}`. Monitoring has stopped."
            ),
        ),
        Rule(
            Verdict.fatal,
            "badUserAgent",
            "the server rejected the client's user agent",
            status=409,
            message=(
                "WhatsApp status {status}: the server rejected the user agent for link {link}. "
                "Upgrade or reconfigure the WhatsApp library, then run `{reset_command}`."
            ),
        ),
        Rule(
            Verdict.retry_now,
            "restartRequired",
            "restart, normally right after pairing",
            status=515,
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "connectionClosed",
            "the socket or stream ended",
            status=428,
            transient=True,
        ),
        Rule(
            Verdict.relink,
            "qrAttemptsEnded",
            "the QR code was not scanned in time",
            status=408,
            reason_contains="QR refs attempts ended",
            message=(
                "WhatsApp status {status}: nobody scanned the QR code for link {link} in time. "
                f"Be ready with the phone, then {_RELINK_HOW}."
            ),
        ),
        Rule(
            Verdict.retry,
            "connectionLost",
            "keepalive missed or network error",
            status=408,
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "badSession",
            "bad session, or an unknown stream error",
            status=500,
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "unavailableService",
            "the service is unavailable",
            status=503,
            transient=True,
        ),
    ),
    unknown=Rule(
        Verdict.retry, "unknown", "a status this table does not list; flap detection escalates"
    ),
    no_status=Rule(Verdict.retry, "noStatus", "a plain error with no status"),
)

# Stream-error child nodes that name a close reason without a number.
_STREAM_ERROR_STATUS: Final = {("conflict", "replaced"): 440, ("conflict", None): 440}


# whatsmeow's events (by protobuf name, as neonize delivers them) and the
# Baileys status each one stands for; None: read from the event's fields.
_WHATSMEOW_EVENTS: Final[dict[str, int | None]] = {
    "neonize.StreamReplaced": 440,
    "neonize.LoggedOut": None,
    "neonize.ConnectFailure": None,
    "neonize.TemporaryBan": 402,
    "neonize.ClientOutdated": 405,
    "neonize.KeepAliveTimeout": 408,
    "neonize.StreamError": None,
    "neonize.Disconnected": None,
}
# whatsmeow's ConnectFailureReason names and their numeric codes.
_CONNECT_FAILURE_STATUS: Final = {
    "GENERIC": 400,
    "LOGGED_OUT": 401,
    "TEMP_BANNED": 402,
    "MAIN_DEVICE_GONE": 403,
    "UNKNOWN_LOGOUT": 406,
    "CLIENT_OUTDATED": 405,
    "BAD_USER_AGENT": 409,
    "INTERNAL_SERVER_ERROR": 500,
    "EXPERIMENTAL": 501,
    "SERVICE_UNAVAILABLE": 503,
}
_LOGOUT_STATUSES: Final = frozenset({401, 403, 406})


# Shapes that are never protobuf messages: skip the descriptor probe for them,
# since nearly every close arrives as one of these.
_PLAIN_TYPES: Final = frozenset({int, float, str, bytes, dict, list, bool, type(None)})


def _whatsmeow(raw: object) -> Facts | None:
    """A whatsmeow event from neonize, read through protobuf's own descriptor (no import)."""
    name = get(get(raw, "DESCRIPTOR"), "full_name")
    if not isinstance(name, str) or name not in _WHATSMEOW_EVENTS:
        return None
    status: object = _WHATSMEOW_EVENTS[name]
    words = [name.removeprefix("neonize.")]
    failure = _enum_name(raw, "Reason")  # ConnectFailure and LoggedOut
    if failure is not None:
        status = _CONNECT_FAILURE_STATUS.get(failure)
        words.append(failure)
    if name == "neonize.LoggedOut" and status not in _LOGOUT_STATUSES:
        status = 401  # a logout whose reason is unset or not a logout reason
    if name == "neonize.StreamError":
        status = get(raw, "Code")  # the stream error's code as text, such as "515"
    if name == "neonize.TemporaryBan":
        words += [_enum_name(raw, "Code") or "", f"expires in {get(raw, 'Expire')} s"]
    words.append(str(get(raw, "Message") or ""))  # ConnectFailure's server message
    return facts(status=status, reason=" ".join(word for word in words if word))


def _enum_name(message: object, field_name: str) -> str | None:
    """The name of a set protobuf enum field, via the message's descriptor; else None."""
    try:
        has_field = get(message, "HasField")
        if not callable(has_field) or not has_field(field_name):
            return None
        field = get(message, "DESCRIPTOR").fields_by_name[field_name]  # type: ignore[attr-defined]
        return str(field.enum_type.values_by_number[get(message, field_name)].name)
    except Exception:
        return None


def extract(raw: object) -> CloseEvent:
    """Normalise a Baileys close or whatsmeow event, reading a stream-error node; never raises."""
    return read_safely(_extract, raw)


# OpenClaw's close object, ``{status, isLoggedOut, error}``, and its status
# sink's ``lastDisconnect.loggedOut``: OpenClaw checks the flag before the
# status (openclaw/openclaw extensions/whatsapp/src/auto-reply/monitor.ts,
# monitorWebChannel), sometimes with no status at all. Only ``true`` counts;
# ``false`` leaves the status to decide.
_LOGGED_OUT_FLAGS: Final = ("isLoggedOut", "loggedOut")


def _logged_out(raw: object) -> bool:
    """True when an OpenClaw-shaped close says the session was logged out."""
    return any(
        _get(holder, key) is True
        for holder in (raw, _get(raw, "lastDisconnect"))
        for key in _LOGGED_OUT_FLAGS
    )


def _extract(raw: object) -> CloseEvent:
    native = None if type(raw) in _PLAIN_TYPES else _whatsmeow(raw)
    if native is not None:
        return normalise(native)
    event = normalise(raw)
    if _logged_out(raw):
        return replace(event, status=401)  # the loggedOut row: relink, as OpenClaw stops
    if event.status is not None:
        return event
    for holder in (raw, _get(raw, "error"), _get(_get(raw, "lastDisconnect"), "error")):
        node = _get(holder, "data")
        tag = _get(node, "tag")
        if isinstance(tag, str):
            kind = _get(_get(node, "attrs"), "type")
            status = _STREAM_ERROR_STATUS.get((tag, kind if isinstance(kind, str) else None))
            status = status or _STREAM_ERROR_STATUS.get((tag, None))
            if status is not None:
                return replace(event, status=status)
    return event


def _get(obj: object, key: str) -> object:
    return obj.get(key) if isinstance(obj, dict) else None


CHANNEL: Final = Channel(
    name="whatsapp",
    title="WhatsApp Web",
    table=TABLE,
    extract=extract,
)
"""The WhatsApp Web channel, registered under the ``linkstate.channels`` entry point."""
