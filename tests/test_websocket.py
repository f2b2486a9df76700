"""The WebSocket channel: RFC 6455 table, extractor, and the transport against a real server."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from trio_websocket import (
    CloseReason,
    ConnectionClosed,
    ConnectionRejected,
    ConnectionTimeout,
    HandshakeError,
    WebSocketRequest,
    serve_websocket,
)

from linkstate._channel import load_channel
from linkstate._events import Initiator, Phase
from linkstate._machine import TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import Verdict
from linkstate.channels.websocket import CHANNEL, TABLE, WebSocketTransport, extract
from linkstate.cli.demo import STORY, Scene, demo_channel, serve_story
from linkstate.plugin import retry_after_seconds
from linkstate.runtime._supervisor import Outcome, Supervisor, transport_factory

# No backoff at all: the real-server tests must not really sleep.
INSTANT = ReconnectPolicy(initial=0.0, cap=0.0, retry_now_max=0.0)

Handler = Callable[[WebSocketRequest], Awaitable[None]]


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (1000, Verdict.retry),
        (1001, Verdict.retry),
        (1005, Verdict.retry),
        (1006, Verdict.retry),
        (1011, Verdict.retry),
        (1014, Verdict.retry),
        (1012, Verdict.retry),
        (1013, Verdict.retry),
        (1002, Verdict.fatal),
        (1003, Verdict.fatal),
        (1007, Verdict.fatal),
        (1008, Verdict.fatal),
        (1009, Verdict.fatal),
        (1010, Verdict.fatal),
        (1015, Verdict.fatal),
        (400, Verdict.fatal),
        (404, Verdict.fatal),
        (401, Verdict.relink),
        (403, Verdict.relink),
        (429, Verdict.retry),
        (500, Verdict.retry),
        (502, Verdict.retry),
        (503, Verdict.retry),
        (504, Verdict.retry),
        (4321, Verdict.retry),
    ],
)
def test_rfc_6455_table(status: int, verdict: Verdict) -> None:
    _, rule = CHANNEL.classify(status)
    assert rule.verdict is verdict


def test_1013_has_a_longer_floor_than_the_first_delay() -> None:
    _, rule = CHANNEL.classify(1013)
    assert rule.min_delay > CHANNEL.policy.initial


def test_policy_follows_rfc_6455_first_delay_and_retry_now() -> None:
    rng = random.Random(1)
    firsts = [CHANNEL.policy.backoff_delay(1, Verdict.retry, rng=rng) for _ in range(500)]
    assert min(firsts) >= 0.0 and max(firsts) <= 5.0 and max(firsts) > 4.0
    assert CHANNEL.policy.retry_now_max == 5.0


def test_registered_through_the_entry_point() -> None:
    assert load_channel("websocket") is CHANNEL
    assert transport_factory(CHANNEL) is WebSocketTransport


def test_extract_close_frame() -> None:
    event = extract(ConnectionClosed(CloseReason(1012, "restart")))
    assert (event.status, event.reason, event.initiator) == (1012, "restart", Initiator.remote)


def test_extract_close_without_reason_text_uses_the_code_name() -> None:
    event = extract(ConnectionClosed(CloseReason(1006, None)))
    assert (event.status, event.reason, event.initiator) == (
        1006,
        "ABNORMAL_CLOSURE",
        Initiator.unknown,
    )


def test_extract_close_without_any_reason_is_1006() -> None:
    assert extract(ConnectionClosed(None)).status == 1006


def test_extract_hostile_reason_is_sanitised() -> None:
    event = extract(ConnectionClosed(CloseReason(4000, "a\x1b[31m\u202ebad" + "x" * 5000)))
    assert event.status == 4000
    assert "\x1b" not in event.reason and "\u202e" not in event.reason
    assert len(event.reason) <= 200


def test_extract_rejection_with_retry_after() -> None:
    exc = ConnectionRejected(429, ((b"Content-Type", b"text/plain"), (b"Retry-After", b"17")), None)
    event = extract(exc)
    assert (event.status, event.retry_after, event.phase) == (429, 17.0, Phase.handshake)
    assert event.reason == "HTTP 429"


def test_extract_rejection_body_becomes_the_reason() -> None:
    event = extract(ConnectionRejected(401, (), b"token expired"))
    assert (event.status, event.reason) == (401, "token expired")
    assert CHANNEL.table.classify(event).verdict is Verdict.relink


def test_extract_other_handshake_errors() -> None:
    try:
        raise HandshakeError from ConnectionRefusedError(111, "Connection refused")
    except HandshakeError as exc:
        event = extract(exc)
    assert event.status is None and "Connection refused" in event.reason
    assert event.phase is Phase.handshake
    timeout = extract(ConnectionTimeout())
    assert timeout.status is None and "timed out" in timeout.reason


def test_extract_passes_other_shapes_to_normalise() -> None:
    assert extract({"code": 1008}).status == 1008
    assert extract("junk").status is None


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after_seconds("120") == 120.0
    date = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert retry_after_seconds(date, now=1_000_000.0) == pytest.approx(30.0)
    assert retry_after_seconds(date, now=2_000_000.0) == 0.0
    for junk in ("soon", "-5", "1e400", "", "Mon, 99 Foo 2020"):
        assert retry_after_seconds(junk) is None
    # Capped, not dropped: a week and a week and a second are the same long wait.
    assert retry_after_seconds("604800") == retry_after_seconds("604801") == 604800.0
    assert retry_after_seconds("9" * 60) == 604800.0
    assert retry_after_seconds(email.utils.formatdate(1e10, usegmt=True), now=0.0) == 604800.0


def test_transport_rejects_non_websocket_urls() -> None:
    with pytest.raises(ValueError, match="ws:// or wss://"):
        WebSocketTransport("http://example.com/")


# -- against a real server on 127.0.0.1 -----------------------------------------------


async def start_server(nursery: trio.Nursery, handler: Handler) -> str:
    server: Any = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    return f"ws://127.0.0.1:{server.port}/"


def scripted_handler(*endings: tuple[str, int]) -> tuple[Handler, list[object]]:
    """Accept (or reject) one connection per ending; record what each client did."""
    seen: list[object] = []

    async def handler(request: WebSocketRequest) -> None:
        kind, code = endings[min(len(seen), len(endings) - 1)]
        if kind == "reject":
            seen.append(code)
            headers = [(b"Retry-After", b"30")] if code == 429 else []
            await request.reject(code, extra_headers=headers, body=b"go away")
            return
        ws = await request.accept()
        seen.append(code)
        if kind == "close":
            await ws.aclose(code, f"closing with {code}")
            return
        try:  # "hold": stay open until the client closes; record its close
            await ws.get_message()
        except ConnectionClosed as exc:
            seen[-1] = exc.reason

    return handler, seen


async def supervise(url: str, **options: Any) -> tuple[Outcome, Supervisor]:
    options.setdefault("policy", INSTANT)
    sup = Supervisor(CHANNEL, WebSocketTransport(url, ping_interval=None), **options)
    with trio.fail_after(30):  # a guard against a hang, never reached when all is well
        outcome = await sup.run()
    return outcome, sup


async def test_reconnects_after_1001_and_fails_after_1008() -> None:
    handler, seen = scripted_handler(("close", 1001), ("close", 1008))
    async with trio.open_nursery() as nursery:
        url = await start_server(nursery, handler)
        outcome, _ = await supervise(url)
        nursery.cancel_scope.cancel()
    closes = [r for r in outcome.records if r.verdict is not None]
    assert [(r.status, r.verdict, r.dst) for r in closes] == [
        (1001, "retry", "reconnecting"),
        (1008, "fatal", "failed"),
    ]
    assert closes[0].reason == "closing with 1001"
    assert (outcome.state, outcome.connects, outcome.opens, outcome.sleeps) == ("failed", 2, 2, 1)
    assert outcome.message is not None and "1008" in outcome.message
    assert seen == [1001, 1008]


@pytest.mark.parametrize(
    ("status", "final"), [(401, "needs_relink"), (403, "needs_relink"), (404, "failed")]
)
async def test_handshake_rejections_use_the_same_table(status: int, final: str) -> None:
    handler, _ = scripted_handler(("reject", status))
    async with trio.open_nursery() as nursery:
        url = await start_server(nursery, handler)
        outcome, _ = await supervise(url)
        nursery.cancel_scope.cancel()
    assert (outcome.state, outcome.status, outcome.connects, outcome.opens) == (final, status, 1, 0)
    assert outcome.records[-1].trigger == "connect_failed"
    assert outcome.records[-1].reason == "go away"


async def test_429_retry_after_is_the_floor_of_the_next_delay() -> None:
    handler, _ = scripted_handler(("reject", 429))
    delays: list[float] = []
    async with trio.open_nursery() as nursery:
        url = await start_server(nursery, handler)
        sup = Supervisor(CHANNEL, WebSocketTransport(url), policy=INSTANT)

        def abort_at_backoff(record: TransitionRecord) -> None:
            if record.delay is not None:
                delays.append(record.delay)
                sup.abort()  # do not really wait 30 s

        sup.subscribe(abort_at_backoff)
        with trio.fail_after(30):
            outcome = await sup.run()
        nursery.cancel_scope.cancel()
    assert delays == [30.0]
    assert (outcome.state, outcome.status, outcome.verdict) == ("stopped", 429, "retry")


async def test_tcp_drop_is_1006_and_retried() -> None:
    channel = demo_channel(CHANNEL)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_story, (Scene(0.0, None), Scene(0.0, 4440, "conflict")))
        transport = WebSocketTransport(f"ws://127.0.0.1:{port}/", ping_interval=None)
        with trio.fail_after(30):
            outcome = await Supervisor(channel, transport, policy=INSTANT).run()
        nursery.cancel_scope.cancel()
    closes = [(r.status, r.verdict) for r in outcome.records if r.verdict is not None]
    assert closes == [(1006, "retry"), (4440, "relink")]
    assert outcome.state == "needs_relink" and "another client" in (outcome.message or "")


async def test_connection_refused_is_a_retried_handshake_failure() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()  # nothing listens there now
    outcome, _ = await supervise(
        f"ws://127.0.0.1:{port}/", policy=ReconnectPolicy(initial=0, cap=0, max_attempts=1)
    )
    assert (outcome.state, outcome.stop_reason, outcome.connects) == ("failed", "budget_spent", 2)
    assert outcome.records[1].trigger == "connect_failed" and outcome.records[1].status is None


async def test_abort_while_open_sends_a_normal_close_and_leaves_no_task() -> None:
    handler, seen = scripted_handler(("hold", 0))
    before = list(trio.lowlevel.current_task().child_nurseries)
    async with trio.open_nursery() as nursery:
        url = await start_server(nursery, handler)
        sup = Supervisor(CHANNEL, WebSocketTransport(url, ping_interval=0.5), policy=INSTANT)
        sup.subscribe(lambda r: sup.abort() if r.dst == "open" else None)
        with trio.fail_after(30):
            outcome = await sup.run()
        # The supervisor's nurseries (and the transport's tasks in them) are gone.
        assert trio.lowlevel.current_task().child_nurseries == [*before, nursery]
        nursery.cancel_scope.cancel()
    assert outcome.state == "stopped"
    # The server got our close frame: the reader stayed alive for the close handshake.
    (reason,) = seen
    assert isinstance(reason, CloseReason)
    assert (reason.code, reason.reason) == (1000, "client closing")


async def test_messages_reach_the_handler_and_count_as_activity() -> None:
    got: list[str | bytes] = []

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        for text in ("one", "two"):
            await ws.send_message(text)
        await ws.aclose(1008, "bye")

    async with trio.open_nursery() as nursery:
        url = await start_server(nursery, handler)
        transport = WebSocketTransport(url, on_message=got.append, ping_interval=None)
        with trio.fail_after(30):
            outcome = await Supervisor(CHANNEL, transport, policy=INSTANT).run()
        nursery.cancel_scope.cancel()
    assert got == ["one", "two"]
    assert outcome.state == "failed"


def test_demo_story_and_channel() -> None:
    assert [scene.close for scene in STORY] == [None, 1001, 4440]
    channel = demo_channel(CHANNEL)
    assert [channel.classify(code)[1].verdict for code in (1006, 1001, 4440)] == [
        Verdict.retry,
        Verdict.retry,
        Verdict.relink,
    ]
    # The generic table is untouched: 4440 is the application's to define.
    assert TABLE.classify(extract(4440)).verdict is Verdict.retry


async def test_registered_3000_close_from_a_real_server_stops_for_relink() -> None:
    # IANA assigns 3000 (Unauthorized): the plain table stops at once, no flapping loop.
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_story, (Scene(0.0, 3000, "Unauthorized"),))
        transport = WebSocketTransport(f"ws://127.0.0.1:{port}/", ping_interval=None)
        with trio.fail_after(30):
            outcome = await Supervisor(CHANNEL, transport, policy=INSTANT).run()
        nursery.cancel_scope.cancel()
    closes = [(r.status, r.verdict) for r in outcome.records if r.verdict is not None]
    assert closes == [(3000, "relink")]
    assert outcome.state == "needs_relink" and "credentials" in (outcome.message or "")
