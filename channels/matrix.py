"""Matrix client-server API, the ``/sync`` long poll.

How errors arrive: an HTTP status and a body
``{"errcode": "M_...", "error": "...", "soft_logout"?: bool, "retry_after_ms"?: int}``;
a 429 should also carry a ``Retry-After`` header. The errcode is the
symbolic code the table is keyed by, and ``soft_logout: true`` becomes the
event flag ``soft_logout``. matrix-nio returns (not raises) an
``ErrorResponse`` such as ``SyncError`` whose ``status_code`` attribute holds
the *errcode* and whose ``transport_response`` holds the HTTP response;
:func:`extract` reads both.

``M_USER_LOCKED`` is not a stop: the spec asks a client to keep its session
and keep polling, rate-limited, until the admins lift the lock.

The trap is ``M_UNKNOWN_TOKEN``. With ``soft_logout`` the server merely
expired the access token: log in again *as the same device* and the
encryption keys and room state stay valid. Without it the session and device
are gone, and a client that keeps its old store and retries gets nowhere.
Both stop as ``relink``, with different instructions.
"""

from __future__ import annotations

from typing import Final

from linkstate._channel import Channel
from linkstate._events import CloseEvent
from linkstate._verdicts import CloseTable, Rule, Verdict
from linkstate.plugin import Facts, extract_with, facts, get, is_a, retry_after_header, text

__all__ = ["CHANNEL", "SOFT_LOGOUT", "TABLE", "USER_LOCKED_FLOOR", "extract"]

SOFT_LOGOUT: Final = "soft_logout"
"""The event flag for an ``M_UNKNOWN_TOKEN`` that came with ``soft_logout: true``."""

_RESET: Final = "then run `{reset_command}`. Monitoring of this link has stopped."

USER_LOCKED_FLOOR: Final = 60.0
"""Seconds between polls while the account is locked: the spec asks for rate-limited
requests, and a lock lifted by an admin need not be noticed within the second."""


def _fatal(code: str, name: str, meaning: str, what: str) -> Rule:
    """A row that no retry can fix: the account or the configuration must change."""
    return Rule(
        Verdict.fatal,
        name,
        meaning,
        code=code,
        message=f"Matrix homeserver answered {code} on link {{link}}: {meaning}. {what}, {_RESET}",
    )


# Rules this table keeps (from the Matrix client-server spec, matrix-org/matrix-spec
# content/client-server-api/_index.md: "Common error codes", "Rate limiting",
# "Soft logout", "Account locking", "Account suspension"):
# 1. Rows are keyed by errcode; HTTP 5xx without a known errcode are retry.
# 2. M_UNKNOWN_TOKEN is relink either way, but the soft_logout row comes first
#    and says to keep the device and its store; the plain row says the
#    session is destroyed ("Soft logout"). matrix-js-sdk refreshes the token
#    once and then stops syncing (src/sync.ts shouldAbortSync); matrix-nio
#    keeps polling: the stop wins, a dead token cannot sync.
# 3. M_MISSING_TOKEN, M_USER_DEACTIVATED and M_UNRECOGNIZED are fatal:
#    configuration or the account must change.
# 4. M_USER_LOCKED is retry with a USER_LOCKED_FLOOR, never a stop: "Account
#    locking" (spec v1.12) says servers answer 401 M_USER_LOCKED with
#    soft_logout true and SHOULD NOT invalidate the token, and clients SHOULD
#    keep the session and "continue to make rate-limited requests to /sync"
#    to detect when the lock lifts. It is transient: a lock lasts as long as
#    the admins want, so neither refusal counting nor escalation applies.
#    Rows are keyed by errcode, so the soft_logout flag that comes with it
#    cannot lead it to M_UNKNOWN_TOKEN's rows.
# 5. M_USER_SUSPENDED is retry: "Account suspension" (v1.13) forbids some
#    actions and SHOULD still permit /sync, so on /sync it is not a reason to stop.
# 6. M_LIMIT_EXCEEDED is retry; Retry-After, else retry_after_ms, is the floor
#    ("Rate limiting": servers SHOULD send Retry-After; retry_after_ms is
#    deprecated since v1.10; matrix-js-sdk MatrixError.getRetryAfterMs prefers
#    the header too).
TABLE: Final = CloseTable(
    channel="matrix",
    rules=(
        Rule(
            Verdict.relink,
            "softLogout",
            "the access token expired (soft logout); the device and its keys stay valid",
            code="M_UNKNOWN_TOKEN",
            flag=SOFT_LOGOUT,
            message=(
                "Matrix homeserver answered {code} with soft_logout on link {link}: the access "
                "token expired but the session survives. Log in again (or refresh the token) "
                "with the SAME device_id, and keep the device's store and encryption keys, "
                f"{_RESET}"
            ),
        ),
        Rule(
            Verdict.relink,
            "unknownToken",
            "the access token is invalid and the session is destroyed",
            code="M_UNKNOWN_TOKEN",
            message=(
                "Matrix homeserver answered {code} on link {link}: the access token is invalid "
                "and the session (device) was destroyed, for example by a logout elsewhere. "
                "Log in again to create a new device; the old device's store and keys no "
                f"longer apply, so start a fresh store and verify the new device, {_RESET}"
            ),
        ),
        _fatal(
            "M_MISSING_TOKEN",
            "missingToken",
            "no access token was sent",
            "Configure the access token the gateway sends",
        ),
        Rule(
            Verdict.retry,
            "userLocked",
            "the admins locked the account; keep the session and poll, rate-limited, until "
            "the lock lifts (spec: Account locking)",
            code="M_USER_LOCKED",
            min_delay=USER_LOCKED_FLOOR,
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "userSuspended",
            "the account is suspended; /sync still works (spec: Account suspension)",
            code="M_USER_SUSPENDED",
            transient=True,
        ),
        _fatal(
            "M_USER_DEACTIVATED",
            "userDeactivated",
            "the account was deactivated",
            "Use another account, or ask the homeserver's admins to reactivate this one",
        ),
        _fatal(
            "M_UNRECOGNIZED",
            "unrecognized",
            "the server does not know this endpoint (usually 404: wrong base URL)",
            "Check the homeserver base URL (use the client-server API URL, as found in "
            "/.well-known/matrix/client)",
        ),
        Rule(
            Verdict.retry,
            "limitExceeded",
            "rate limited; wait at least the server's delay",
            code="M_LIMIT_EXCEEDED",
            transient=True,
        ),
        Rule(Verdict.retry, "internalServerError", "server side", status=500, transient=True),
        Rule(
            Verdict.retry,
            "badGateway",
            "server side, often a reverse proxy",
            status=502,
            transient=True,
        ),
        Rule(Verdict.retry, "serviceUnavailable", "server side", status=503, transient=True),
        Rule(
            Verdict.retry,
            "gatewayTimeout",
            "server side, often a reverse proxy",
            status=504,
            transient=True,
        ),
    ),
    unknown=Rule(
        Verdict.retry,
        "unknown",
        "an errcode or status this table does not list; flap detection escalates",
    ),
    no_status=Rule(Verdict.retry, "networkError", "a timeout or connection error"),
)


def _body(raw: object) -> Facts | None:
    """An error body; adds the ``soft_logout`` flag, which the generic reading does not know."""
    if not isinstance(raw, dict) or "errcode" not in raw:
        return None
    return facts(
        status=raw.get("status"),
        code=raw.get("errcode"),
        reason=text(raw.get("error")),
        retry_after=retry_after_header(raw.get("headers")),
        retry_after_ms=raw.get("retry_after_ms"),
        flags=[SOFT_LOGOUT] if raw.get("soft_logout") is True else [],
    )


def _nio(raw: object) -> Facts | None:
    """Read matrix-nio's ``ErrorResponse`` family; its ``status_code`` holds the errcode."""
    if not is_a(raw, "nio", "ErrorResponse"):
        return None
    transport = get(raw, "transport_response")
    return facts(
        status=get(transport, "status"),
        code=text(get(raw, "status_code")),
        reason=text(get(raw, "message")) or str(raw),
        retry_after=retry_after_header(get(transport, "headers")),
        retry_after_ms=get(raw, "retry_after_ms"),
        flags=[SOFT_LOGOUT] if get(raw, "soft_logout") is True else [],
    )


def extract(raw: object) -> CloseEvent:
    """Read a Matrix error body or a matrix-nio error response; never raises."""
    return extract_with(raw, (_body, _nio))


CHANNEL: Final = Channel(
    name="matrix",
    title="Matrix client-server /sync",
    table=TABLE,
    extract=extract,
)
"""The Matrix channel, registered under the ``linkstate.channels`` entry point."""
