"""The supervisor on a virtual clock, on trio and on asyncio: the seed scenarios of issue 3."""

from __future__ import annotations

import logging
import math
import random

import anyio
import pytest
import trio
import trio.testing
from anyio.abc import TaskGroup
from backends import live_tasks, on_both_backends

from linkstate._lifecycle import State, Trigger
from linkstate._machine import LinkMachine, TransitionRecord
from linkstate._policy import Jitter, ReconnectPolicy
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.runtime._scripted import (
    Close,
    Hang,
    Reject,
    ScriptedConnection,
    ScriptedTransport,
    Silent,
    Step,
)
from linkstate.runtime._supervisor import ConnectFailed, Connection, Outcome, Supervisor

SEED_440 = {"status": 440, "isLoggedOut": False, "error": "Unknown Stream Errored (conflict)"}


def supervisor(*steps: Step, **options: object) -> tuple[Supervisor, ScriptedTransport]:
    transport = ScriptedTransport(steps)
    options.setdefault("rng", random.Random(7))
    return Supervisor(WHATSAPP, transport, link_id="acct1", **options), transport  # type: ignore[arg-type]


def path(outcome: Outcome) -> list[tuple[str, str, str]]:
    return [(r.src, r.trigger, r.dst) for r in outcome.records]


@on_both_backends
async def test_whatsapp_440_needs_relink_at_once() -> None:
    sup, transport = supervisor(Close(SEED_440, after=3.0))
    outcome = await sup.run()
    assert outcome.state == "needs_relink"
    assert (outcome.verdict, outcome.status, outcome.stop_reason) == ("relink", 440, "relink")
    assert (outcome.connects, outcome.opens, outcome.sleeps) == (1, 1, 0)
    assert transport.connects == 1
    assert outcome.message is not None
    for needle in ("440", "session conflict", "linkstate relink acct1"):
        assert needle in outcome.message
    assert path(outcome) == [
        ("idle", "start", "connecting"),
        ("connecting", "opened", "open"),
        ("open", "closed", "needs_relink"),
    ]
    assert anyio.current_time() == pytest.approx(3.0)


@pytest.mark.parametrize("raw", ["440", 440, {"error": {"output": {"statusCode": "440"}}}])
@on_both_backends
async def test_440_in_string_and_nested_forms(raw: object) -> None:
    outcome = await supervisor(Close(raw))[0].run()
    assert (outcome.state, outcome.connects, outcome.sleeps) == ("needs_relink", 1, 0)


@on_both_backends
async def test_428_reconnects_with_backoff_then_440_stops() -> None:
    sup, transport = supervisor(Close(428, after=1.0), Close(SEED_440, after=1.0))
    outcome = await sup.run()
    assert (outcome.state, outcome.connects, outcome.sleeps) == ("needs_relink", 2, 1)
    backoff = [r for r in outcome.records if r.dst == "reconnecting"]
    assert len(backoff) == 1 and backoff[0].verdict == "retry" and backoff[0].status == 428
    assert backoff[0].delay is not None
    # The supervisor slept exactly the delay the machine chose: it never re-decides.
    assert outcome.slept == pytest.approx(backoff[0].delay)
    assert anyio.current_time() == pytest.approx(2.0 + backoff[0].delay)
    assert all(c.closed_locally for c in transport.connections)


@on_both_backends
async def test_retry_now_delay_counts_as_a_sleep() -> None:
    outcome = await supervisor(Close(515), Close(440))[0].run()
    assert (outcome.state, outcome.sleeps) == ("needs_relink", 1)
    assert outcome.records[2].verdict == "retry_now"


@on_both_backends
async def test_handshake_failure_goes_through_the_same_table() -> None:
    outcome = await supervisor(Reject(428), Reject("440"))[0].run()
    assert outcome.state == "needs_relink"
    assert (outcome.connects, outcome.opens, outcome.sleeps) == (2, 0, 1)
    assert [r.trigger for r in outcome.records] == [
        "start",
        "connect_failed",
        "backoff_elapsed",
        "connect_failed",
    ]


@on_both_backends
async def test_a_transport_that_raises_is_classified_not_a_crash() -> None:
    class Broken:
        async def connect(self, tasks: TaskGroup) -> Connection:
            raise OSError("connection refused")

    sup = Supervisor(
        WHATSAPP,
        Broken(),
        policy=ReconnectPolicy(max_attempts=2),
    )
    outcome = await sup.run()
    assert (outcome.state, outcome.stop_reason, outcome.connects) == ("failed", "budget_spent", 3)
    assert "connection refused" in (outcome.records[1].reason or "")


@on_both_backends
async def test_connect_timeout_is_a_failed_connect() -> None:
    sup, _ = supervisor(Hang(), Close(440), connect_timeout=7.0)
    outcome = await sup.run()
    first_fail = outcome.records[1]
    assert (first_fail.trigger, first_fail.dst, first_fail.verdict) == (
        "connect_failed",
        "reconnecting",
        "retry",
    )
    assert first_fail.t == pytest.approx(7.0)
    assert "timed out after 7 s" in (first_fail.reason or "")
    assert outcome.state == "needs_relink"


class SlowOpen:
    """Completes every handshake after ``seconds``, with a connection that never closes.

    With ``busy``, the last seconds of the handshake pass without a checkpoint
    (a synchronous step on trio's virtual clock): nothing can be cancelled in them.
    """

    def __init__(self, seconds: float, *, busy: float = 0.0) -> None:
        self.seconds = seconds
        self.busy = busy
        self.connections: list[ScriptedConnection] = []
        self.background_cancelled: list[float] = []

    async def connect(self, tasks: TaskGroup) -> Connection:
        tasks.start_soon(self._background)
        await anyio.sleep(self.seconds)
        if self.busy:
            clock = trio.lowlevel.current_clock()
            assert isinstance(clock, trio.testing.MockClock)
            clock.jump(self.busy)
        self.connections.append(ScriptedConnection(None, close_at=math.inf, silent_at=math.inf))
        return self.connections[-1]

    async def _background(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            self.background_cancelled.append(anyio.current_time())


async def test_a_handshake_done_after_the_connect_timeout_is_too_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The timeout is the deadline of the connection's own task group: a
    # handshake that returns after it passed, with no checkpoint left to be
    # cancelled at, cannot have it lifted any more.
    transport = SlowOpen(6.0, busy=1.5)
    sup = Supervisor(
        WHATSAPP, transport, link_id="acct1", connect_timeout=7.0, rng=random.Random(7)
    )
    with anyio.move_on_after(8.0):
        await sup.run()
    first = sup.outcome.records[1]
    assert (first.trigger, first.dst, first.t) == ("connect_failed", "reconnecting", 7.5)
    assert "timed out after 7 s" in (first.reason or "")
    # The connection it did make is closed, its task cancelled, at once.
    assert transport.connections[0].closed_locally
    assert transport.background_cancelled[0] == 7.5
    assert sup.outcome.opens == 0


@on_both_backends
async def test_a_handshake_within_the_connect_timeout_opens_for_good() -> None:
    transport = SlowOpen(6.0)
    sup = Supervisor(WHATSAPP, transport, link_id="acct1", connect_timeout=7.0)
    with anyio.move_on_after(100.0):
        await sup.run()
    assert [r.dst for r in sup.outcome.records] == ["connecting", "open", "stopped"]
    assert transport.background_cancelled == [100.0], "cancelled with its connection, at the stop"


@on_both_backends
async def test_watchdog_forces_a_reconnect_with_a_fresh_window_each_time() -> None:
    sup, _ = supervisor(Silent(after=5.0), Silent(after=0.0), Close(440), watchdog=10.0)
    outcome = await sup.run()
    expiries = [r for r in outcome.records if r.trigger == "watchdog_expired"]
    assert len(expiries) == 2
    assert all(r.dst == "reconnecting" for r in expiries)
    opened = [r.t for r in outcome.records if r.trigger == "opened"]
    # First connection: alive 5 s, then silent for the 10 s window.
    assert expiries[0].t - opened[0] == pytest.approx(15.0)
    # Second connection: a fresh window from its own open, not from the first's.
    assert expiries[1].t - opened[1] == pytest.approx(10.0)
    assert outcome.state == "needs_relink"


@on_both_backends
async def test_quiet_but_alive_connection_never_trips_the_watchdog() -> None:
    sup, _ = supervisor(Close(440, after=3600.0), watchdog=10.0)
    outcome = await sup.run()
    assert [r.trigger for r in outcome.records] == ["start", "opened", "closed"]


@on_both_backends
async def test_spent_budget_ends_in_failed() -> None:
    sup, _ = supervisor(
        *[Close(428, after=1.0)] * 5, policy=ReconnectPolicy(max_attempts=3, flap_closes=0)
    )
    outcome = await sup.run()
    assert (outcome.state, outcome.stop_reason) == ("failed", "budget_spent")
    assert (outcome.connects, outcome.sleeps, outcome.attempts) == (4, 3, 3)
    assert outcome.message is not None and "gave up after 3 reconnect attempts" in outcome.message


@on_both_backends
async def test_flapping_ends_in_failed() -> None:
    sup, _ = supervisor(*[Close(500)] * 10, policy=ReconnectPolicy(flap_closes=3))
    outcome = await sup.run()
    assert (outcome.state, outcome.stop_reason, outcome.connects) == ("failed", "flapping", 3)


@on_both_backends
async def test_fatal_close_ends_in_failed() -> None:
    outcome = await supervisor(Close(405))[0].run()
    assert (outcome.state, outcome.stop_reason, outcome.verdict) == ("failed", "fatal", "fatal")


# -- abort --------------------------------------------------------------------


async def abort_when(sup: Supervisor, state: str, delay: float = 0.0) -> None:
    async def abort_soon() -> None:
        await anyio.sleep(delay)
        sup.abort()

    def watch(record: TransitionRecord) -> None:
        if record.dst == state:
            nursery.start_soon(abort_soon)

    async with anyio.create_task_group() as nursery:
        sup.subscribe(watch)
        outcome = await sup.run()
    assert outcome.state == "stopped"
    assert outcome.stop_reason == "aborted"
    assert outcome.records[-1].src == state
    assert outcome.message is not None and "stopped locally" in outcome.message


@on_both_backends
async def test_abort_during_backoff() -> None:
    sup, _ = supervisor(
        Close(428), policy=ReconnectPolicy(initial=100, cap=100, jitter=Jitter.none)
    )
    await abort_when(sup, "reconnecting", delay=50.0)
    assert anyio.current_time() == pytest.approx(50.0)


@on_both_backends
async def test_abort_during_connecting() -> None:
    sup, _ = supervisor(Hang(), connect_timeout=None)
    await abort_when(sup, "connecting", delay=30.0)


@on_both_backends
async def test_abort_while_open_closes_the_connection() -> None:
    sup, transport = supervisor()
    await abort_when(sup, "open", delay=5.0)
    assert transport.connections[0].closed_locally


@on_both_backends
async def test_abort_before_run_stops_without_connecting() -> None:
    sup, transport = supervisor(Close(440))
    sup.abort()
    outcome = await sup.run()
    assert (outcome.state, outcome.connects, transport.connects) == ("stopped", 0, 0)


@on_both_backends
async def test_external_cancellation_stops_the_link_and_propagates() -> None:
    sup, transport = supervisor()
    with anyio.move_on_after(42.0) as scope:
        await sup.run()
    assert scope.cancelled_caught
    assert sup.outcome.state == "stopped"
    assert transport.connections[0].closed_locally


@on_both_backends
async def test_no_task_outlives_the_supervisor() -> None:
    class Pinging(ScriptedTransport):
        async def connect(self, tasks: TaskGroup) -> ScriptedConnection:
            tasks.start_soon(anyio.sleep_forever)
            return await super().connect(tasks)

    tasks = live_tasks
    before = tasks()
    transport = Pinging([Close(428), Close(440)])
    seen_tasks: list[int] = []
    sup = Supervisor(WHATSAPP, transport)
    sup.subscribe(lambda record: seen_tasks.append(tasks()))
    outcome = await sup.run()
    assert outcome.state == "needs_relink"
    # While open, the transport's background task was alive...
    assert max(seen_tasks) > before
    # ...and none is left once run() returned.
    assert tasks() == before


# -- resuming, observers, logging ------------------------------------------------


@on_both_backends
async def test_a_terminal_link_is_not_reconnected() -> None:
    machine = LinkMachine(WHATSAPP)
    link = machine.new_link("acct1")
    machine.fire(link, Trigger.start, 0.0)
    machine.fire(link, Trigger.opened, 0.0)
    machine.close(link, 440, 0.0)
    transport = ScriptedTransport([])
    outcome = await Supervisor(WHATSAPP, transport, link=link, machine=machine).run()
    assert (outcome.state, outcome.connects, transport.connects) == ("needs_relink", 0, 0)
    assert outcome.message is not None and "440" in outcome.message


@on_both_backends
async def test_resume_from_reconnecting_sleeps_only_the_rest() -> None:
    machine = LinkMachine(WHATSAPP, ReconnectPolicy(initial=10, cap=10, jitter=Jitter.none))
    link = machine.new_link("acct1")
    machine.fire(link, Trigger.start, 0.0)
    machine.close(link, 428, 0.0, trigger=Trigger.connect_failed)
    assert link.state == State.reconnecting and link.delay == 10
    await anyio.sleep(4.0)
    outcome = await Supervisor(
        WHATSAPP, ScriptedTransport([Close(440)]), link=link, machine=machine
    ).run()
    assert outcome.slept == pytest.approx(6.0)
    assert outcome.state == "needs_relink"


@on_both_backends
async def test_observer_sees_only_its_links_transitions_and_cannot_break_it() -> None:
    sup, _ = supervisor(Close(428), Close(440))
    seen: list[str] = []

    def broken(record: TransitionRecord) -> None:
        raise RuntimeError("metrics bug")

    sup.subscribe(broken)
    unsubscribe = sup.subscribe(lambda r: seen.append(r.dst))
    outcome = await sup.run()
    assert seen == [r.dst for r in outcome.records]
    unsubscribe()
    assert outcome.state == "needs_relink"


@on_both_backends
async def test_shared_machine_needs_no_policy() -> None:
    machine = LinkMachine(WHATSAPP)
    with pytest.raises(ValueError, match="pass one or the other"):
        Supervisor(WHATSAPP, ScriptedTransport([]), machine=machine, policy=ReconnectPolicy())
    with pytest.raises(ValueError, match="watchdog"):
        Supervisor(WHATSAPP, ScriptedTransport([]), watchdog=0)


@on_both_backends
async def test_operator_message_logged_once_at_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="linkstate")
    outcome = await supervisor(Close(428), Close(SEED_440))[0].run()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [outcome.message]
    assert errors[0].name == "linkstate.runtime"
    transitions = [r for r in caplog.records if hasattr(r, "trigger")]
    assert [r.trigger for r in transitions] == [
        "start",
        "opened",
        "closed",
        "backoff_elapsed",
        "opened",
        "closed",
    ]
    backoff = transitions[2]
    assert (backoff.state, backoff.status, backoff.verdict) == ("reconnecting", 428, "retry")  # type: ignore[attr-defined]
    assert backoff.delay == outcome.records[2].delay  # type: ignore[attr-defined]


@on_both_backends
async def test_abort_logs_no_operator_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="linkstate")
    sup, _ = supervisor()
    with anyio.move_on_after(1.0):
        await sup.run()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@on_both_backends
async def test_connect_failed_with_raw_dict() -> None:
    class Rejecting:
        async def connect(self, tasks: TaskGroup) -> Connection:
            raise ConnectFailed({"error": {"output": {"statusCode": 401}}})

    outcome = await Supervisor(WHATSAPP, Rejecting()).run()
    assert (outcome.state, outcome.status) == ("needs_relink", 401)


@on_both_backends
async def test_outcome_keeps_only_the_newest_records_on_a_long_run() -> None:
    seen: list[TransitionRecord] = []
    sup, _ = supervisor(
        *[Close(428, after=100.0)] * 30,
        Close(440),
        policy=ReconnectPolicy(flap_closes=0, healthy_after=10),
        keep_records=7,
    )
    sup.subscribe(seen.append)
    outcome = await sup.run()
    assert len(seen) > 3 * 7  # every transition reached the observer
    assert outcome.records == tuple(seen[-7:])
    assert len(sup._records) < 2 * 7


def test_keep_records_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keep_records=0 must be 1 or more"):
        supervisor(keep_records=0)
