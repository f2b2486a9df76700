"""Memory and time bounds: records kept per fleet link, and stops that do not wait out a peer.

A fleet keeps a small number of transitions per link in memory (the durable
history is the store's). A stop (abort: Ctrl-C, SIGTERM, ``--max-time``)
waits for the peer's answer to our close at most ``stop_timeout``, not the
whole close timeout, and a second abort does not wait at all. The peer here
is real: raw TCP on 127.0.0.1 that accepts the handshake and never answers.
"""

from __future__ import annotations

import time

import anyio
import pytest
import trio
import trio.testing
from hostile_peer import hostile_peer

from linkstate._errors import ArgumentError
from linkstate._machine import TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate.channels.websocket import CHANNEL, WebSocketTransport
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.cli import main
from linkstate.runtime import Supervisor, open_fleet
from linkstate.runtime._fleet import DEFAULT_FLEET_KEEP_RECORDS
from linkstate.runtime._scripted import Close, ScriptedTransport

NO_FLAPS = ReconnectPolicy(initial=0.0, cap=0.0, flap_closes=0)


async def test_a_fleet_keeps_few_records_per_link_however_it_flaps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fleet() as default, open_fleet(keep_records=3) as three:
        for fleet in (default, three):
            transport = ScriptedTransport([Close(428, after=0.5)] * 400)
            fleet.start("flappy", WHATSAPP, transport, policy=NO_FLAPS)
        await trio.sleep(1_000.0)
        for fleet, keep in ((default, DEFAULT_FLEET_KEEP_RECORDS), (three, 3)):
            supervisor = fleet._members["flappy"].supervisor
            assert supervisor is not None and supervisor.outcome.connects > 300
            # Trimmed in batches: never more than twice the bound in memory.
            assert len(supervisor._records) < 2 * keep
            assert len(supervisor.outcome.records) == keep
    assert DEFAULT_FLEET_KEEP_RECORDS <= 20


@pytest.mark.parametrize("keep", [0, -1, True, 2.5])
async def test_a_fleet_refuses_a_record_bound_that_cannot_work(keep: object) -> None:
    with pytest.raises(ArgumentError, match=r"keep_records=.* must be a whole number"):
        async with open_fleet(keep_records=keep):  # type: ignore[arg-type]
            pass


def stop_after_open(supervisor: Supervisor, *, second_abort_after: float | None) -> float:
    """Run ``supervisor``, abort it once open (and again later); the real seconds the stop took."""
    opened = anyio.Event()
    stopped_at: list[float] = []

    def on_transition(record: TransitionRecord) -> None:
        if record.dst == "open":
            stopped_at.append(time.monotonic())
            supervisor.abort()
            opened.set()

    supervisor.subscribe(on_transition)

    async def run() -> None:
        async with anyio.create_task_group() as tasks:
            if second_abort_after is not None:

                async def abort_again() -> None:
                    await opened.wait()
                    await anyio.sleep(second_abort_after)  # the close is waiting by then
                    supervisor.abort()

                tasks.start_soon(abort_again)
            with anyio.fail_after(60):  # a guard against a hang, never reached when all is well
                await supervisor.run()
            tasks.cancel_scope.cancel()

    anyio.run(run, backend="trio")
    assert supervisor.outcome.state == "stopped"
    return time.monotonic() - stopped_at[0]


@pytest.mark.parametrize(
    ("stop_timeout", "second_abort_after"),
    [(0.2, None), (60.0, 0.3)],
    ids=["one abort waits stop_timeout", "a second abort cuts the wait short"],
)
def test_a_stop_does_not_wait_out_a_peer_that_never_answers_the_close(
    stop_timeout: float, second_abort_after: float | None
) -> None:
    with hostile_peer([b""]) as peer:  # accepts, then never sends a byte
        transport = WebSocketTransport(peer.url, ping_interval=None)
        supervisor = Supervisor(CHANNEL, transport, close_timeout=60.0, stop_timeout=stop_timeout)
        took = stop_after_open(supervisor, second_abort_after=second_abort_after)
        assert peer.served(1)
    # The peer itself gives up after 10 s; our close timeout is 60 s.
    assert took < 8, f"the stop took {took:.1f} s: the close waited for the peer"
    assert peer.answers == [1000]  # our close frame went out all the same


def test_watch_max_time_ends_soon_after_the_limit_against_a_silent_peer() -> None:
    with hostile_peer([b""]) as peer:
        started = time.monotonic()
        status = main(["watch", "websocket", peer.url, "--max-time", "0.3", "--format", "json"])
        took = time.monotonic() - started
    assert status == 0
    # The close timeout is 5 s; a stop waits at most 1 s of it.
    assert took < 4.5, f"watch --max-time 0.3 took {took:.1f} s"


@pytest.mark.parametrize(
    ("name", "value"), [("close_timeout", -1.0), ("stop_timeout", float("nan"))]
)
def test_close_and_stop_timeouts_that_cannot_work_are_refused(name: str, value: float) -> None:
    transport = WebSocketTransport("ws://127.0.0.1:1/")
    with pytest.raises(ArgumentError, match=f"{name}=.* must be a number of seconds, 0 or more"):
        Supervisor(CHANNEL, transport, **{name: value})  # type: ignore[arg-type]
