"""slack_sdk's Socket Mode client under the supervisor, against a loopback Slack.

Every test runs the real ``SocketModeClient`` (aiohttp) with the user's own
request listener, through :class:`SlackSocketModeTransport`, against
:class:`LoopbackSlack` on 127.0.0.1 (``apps.connections.open`` and the
WebSocket), and checks the supervisor's outcome, what the server saw (so
that slack_sdk made no reconnect of its own) and what the listener received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import pytest
from adapter_runs import (
    backoffs,
    delay_after,
    ends,
    reconnected_after_each_delay,
    run_asyncio,
    supervised,
)
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from linkstate import ArgumentError, Verdict, load_channel
from linkstate.adapters.slack import LoopbackSlack, SlackSocketModeTransport, SocketSession
from linkstate.runtime import Outcome

SLACK = load_channel("slack")


@dataclass
class Run:
    """What one supervised run produced."""

    outcome: Outcome
    server: LoopbackSlack
    texts: list[str] = field(default_factory=list)


def said(text: str) -> dict[str, object]:
    """A message event, as Slack puts it in an ``event_callback``."""
    return {"type": "message", "channel": "C1", "user": "U1", "text": text}


def supervise(
    sessions: Sequence[SocketSession],
    *,
    app_token: str | None = None,
    watchdog: float | None = None,
    ping_interval: float = 5.0,
    stop_after_pings: int | None = None,
) -> Run:
    """Run a supervisor over slack_sdk against the scripted loopback Slack."""

    async def body() -> Run:
        texts: list[str] = []
        release = asyncio.Event()
        async with LoopbackSlack(sessions) as server:
            client = SocketModeClient(
                app_token=app_token or server.app_token,
                web_client=AsyncWebClient(base_url=server.api_url),
                ping_interval=ping_interval,
            )

            async def listener(
                client: AsyncBaseSocketModeClient, request: SocketModeRequest
            ) -> None:
                # The user's handler: acknowledge, record, and misbehave on cue.
                await client.send_socket_mode_response(SocketModeResponse(request.envelope_id))
                text = str(request.payload["event"]["text"])
                texts.append(text)
                if text == "boom":
                    raise RuntimeError("a bug in the user's handler")
                if text == "slow":
                    await release.wait()

            client.socket_mode_request_listeners.append(listener)
            try:
                pings = stop_after_pings
                outcome = await supervised(
                    SLACK,
                    SlackSocketModeTransport(client),
                    "app",
                    watchdog=watchdog,
                    until=None if pings is None else lambda: server.pings >= pings,
                )
            finally:
                release.set()
                await client.close()  # type: ignore[no-untyped-call]
        return Run(outcome, server, texts)

    return run_asyncio(body)


def test_invalid_auth_stops_in_needs_relink_with_zero_reconnects() -> None:
    run = supervise([], app_token="xapp-revoked")
    outcome = run.outcome
    assert (outcome.state, outcome.connects, outcome.opens, outcome.sleeps) == (
        "needs_relink",
        1,
        0,
        0,
    )
    assert outcome.message is not None
    assert "invalid_auth" in outcome.message and "App-Level Tokens" in outcome.message
    assert "`linkstate reset app`" in outcome.message
    # slack_sdk's connect() would have asked again every 5 s, forever.
    assert (run.server.opens, run.server.connections) == (1, 0)


def test_transient_closes_reconnect_after_the_policy_delay_and_events_keep_flowing() -> None:
    run = supervise(
        [
            SocketSession(events=(said("boom"), said("one")), disconnect="refresh_requested"),
            SocketSession(events=(said("slow"), said("two")), drop=True),
            SocketSession(events=(said("three"),), close=4000),
            SocketSession(error="invalid_auth"),
        ]
    )
    outcome = run.outcome
    assert backoffs(outcome) == [
        ("refresh_requested", delay_after(Verdict.retry_now)),
        ("unknown", delay_after(Verdict.retry, 2)),
        ("unknown", delay_after(Verdict.retry, 3)),
    ]
    assert [r.status for r in ends(outcome)][1:3] == [1006, 4000]
    assert outcome.sleeps == 3
    assert reconnected_after_each_delay(outcome)
    assert (outcome.state, outcome.connects, outcome.opens) == ("needs_relink", 4, 3)
    # One apps.connections.open per connect: the disconnect frame made
    # slack_sdk reconnect by itself before the adapter replaced that path.
    assert (run.server.opens, run.server.connections) == (4, 3)
    # Every event reached the listener and was acknowledged, before and after
    # each reconnect; its raise and its blocked call ended no connection.
    assert run.texts == ["boom", "one", "slow", "two", "three"]
    assert sorted(run.server.acks) == ["e1", "e2", "e3", "e4", "e5"]


def test_a_rate_limited_open_waits_at_least_its_retry_after() -> None:
    run = supervise(
        [SocketSession(error="ratelimited", retry_after=1), SocketSession(error="invalid_auth")]
    )
    outcome = run.outcome
    # slack_sdk's own issue_new_wss_url would sleep Retry-After itself and ask
    # again; here the 429 is the attempt's close, and Retry-After the delay's floor.
    assert backoffs(outcome) == [("ratelimited", 1.0)]
    assert reconnected_after_each_delay(outcome)
    assert (outcome.state, outcome.connects, run.server.opens) == ("needs_relink", 2, 2)


def test_link_disabled_fails_at_once_with_the_settings_fix() -> None:
    run = supervise([SocketSession(events=(said("hi"),), disconnect="link_disabled")])
    outcome = run.outcome
    assert (outcome.state, outcome.verdict, outcome.connects, outcome.sleeps) == (
        "failed",
        "fatal",
        1,
        0,
    )
    assert outcome.message is not None and "Settings → Socket Mode" in outcome.message
    assert run.texts == ["hi"]
    assert (run.server.opens, run.server.connections) == (1, 1)


def test_pongs_keep_the_watchdog_quiet_and_a_stop_closes_normally() -> None:
    # aiohttp pings every 20 ms; without the pongs as activity a 0.1 s
    # watchdog would expire long before the tenth ping.
    run = supervise(
        [SocketSession(events=(said("hi"),))],
        watchdog=0.1,
        ping_interval=0.02,
        stop_after_pings=10,
    )
    outcome = run.outcome
    assert (outcome.state, outcome.stop_reason, outcome.connects) == ("stopped", "aborted", 1)
    assert not ends(outcome)
    assert run.texts == ["hi"]
    assert run.server.closes == [1000]


def test_junk_frames_reach_no_handler_and_end_nothing_and_odd_disconnects_are_classified(
    caplog: pytest.LogCaptureFixture,
) -> None:
    junk = (
        "not json",
        "[1, 2]",
        '{"type": 5}',
        '{"type": "hello", "x": "disconnect"}',
        "{" * 100_000,
        "[" * 100_000 + '"hello"',  # deeper than the JSON parser goes
    )
    run = supervise(
        [
            SocketSession(
                frames=junk, events=(said("one"),), disconnect="a reason we never heard of"
            ),
            SocketSession(frames=('{"type": "disconnect", "reason": ["no"]}',)),
            SocketSession(error="invalid_auth"),
        ]
    )
    outcome = run.outcome
    assert [(r.trigger, r.verdict) for r in ends(outcome)] == [
        ("closed", "retry"),
        ("closed", "retry"),
        ("connect_failed", "relink"),
    ]
    assert (outcome.state, outcome.connects, outcome.sleeps) == ("needs_relink", 3, 2)
    assert run.texts == ["one"]
    # The adapter reads each frame inside slack_sdk's reader, which must get
    # every one back: nothing may raise there (slack_sdk would log and pause).
    assert not [r for r in caplog.records if "Failed to receive" in r.getMessage()]


def test_the_transport_refuses_what_it_cannot_supervise() -> None:
    with pytest.raises(ArgumentError, match=r"needs a slack_sdk\.socket_mode\.aiohttp"):
        SlackSocketModeTransport(object())  # type: ignore[arg-type]

    async def closed_client() -> str:
        client = SocketModeClient(app_token="xapp-1")
        transport = SlackSocketModeTransport(client)
        await client.close()  # type: ignore[no-untyped-call]
        async with anyio.create_task_group() as tasks:
            with pytest.raises(ArgumentError) as caught:
                await transport.connect(tasks)
        return str(caught.value)

    assert "build a new client" in run_asyncio(closed_client)
