"""Every row of the Discord, Slack, Telegram and Matrix tables, reached through native input.

The expectations below restate each platform's documented close codes (see
each channel module's table rules): one native example per row, the row it
must reach and that row's verdict. The
tests check the mapping both ways: every expectation reaches its row, and
every row of every table (defaults included) has an expectation, so a row
cannot be added, dropped or changed without this file noticing.
"""

from __future__ import annotations

import string

import pytest

from linkstate._channel import Channel, available_channels, load_channel
from linkstate._verdicts import Rule, Verdict

R, N, L, F = Verdict.retry, Verdict.retry_now, Verdict.relink, Verdict.fatal


def tg(code: int, description: str = "x", **extra: object) -> dict[str, object]:
    """A Telegram Bot API error response."""
    return {"ok": False, "error_code": code, "description": description, **extra}


def mx(errcode: str, **extra: object) -> dict[str, object]:
    """A Matrix error body."""
    return {"errcode": errcode, "error": "x", **extra}


def slack_api(error: str) -> dict[str, object]:
    """A Slack Web API error body."""
    return {"ok": False, "error": error}


def slack_frame(reason: str) -> dict[str, object]:
    """A Slack Socket Mode disconnect frame."""
    return {"type": "disconnect", "reason": reason}


# channel -> [(native input, rule name, verdict)]
EXPECTED: dict[str, list[tuple[object, str, Verdict]]] = {
    "discord": [
        (4000, "unknownError", N),
        (4001, "unknownOpcode", R),
        (4002, "decodeError", R),
        (4003, "notAuthenticated", N),
        (4004, "authenticationFailed", L),
        (4005, "alreadyAuthenticated", N),
        (4007, "invalidSeq", N),
        (4008, "rateLimited", R),
        (4009, "sessionTimedOut", N),
        (4010, "invalidShard", F),
        (4011, "shardingRequired", F),
        (4012, "invalidApiVersion", F),
        (4013, "invalidIntents", F),
        (4014, "disallowedIntents", F),
        (1000, "normalClosure", R),
        (1001, "goingAway", R),
        (1006, "abnormalClosure", R),
        ({"op": 7, "d": None}, "Reconnect", N),
        ({"op": 9, "d": True}, "Invalid Session (resumable)", N),
        ({"op": 9, "d": False}, "Invalid Session", N),
        (4999, "unknown", R),
        ({"code": -1, "reason": ""}, "noStatus", R),
    ],
    "slack": [
        (slack_frame("refresh_requested"), "refresh_requested", N),
        (slack_frame("warning"), "warning", N),
        (slack_frame("link_disabled"), "link_disabled", F),
        (slack_frame("too_many_websockets"), "too_many_websockets", R),
        (slack_api("invalid_auth"), "invalid_auth", L),
        (slack_api("not_authed"), "not_authed", L),
        (slack_api("account_inactive"), "account_inactive", L),
        (slack_api("token_revoked"), "token_revoked", L),
        (slack_api("user_removed_from_team"), "user_removed_from_team", L),
        (slack_api("team_disabled"), "team_disabled", L),
        (slack_api("token_expired"), "token_expired", L),
        (slack_api("invalid_token"), "invalid_token", L),
        (slack_api("missing_scope"), "missing_scope", L),
        (slack_api("org_login_required"), "org_login_required", L),
        (slack_api("team_access_not_granted"), "team_access_not_granted", L),
        (slack_api("not_allowed_token_type"), "not_allowed_token_type", F),
        (slack_api("ratelimited"), "ratelimited", R),
        (
            {"code": "slack_webapi_rate_limited_error", "retryAfter": 7},
            "rateLimitedError",
            R,
        ),
        ({"code": "slack_webapi_request_error", "original": {}}, "requestError", R),
        ({"code": "slack_webapi_http_error", "statusCode": 502}, "httpError", R),
        (slack_frame("something_new"), "unknown", R),
        ({"message": "ping timeout"}, "noFrame", R),
    ],
    "telegram": [
        (
            tg(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one "
                "bot instance is running",
            ),
            "conflictOtherGetUpdates",
            R,
        ),
        (
            tg(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            ),
            "conflictWebhookActive",
            F,
        ),
        (tg(409, "Conflict: terminated by setWebhook request"), "conflictSetWebhook", F),
        (tg(409, "Conflict: something new"), "conflict", R),
        (tg(401, "Unauthorized"), "unauthorized", L),
        (tg(404, "Not Found"), "notFound", F),
        (
            tg(429, "Too Many Requests: retry after 5", parameters={"retry_after": 5}),
            "tooManyRequests",
            R,
        ),
        (tg(500, "Internal Server Error"), "internalServerError", R),
        (tg(502, "Bad Gateway"), "badGateway", R),
        (tg(503, "Service Unavailable"), "serviceUnavailable", R),
        (tg(504, "Gateway Timeout"), "gatewayTimeout", R),
        ("read_timeout", "readTimeout", N),
        ("connect_error", "connectError", R),
        (tg(418, "I'm a teapot"), "unknown", R),
        ({"description": "connection reset by peer"}, "networkError", R),
    ],
    "matrix": [
        (mx("M_UNKNOWN_TOKEN", soft_logout=True), "softLogout", L),
        (mx("M_UNKNOWN_TOKEN", soft_logout=False), "unknownToken", L),
        (mx("M_MISSING_TOKEN"), "missingToken", F),
        (mx("M_USER_LOCKED", soft_logout=True), "userLocked", R),
        (mx("M_USER_SUSPENDED", status=403), "userSuspended", R),
        (mx("M_USER_DEACTIVATED"), "userDeactivated", F),
        (mx("M_UNRECOGNIZED", status=404), "unrecognized", F),
        (mx("M_LIMIT_EXCEEDED", retry_after_ms=1500), "limitExceeded", R),
        (mx("M_UNKNOWN", status=500), "internalServerError", R),
        (mx("M_UNKNOWN", status=502), "badGateway", R),
        (mx("M_UNKNOWN", status=503), "serviceUnavailable", R),
        (mx("M_UNKNOWN", status=504), "gatewayTimeout", R),
        (mx("M_SOMETHING_NEW", status=400), "unknown", R),
        ({"error": "timed out"}, "networkError", R),
    ],
}
CHANNELS = tuple(EXPECTED)
CASES = [
    pytest.param(name, raw, rule, verdict, id=f"{name}-{rule}")
    for name, cases in EXPECTED.items()
    for raw, rule, verdict in cases
]


def rows(name: str) -> list[Rule]:
    return list(load_channel(name).table.rows())


ALL_ROWS = [
    pytest.param(name, rule, id=f"{name}-{rule.label}") for name in CHANNELS for rule in rows(name)
]


@pytest.mark.parametrize(("name", "raw", "rule", "verdict"), CASES)
def test_native_input_reaches_its_row(name: str, raw: object, rule: str, verdict: Verdict) -> None:
    _, found = load_channel(name).classify(raw)
    assert (found.name, found.verdict) == (rule, verdict)


@pytest.mark.parametrize(("name", "rule"), ALL_ROWS)
def test_every_row_has_an_expectation(name: str, rule: Rule) -> None:
    expected = {row: verdict for _, row, verdict in EXPECTED[name]}
    assert rule.name in expected, f"{name} row {rule.label} is not in the reference expectations"
    assert rule.verdict is expected[rule.name]


@pytest.mark.parametrize(("name", "rule"), ALL_ROWS)
def test_every_row_says_what_it_means(name: str, rule: Rule) -> None:
    assert len(rule.meaning) >= 8, f"{name} row {rule.label} needs a meaning"


@pytest.mark.parametrize(("name", "rule"), ALL_ROWS)
def test_every_stop_message_names_the_link_and_the_way_out(name: str, rule: Rule) -> None:
    if rule.verdict.retryable and rule.escalate_after is None:
        assert rule.message is None
        return
    assert rule.message is not None
    fields = {f for _, f, _, _ in string.Formatter().parse(rule.message) if f}
    assert "link" in fields
    assert "`{reset_command}`" in rule.message
    assert "has stopped" in rule.message


@pytest.mark.parametrize("name", available_channels())
def test_no_message_spells_out_a_command_line_by_hand(name: str) -> None:
    for rule in load_channel(name).table.rows():
        text = rule.message or ""
        assert "linkstate reset" not in text and "linkstate relink" not in text, (
            f"{name} row {rule.label}: name the command with {{reset_command}} or "
            "{relink_command}; the framework spells it"
        )


@pytest.mark.parametrize("name", CHANNELS)
def test_channel_is_registered_and_named(name: str) -> None:
    assert name in available_channels()
    channel = load_channel(name)
    assert isinstance(channel, Channel)
    assert channel.name == channel.table.channel == name


def test_discord_4004_message_says_where_to_get_a_token() -> None:
    channel = load_channel("discord")
    event, rule = channel.classify(4004)
    message = rule.operator_message(event, link="bot-1", channel="discord")
    assert "bot-1" in message and "Developer Portal" in message and "4004" in message


def test_telegram_other_getupdates_message_names_the_other_instance() -> None:
    channel = load_channel("telegram")
    event, rule = channel.classify(
        tg(
            409,
            "Conflict: terminated by other getUpdates request; make sure that only one "
            "bot instance is running",
        )
    )
    assert (rule.verdict, rule.min_delay, rule.escalate_after) == (Verdict.retry, 30.0, 5)
    message = rule.operator_message(event, link="bot-1", channel="telegram")
    assert "Another instance may be polling" in message and "same bot token" in message


def test_matrix_limit_exceeded_prefers_retry_after_header_over_body() -> None:
    channel = load_channel("matrix")
    both = mx("M_LIMIT_EXCEEDED", retry_after_ms=1500, headers={"Retry-After": "4"})
    assert channel.event(both).retry_after == 4.0
    assert channel.event(mx("M_LIMIT_EXCEEDED", retry_after_ms=1500)).retry_after == 1.5


def test_telegram_429_reads_retry_after_from_parameters() -> None:
    event = load_channel("telegram").event(tg(429, parameters={"retry_after": 33}))
    assert event.retry_after == 33.0


def test_slack_too_many_websockets_has_a_30_second_floor_and_escalates() -> None:
    _, rule = load_channel("slack").classify("too_many_websockets")
    assert rule.min_delay == 30.0
    assert rule.escalate_after is not None
    assert rule.verdict_after(rule.escalate_after) is Verdict.fatal


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("RECONNECT", "op7"),
        ("INVALID_SESSION", "op9"),
        ("op7", "op7"),
        ('{"op": 7, "d": null}', "op7"),
        (b'{"op": 9, "d": true}', "op9"),
    ],
)
def test_discord_opcode_spellings(raw: object, code: str) -> None:
    assert load_channel("discord").event(raw).code == code


def test_slack_raw_frame_text_reads_like_its_dict() -> None:
    channel = load_channel("slack")
    assert channel.classify('{"type":"disconnect","reason":"warning"}')[1].name == "warning"
