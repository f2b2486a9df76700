"""discord.py under the supervisor, against a loopback Discord (HTTP login and gateway).

Every test runs the real discord.py ``Client`` with the user's own handler,
through :class:`DiscordTransport`, against :class:`LoopbackDiscord` on
127.0.0.1, and checks the supervisor's outcome (connects, sleeps, final
state, operator message), what the server saw (so that discord.py made no
reconnect of its own) and what the handler received.
"""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import discord
import pytest
from adapter_runs import (
    backoffs,
    delay_after,
    ends,
    reconnected_after_each_delay,
    run_asyncio,
    supervised,
)

from linkstate import ArgumentError, Verdict, load_channel
from linkstate.adapters.discord import DiscordTransport, GatewaySession, LoopbackDiscord
from linkstate.runtime import Outcome

DISCORD = load_channel("discord")


@dataclass
class Run:
    """What one supervised run produced."""

    outcome: Outcome
    server: LoopbackDiscord
    messages: list[str] = field(default_factory=list)
    disconnects: int = 0


def make_client(
    run_messages: list[str], counts: list[int], raw: list[str] | None
) -> discord.Client:
    """The user's client: a handler that records, raises on "boom" and blocks on "slow".

    With ``raw``, debug events are on and every raw frame is recorded there too.
    """
    client = discord.Client(
        intents=discord.Intents.default(),
        guild_ready_timeout=0.01,
        enable_debug_events=raw is not None,
    )
    if raw is not None:

        @client.event
        async def on_socket_raw_receive(frame: str) -> None:
            raw.append(frame)

    @client.event
    async def on_message(message: discord.Message) -> None:
        run_messages.append(message.content)
        if message.content == "boom":
            raise RuntimeError("a bug in the user's handler")
        if message.content == "slow":
            await asyncio.Event().wait()  # never returns; cancelled when the client closes

    @client.event
    async def on_disconnect() -> None:
        counts.append(1)

    return client


def supervise(
    sessions: Sequence[GatewaySession],
    *,
    token: str | None = None,
    watchdog: float | None = None,
    heartbeat_interval: int = 41_250,
    stop_after_heartbeats: int | None = None,
    raw: list[str] | None = None,
    login_drops: int = 0,
) -> Run:
    """Run a supervisor over discord.py against the scripted loopback gateway."""

    async def body() -> Run:
        messages: list[str] = []
        counts: list[int] = []
        async with LoopbackDiscord(
            sessions, heartbeat_interval=heartbeat_interval, login_drops=login_drops
        ) as server:
            client = make_client(messages, counts, raw)
            async with client:
                beats = stop_after_heartbeats
                outcome = await supervised(
                    DISCORD,
                    DiscordTransport(client, token or server.token),
                    "bot",
                    watchdog=watchdog,
                    until=None if beats is None else lambda: server.heartbeats >= beats,
                )
                for task in asyncio.all_tasks():
                    if task.get_name() == "discord.py: on_message":
                        task.cancel()
            return Run(outcome, server, messages, len(counts))

    return run_asyncio(body)


def test_a_4004_after_identify_stops_in_needs_relink_with_zero_reconnects() -> None:
    run = supervise([GatewaySession.refuse(4004)])
    outcome = run.outcome
    assert (outcome.state, outcome.status, outcome.connects, outcome.sleeps) == (
        "needs_relink",
        4004,
        1,
        0,
    )
    assert outcome.message is not None
    assert "4004 (authentication failed)" in outcome.message
    assert "`linkstate reset bot`" in outcome.message
    # discord.py tried nothing of its own: one login, one connection, one IDENTIFY.
    assert (run.server.logins, run.server.connections, run.server.identifies) == (1, 1, 1)


def test_a_refused_login_is_needs_relink_before_any_gateway_connection() -> None:
    run = supervise([], token="not-the-token")
    outcome = run.outcome
    assert (outcome.state, outcome.connects, outcome.opens, outcome.sleeps) == (
        "needs_relink",
        1,
        0,
        0,
    )
    assert outcome.message is not None and "bot token is wrong" in outcome.message
    assert (run.server.logins, run.server.connections) == (1, 0)


def test_a_login_cut_off_by_an_outage_is_retried_without_leaking_its_http_session() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        # Two: aiohttp retries a GET once by itself when its connection drops.
        run = supervise([GatewaySession.refuse(4004)], login_drops=2)
        gc.collect()
    outcome = run.outcome
    assert [(r.trigger, r.verdict) for r in ends(outcome)] == [
        ("connect_failed", "retry"),
        ("connect_failed", "relink"),
    ]
    assert (run.server.logins, run.server.connections, outcome.state) == (3, 1, "needs_relink")
    # discord.py makes a new HTTP session on each login; the adapter lets go
    # of the one a failed login left without closing the connector they share.
    assert not [w for w in caught if "Unclosed client session" in str(w.message)]


def test_disallowed_intents_4014_fail_at_once_with_the_portal_fix() -> None:
    run = supervise([GatewaySession.refuse(4014)])
    outcome = run.outcome
    assert (outcome.state, outcome.status, outcome.connects, outcome.sleeps) == (
        "failed",
        4014,
        1,
        0,
    )
    assert outcome.message is not None and "Privileged Gateway Intents" in outcome.message


def test_transient_closes_reconnect_after_the_policy_delay_and_resume() -> None:
    run = supervise(
        [
            GatewaySession(messages=("boom", "one"), end="drop"),
            GatewaySession(messages=("slow", "two"), end="reconnect"),
            GatewaySession(messages=("three",), end=4000),
            GatewaySession(messages=("four",), end="invalid_session_resumable"),
            GatewaySession.refuse(4004),
        ]
    )
    outcome = run.outcome
    # 1006 (a dropped connection) backs off; opcode 7, 4000 and opcode 9
    # (resumable) are Discord asking for a prompt reconnect.
    assert backoffs(outcome) == [
        ("1006 abnormalClosure", delay_after(Verdict.retry)),
        ("op7 Reconnect", delay_after(Verdict.retry_now, 2)),
        ("4000 unknownError", delay_after(Verdict.retry_now, 3)),
        ("op9 Invalid Session (resumable)", delay_after(Verdict.retry_now, 4)),
    ]
    assert outcome.sleeps == 4
    assert reconnected_after_each_delay(outcome)
    assert (outcome.state, outcome.connects, outcome.opens) == ("needs_relink", 5, 4)
    # Every reconnect was the supervisor's: one gateway connection per connect,
    # one IDENTIFY, then a RESUME of the same session each time.
    assert (run.server.connections, run.server.identifies, run.server.resumes) == (5, 1, 4)
    # The handler got every message, before and after each reconnect; its raise
    # and its never-ending call ended no connection.
    assert run.messages == ["boom", "one", "slow", "two", "three", "four"]
    assert run.disconnects == 5


def test_the_users_debug_events_keep_working_and_opcodes_are_still_told_apart() -> None:
    raw: list[str] = []
    run = supervise(
        [GatewaySession(messages=("one",), end="reconnect"), GatewaySession.refuse(4004)],
        raw=raw,
    )
    assert [r.rule for r in ends(run.outcome)] == ["op7 Reconnect", "4004 authenticationFailed"]
    assert run.messages == ["one"]
    # Every frame still reached the user's on_socket_raw_receive: HELLO, ACKs,
    # READY, the message and opcode 7, on both connections.
    ops = [json.loads(frame)["op"] for frame in raw]
    assert ops.count(10) == 2 and ops.count(7) == 1 and 11 in ops


def test_heartbeat_acks_keep_the_watchdog_quiet_and_a_stop_closes_with_1000() -> None:
    # Heartbeats every 20 ms, watchdog 0.1 s: without the ACKs as activity it
    # would expire long before the tenth heartbeat.
    run = supervise(
        [GatewaySession(messages=("hi",))],
        watchdog=0.1,
        heartbeat_interval=20,
        stop_after_heartbeats=10,
    )
    outcome = run.outcome
    assert (outcome.state, outcome.stop_reason, outcome.connects, outcome.opens) == (
        "stopped",
        "aborted",
        1,
        1,
    )
    assert not ends(outcome)
    assert run.messages == ["hi"]
    # An operator's stop ends the Discord session: close code 1000.
    assert run.server.closes == [1000]


def test_a_zombie_connection_trips_the_watchdog_and_resumes_the_session() -> None:
    run = supervise(
        [GatewaySession(messages=("one",), silent=True), GatewaySession.refuse(4004)],
        watchdog=0.15,
        heartbeat_interval=20,
    )
    outcome = run.outcome
    assert [r.trigger for r in ends(outcome)] == ["watchdog_expired", "connect_failed"]
    assert (outcome.state, outcome.connects, outcome.sleeps) == ("needs_relink", 2, 1)
    # A watchdog close keeps the session resumable (4000), and the next connection resumes it.
    assert run.server.closes[0] == 4000
    assert (run.server.identifies, run.server.resumes) == (1, 1)


def test_frames_discord_py_cannot_parse_end_the_connection_and_are_classified() -> None:
    junk = ("not json", '{"op": 0, "s": 9, "t": "READY", "d": {}}', "{" * 200_000)
    run = supervise(
        [
            GatewaySession(frames=(junk[0],)),
            GatewaySession(frames=(junk[1],)),
            GatewaySession(frames=(junk[2],), messages=("never",)),
            GatewaySession(messages=("still here",), end=4004),
        ]
    )
    outcome = run.outcome
    # Each junk frame ended its connection, as a close without a status:
    # retried, with the supervisor's delay, never a crash.
    assert [(r.trigger, r.verdict) for r in ends(outcome)] == [
        ("closed", "retry"),
        ("closed", "retry"),
        ("closed", "retry"),
        ("closed", "relink"),
    ]
    assert (outcome.state, outcome.connects, outcome.sleeps) == ("needs_relink", 4, 3)
    assert run.messages == ["still here"]


def test_the_transport_refuses_what_it_cannot_supervise() -> None:
    async def body() -> list[str]:
        errors = []
        sharded = discord.AutoShardedClient(intents=discord.Intents.default())
        for client, token in (
            (object(), "t"),
            (sharded, "t"),
            (discord.Client(intents=discord.Intents.default()), " "),
        ):
            with pytest.raises(ArgumentError) as caught:
                DiscordTransport(client, token)  # type: ignore[arg-type]
            errors.append(str(caught.value))
        return errors

    first, second, third = run_asyncio(body)
    assert "needs a discord.Client, got object" in first
    assert "AutoShardedClient" in second and "shard_id=N" in second
    assert "Developer Portal" in third
