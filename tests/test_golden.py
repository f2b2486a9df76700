"""Golden examples: per channel, closes in every form a gateway hands over, and where they lead.

Four forms per channel, at least fifteen rows each:

* ``bare``: the number or symbolic code alone (``440``, ``token_expired``);
* ``string``: the number as text, or the text a client library prints
  (``"An API error occurred: account_inactive"``);
* ``json``: the raw frame or body as JSON text;
* ``native``: the object the real client library raises or emits, built with
  the library's own constructors (the ``libs`` extra), as
  ``tests/test_channel_libraries.py`` does where it drives them for real.

Each row names the table row it must reach and that row's verdict; the
sources of the verdicts are beside each row in ``channels/*.py``.
"""

from __future__ import annotations

import warnings
from typing import Any, Final

import pytest
import trio_websocket
import websockets.exceptions
from aiogram.exceptions import TelegramConflictError, TelegramRetryAfter
from aiogram.methods import GetUpdates
from discord.errors import ConnectionClosed as DiscordConnectionClosed
from discord.errors import LoginFailure, PrivilegedIntentsRequired
from discord.gateway import ReconnectWebSocket
from neonize.events import (
    ClientOutdatedEv,
    DisconnectedEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    StreamErrorEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.proto.Neonize_pb2 import Node
from nio.responses import ErrorResponse, SyncError
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse
from telegram.error import Conflict, InvalidToken, RetryAfter, TimedOut
from test_channel_libraries import (
    TELEGRAM_409_POLL,
    TELEGRAM_409_WEBHOOK,
    cat_refresh_error,
    connect_failure,
    failure,
)
from websockets.datastructures import Headers
from websockets.frames import Close
from websockets.http11 import Response

from linkstate import Verdict, load_channel
from linkstate.channels.websocket import WebSocketClosed

R, N, L, F = Verdict.retry, Verdict.retry_now, Verdict.relink, Verdict.fatal
FORMS: Final = ("bare", "string", "json", "native")

# discord.py reads the socket's close_code only when no code is passed.
_NO_FRAME: Any = type("Socket", (), {"close_code": None})()


def slack_api_error(error: str, status: int = 200, **headers: str) -> SlackApiError:
    """slack_sdk's error for a refused apps.connections.open, as its WebClient raises it."""
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/apps.connections.open",
        req_args={},
        data={"ok": False, "error": error},
        headers=headers,
        status_code=status,
    )
    return SlackApiError("The request to the Slack API failed.", response)  # type: ignore[no-untyped-call]


def ptb_retry_after(seconds: int) -> RetryAfter:
    """python-telegram-bot's flood-control error; its int form warns of its own deprecation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB's warning about PTB's own API, not ours
        return RetryAfter(seconds)


def parsed(event: Any) -> object:
    """A neonize event as neonize hands it over: parsed from whatsmeow's serialised bytes."""
    return type(event).FromString(event.SerializeToString())


GOLDEN: Final[dict[str, list[tuple[str, object, str, Verdict]]]] = {
    "whatsapp": [
        ("bare", 440, "connectionReplaced", L),
        ("bare", 401, "loggedOut", L),
        ("bare", 515, "restartRequired", N),
        ("bare", 428, "connectionClosed", R),
        ("bare", 499, "forcedRestart", R),
        ("bare", 413, "catExpired", L),
        ("string", "440", "connectionReplaced", L),
        ("string", " 403 ", "forbidden", L),
        ("string", "socket hang up", "noStatus", R),
        ("json", '{"isLoggedOut": true}', "loggedOut", L),
        ("json", '{"status": 428, "isLoggedOut": true, "error": "x"}', "loggedOut", L),
        ("json", '{"status": 440, "isLoggedOut": false}', "connectionReplaced", L),
        ("json", '{"error": {"output": {"statusCode": 402}}}', "temporaryBan", F),
        ("json", '{"status": 408, "error": "QR refs attempts ended"}', "qrAttemptsEnded", L),
        (
            "json",
            '{"error": {"data": {"tag": "conflict", "attrs": {"type": "replaced"}}}}',
            "connectionReplaced",
            L,
        ),
        ("native", parsed(StreamReplacedEv()), "connectionReplaced", L),
        (
            "native",
            parsed(LoggedOutEv(OnConnect=True, Reason=failure("MAIN_DEVICE_GONE"))),
            "forbidden",
            L,
        ),
        ("native", parsed(connect_failure("GENERIC")), "connectFailureGeneric", F),
        ("native", parsed(connect_failure("SERVICE_UNAVAILABLE")), "connectFailure", F),
        ("native", parsed(TemporaryBanEv(Code=1, Expire=3600)), "temporaryBan", F),
        ("native", parsed(ClientOutdatedEv()), "clientOutdated", F),
        ("native", cat_refresh_error("refresh failed"), "catRefreshError", L),
        (
            "native",
            parsed(KeepAliveTimeoutEv(ErrorCount=3, LastSuccess=1)),
            "connectionLost",
            R,
        ),
        (
            "native",
            parsed(StreamErrorEv(Code="516", Raw=Node(Tag="stream:error"))),
            "streamError",
            R,
        ),
        ("native", parsed(DisconnectedEv(status=True)), "noStatus", R),
    ],
    "slack": [
        ("bare", "token_expired", "token_expired", L),
        ("bare", "not_allowed_token_type", "not_allowed_token_type", F),
        ("bare", "too_many_websockets", "too_many_websockets", R),
        ("bare", "link_disabled", "link_disabled", F),
        ("string", "An API error occurred: account_inactive", "account_inactive", L),
        ("string", "An API error occurred: missing_scope", "missing_scope", L),
        (
            "string",
            "The request to the Slack API failed. (url: https://slack.com/api/apps.connections"
            ".open)\nThe server responded with: {'ok': False, 'error': 'invalid_auth'}",
            "invalid_auth",
            L,
        ),
        ("string", "socket hang up", "noFrame", R),
        ("json", '{"type": "disconnect", "reason": "refresh_requested"}', "refresh_requested", N),
        ("json", '{"ok": false, "error": "token_revoked"}', "token_revoked", L),
        ("json", '{"error": "invalid_auth"}', "invalid_auth", L),
        (
            "json",
            '{"code": "slack_webapi_platform_error", "data": {"ok": false, "error": '
            '"team_disabled"}}',
            "team_disabled",
            L,
        ),
        (
            "json",
            '{"code": "slack_webapi_rate_limited_error", "retryAfter": 12}',
            "rateLimitedError",
            R,
        ),
        ("native", slack_api_error("token_expired"), "token_expired", L),
        ("native", slack_api_error("ratelimited", 429, **{"Retry-After": "30"}), "ratelimited", R),
        ("native", slack_api_error("not_allowed_token_type"), "not_allowed_token_type", F),
        ("native", websockets.exceptions.ConnectionClosed(None, None), "unknown", R),
    ],
    "telegram": [
        ("bare", 409, "conflict", R),
        ("bare", 401, "unauthorized", L),
        ("bare", 404, "notFound", F),
        ("bare", 429, "tooManyRequests", R),
        ("bare", "read_timeout", "readTimeout", N),
        ("bare", "connect_error", "connectError", R),
        ("string", "409", "conflict", R),
        ("string", "502", "badGateway", R),
        (
            "json",
            f'{{"ok": false, "error_code": 409, "description": "{TELEGRAM_409_POLL}"}}',
            "conflictOtherGetUpdates",
            R,
        ),
        (
            "json",
            f'{{"ok": false, "error_code": 409, "description": "{TELEGRAM_409_WEBHOOK}"}}',
            "conflictWebhookActive",
            F,
        ),
        (
            "json",
            '{"ok": false, "error_code": 409, "description": "Conflict: terminated by '
            'setWebhook request"}',
            "conflictSetWebhook",
            F,
        ),
        (
            "json",
            '{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after '
            '5", "parameters": {"retry_after": 5}}',
            "tooManyRequests",
            R,
        ),
        ("native", Conflict(TELEGRAM_409_POLL), "conflictOtherGetUpdates", R),
        ("native", InvalidToken(), "unauthorized", L),
        ("native", ptb_retry_after(5), "tooManyRequests", R),
        ("native", TimedOut(), "readTimeout", N),
        (
            "native",
            TelegramConflictError(method=GetUpdates(), message=TELEGRAM_409_WEBHOOK),
            "conflictWebhookActive",
            F,
        ),
        (
            "native",
            TelegramRetryAfter(method=GetUpdates(), message="Too Many Requests", retry_after=3),
            "tooManyRequests",
            R,
        ),
    ],
    "matrix": [
        ("bare", "M_UNKNOWN_TOKEN", "unknownToken", L),
        ("bare", "M_USER_LOCKED", "userLocked", R),
        ("bare", "M_LIMIT_EXCEEDED", "limitExceeded", R),
        ("bare", "M_USER_DEACTIVATED", "userDeactivated", F),
        ("bare", 503, "serviceUnavailable", R),
        ("string", " 502 ", "badGateway", R),
        ("string", "connection reset by peer", "networkError", R),
        (
            "json",
            '{"errcode": "M_UNKNOWN_TOKEN", "error": "expired", "soft_logout": true}',
            "softLogout",
            L,
        ),
        (
            "json",
            '{"errcode": "M_USER_LOCKED", "error": "locked", "soft_logout": true}',
            "userLocked",
            R,
        ),
        ("json", '{"errcode": "M_USER_SUSPENDED", "error": "suspended"}', "userSuspended", R),
        ("json", '{"errcode": "M_UNRECOGNIZED", "error": "x", "status": 404}', "unrecognized", F),
        ("json", '{"errcode": "M_MISSING_TOKEN", "error": "x"}', "missingToken", F),
        (
            "native",
            SyncError.from_dict({"errcode": "M_UNKNOWN_TOKEN", "error": "x", "soft_logout": True}),
            "softLogout",
            L,
        ),
        (
            "native",
            SyncError.from_dict({"errcode": "M_UNKNOWN_TOKEN", "error": "x"}),
            "unknownToken",
            L,
        ),
        (
            "native",
            SyncError.from_dict({"errcode": "M_USER_LOCKED", "error": "x", "soft_logout": True}),
            "userLocked",
            R,
        ),
        (
            "native",
            ErrorResponse.from_dict(
                {"errcode": "M_LIMIT_EXCEEDED", "error": "slow", "retry_after_ms": 2000}
            ),
            "limitExceeded",
            R,
        ),
    ],
    "websocket": [
        ("bare", 1000, "normalClosure", R),
        ("bare", 1012, "serviceRestart", R),
        ("bare", 1013, "tryAgainLater", R),
        ("bare", 1008, "policyViolation", F),
        ("bare", 3000, "closeUnauthorized", L),
        ("bare", 3003, "closeForbidden", F),
        ("bare", 3008, "closeTimeout", R),
        ("bare", 4321, "unknown", R),
        ("string", "1006", "abnormalClosure", R),
        ("string", "1009", "messageTooBig", F),
        ("json", '{"status": 1011, "reason": "boom"}', "internalError", R),
        ("json", '{"status": 429, "headers": {"Retry-After": "7"}}', "tooManyRequests", R),
        (
            "native",
            websockets.exceptions.ConnectionClosed(Close(1008, "not allowed"), None),
            "policyViolation",
            F,
        ),
        ("native", websockets.exceptions.ConnectionClosed(None, None), "abnormalClosure", R),
        (
            "native",
            websockets.exceptions.InvalidStatus(Response(401, "Unauthorized", Headers())),
            "unauthorized",
            L,
        ),
        (
            "native",
            trio_websocket.ConnectionClosed(trio_websocket.CloseReason(1012, "restart")),
            "serviceRestart",
            R,
        ),
        ("native", WebSocketClosed(3000, "token expired"), "closeUnauthorized", L),
    ],
    "discord": [
        ("bare", 4004, "authenticationFailed", L),
        ("bare", 4014, "disallowedIntents", F),
        ("bare", 4000, "unknownError", N),
        ("bare", 4009, "sessionTimedOut", N),
        ("bare", 1006, "abnormalClosure", R),
        ("bare", 4999, "unknown", R),
        ("string", "4004", "authenticationFailed", L),
        ("string", "RECONNECT", "Reconnect", N),
        ("string", "INVALID_SESSION", "Invalid Session", N),
        ("json", '{"op": 7, "d": null}', "Reconnect", N),
        ("json", '{"op": 9, "d": true}', "Invalid Session (resumable)", N),
        ("json", '{"op": 9, "d": false}', "Invalid Session", N),
        (
            "native",
            DiscordConnectionClosed(_NO_FRAME, shard_id=None, code=4011),
            "shardingRequired",
            F,
        ),
        ("native", DiscordConnectionClosed(_NO_FRAME, shard_id=None), "noStatus", R),
        ("native", PrivilegedIntentsRequired(3), "disallowedIntents", F),
        ("native", LoginFailure("Improper token has been passed."), "authenticationFailed", L),
        ("native", ReconnectWebSocket(0), "Reconnect", N),
        (
            "native",
            websockets.exceptions.ConnectionClosed(Close(4008, "rate limited"), None),
            "rateLimited",
            R,
        ),
    ],
}

CASES = [
    pytest.param(name, form, raw, rule, verdict, id=f"{name}-{form}-{index}-{rule}")
    for name, rows in GOLDEN.items()
    for index, (form, raw, rule, verdict) in enumerate(rows)
]


@pytest.mark.parametrize(("name", "form", "raw", "rule", "verdict"), CASES)
def test_golden_example(name: str, form: str, raw: object, rule: str, verdict: Verdict) -> None:
    _, found = load_channel(name).classify(raw)
    assert (found.name, found.verdict) == (rule, verdict), f"{name} {form} {raw!r}"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_every_channel_has_fifteen_golden_rows_in_all_four_forms(name: str) -> None:
    rows = GOLDEN[name]
    assert len(rows) >= 15
    assert {form for form, *_ in rows} == set(FORMS)


def test_every_bundled_channel_has_golden_examples() -> None:
    from linkstate import available_channels

    assert set(GOLDEN) == set(available_channels())
