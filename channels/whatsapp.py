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

Sources (each row names its own): Baileys' ``DisconnectReason``
(WhiskeySockets/Baileys src/Types/index.ts lines 27-38) and where the numbers
come from (src/Socket/socket.ts: ``CB:stream:error``, ``CB:failure``);
whatsmeow's ``ConnectFailureReason`` and ``PermanentDisconnect`` events
(tulir/whatsmeow types/events/events.go lines 108-123 and 188-227) and its
handlers (connectionevents.go ``handleStreamError``, ``handleConnectFailure``);
OpenClaw's WhatsApp monitor (openclaw/openclaw
extensions/whatsapp/src/auto-reply/monitor.ts, ``monitorWebChannel``).

Where the peers disagree, and what this table chose:

* 403 and 406: whatsmeow treats both as a logout and deletes the store
  (``IsLoggedOut``, events.go line 225); Baileys' example and OpenClaw
  reconnect. ``relink``: whatsmeow speaks the protocol, and a reconnect with
  a deleted store cannot succeed.
* 402 (temporary ban): whatsmeow stops (``TemporaryBan`` is permanent);
  OpenClaw retries. ``fatal``: retrying during a ban risks a longer one.
* 515: whatsmeow reconnects at once, OpenClaw backs off. ``retry_now``.
* Every event whatsmeow marks as a permanent disconnect (``LoggedOut``,
  ``StreamReplaced``, ``ClientOutdated``, ``CATRefreshError``,
  ``TemporaryBan``, ``ConnectFailure``) is terminal here: whatsmeow will not
  reconnect by itself after one, so neither do we. ``StreamError``,
  ``Disconnected`` and ``KeepAliveTimeout`` are not permanent, and retry.
* OpenClaw's ``isLoggedOut: true`` is ``relink`` whatever status comes with
  it (OpenClaw checks the flag before the status); it is a trusted flag of
  this channel (:data:`SHAPES`), read for WhatsApp only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from linkstate._channel import Channel
from linkstate._events import CloseEvent, Shapes, TrustedFlag, normalise, read_safely
from linkstate._verdicts import CloseTable, Rule, Verdict
from linkstate.plugin import Facts, facts, get, json_text

__all__ = [
    "CAT_REFRESH_ERROR",
    "CHANNEL",
    "CONNECT_FAILURE",
    "SHAPES",
    "STREAM_ERROR",
    "TABLE",
    "extract",
]

_RELINK_HOW: Final = "relink with `{relink_command}` (or your gateway's login command)"
_RELINK_HOW_CAPITAL: Final = "R" + _RELINK_HOW[1:]

CAT_REFRESH_ERROR: Final = "cat_refresh_error"
"""The code of whatsmeow's ``CATRefreshError`` event: a token refresh failed."""
CONNECT_FAILURE: Final = "connect_failure"
"""The code of a whatsmeow ``ConnectFailure`` event that no status row names."""
STREAM_ERROR: Final = "stream_error"
"""The code of whatsmeow's ``StreamError`` event, which it reconnects after."""

# One row per close reason. Rows for one status are tried in order, so a row
# narrowed by reason text comes before the plain row for the same status.
# Each row's source is in the comment above it: "Baileys" is
# src/Types/index.ts DisconnectReason, "whatsmeow" is types/events/events.go
# ConnectFailureReason (the line given), "OpenClaw" is monitorWebChannel.
TABLE: Final = CloseTable(
    channel="whatsapp",
    rules=(
        # Baileys connectionReplaced 440 (stream:error <conflict type="replaced">,
        # generics.ts CODE_MAP); whatsmeow StreamReplaced (permanent, events.go 114);
        # OpenClaw isNonRetryableWebCloseStatus(440) stops.
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
        # Baileys loggedOut 401; whatsmeow ConnectFailureLoggedOut 401 (events.go 193,
        # IsLoggedOut: the store is deleted); OpenClaw's isLoggedOut flag (SHAPES).
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
        # Baileys forbidden 403; whatsmeow ConnectFailureMainDeviceGone 403 ("now
        # called LOCKED", events.go 195), IsLoggedOut.
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
        # whatsmeow ConnectFailureUnknownLogout 406 ("now called BANNED", events.go 196),
        # IsLoggedOut; a raw <failure reason="406"> in Baileys.
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
        # Baileys multideviceMismatch 411 (CB:ib,,downgrade_webclient).
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
        # whatsmeow ConnectFailureCATExpired 413 / CATInvalid 414 (events.go 201-202):
        # whatsmeow refreshes the messenger crypto auth token and reconnects; a
        # close that still reports them came from a client that could not.
        Rule(
            Verdict.relink,
            "catExpired",
            "the messenger crypto auth token expired and was not refreshed",
            status=413,
            message=(
                "WhatsApp status {status}: the crypto auth token of link {link} expired and "
                f"the client did not refresh it. {_RELINK_HOW_CAPITAL} to get a new one. "
                "Monitoring has stopped."
            ),
        ),
        Rule(
            Verdict.relink,
            "catInvalid",
            "the messenger crypto auth token is invalid",
            status=414,
            message=(
                "WhatsApp status {status}: the crypto auth token of link {link} is invalid. "
                f"{_RELINK_HOW_CAPITAL} to get a new one. Monitoring has stopped."
            ),
        ),
        # whatsmeow CATRefreshError (permanent, events.go 116): refreshing the token
        # after a 413/414 failed (connectionevents.go handleConnectFailure). neonize
        # 0.5 does not forward it yet; the code is what the extractor gives it.
        Rule(
            Verdict.relink,
            "catRefreshError",
            "refreshing the crypto auth token failed (whatsmeow CATRefreshError)",
            code=CAT_REFRESH_ERROR,
            message=(
                "WhatsApp link {link}: refreshing its crypto auth token failed ({reason}). "
                f"{_RELINK_HOW_CAPITAL}. Monitoring has stopped."
            ),
        ),
        # whatsmeow ConnectFailureTempBanned 402 and TemporaryBan (permanent,
        # events.go 117); OpenClaw retries it: see the module header.
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
        # whatsmeow ConnectFailureClientOutdated 405 and ClientOutdated (permanent,
        # events.go 115).
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
        # whatsmeow ConnectFailureBadUserAgent 409 (events.go 199).
        Rule(
            Verdict.fatal,
            "badUserAgent",
            "the server rejected the client's user agent",
            status=409,
            message=(
                "WhatsApp status {status}: the server rejected the user agent for link {link}. "
                "Upgrade or reconfigure the WhatsApp library, then run `{reset_command}`. "
                "Monitoring has stopped."
            ),
        ),
        # whatsmeow ConnectFailureGeneric 400, NotFound 415, ClientUnknown 418 and
        # Experimental 501 (events.go 192, 203, 206, 209): handleConnectFailure's
        # default case, no auto-reconnect (a permanent ConnectFailure event).
        *(
            Rule(
                Verdict.fatal,
                name,
                f"a connect failure whatsmeow does not retry ({meaning})",
                status=status,
                message=(
                    "WhatsApp status {status}: the server refused link {link} at connect time "
                    f"({meaning}: {{reason}}). Upgrade the WhatsApp library or check the "
                    "account on the phone, then run `{reset_command}`. Monitoring has stopped."
                ),
            )
            for status, name, meaning in (
                (400, "connectFailureGeneric", "generic failure"),
                (415, "connectFailureNotFound", "not found"),
                (418, "connectFailureClientUnknown", "client unknown"),
                (501, "connectFailureExperimental", "experimental"),
            )
        ),
        # A whatsmeow ConnectFailure event whose reason neonize leaves unset or
        # whatsmeow would retry itself: the event is permanent (events.go 121), so
        # the extractor gives it this code when no other row names its reason.
        Rule(
            Verdict.fatal,
            "connectFailure",
            "a permanent whatsmeow ConnectFailure event with no more specific row",
            code=CONNECT_FAILURE,
            message=(
                "WhatsApp link {link}: whatsmeow reported a connect failure it will not retry "
                "({reason}). Upgrade the WhatsApp library or check the account on the phone, "
                "then run `{reset_command}`. Monitoring has stopped."
            ),
        ),
        # Baileys restartRequired 515 (stream:error code 515, right after pairing);
        # whatsmeow handleStreamError reconnects at once on 515.
        Rule(
            Verdict.retry_now,
            "restartRequired",
            "restart, normally right after pairing",
            status=515,
            transient=True,
        ),
        # Baileys connectionClosed 428 (socket.ts ws close: "Connection Terminated").
        Rule(
            Verdict.retry,
            "connectionClosed",
            "the socket or stream ended",
            status=428,
            transient=True,
        ),
        # Baileys 408 "QR refs attempts ended" (socket.ts): nobody scanned the QR code.
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
        # Baileys connectionLost / timedOut 408 (keepalive, socket.ts).
        Rule(
            Verdict.retry,
            "connectionLost",
            "keepalive missed or network error",
            status=408,
            transient=True,
        ),
        # OpenClaw's own restarts: signalClose({status: 499}) for its watchdog
        # ("watchdog-timeout") and crypto errors; it retries them.
        Rule(
            Verdict.retry,
            "forcedRestart",
            "the gateway restarted the socket itself (OpenClaw's watchdog, status 499)",
            status=499,
            transient=True,
        ),
        # Baileys badSession 500 (unknown stream errors map to it, generics.ts);
        # whatsmeow ConnectFailureInternalServerError 500 reconnects by itself.
        Rule(
            Verdict.retry,
            "badSession",
            "bad session, or an unknown stream error",
            status=500,
            transient=True,
        ),
        # Baileys unavailableService 503; whatsmeow ConnectFailureServiceUnavailable
        # 503 and stream error 503 reconnect by themselves.
        Rule(
            Verdict.retry,
            "unavailableService",
            "the service is unavailable",
            status=503,
            transient=True,
        ),
        # whatsmeow StreamError (not permanent: "the client will auto-reconnect",
        # handleStreamError's default case); its code is in the reason.
        Rule(
            Verdict.retry,
            "streamError",
            "a stream error whatsmeow reconnects after",
            code=STREAM_ERROR,
        ),
    ),
    unknown=Rule(
        Verdict.retry, "unknown", "a status this table does not list; flap detection escalates"
    ),
    no_status=Rule(Verdict.retry, "noStatus", "a plain error with no status"),
)

# Stream-error child nodes that name a close reason without a number.
_STREAM_ERROR_STATUS: Final = {("conflict", "replaced"): 440, ("conflict", None): 440}


# whatsmeow's events (by protobuf name, as neonize delivers them: its proto
# package is "neonize", goneonize/Neonize.proto) and the Baileys status each
# stands for; None: read from the event's fields. CATRefreshError is not in
# neonize 0.5's proto (its Go side does not forward it), so it is matched by
# name for when it is.
_WHATSMEOW_EVENTS: Final[dict[str, int | None]] = {
    "neonize.StreamReplaced": 440,
    "neonize.LoggedOut": None,
    "neonize.ConnectFailure": None,
    "neonize.TemporaryBan": 402,
    "neonize.ClientOutdated": 405,
    "neonize.CATRefreshError": None,
    "neonize.KeepAliveTimeout": 408,
    "neonize.StreamError": None,
    "neonize.Disconnected": None,
}
# whatsmeow's ConnectFailureReason numbers (events.go 188-211) by the enum
# *name*: neonize renumbers the enum ordinally (GENERIC=1, LOGGED_OUT=2...).
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
# ConnectFailureReason.IsLoggedOut (events.go 225): whatsmeow deletes the store.
_LOGOUT_STATUSES: Final = frozenset({401, 403, 406})
# Reasons whatsmeow reconnects after by itself (handleConnectFailure): a
# ConnectFailure *event* with one is permanent all the same, so its status
# must not reach the retry rows.
_SELF_RETRIED: Final = frozenset({500, 503})


# Shapes that are never protobuf messages: skip the descriptor probe for them,
# since nearly every close arrives as one of these.
_PLAIN_TYPES: Final = frozenset({int, float, str, bytes, dict, list, bool, type(None)})


def _whatsmeow(raw: object) -> Facts | None:
    """A whatsmeow event from neonize, read through protobuf's own descriptor (no import)."""
    name = get(get(raw, "DESCRIPTOR"), "full_name")
    if not isinstance(name, str) or name not in _WHATSMEOW_EVENTS:
        return None
    status: object = _WHATSMEOW_EVENTS[name]
    code: str | None = None
    words = [name.removeprefix("neonize.")]
    failure = _enum_name(raw, "Reason")  # ConnectFailure and LoggedOut
    if failure is not None:
        status = _CONNECT_FAILURE_STATUS.get(failure)
        words.append(failure)
    if name == "neonize.LoggedOut" and status not in _LOGOUT_STATUSES:
        status = 401  # a logout whose reason is unset or not a logout reason
    elif name == "neonize.ConnectFailure" and (status is None or status in _SELF_RETRIED):
        status, code = None, CONNECT_FAILURE  # permanent, whatever its reason says
    elif name == "neonize.CATRefreshError":
        code = CAT_REFRESH_ERROR
        words.append(str(get(raw, "Error") or ""))
    elif name == "neonize.StreamError":
        code = STREAM_ERROR
        words.append(f"code {get(raw, 'Code') or 'none'}")
    elif name == "neonize.TemporaryBan":
        words += [_enum_name(raw, "Code") or "", f"expires in {get(raw, 'Expire')} s"]
    words.append(str(get(raw, "Message") or ""))  # ConnectFailure's server message
    return facts(status=status, code=code, reason=" ".join(word for word in words if word))


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
# monitorWebChannel; the object is built in inbound/monitor.ts
# handleConnectionUpdate), sometimes with no status at all. Only ``true``
# counts; ``false`` leaves the status to decide. A flag of WhatsApp's clients,
# so it is declared here and read for this channel only.
SHAPES: Final = Shapes(
    flags=(TrustedFlag(keys=("isLoggedOut", "loggedOut"), flag="logged_out", status=401),),
)
"""The shapes WhatsApp's clients produce that the generic reading does not look for."""


def _extract(raw: object) -> CloseEvent:
    native = None if type(raw) in _PLAIN_TYPES else _whatsmeow(raw)
    if native is not None:
        return normalise(native)
    raw = json_text(raw)  # a raw JSON close reads like its dict, as on every channel
    event = normalise(raw)
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
    shapes=SHAPES,
)
"""The WhatsApp Web channel, registered under the ``linkstate.channels`` entry point."""
