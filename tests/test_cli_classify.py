"""``linkstate classify``: the issue's commands, output shape, and user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from linkstate.cli import main

SEED = '{"status":"440","isLoggedOut":false,"error":"Unknown Stream Errored (conflict)"}'


def classify(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["classify", *args]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    result: dict[str, object] = json.loads(out)
    return result


@pytest.mark.parametrize("event", ["440", '"440"', '{"error":{"output":{"statusCode":440}}}', SEED])
def test_440_in_every_form_is_relink(capsys: pytest.CaptureFixture[str], event: str) -> None:
    result = classify(capsys, "whatsapp", event)
    assert result["channel"] == "whatsapp"
    assert result["status"] == 440
    assert result["verdict"] == "relink"
    assert result["state"] == "needs_relink"
    assert "session conflict" in str(result["message"])


def test_428_reconnects(capsys: pytest.CaptureFixture[str]) -> None:
    result = classify(capsys, "whatsapp", "428")
    assert (result["verdict"], result["state"]) == ("retry", "reconnecting")


def test_null_status_is_reported_as_null(capsys: pytest.CaptureFixture[str]) -> None:
    result = classify(capsys, "whatsapp", '{"message": "socket hang up"}')
    assert result["status"] is None and result["verdict"] == "retry"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["whatsapp", '{"status":'], "cannot read EVENT"),
        (["whatsapp", "not json at all"], "neither JSON"),
        (["whatsapp", "[" * 100_000 + "]" * 100_000], "nested deeper than Python can parse"),
        (["whatsapp", "1" * 4301], "a number with thousands of digits"),
        (["whatsapp", '{"status": ' + "4" * 5000 + "}"], "a number with thousands of digits"),
        (["nosuch", "440"], "unknown channel 'nosuch'; installed channels: "),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], complaint: str
) -> None:
    assert main(["classify", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert complaint in captured.err
    assert captured.err.count("\n") == 1


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("linkstate")
    done = subprocess.run(
        [str(script), "classify", "whatsapp", SEED], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout)["state"] == "needs_relink"
