"""``linkstate classify`` with each platform's native payloads, and the issue's "Done when"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_classify import classify

from linkstate.cli import main

TELEGRAM_409 = (
    '{"ok":false,"error_code":409,"description":"Conflict: terminated by other getUpdates '
    'request; make sure that only one bot instance is running"}'
)


# -- the "Done when" ---------------------------------------------------------------


def test_done_when_discord_4004_is_relink(capsys: pytest.CaptureFixture[str]) -> None:
    result = classify(capsys, "discord", "4004")
    assert (result["verdict"], result["state"]) == ("relink", "needs_relink")
    assert result["rule"] == "4004 authenticationFailed"


def test_done_when_telegram_409_is_retry(capsys: pytest.CaptureFixture[str]) -> None:
    for event in ("409", TELEGRAM_409):
        result = classify(capsys, "telegram", event)
        assert (result["verdict"], result["state"]) == ("retry", "reconnecting")


def test_done_when_five_telegram_409s_in_a_row_fail(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "telegram", *["--close", "409"] * 5, "--format", "json"]) == 1
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["final"] == "failed"
    assert "Another instance may be polling" in last["message"]


def test_four_telegram_409s_in_a_row_still_retry(capsys: pytest.CaptureFixture[str]) -> None:
    main(["simulate", "telegram", *["--close", "409"] * 4, "--format", "json"])
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["final"] == "stopped" and last["verdict"] == "retry"


def test_webhook_409_stays_a_stop(capsys: pytest.CaptureFixture[str]) -> None:
    result = classify(
        capsys,
        "telegram",
        '{"ok":false,"error_code":409,"description":"Conflict: can\'t use getUpdates '
        'method while webhook is active"}',
    )
    assert (result["verdict"], result["state"]) == ("fatal", "failed")


def test_done_when_websocket_3000_is_relink_with_a_credentials_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = classify(capsys, "websocket", "3000")
    assert (result["verdict"], result["state"]) == ("relink", "needs_relink")
    assert "credentials" in str(result["message"])


def test_done_when_commands_through_the_installed_script() -> None:
    script = Path(sys.executable).with_name("linkstate")
    for args, verdict, state in [
        (["discord", "4004"], "relink", "needs_relink"),
        (["telegram", TELEGRAM_409], "retry", "reconnecting"),
        (["websocket", "3000"], "relink", "needs_relink"),
        (["whatsapp", '{"isLoggedOut": true}'], "relink", "needs_relink"),
    ]:
        done = subprocess.run(
            [str(script), "classify", *args], capture_output=True, text=True, check=True
        )
        result = json.loads(done.stdout)
        assert (result["verdict"], result["state"]) == (verdict, state)


# -- native payloads ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "event", "rule", "verdict", "state"),
    [
        ("discord", "4014", "4014 disallowedIntents", "fatal", "failed"),
        ("discord", "4008", "4008 rateLimited", "retry", "reconnecting"),
        ("discord", '{"op":7}', "op7 Reconnect", "retry_now", "reconnecting"),
        ("discord", '{"op":9,"d":false}', "op9 Invalid Session", "retry_now", "reconnecting"),
        (
            "discord",
            '{"op":9,"d":true}',
            "op9 Invalid Session (resumable)",
            "retry_now",
            "reconnecting",
        ),
        ("discord", "RECONNECT", "op7 Reconnect", "retry_now", "reconnecting"),
        (
            "slack",
            '{"type":"disconnect","reason":"refresh_requested"}',
            "refresh_requested",
            "retry_now",
            "reconnecting",
        ),
        (
            "slack",
            '{"type":"disconnect","reason":"link_disabled"}',
            "link_disabled",
            "fatal",
            "failed",
        ),
        ("slack", '{"ok":false,"error":"invalid_auth"}', "invalid_auth", "relink", "needs_relink"),
        ("slack", "too_many_websockets", "too_many_websockets", "retry", "reconnecting"),
        (
            "telegram",
            '{"ok":false,"error_code":401,"description":"Unauthorized"}',
            "401 unauthorized",
            "relink",
            "needs_relink",
        ),
        (
            "telegram",
            '{"ok":false,"error_code":429,"description":"Too Many Requests: retry '
            'after 7","parameters":{"retry_after":7}}',
            "429 tooManyRequests",
            "retry",
            "reconnecting",
        ),
        (
            "matrix",
            '{"errcode":"M_UNKNOWN_TOKEN","error":"Token expired","soft_logout":true}',
            "M_UNKNOWN_TOKEN softLogout",
            "relink",
            "needs_relink",
        ),
        (
            "matrix",
            '{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid token"}',
            "M_UNKNOWN_TOKEN unknownToken",
            "relink",
            "needs_relink",
        ),
        ("matrix", "M_USER_DEACTIVATED", "M_USER_DEACTIVATED userDeactivated", "fatal", "failed"),
        ("whatsapp", '{"isLoggedOut": true}', "401 loggedOut", "relink", "needs_relink"),
        (
            "whatsapp",
            '{"status": 428, "isLoggedOut": true, "error": "x"}',
            "401 loggedOut",
            "relink",
            "needs_relink",
        ),
        (
            "whatsapp",
            '{"lastDisconnect": {"loggedOut": true}}',
            "401 loggedOut",
            "relink",
            "needs_relink",
        ),
        (
            "whatsapp",
            '{"status": 428, "isLoggedOut": false}',
            "428 connectionClosed",
            "retry",
            "reconnecting",
        ),
        ("websocket", "3000", "3000 closeUnauthorized", "relink", "needs_relink"),
        ("websocket", "3003", "3003 closeForbidden", "fatal", "failed"),
        ("websocket", "3008", "3008 closeTimeout", "retry", "reconnecting"),
        (
            "matrix",
            '{"errcode":"M_LIMIT_EXCEEDED","error":"x","retry_after_ms":2000}',
            "M_LIMIT_EXCEEDED limitExceeded",
            "retry",
            "reconnecting",
        ),
    ],
)
def test_native_payloads(
    capsys: pytest.CaptureFixture[str],
    channel: str,
    event: str,
    rule: str,
    verdict: str,
    state: str,
) -> None:
    result = classify(capsys, channel, event)
    assert (result["rule"], result["verdict"], result["state"]) == (rule, verdict, state)


def test_retry_after_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    result = classify(
        capsys, "telegram", '{"ok":false,"error_code":429,"parameters":{"retry_after":7}}'
    )
    assert result["retry_after"] == 7.0
    result = classify(capsys, "matrix", '{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":2500}')
    assert result["retry_after"] == 2.5


def test_soft_logout_message_differs(capsys: pytest.CaptureFixture[str]) -> None:
    soft = classify(capsys, "matrix", '{"errcode":"M_UNKNOWN_TOKEN","soft_logout":true}')
    hard = classify(capsys, "matrix", '{"errcode":"M_UNKNOWN_TOKEN"}')
    assert soft["message"] != hard["message"]
    assert "keep the device" in str(soft["message"])
    assert "new device" in str(hard["message"])


def test_unknown_channel_lists_the_new_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "discrod", "4004"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for name in ("discord", "matrix", "slack", "telegram", "whatsapp"):
        assert name in err
