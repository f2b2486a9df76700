"""Slack Socket Mode.

How closes arrive: Slack sends a JSON frame before it closes the socket,
``{"type": "disconnect", "reason": "refresh_requested"}``; opening a socket
(``apps.connections.open``) fails with an API error body
``{"ok": false, "error": "invalid_auth"}``, which slack_sdk raises as
``SlackApiError`` with the body in ``.response`` (and the HTTP status and
``Retry-After`` header beside it). All three shapes give the reason or error
as a symbolic code; a bare code such as ``too_many_websockets`` works too.

Other clients report the same error in other shapes, which :data:`SHAPES`
declares for this channel: node-slack-sdk's ``WebAPIPlatformError`` puts the
error in ``.data.error`` beside its own ``code``
(``slack_webapi_platform_error``; slackapi/node-slack-sdk
packages/web-api/src/errors.ts lines 38-46), its message is
``An API error occurred: account_inactive``, which is all that some gateways
pass on (OpenClaw matches its auth errors in that text,
extensions/slack/src/monitor/reconnect-policy.ts ``SLACK_AUTH_ERROR_RE``),
python's ``str(SlackApiError)`` ends in ``{'ok': False, 'error': ...}``
(slack_sdk/errors/__init__.py), and a proxy may forward a body without
``"ok"``, ``{"error": "invalid_auth"}``.

The trap: python slack_sdk retries an invalid or revoked token forever. Here
the auth errors are ``relink`` at once. And ``too_many_websockets`` means
other copies of the app hold the app's ten sockets: it is retried with a
30 s floor, and after three in a row it stops as ``fatal`` (the row's
``escalate_after``; see :mod:`linkstate`), because it often arrives while
connecting, where flap detection, which counts closes of open connections,
never sees it.
"""

from __future__ import annotations

from typing import Final

from linkstate._channel import Channel
from linkstate._events import CloseEvent, Shapes
from linkstate._verdicts import CloseTable, Rule, Verdict
from linkstate.channels import websocket
from linkstate.plugin import Facts, extract_with, facts, get, is_a, retry_after_header, text

__all__ = ["CHANNEL", "SHAPES", "TABLE", "TOO_MANY_WEBSOCKETS_FLOOR", "extract"]

TOO_MANY_WEBSOCKETS_FLOOR: Final = 30.0
"""Seconds to wait at least after ``too_many_websockets``: time for another instance to go."""

_TOO_MANY_WEBSOCKETS_LIMIT: Final = 3

_APP_SETTINGS: Final = "the app's settings at https://api.slack.com/apps"
_RESET: Final = "then run `{reset_command}`. Monitoring of this link has stopped."


def _auth(code: str, meaning: str) -> Rule:
    """An auth error: the app-level token (``xapp-``) must be replaced by a person."""
    return Rule(
        Verdict.relink,
        code,
        meaning,
        code=code,
        message=(
            f"Slack refused the app token for link {{link}} ({code}: {meaning}). Generate a "
            f"new app-level token with the connections:write scope in {_APP_SETTINGS} (Basic "
            f"Information → App-Level Tokens), put it in the gateway's configuration, {_RESET}"
        ),
    )


# Rules this table keeps (from Slack's Socket Mode docs and what node
# @slack/socket-mode does with each reason):
# 1. Rows are keyed by Slack's symbolic reason or error code; HTTP statuses
#    matter only through Retry-After.
# 2. The auth errors are relink: the app token is bad, expired or revoked,
#    and only a new token helps. Sources: Slack's common Web API errors (the
#    apps.connections.open reference, docs.slack.dev); node @slack/socket-mode
#    stops on not_authed, invalid_auth, account_inactive,
#    user_removed_from_team and team_disabled
#    (packages/socket-mode/src/UnrecoverableSocketModeStartError.ts); OpenClaw
#    also stops on token_revoked, token_expired, org_login_required,
#    team_access_not_granted, missing_scope and invalid_token
#    (SLACK_AUTH_ERROR_RE). Where they disagree (node retries token_revoked,
#    token_expired and missing_scope; python retries them all), the stop wins:
#    each repeats unchanged at connect time, which is issue 12's retry storm.
# 2a. not_allowed_token_type is fatal: a bot or user token (xoxb-, xoxp-) was
#    configured where Socket Mode needs an app-level token (xapp-); nobody's
#    current code stops on it, OpenClaw's PR #38130 proposed it after a storm
#    of 1,700 errors in 9 hours. A person must change the configuration.
# 3. link_disabled is fatal: Socket Mode was switched off in the app settings
#    (Slack's Socket Mode docs, disconnect events). python slack_sdk and node
#    reconnect on every disconnect frame (slack_sdk/socket_mode/client.py,
#    SocketModeClient.ts): reconnecting to a switched-off feature cannot help.
# 4. refresh_requested and warning are Slack recycling the socket: retry_now
#    (node-slack-sdk PR #1762 handles the two alike; python reconnects at once).
# 5. too_many_websockets is retry with a 30 s floor, escalating to fatal after
#    three in a row without a healthy connection in between: Slack allows ten
#    sockets per app (node-slack-sdk issue #1654), so more are other copies of
#    the app, and python's aiohttp client closes the old socket first for it
#    (slack_sdk/socket_mode/aiohttp/__init__.py).
# 6. ratelimited is retry; the Retry-After header is the floor. node's
#    WebAPIRateLimitedError (code slack_webapi_rate_limited_error, retryAfter in
#    seconds) is the same; its WebAPIRequestError and WebAPIHTTPError are the
#    network and HTTP failures beneath the API (errors.ts 48-97): retry, because
#    an outage ends (node gives up on them; python and OpenClaw retry).
# 7. A close or ping timeout without a frame is a network event: retry.
TABLE: Final = CloseTable(
    channel="slack",
    rules=(
        Rule(
            Verdict.retry_now,
            "refresh_requested",
            "routine socket recycling",
            code="refresh_requested",
        ),
        Rule(
            Verdict.retry_now,
            "warning",
            "the socket will be recycled in about 10 s",
            code="warning",
        ),
        Rule(
            Verdict.fatal,
            "link_disabled",
            "Socket Mode is switched off in the app settings",
            code="link_disabled",
            message=(
                "Slack closed link {link} with link_disabled: Socket Mode is switched off for "
                f"this app. Turn Socket Mode on in {_APP_SETTINGS} (Settings → Socket Mode), "
                f"{_RESET}"
            ),
        ),
        Rule(
            Verdict.retry,
            "too_many_websockets",
            "more than 10 sockets for this app: other instances are running",
            code="too_many_websockets",
            min_delay=TOO_MANY_WEBSOCKETS_FLOOR,
            escalate_after=_TOO_MANY_WEBSOCKETS_LIMIT,
            message=(
                "Slack refused link {link} with too_many_websockets "
                f"{_TOO_MANY_WEBSOCKETS_LIMIT} times in a row: other instances of this app "
                "hold all of its 10 Socket Mode connections. Find and stop the extra "
                "instances (old deploys, a developer's laptop, a second replica), "
                f"{_RESET}"
            ),
        ),
        _auth("invalid_auth", "the token is not valid"),
        _auth("not_authed", "no token was sent"),
        _auth("account_inactive", "the token's user or workspace was deactivated"),
        _auth("token_revoked", "the token was revoked"),
        _auth("user_removed_from_team", "the token's user was removed from the workspace"),
        _auth("team_disabled", "the workspace was disabled"),
        _auth("token_expired", "the token expired; rotate or refresh it"),
        _auth("invalid_token", "the token is malformed"),
        _auth("missing_scope", "the token lacks the connections:write scope"),
        _auth("org_login_required", "the workspace now needs an organisation login"),
        _auth("team_access_not_granted", "the token was not granted access to this workspace"),
        Rule(
            Verdict.fatal,
            "not_allowed_token_type",
            "a bot or user token (xoxb-, xoxp-) where an app-level token (xapp-) is needed",
            code="not_allowed_token_type",
            message=(
                "Slack refused link {link} with not_allowed_token_type: the gateway sent a bot "
                "or user token (xoxb-, xoxp-), and Socket Mode needs the app-level token "
                f"(xapp-, scope connections:write) from {_APP_SETTINGS} (Basic Information → "
                f"App-Level Tokens). Configure that token, {_RESET}"
            ),
        ),
        Rule(
            Verdict.retry,
            "ratelimited",
            "HTTP 429; wait at least Retry-After",
            code="ratelimited",
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "rateLimitedError",
            "node-slack-sdk's rate-limit error; retryAfter is the floor",
            code="slack_webapi_rate_limited_error",
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "requestError",
            "node-slack-sdk: the request never reached Slack (a network error)",
            code="slack_webapi_request_error",
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "httpError",
            "node-slack-sdk: an HTTP error beneath the API (a proxy, a 5xx)",
            code="slack_webapi_http_error",
            transient=True,
        ),
    ),
    unknown=Rule(
        Verdict.retry, "unknown", "a reason this table does not list; flap detection escalates"
    ),
    no_status=Rule(Verdict.retry, "noFrame", "closed or timed out without a disconnect frame"),
)


def _frame_or_body(raw: object) -> Facts | None:
    """A disconnect frame (``reason``) or an API error body (``ok: false``, ``error``)."""
    if not isinstance(raw, dict):
        return None
    if raw.get("type") == "disconnect":
        reason = text(raw.get("reason"))
        return facts(code=reason, reason=reason or "disconnect", initiator="remote")
    if raw.get("ok") is False:
        error = text(raw.get("error"))
        return facts(
            code=error,
            reason=error,
            status=raw.get("status"),
            retry_after=retry_after_header(raw.get("headers")),
        )
    return None


def _slack_sdk(raw: object) -> Facts | None:
    """slack_sdk's ``SlackApiError``: the body, HTTP status and headers are on ``.response``."""
    if not is_a(raw, "slack_sdk", "SlackApiError"):
        return None
    response = get(raw, "response")
    body = get(response, "data")
    error = text(get(body if isinstance(body, dict) else response, "error"))
    return facts(
        code=error,
        reason=error or str(raw),
        status=get(response, "status_code"),
        retry_after=retry_after_header(get(response, "headers")),
    )


# Slack's error codes are lower_snake_case identifiers (the Web API error lists).
_SLACK_CODE: Final = r"([a-z][a-z0-9_]{1,63})"

SHAPES: Final = Shapes(
    # node's WebAPIPlatformError.data.error comes before its own class-level
    # code; a bare body without "ok" keeps the error at the top.
    code_paths=(("data", "error"), ("error",)),
    code_patterns=(
        # node-slack-sdk's message (errors.ts platformErrorFromResult).
        rf"An API error occurred: {_SLACK_CODE}",
        # python slack_sdk's str(SlackApiError): "The server responded with: {...}".
        rf"'error': '{_SLACK_CODE}'",
    ),
)
"""Where Slack's other clients put the error code: node's ``data.error``, a bare
``{"error": ...}``, and the code inside an error message's text."""


def extract(raw: object) -> CloseEvent:
    """Read a Slack disconnect frame, API error body or slack_sdk error; never raises."""
    return extract_with(raw, (_frame_or_body, _slack_sdk), websocket.extract)


CHANNEL: Final = Channel(
    name="slack",
    title="Slack Socket Mode",
    table=TABLE,
    extract=extract,
    shapes=SHAPES,
)
"""The Slack Socket Mode channel, registered under the ``linkstate.channels`` entry point."""
