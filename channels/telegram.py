"""Telegram Bot API, long polling with ``getUpdates``.

How errors arrive: an HTTP status and a body
``{"ok": false, "error_code": N, "description": "...", "parameters": {"retry_after": s}}``,
which :func:`linkstate.normalise` reads as it is. python-telegram-bot and
aiogram raise typed exceptions instead and keep only the description, so
:func:`extract` puts the status back from the exception class
(``Conflict`` is 409, ``TelegramRetryAfter`` is 429...). Timeouts get symbolic
codes: ``read_timeout`` when a long poll outlived its read timeout (normal:
poll again) and ``connect_error`` when the API could not be reached.

The trap is 409 "Conflict: terminated by other getUpdates request": another
process polls with the same token, and Telegram lets only the newest poll
live. It also comes from our own restart: the previous run's long poll stays
open until its timeout. So it is ``retry`` with a floor of the long-poll
timeout (by then our own old poll has ended), and ``fatal`` after
:data:`CONFLICT_LIMIT` in a row: then another instance really is polling.
A webhook 409 stays a stop. The 409s differ only in their description, so
the rows are narrowed with ``reason_contains``.
"""

from __future__ import annotations

from typing import Final

from linkstate._channel import Channel
from linkstate._events import CloseEvent
from linkstate._verdicts import CloseTable, Rule, Verdict
from linkstate.plugin import Facts, extract_with, facts, first_class, get, is_a, seconds, text

__all__ = ["CHANNEL", "CONFLICT_FLOOR", "CONFLICT_LIMIT", "TABLE", "extract"]

_RESET: Final = "then run `{reset_command}`. Monitoring of this link has stopped."
_BOTFATHER: Final = "@BotFather (/token, or /revoke for a fresh one)"

CONFLICT_FLOOR: Final = 30.0
"""Seconds between retries of a getUpdates 409: a long poll's usual timeout
(python-telegram-bot's default), so the previous run's poll has ended."""
CONFLICT_LIMIT: Final = 5
"""The getUpdates 409 that many times in a row is ``fatal``: another instance polls."""
_ANOTHER_POLLER: Final = (
    "Telegram status {status} on link {link}: {reason}, "
    f"{CONFLICT_LIMIT} times in a row. Another instance may be polling getUpdates "
    "with the same bot token; Telegram lets only one poller live. Stop the other "
    "instance (an old deploy, a second replica, a developer's machine), or give one "
    f"of them another bot token, {_RESET}"
)

# Rules this table keeps (from the Bot API docs and how the common client
# libraries handle each error):
# 1. A webhook 409 is fatal: polling cannot coexist with a webhook. A 409
#    between pollers (and an unknown 409) is retry, at least CONFLICT_FLOOR
#    apart, and fatal the CONFLICT_LIMIT-th time in a row: python-telegram-bot
#    (telegram/ext/_utils/networkloop.py lines 185-193, 1 s doubling to 30 s;
#    its long-poll timeout in telegram/ext/_updater.py line 384), aiogram
#    (aiogram/dispatcher/dispatcher.py lines 198-233, backoff 1-5 s) and
#    OpenClaw's polling session (polling-session.ts) all retry it unbounded;
#    the bound is ours, so two copies of a bot do not kick each other forever.
#    The webhook 409s: python-telegram-bot deletes the webhook before it
#    polls (telegram/ext/_updater.py bootstrap, delete_webhook) and OpenClaw's
#    polling session does too, so neither ever stops on one; aiogram retries.
#    This channel's transports do not delete a webhook someone set, so the
#    webhook 409s stop: polling would only fight that someone's intent.
# 2. 401 is relink: the token was revoked. python-telegram-bot raises
#    InvalidToken for 401 and 404 (telegram/request/_baserequest.py) and its
#    network_retry_loop aborts on it; OpenClaw stops; aiogram retries forever
#    (aiogram/dispatcher/dispatcher.py _listen_updates catches everything):
#    the stop wins, a revoked token never comes back. 404 is fatal: the token
#    is malformed or the API base URL is wrong (the URL embeds the token).
# 3. 429 is retry with parameters.retry_after as the floor (Bot API,
#    "ResponseParameters": retry_after is the seconds left to wait;
#    python-telegram-bot waits retry_after + 0.5 s, aiogram's polling ignores
#    it); 5xx and network errors are retry; a long-poll read timeout is
#    retry_now (the poll simply ended: poll again).
TABLE: Final = CloseTable(
    channel="telegram",
    rules=(
        Rule(
            Verdict.retry,
            "conflictOtherGetUpdates",
            "another poll with the same token, maybe our own previous run's; the newest wins",
            status=409,
            reason_contains="terminated by other getUpdates request",
            min_delay=CONFLICT_FLOOR,
            escalate_after=CONFLICT_LIMIT,
            transient=True,
            message=_ANOTHER_POLLER,
        ),
        Rule(
            Verdict.fatal,
            "conflictWebhookActive",
            "getUpdates is refused while a webhook is set",
            status=409,
            reason_contains="webhook is active",
            message=(
                "Telegram status {status} on link {link}: a webhook is set for this bot, so "
                "long polling is refused ({reason}). Remove it with deleteWebhook if this "
                f"gateway should poll, or run the gateway in webhook mode, {_RESET}"
            ),
        ),
        Rule(
            Verdict.fatal,
            "conflictSetWebhook",
            "someone switched the bot to a webhook while we polled",
            status=409,
            reason_contains="terminated by setWebhook request",
            message=(
                "Telegram status {status} on link {link}: the bot was switched to a webhook "
                "while this gateway polled ({reason}). Decide which one should receive "
                "updates; to poll, remove the webhook with deleteWebhook and stop whatever "
                f"set it, {_RESET}"
            ),
        ),
        Rule(
            Verdict.retry,
            "conflict",
            "another conflict between pollers, treated as the getUpdates one",
            status=409,
            min_delay=CONFLICT_FLOOR,
            escalate_after=CONFLICT_LIMIT,
            transient=True,
            message=_ANOTHER_POLLER,
        ),
        Rule(
            Verdict.relink,
            "unauthorized",
            "the bot token was revoked",
            status=401,
            message=(
                "Telegram status {status} on link {link}: the bot token was refused "
                f"({{reason}}); it was revoked or replaced. Get the current token from "
                f"{_BOTFATHER}, put it in the gateway's configuration, {_RESET}"
            ),
        ),
        Rule(
            Verdict.fatal,
            "notFound",
            "the token is malformed or the API base URL is wrong",
            status=404,
            message=(
                "Telegram status {status} on link {link}: the Bot API answered Not Found, so "
                "the bot token is malformed or the API base URL is wrong. Check both in the "
                f"gateway's configuration (the token looks like 123456:ABC-...), {_RESET}"
            ),
        ),
        Rule(
            Verdict.retry,
            "tooManyRequests",
            "flood control; wait at least retry_after",
            status=429,
            transient=True,
        ),
        Rule(Verdict.retry, "internalServerError", "server side", status=500, transient=True),
        Rule(
            Verdict.retry,
            "badGateway",
            "server side, often during Telegram restarts",
            status=502,
            transient=True,
        ),
        Rule(Verdict.retry, "serviceUnavailable", "server side", status=503, transient=True),
        Rule(Verdict.retry, "gatewayTimeout", "server side", status=504, transient=True),
        Rule(
            Verdict.retry_now,
            "readTimeout",
            "a long poll outlived its read timeout; normal",
            code="read_timeout",
        ),
        Rule(
            Verdict.retry,
            "connectError",
            "the API could not be reached (connect, DNS, TLS)",
            code="connect_error",
        ),
    ),
    unknown=Rule(
        Verdict.retry, "unknown", "a status this table does not list; flap detection escalates"
    ),
    no_status=Rule(Verdict.retry, "networkError", "a network error without a status"),
)

# The status each library's exception class stands for (most derived class wins).
_PTB_STATUS: Final = {
    "Conflict": 409,
    "RetryAfter": 429,
    "Forbidden": 403,
    "EndPointNotFound": 404,
    "BadRequest": 400,
}
_AIOGRAM_STATUS: Final = {
    "TelegramConflictError": 409,
    "TelegramUnauthorizedError": 401,
    "TelegramNotFound": 404,
    "TelegramRetryAfter": 429,
    "TelegramForbiddenError": 403,
    "TelegramBadRequest": 400,
    "TelegramEntityTooLarge": 413,
    "TelegramServerError": 500,
}
# httpx's timeout class names, under python-telegram-bot's TimedOut.
_READ_TIMEOUTS: Final = frozenset({"ReadTimeout"})


def _python_telegram_bot(raw: object) -> Facts | None:
    """python-telegram-bot's ``telegram.error`` exceptions, as its request layer raises them."""
    if not is_a(raw, "telegram", "TelegramError"):
        return None
    message = text(get(raw, "message")) or str(raw)
    if is_a(raw, "telegram", "InvalidToken"):
        # python-telegram-bot raises InvalidToken for both 401 and 404 and for
        # a rejected token at start-up (with the original as __cause__).
        cause = text(get(get(raw, "__cause__"), "message")) or ""
        not_found = "not found" in f"{message} {cause}".lower()
        return facts(status=404 if not_found else 401, reason=message)
    if is_a(raw, "telegram", "TimedOut"):
        cause = type(get(raw, "__cause__")).__name__
        slow_read = cause in _READ_TIMEOUTS or get(raw, "__cause__") is None
        return facts(code="read_timeout" if slow_read else "connect_error", reason=message)
    status = first_class(raw, "telegram", _PTB_STATUS)
    retry_after = seconds(get(raw, "retry_after")) if status == 429 else None
    if status is None and is_a(raw, "telegram", "NetworkError") and get(raw, "__cause__"):
        # An httpx transport error underneath; without one it was a server answer (5xx).
        return facts(code="connect_error", reason=message)
    return facts(status=status, reason=message, retry_after=retry_after)


def _aiogram(raw: object) -> Facts | None:
    """Read aiogram's ``TelegramAPIError`` family; ``.message`` holds the server's description."""
    if not is_a(raw, "aiogram", "TelegramAPIError"):
        return None
    message = text(get(raw, "message")) or str(raw)
    status = first_class(raw, "aiogram", _AIOGRAM_STATUS)
    if status is None and is_a(raw, "aiogram", "TelegramNetworkError"):
        timed_out = "timeout" in message.lower()
        return facts(code="read_timeout" if timed_out else "connect_error", reason=message)
    return facts(status=status, reason=message, retry_after=get(raw, "retry_after"))


def extract(raw: object) -> CloseEvent:
    """Read a Bot API error response or a python-telegram-bot / aiogram error; never raises."""
    return extract_with(raw, (_python_telegram_bot, _aiogram))


CHANNEL: Final = Channel(
    name="telegram",
    title="Telegram Bot API",
    table=TABLE,
    extract=extract,
)
"""The Telegram Bot API channel, registered under the ``linkstate.channels`` entry point."""
