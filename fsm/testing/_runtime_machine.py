"""The runtime conformance machine: the real supervisor (trio or asyncio), driven event by event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from linkstate._events import CloseEvent, Phase
from linkstate._lifecycle import LIFECYCLE, State, StopReason, Trigger
from linkstate._machine import TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import Rule
from linkstate.check._paths import WATCHDOG_CLOSE
from linkstate.runtime._supervisor import Supervisor
from linkstate.testing._channel_machine import CHANNEL_CLOSES, ChannelMachine
from linkstate.testing._loop import (
    DEFAULT_TIMEOUT,
    AsyncioLoop,
    ControlledTransport,
    KitTimeoutError,
    TrioLoop,
    fail_stuck,
)
from linkstate.testing._reference import ReferenceLink, delay_bound

RUNTIME_POLICY: Final = ReconnectPolicy(
    initial=1.0,
    cap=8.0,
    retry_now_max=1.0,
    max_attempts=4,
    healthy_after=30.0,
    flap_closes=2,
    flap_window=60.0,
)
"""Budget and flap detection within reach of a short run; a minute of virtual time matters."""


@dataclass
class _Timers:
    """When the runtime's own clocks fire, as the model computes them."""

    wake_at: float | None = None
    connect_started: float | None = None
    silent_at: float | None = None
    opened_at: float | None = None


# Two instants closer than this are "the same" for the model: the supervisor
# adds and subtracts floats, so an exact tie may fall either way.
_TIE: Final = 1e-6


class RuntimeMachine(ChannelMachine):
    """A hypothesis state machine driving the REAL supervisor against the reference model.

    Subclass it with class attributes (``channel`` is required; ``policy``,
    ``expected``, ``machine_factory``, ``watchdog`` and ``connect_timeout``
    are optional, see
    :class:`~linkstate.testing._channel_machine.ChannelMachine`) and collect
    its ``TestCase``::

        class TestMyChannelRuntime(RuntimeMachine):
            channel = CHANNEL

        TestMyChannelRuntimeCase = TestMyChannelRuntime.TestCase

    A persistent loop in a thread (:class:`~linkstate.testing.TrioLoop`, or
    :class:`~linkstate.testing.AsyncioLoop` with ``loop_type``) runs one
    :class:`~linkstate.runtime.Supervisor` over a
    :class:`~linkstate.testing.ControlledTransport`. Rules are transport
    events (open, reject, close with a row in any form or junk, silence),
    ``abort``, operator actions, and clock jumps. After every rule the
    runtime's transitions must match :class:`~linkstate.testing.ReferenceLink`,
    including those its own timers cause (backoff, connect timeout,
    watchdog); and:

    * no connect and no sleep ever follows a terminal verdict (until an
      operator reset), nor an ``expected`` example whose verdict is terminal;
    * every delay is within ``[0, max(policy.longest_delay, floor)]``;
    * once the run ends (abort or terminal), no task is left: not the
      supervisor, not a connect, not a connection's background task.

    A subclass may add invariants of its own over these attributes:

    Attributes:
        watchdog: Class attribute: the supervisor's silence limit, in seconds.
        connect_timeout: Class attribute: the supervisor's handshake limit, in seconds.
        loop_type: Class attribute: the loop the supervisor runs in, :class:`TrioLoop`
            (the default) or :class:`AsyncioLoop`; both keep a virtual clock.
        settle_timeout: Class attribute: seconds of real time the loop may take
            to settle after a step. Past it the step fails with
            :class:`~linkstate.testing.KitTimeoutError` (the code under test is
            stuck), and so does every later example of the class at once, so
            that hypothesis's shrinking does not wait that long again and again.
        loop: The loop the supervisor runs in.
        transport: The transport the rules drive.
        machine: The machine under test.
        link: The link under test.
        model: The reference model the runtime is compared with.
        records: Every transition the runtime made, in order.

    """

    policy = RUNTIME_POLICY
    watchdog: ClassVar[float] = 10.0
    connect_timeout: ClassVar[float] = 15.0
    loop_type: ClassVar[type[TrioLoop] | type[AsyncioLoop]] = TrioLoop
    settle_timeout: ClassVar[float] = DEFAULT_TIMEOUT
    # Why an earlier example of this class got stuck; set on the class itself.
    _stuck: ClassVar[str | None] = None

    def __init__(self) -> None:
        super().__init__()
        stuck = type(self)._stuck
        if stuck is not None:
            fail_stuck(stuck)  # an earlier example got stuck: do not wait that long again
        try:
            self.loop = self.loop_type(timeout=self.settle_timeout)
        except KitTimeoutError as exc:
            type(self)._stuck = str(exc)
            raise
        self.transport = ControlledTransport()
        self.machine = self.new_machine()
        self.link = self.machine.new_link("runtime")
        self.model = ReferenceLink(self.policy)
        _, self.watchdog_row = self.channel.classify(WATCHDOG_CLOSE)
        _, self.timeout_row = self.channel.classify(WATCHDOG_CLOSE, phase=Phase.handshake)
        self.timers = _Timers()
        self.records: list[TransitionRecord] = []
        self.consumed = 0
        self.supervisor: Supervisor | None = None
        self.running = False
        self.crash: BaseException | None = None
        self.connects = 0
        self.sleeps = 0
        self.frozen: str | None = None  # why no connect or sleep may follow
        self.frozen_at = (0, 0)
        self.earlier_sleeps = 0  # sleeps of supervisors that already returned
        self.launched_at = 0  # records consumed when the latest supervisor started
        self._launch()

    def teardown(self) -> None:
        """End the loop (and with it every task still running).

        A loop that got stuck in this example (a step, or this close, timed
        out) makes every later example of the class fail at once, with the
        same error, so that hypothesis's shrinking does not wait again.
        """
        try:
            self.loop.close()
        finally:
            if self.loop.stuck is not None:
                type(self)._stuck = self.loop.stuck

    # -- running the supervisor ------------------------------------------------

    def _launch(self) -> None:
        if self.supervisor is not None:
            self.earlier_sleeps += self.supervisor.outcome.sleeps
        supervisor = Supervisor(
            self.channel,
            self.transport,
            link=self.link,
            machine=self.machine,
            watchdog=self.watchdog,
            connect_timeout=self.connect_timeout,
        )
        supervisor.subscribe(self.records.append)
        self.supervisor = supervisor
        self.running = True

        async def run() -> None:
            try:
                await supervisor.run()
            except BaseException as exc:  # reported by an invariant
                self.crash = exc
            finally:
                self.running = False

        self.loop.run(lambda: self.loop.nursery.start_soon(run))
        self.launched_at = self.consumed
        self._expect_launch()

    def _expect_launch(self) -> None:
        if self.model.state is State.stopped:
            self._plain(Trigger.resume)
        if self.model.state is State.idle:
            self._expect(Trigger.start, State.connecting, None)
            self.model.state = State.connecting
            self._enter_connecting()
        self._catch_up()

    # -- the model's side ------------------------------------------------------

    def _next(self, trigger: Trigger) -> TransitionRecord:
        trail = " -> ".join(self.model.history) or "(start)"
        assert self.consumed < len(self.records), (
            f"after {trail}: the runtime did not fire {trigger.value!r}"
        )
        record = self.records[self.consumed]
        assert record.trigger == trigger.value, (
            f"after {trail}: the runtime fired {record.trigger!r} ({record.src} -> "
            f"{record.dst}), the model expects {trigger.value!r}"
        )
        self.consumed += 1
        return record

    def _expect(
        self, trigger: Trigger, state: State, reason: StopReason | None
    ) -> TransitionRecord:
        record = self._next(trigger)
        trail = " -> ".join(self.model.history)
        assert record.dst == state.value, (
            f"after {trail}: the runtime went to {record.dst!r}, the model says {state.value!r}"
        )
        if reason is not None:
            assert record.stop_reason == reason.value, (
                f"after {trail}: stop reason {record.stop_reason!r}, model {reason.value!r}"
            )
        assert record.attempt == self.model.attempt, (
            f"after {trail}: attempt counter {record.attempt}, the model says "
            f"{self.model.attempt} (it may refill only after {self.policy.healthy_after:g} s open)"
        )
        return record

    def _enter_connecting(self) -> None:
        self.connects += 1
        self.timers.connect_started = self.loop.now

    def _plain(self, trigger: Trigger) -> None:
        state, reason = self.model.plain(trigger, self.loop.now)
        self._expect(trigger, state, reason)
        if state is State.connecting:
            self._enter_connecting()
        elif state is State.open:
            self.timers.opened_at, self.timers.silent_at = self.loop.now, None

    def _close(self, trigger: Trigger, raw: object, row: Rule, event: CloseEvent) -> None:
        now = self.loop.now
        state, reason, verdict = self.model.close(trigger, row, now, event)
        record = self._expect(trigger, state, reason)
        assert record.verdict == (None if verdict is None else verdict.value)
        if state is State.reconnecting:
            delay = record.delay
            bound = delay_bound(self.policy, row, event)
            assert delay is not None and 0.0 <= delay <= bound, (
                f"{row.label}: delay {delay} outside [0, {bound}]"
            )
            self.timers.wake_at = record.t + delay
            self.sleeps += 1
        elif verdict is not None and verdict.terminal:
            self.frozen = f"the terminal verdict {verdict.value} ({row.label})"
        if self.terminal_example(raw) is not None:
            self.frozen = f"the close {raw!r}, which must stop the link"
            assert state in LIFECYCLE.terminal, f"{raw!r} led to {state.value}"

    def _due(self, at: float | None) -> bool | None:
        """True when a timer at ``at`` must have fired, None on a tie."""
        if at is None:
            return False
        if abs(self.loop.now - at) <= _TIE:
            return None
        return self.loop.now > at

    def _fired(self, due: bool | None, trigger: Trigger) -> bool:
        if due is None:
            nxt = self.records[self.consumed] if self.consumed < len(self.records) else None
            return nxt is not None and nxt.trigger == trigger.value
        return due

    def _catch_up(self) -> None:
        """Consume the transitions the runtime's own timers caused, then expect no more."""
        while not self.model.terminal:
            state = self.model.state
            if state is State.reconnecting and self._fired(
                self._due(self.timers.wake_at), Trigger.backoff_elapsed
            ):
                self.timers.wake_at = None
                self._plain(Trigger.backoff_elapsed)
            elif state is State.connecting and self._fired(
                self._due((self.timers.connect_started or 0.0) + self.connect_timeout),
                Trigger.connect_failed,
            ):
                self._close(Trigger.connect_failed, None, self.timeout_row, WATCHDOG_CLOSE)
            elif (
                state is State.open
                and self.timers.silent_at is not None
                and self._fired(
                    self._due(
                        max(self.timers.silent_at, self.timers.opened_at or 0.0) + self.watchdog
                    ),
                    Trigger.watchdog_expired,
                )
            ):
                self._close(Trigger.watchdog_expired, None, self.watchdog_row, WATCHDOG_CLOSE)
            else:
                break
        extra = self.records[self.consumed :]
        assert not extra, (
            f"after {' -> '.join(self.model.history)}: unexpected transitions "
            f"{[(r.trigger, r.dst) for r in extra]}"
        )

    # -- rules -----------------------------------------------------------------

    @precondition(lambda self: self.transport.pending is not None)
    @rule()
    def open(self) -> None:
        """The pending handshake completes."""
        self.loop.run(self.transport.open)
        self._plain(Trigger.opened)
        self._catch_up()

    @precondition(lambda self: self.transport.pending is not None)
    @rule(raw=CHANNEL_CLOSES)
    def reject(self, raw: object) -> None:
        """The pending handshake fails with ``raw``."""
        event, row = self.channel.classify(raw, phase=Phase.handshake)
        self.loop.run(lambda: self.transport.reject(raw))
        self._close(Trigger.connect_failed, raw, row, event)
        self._catch_up()

    @precondition(lambda self: self.transport.connection is not None)
    @rule(raw=CHANNEL_CLOSES)
    def close(self, raw: object) -> None:
        """The peer closes the open connection with ``raw``."""
        event, row = self.channel.classify(raw)
        self.loop.run(lambda: self.transport.close(raw))
        self._close(Trigger.closed, raw, row, event)
        self._catch_up()

    @precondition(
        lambda self: self.transport.connection is not None and self.timers.silent_at is None
    )
    @rule()
    def silence(self) -> None:
        """The open connection stops showing any sign of life."""
        self.loop.run(self.transport.silence)
        self.timers.silent_at = self.loop.now
        self._catch_up()

    @rule(seconds=st.sampled_from([0.25, 1.0, 5.0, 10.0, 16.0, 31.0, 61.0]) | st.floats(0, 90))
    def advance(self, seconds: float) -> None:
        """Virtual time passes; the runtime's own timers fire."""
        self.loop.jump(seconds)
        self._catch_up()

    # Aborting a link that has barely started explores little; let it live a while.
    @precondition(lambda self: self.running and self.consumed - self.launched_at >= 3)
    @rule()
    def abort(self) -> None:
        """The application aborts the supervisor."""
        supervisor = self.supervisor
        assert supervisor is not None
        self.loop.run(supervisor.abort)
        self._plain(Trigger.abort)
        self._catch_up()
        assert not self.running, "abort() did not end the run"

    @precondition(
        lambda self: (
            not self.running
            and self.model.state is not State.needs_relink
            and self.model.state is not State.failed
        )
    )
    @rule()
    def restart(self) -> None:
        """A new supervisor for the same link: a local stop resumes."""
        self._launch()

    @precondition(lambda self: not self.running and self.model.terminal)
    @rule()
    def operator_reset(self) -> None:
        """A person acted: ``reset`` on the core, then a new supervisor."""
        self.records.append(self.machine.fire(self.link, Trigger.reset, self.loop.now))
        self._plain(Trigger.reset)
        self.frozen = None
        self._launch()

    # -- invariants ------------------------------------------------------------

    @invariant()
    def the_runtime_never_crashes(self) -> None:
        """The supervisor never raises."""
        assert self.crash is None, f"the supervisor raised {self.crash!r}"

    @invariant()
    def the_runtime_connects_and_sleeps_as_the_model_says(self) -> None:
        """As many connects and backoff sleeps as the model counts, no more, no fewer."""
        assert self.transport.connects == self.connects, (
            f"{self.transport.connects} connects, the model says {self.connects}"
        )
        assert self.sleeps_so_far == self.sleeps, (
            f"{self.sleeps_so_far} backoff sleeps, the model says {self.sleeps}"
        )

    @property
    def sleeps_so_far(self) -> int:
        """Backoff sleeps of every supervisor of this run so far."""
        # Each Supervisor counts its own sleeps; the model counts them all.
        assert self.supervisor is not None
        return self.earlier_sleeps + self.supervisor.outcome.sleeps

    @invariant()
    def nothing_follows_a_terminal_verdict(self) -> None:
        """No connect and no sleep follows a terminal verdict, until an operator reset."""
        now = (self.transport.connects, self.sleeps_so_far)
        if self.frozen is None:
            self.frozen_at = now
            return
        assert now == self.frozen_at, (
            f"a connect or a sleep followed {self.frozen}: (connects, sleeps) went from "
            f"{self.frozen_at} to {now}"
        )

    @invariant()
    def no_task_outlives_the_run(self) -> None:
        """Once the run ends, no task is left: no supervisor, connect or connection task."""
        if self.running:
            return
        assert self.transport.live_tasks == 0, "a connection's task outlived the run"
        assert self.transport.pending is None, "a connect outlived the run"
        assert all(c.closed_locally or c.peer_closed for c in self.transport.opened)
        assert not self.loop.nursery.child_tasks, (
            f"tasks left after the run: {self.loop.nursery.child_tasks}"
        )
