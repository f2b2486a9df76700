"""The core conformance machine: a channel's closes drive the real core, against the model."""

from __future__ import annotations

from typing import Final

from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from linkstate._events import CloseEvent, Initiator, Phase
from linkstate._lifecycle import CLOSE_TRIGGERS, EXIT_TRIGGERS, Decision, State, StopReason, Trigger
from linkstate._machine import TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate.check._checker import promised_route
from linkstate.testing._channel_machine import CHANNEL_CLOSES, ChannelMachine
from linkstate.testing._reference import ReferenceLink, delay_bound

# A policy that reaches the budget and flap detection within a few steps, so a
# short random run exercises every close route.
KIT_POLICY: Final = ReconnectPolicy(
    initial=1.0, cap=8.0, max_attempts=4, healthy_after=30.0, flap_closes=3, flap_window=60.0
)


class ConformanceMachine(ChannelMachine):
    """A hypothesis state machine proving a channel on the real core against the model.

    Subclass it with class attributes (``channel`` is required; ``policy``,
    ``expected`` and ``machine_factory`` are optional, see
    :class:`~linkstate.testing._channel_machine.ChannelMachine`) and collect
    its ``TestCase``::

        class TestMyChannel(ConformanceMachine):
            channel = CHANNEL
            expected = [(4004, Verdict.relink)]

        TestMyChannelCase = TestMyChannel.TestCase

    Rules are the lifecycle's triggers (closes drawn from
    :func:`~linkstate.testing.close_events`, plus the ``expected`` examples)
    and clock advances. After every step the real link must agree with
    :class:`~linkstate.testing.ReferenceLink` on the state, the stop reason,
    the verdict and the attempt counter; every delay must stay within
    :func:`~linkstate.testing.delay_bound`; a terminal state must absorb
    everything but ``reset``; and an expected terminal example must stop the
    link with no delay. A subclass may add rules and invariants of its own.

    Attributes:
        now: The virtual time of the run.
        model: The reference model the link is compared with.
        machine: The machine under test.
        link: The link under test.
        record: The latest transition, or None before the first.

    """

    policy = KIT_POLICY

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.model = ReferenceLink(self.policy)
        self.machine = self.new_machine()
        self.link = self.machine.new_link("conformance")
        self.record: TransitionRecord | None = None
        self.live = 0  # transitions since the link was last idle

    @initialize(seed=st.integers(0, 2**32 - 1))
    def seed_jitter(self, seed: int) -> None:
        """Seed the machine's jitter, so each run explores other delays."""
        self.machine.rng.seed(seed)

    def _check(self, record: TransitionRecord, state: State, reason: StopReason | None) -> None:
        self.record = record
        self.live = 0 if record.dst == State.idle else self.live + 1
        trail = " -> ".join(self.model.history)
        assert record.dst == state.value, (
            f"after {trail}: machine went to {record.dst!r}, the model says {state.value!r}"
        )
        want_reason = None if reason is None else reason.value
        if record.src != record.dst:
            assert record.stop_reason == want_reason, (
                f"after {trail}: stop reason {record.stop_reason!r}, the model says {want_reason!r}"
            )
        assert self.link.attempt == self.model.attempt, (
            f"after {trail}: attempt counter {self.link.attempt}, the model says "
            f"{self.model.attempt} (it may refill only after "
            f"{self.policy.healthy_after:g} s open, or a reset)"
        )

    def _plain(self, trigger: Trigger) -> None:
        record = self.machine.fire(self.link, trigger, self.now)
        self._check(record, *self.model.plain(trigger, self.now))

    def _close(self, trigger: Trigger, raw: object) -> None:
        phase = Phase.handshake if trigger is Trigger.connect_failed else None
        event, row = self.channel.classify(raw, phase=phase)
        was_terminal = self.model.terminal
        record = self.machine.close(self.link, raw, self.now, trigger=trigger)
        state, reason, verdict = self.model.close(trigger, row, self.now, event)
        self._check(record, state, reason)
        if was_terminal:
            return
        assert record.verdict == (None if verdict is None else verdict.value)
        if record.delay is not None:
            bound = delay_bound(self.policy, row, event)
            assert 0.0 <= record.delay <= bound, (
                f"{row.label}: delay {record.delay} outside [0, {bound}]"
            )
        want = self.terminal_example(raw)
        if want is not None:
            assert record.dst == promised_route(Decision(want))[0].value, (
                f"{raw!r} must stop the link ({want.value}) but led to {record.dst!r}"
            )
            assert record.delay is None

    @rule(seconds=st.sampled_from([0.5, 1.0, 5.0, 29.0, 31.0, 61.0]) | st.floats(0, 200))
    def advance(self, seconds: float) -> None:
        """Time passes."""
        self.now += seconds

    @precondition(lambda self: self.model.state is State.idle)
    @rule()
    def start(self) -> None:
        """The link is started."""
        self._plain(Trigger.start)

    @precondition(lambda self: self.model.state is State.connecting)
    @rule()
    def opened(self) -> None:
        """The handshake completes."""
        self._plain(Trigger.opened)

    @precondition(lambda self: self.model.state is State.connecting)
    @rule(raw=CHANNEL_CLOSES)
    def connect_failed(self, raw: object) -> None:
        """The handshake fails with ``raw``."""
        self._close(Trigger.connect_failed, raw)

    @precondition(lambda self: self.model.state is State.open)
    @rule(raw=CHANNEL_CLOSES)
    def closed(self, raw: object) -> None:
        """The open connection closes with ``raw``."""
        self._close(Trigger.closed, raw)

    @precondition(lambda self: self.model.state is State.open)
    @rule()
    def watchdog_expired(self) -> None:
        """The open connection has been silent too long."""
        self._close(
            Trigger.watchdog_expired,
            CloseEvent(reason="watchdog: transport silent", initiator=Initiator.local),
        )

    @precondition(lambda self: self.model.state is State.reconnecting)
    @rule()
    def backoff_elapsed(self) -> None:
        """The backoff delay is over."""
        self._plain(Trigger.backoff_elapsed)

    # Aborting a link that has barely started explores little; let it live a while.
    @precondition(lambda self: not self.model.terminal and self.live >= 3)
    @rule()
    def abort(self) -> None:
        """The application stops the link."""
        self._plain(Trigger.abort)

    # A late event is one a terminal state must absorb; its ways out
    # (reset, resume) have rules of their own.
    @precondition(lambda self: self.model.terminal)
    @rule(
        trigger=st.sampled_from([t for t in Trigger if t not in EXIT_TRIGGERS]),
        raw=CHANNEL_CLOSES,
    )
    def late_event(self, trigger: Trigger, raw: object) -> None:
        """Any trigger but ``reset`` and ``resume`` reaches a terminal link, which absorbs it."""
        if trigger in CLOSE_TRIGGERS:
            self._close(trigger, raw)
        else:
            self._plain(trigger)
        assert self.record is not None and self.record.absorbed

    @precondition(lambda self: self.model.terminal)
    @rule()
    def reset(self) -> None:
        """An operator resets the terminal link."""
        self._plain(Trigger.reset)

    @precondition(lambda self: self.model.terminal)
    @rule()
    def resume(self) -> None:
        """A new run resumes the link: only ``stopped`` leaves; the others absorb it."""
        was = self.model.state
        self._plain(Trigger.resume)
        assert self.record is not None
        assert self.record.absorbed is (was is not State.stopped)

    @invariant()
    def terminal_states_tell_the_operator(self) -> None:
        """A link that needs a person (relink, or failed) carries an operator message."""
        if self.link.state in (State.needs_relink.value, State.failed.value):
            assert self.link.message, f"{self.link.state} without an operator message"
