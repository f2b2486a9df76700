"""A peer that breaks RFC 6455 is a broken connection, not the peer's verdict.

The peer is :mod:`hostile_peer`: raw TCP on 127.0.0.1 writing frames no
WebSocket library would send. Our stack answers them with 1002, 1007 or 1009
(and the peer sees that answer); the close is read as a local one without a
status, retried with backoff, and left to flap detection. A code the peer
really sent (1008 here) still means what the table says.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hostile_peer import close_frame, frame, hostile_peer

from linkstate._events import Initiator
from linkstate._policy import Jitter, ReconnectPolicy
from linkstate._verdicts import Verdict
from linkstate.channels.websocket import (
    CHANNEL,
    DEFAULT_MAX_MESSAGE_SIZE,
    TABLE,
    WebSocketClosed,
    WebSocketProtocolError,
    WebSocketTransport,
)
from linkstate.cli import main
from linkstate.runtime import Supervisor

BACKENDS = ("trio", "asyncio")
TEXT, BINARY = 0x1, 0x2
LIMIT = 1000

# What the peer sends, and the close code our side must answer with.
MALFORMED = {
    "code 999": (close_frame(999), 1002),
    "code 1005 (local only)": (close_frame(1005), 1002),
    "code 1006 (local only)": (close_frame(1006), 1002),
    "code 1015 (local only)": (close_frame(1015), 1002),
    "code 5000": (close_frame(5000), 1002),
    "code 65535": (close_frame(65535), 1002),
    "a 126-byte close payload": (close_frame(1000, b"x" * 124), 1002),
    "a reason that is not UTF-8": (close_frame(1000, b"bye \xff\xfe"), 1007),
    "a text message that is not UTF-8": (frame(TEXT, b"caf\xc3"), 1007),
    "a message over the size limit": (frame(BINARY, b"x" * (LIMIT + 1)), 1009),
    "a message over the limit in small frames": (
        frame(TEXT, b"x" * 600, fin=False) + frame(0x0, b"y" * 600),
        1009,
    ),
    "an unknown opcode": (frame(0x3, b""), 1002),
}


async def closed_by(url: str, **options: Any) -> tuple[object, list[str | bytes]]:
    """Connect once; the raw close info the transport reported, and the messages received."""
    got: list[str | bytes] = []
    options.setdefault("max_message_size", LIMIT)
    transport = WebSocketTransport(url, ping_interval=None, on_message=got.append, **options)
    with anyio.fail_after(10):  # a guard against a hang, never reached when all is well
        async with anyio.create_task_group() as tasks:
            connection = await transport.connect(tasks)
            raw = await connection.wait_closed()
            await connection.aclose()
    return raw, got


def run(backend: str, url: str, **options: Any) -> tuple[object, list[str | bytes]]:
    result: tuple[object, list[str | bytes]] = anyio.run(
        lambda: closed_by(url, **options), backend=backend
    )
    return result


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", MALFORMED, ids=str)
def test_a_malformed_frame_is_a_local_close_without_a_status(backend: str, case: str) -> None:
    script, answer = MALFORMED[case]
    with hostile_peer([script]) as peer:
        raw, got = run(backend, peer.url)
        assert peer.served(1)
    assert isinstance(raw, WebSocketProtocolError) and raw.code == answer
    assert peer.answers == [answer]  # the peer was told why, as RFC 6455 7.1.7 asks
    assert got == []
    event, rule = CHANNEL.classify(raw)
    assert (event.status, event.initiator) == (None, Initiator.local)
    assert rule is TABLE.no_status and rule.verdict is Verdict.retry
    assert f"we closed with {answer}" in event.reason


@pytest.mark.parametrize(
    ("script", "status", "verdict"),
    [
        (close_frame(1008, b"go away"), 1008, Verdict.fatal),
        # 2 + 123 bytes: the longest close payload there is, and a legal one.
        (close_frame(1002, b"r" * 123), 1002, Verdict.fatal),
        (close_frame(1000, "caf\u00e9".encode()), 1000, Verdict.retry),
    ],
)
def test_a_code_the_peer_really_sent_means_what_the_table_says(
    script: bytes, status: int, verdict: Verdict
) -> None:
    with hostile_peer([script]) as peer:
        raw, _ = run("trio", peer.url)
    assert type(raw) is WebSocketClosed and raw.code == status
    event, rule = CHANNEL.classify(raw)
    assert (event.status, event.initiator, rule.verdict) == (status, Initiator.remote, verdict)


def test_a_message_at_the_limit_arrives_whole_in_any_number_of_frames() -> None:
    script = (
        frame(BINARY, b"a" * LIMIT)
        + frame(TEXT, b"b" * 400, fin=False)
        + frame(0x0, b"c" * 600)
        + close_frame(1000)
    )
    with hostile_peer([script]) as peer:
        raw, got = run("trio", peer.url)
    assert got == [b"a" * LIMIT, "b" * 400 + "c" * 600]
    assert type(raw) is WebSocketClosed and raw.code == 1000


def test_the_limit_counts_bytes_of_text_not_characters() -> None:
    # 400 characters, 1,200 bytes of UTF-8: over a limit of 1,000 bytes.
    with hostile_peer([frame(TEXT, "\u20ac".encode() * 400)]) as peer:
        raw, got = run("trio", peer.url)
    assert isinstance(raw, WebSocketProtocolError) and raw.code == 1009 and got == []


@pytest.mark.parametrize("size", [0, -1, True, 1.5, "big"])
def test_a_message_size_limit_that_cannot_work_is_refused(size: object) -> None:
    with pytest.raises(ValueError, match=r"max_message_size=.* must be a whole number of bytes"):
        WebSocketTransport("ws://127.0.0.1:1/", max_message_size=size)  # type: ignore[arg-type]
    assert WebSocketTransport("ws://127.0.0.1:1/").max_message_size == DEFAULT_MAX_MESSAGE_SIZE


FLAPPY = ReconnectPolicy(
    initial=0.0, cap=0.0, jitter=Jitter.none, retry_now_max=0.0, flap_closes=3, flap_window=60.0
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_peer_that_keeps_breaking_the_protocol_is_left_to_flap_detection(backend: str) -> None:
    with hostile_peer([close_frame(5000)]) as peer:
        supervisor = Supervisor(
            CHANNEL, WebSocketTransport(peer.url, ping_interval=None), policy=FLAPPY
        )

        async def main() -> None:
            with anyio.fail_after(10):  # a guard against a hang, never reached when all is well
                await supervisor.run()

        anyio.run(main, backend=backend)
        assert peer.served(3)
    outcome = supervisor.outcome
    closes = [(r.verdict, r.dst) for r in outcome.records if r.verdict is not None]
    # Retried with backoff twice; the third close in the window is flapping.
    assert closes == [("retry", "reconnecting"), ("retry", "reconnecting"), ("retry", "failed")]
    assert (outcome.state, outcome.stop_reason, outcome.sleeps) == ("failed", "flapping", 2)
    assert all(r.status is None for r in outcome.records if r.verdict is not None)
    assert peer.answers == [1002, 1002, 1002]


def test_watch_takes_max_message_size(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["watch", "websocket", "--format", "json", "--flap-closes", "2"]
    argv += ["--initial", "0", "--cap", "0", "--max-message-size", "100"]
    with hostile_peer([frame(BINARY, b"x" * 101)]) as peer:
        status = main([*argv[:2], peer.url, *argv[2:]])
    assert status == 1  # flapping: the verdict of flap detection, not of a 1009 row
    *transitions, last = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    closes = [(t["status"], t["verdict"]) for t in transitions if t["verdict"]]
    assert closes == [(None, "retry"), (None, "retry")]
    assert (last["final"], last["stop_reason"]) == ("failed", "flapping")
    assert "size limit of 100 bytes" in transitions[-1]["reason"]


@pytest.mark.parametrize("value", ["0", "1k", "-5"])
def test_watch_refuses_a_bad_max_message_size_in_one_line(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["watch", "websocket", "ws://127.0.0.1:1/", "--max-message-size", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--max-message-size" in err
