"""The shared machine: routing on verdicts, budget, flapping, absorbing terminals, observers.

The stateful test at the bottom explores the synchronous core with no trio:
rules are the lifecycle's triggers, invariants are the promises we make.
"""

from __future__ import annotations

import random
import sys

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from linkstate._lifecycle import (
    CLOSE_TRIGGERS,
    DECISIONS,
    LIFECYCLE,
    TERMINAL_STATES,
    LifecycleError,
    State,
    StopReason,
    Trigger,
)
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import Verdict
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP


def open_link(machine: LinkMachine, now: float = 0.0) -> Link:
    link = machine.new_link("acct1", now=now)
    machine.fire(link, Trigger.start, now)
    machine.fire(link, Trigger.opened, now)
    return link


def test_440_goes_to_needs_relink_with_no_delay() -> None:
    machine = LinkMachine(WHATSAPP)
    link = open_link(machine)
    record = machine.close(link, {"status": "440"}, 1.0)
    assert (record.src, record.dst, record.verdict) == ("open", "needs_relink", "relink")
    assert record.delay is None and link.delay is None
    assert record.stop_reason == "relink"
    assert "session conflict" in (record.message or "")
    assert link.attempt == 0


def test_428_schedules_a_backoff_within_the_policy() -> None:
    policy = ReconnectPolicy(initial=2, cap=10)
    machine = LinkMachine(WHATSAPP, policy, rng=random.Random(1))
    link = open_link(machine)
    record = machine.close(link, 428, 1.0)
    assert record.dst == "reconnecting" and record.attempt == 1
    assert record.delay is not None and 0 <= record.delay <= 2


def test_connect_failed_uses_the_same_classifier() -> None:
    machine = LinkMachine(WHATSAPP)
    link = machine.new_link("a")
    machine.fire(link, Trigger.start, 0)
    record = machine.close(link, {"status": 440}, 0, trigger=Trigger.connect_failed)
    assert record.dst == "needs_relink"
    assert link.last_event is not None and link.last_event.phase == "handshake"


def test_budget_spent_fails_with_its_own_reason() -> None:
    machine = LinkMachine(WHATSAPP, ReconnectPolicy(max_attempts=2, flap_closes=0))
    link = machine.new_link("a")
    machine.fire(link, Trigger.start, 0)
    for now in (1, 2):
        assert machine.close(link, 503, now, trigger=Trigger.connect_failed).dst == "reconnecting"
        machine.fire(link, Trigger.backoff_elapsed, now)
    record = machine.close(link, 503, 3, trigger=Trigger.connect_failed)
    assert (record.dst, record.stop_reason) == ("failed", "budget_spent")
    assert "gave up after 2 reconnect attempts" in (record.message or "")


def test_flapping_fails_with_its_own_reason() -> None:
    machine = LinkMachine(WHATSAPP, ReconnectPolicy(flap_closes=3, flap_window=60))
    link = machine.new_link("a")
    machine.fire(link, Trigger.start, 0)
    results = []
    for now in (1.0, 2.0, 3.0):
        machine.fire(link, Trigger.opened, now)
        results.append(machine.close(link, 428, now + 0.5))
        if link.state == State.reconnecting:
            machine.fire(link, Trigger.backoff_elapsed, now + 0.6)
    assert [r.dst for r in results] == ["reconnecting", "reconnecting", "failed"]
    assert results[-1].stop_reason == "flapping"


def test_attempts_reset_only_after_a_healthy_period() -> None:
    machine = LinkMachine(WHATSAPP, ReconnectPolicy(healthy_after=60, flap_closes=0))
    link = open_link(machine)
    machine.close(link, 428, 1)
    machine.fire(link, Trigger.backoff_elapsed, 2)
    machine.fire(link, Trigger.opened, 3)
    assert machine.close(link, 428, 10).attempt == 2  # open for 7 s: not healthy
    machine.fire(link, Trigger.backoff_elapsed, 11)
    machine.fire(link, Trigger.opened, 12)
    assert machine.close(link, 428, 100).attempt == 1  # open for 88 s: healthy, reset


def test_retry_after_hint_is_a_floor() -> None:
    machine = LinkMachine(WHATSAPP, ReconnectPolicy(cap=5))
    link = open_link(machine)
    record = machine.close(link, {"status": 503, "retry_after": 42}, 1)
    assert record.delay == 42


def test_terminal_states_absorb_everything_but_reset() -> None:
    machine = LinkMachine(WHATSAPP)
    link = open_link(machine)
    machine.close(link, 440, 1)
    for trigger in Trigger:
        if trigger is Trigger.reset:
            continue
        record = machine.fire(link, trigger, 2)
        assert record.absorbed and link.state == State.needs_relink
    record = machine.fire(link, Trigger.reset, 3)
    assert (record.dst, link.attempt, link.message, link.stop_reason) == ("idle", 0, None, None)


def test_resume_takes_only_a_stopped_link_back_keeping_its_budget() -> None:
    machine = LinkMachine(WHATSAPP, ReconnectPolicy(flap_closes=0))
    link = open_link(machine)
    machine.close(link, 428, 1)
    machine.fire(link, Trigger.abort, 2)
    kept = (link.attempt, link.repeats, link.recent_closes, link.verdict)
    record = machine.fire(link, Trigger.resume, 3)
    assert (record.src, record.trigger, record.dst, record.attempt) == (
        "stopped",
        "resume",
        "idle",
        1,
    )
    assert (link.attempt, link.repeats, link.recent_closes, link.verdict) == kept
    assert (link.stop_reason, link.message, link.delay) == (None, None, None)
    machine.fire(link, Trigger.start, 4)
    machine.close(link, 440, 5, trigger=Trigger.connect_failed)
    record = machine.fire(link, Trigger.resume, 6)
    assert record.absorbed and link.state == State.needs_relink


def test_invalid_trigger_names_state_trigger_and_fix() -> None:
    machine = LinkMachine(WHATSAPP)
    link = machine.new_link("a")
    with pytest.raises(LifecycleError) as caught:
        machine.fire(link, Trigger.opened, 0)
    text = str(caught.value)
    assert "'opened' is not valid in state 'idle'" in text and "accepts start, abort" in text
    assert link.state == State.idle


def test_close_without_classification_is_a_clear_error() -> None:
    machine = LinkMachine(WHATSAPP)
    link = open_link(machine)
    with pytest.raises(LifecycleError, match="needs the close event and its rule"):
        machine.fire(link, Trigger.closed, 1)


def test_observers_see_every_transition_and_cannot_break_it() -> None:
    machine = LinkMachine(WHATSAPP)
    seen: list[TransitionRecord] = []

    def broken(record: TransitionRecord) -> None:
        raise RuntimeError("metrics exporter is down")

    machine.subscribe(broken)
    unsubscribe = machine.subscribe(seen.append)
    link = open_link(machine)
    unsubscribe()
    machine.close(link, 440, 1)
    assert [r.trigger for r in seen] == ["start", "opened"]
    assert link.state == State.needs_relink


def test_many_links_share_one_machine_without_registration() -> None:
    machine = LinkMachine(WHATSAPP)
    links = [machine.new_link(f"l{i}") for i in range(1000)]
    assert machine.machine.models == []
    assert sys.getsizeof(links[0]) < 200
    for link in links[::2]:
        machine.fire(link, Trigger.start, 0)
    assert sum(link.state == State.connecting for link in links) == 500


def test_definition_resolves_exactly_one_edge_per_decision() -> None:
    for state in LIFECYCLE.states:
        for trigger in CLOSE_TRIGGERS:
            if not LIFECYCLE.edges_from(state, trigger) or state in TERMINAL_STATES:
                continue
            for decision in DECISIONS:
                fired = [
                    e
                    for e in LIFECYCLE.edges_from(state, trigger)
                    if e.guard is not None and e.guard(decision)
                ]
                assert len(fired) == 1, (state, trigger, decision)
                edge = fired[0]
                if decision.verdict is Verdict.relink:
                    assert edge.dest is State.needs_relink
                if decision.verdict is Verdict.fatal:
                    assert edge.dest is State.failed


# -- the stateful model of the core -------------------------------------------------

CLOSE_INPUTS: st.SearchStrategy[object] = st.one_of(
    st.sampled_from([row.status for row in WHATSAPP.table.rules if row.status is not None]),
    st.sampled_from(
        [
            "440",
            " 428 ",
            {"error": {"output": {"statusCode": 440}}},
            None,
            "junk",
            {"status": 10**9},
            b"\x00\xff",
            {"error": {"error": {}}},
        ]
    ),
    st.integers(-5, 70_000),
)


class CoreLifecycle(RuleBasedStateMachine):
    """Fires every trigger in every state; the machine must keep its promises."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.record: TransitionRecord | None = None
        self.terminal_before = False

    @initialize(
        max_attempts=st.none() | st.integers(1, 5),
        flap_closes=st.integers(0, 4),
        seed=st.integers(0, 1000),
    )
    def setup(self, max_attempts: int | None, flap_closes: int, seed: int) -> None:
        self.policy = ReconnectPolicy(
            max_attempts=max_attempts, flap_closes=flap_closes, healthy_after=30
        )
        self.machine = LinkMachine(WHATSAPP, self.policy, rng=random.Random(seed))
        self.link = self.machine.new_link("model")

    def fire(self, trigger: Trigger, raw: object = None) -> None:
        self.terminal_before = self.link.terminal
        before = self.link.state
        accepted = bool(LIFECYCLE.edges_from(State(before), trigger))
        try:
            if trigger in CLOSE_TRIGGERS:
                self.record = self.machine.close(self.link, raw, self.now, trigger=trigger)
            else:
                self.record = self.machine.fire(self.link, trigger, self.now)
        except LifecycleError:
            assert not accepted, f"{trigger} should be accepted in {before}"
            assert self.link.state == before
            self.record = None
            return
        assert accepted

    @rule(seconds=st.floats(0, 120))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def start(self) -> None:
        self.fire(Trigger.start)

    @rule()
    def opened(self) -> None:
        self.fire(Trigger.opened)

    @rule(raw=CLOSE_INPUTS)
    def closed(self, raw: object) -> None:
        self.fire(Trigger.closed, raw)

    @rule(raw=CLOSE_INPUTS)
    def connect_failed(self, raw: object) -> None:
        self.fire(Trigger.connect_failed, raw)

    @rule()
    def watchdog_expired(self) -> None:
        self.fire(Trigger.watchdog_expired, {"reason": "watchdog: transport silent"})

    @rule()
    def backoff_elapsed(self) -> None:
        self.fire(Trigger.backoff_elapsed)

    @rule()
    def abort(self) -> None:
        self.fire(Trigger.abort)

    @rule()
    def reset(self) -> None:
        self.fire(Trigger.reset)

    @rule()
    def resume(self) -> None:
        kept = (self.link.attempt, self.link.repeats, self.link.recent_closes)
        self.fire(Trigger.resume)
        if self.record is not None and self.record.src == State.stopped:
            assert (self.link.attempt, self.link.repeats, self.link.recent_closes) == kept

    @invariant()
    def only_reset_and_resume_from_stopped_leave_a_terminal_state(self) -> None:
        if self.record is not None and self.terminal_before:
            leaves = self.record.trigger == Trigger.reset or (
                self.record.trigger == Trigger.resume and self.record.src == State.stopped
            )
            if leaves:
                assert self.record.dst == State.idle
            else:
                assert self.record.dst == self.record.src

    @invariant()
    def relink_lands_in_needs_relink_with_no_delay(self) -> None:
        record = self.record
        if record is not None and record.verdict == "relink" and not self.terminal_before:
            assert record.dst == State.needs_relink
            assert record.delay is None
            assert self.link.stop_reason is StopReason.relink

    @invariant()
    def delays_stay_within_the_policy(self) -> None:
        record = self.record
        if record is not None and record.delay is not None:
            assert record.dst == State.reconnecting
            assert 0 <= record.delay <= self.policy.longest_delay

    @invariant()
    def attempts_never_exceed_the_budget(self) -> None:
        if self.policy.max_attempts is not None:
            assert self.link.attempt <= self.policy.max_attempts

    @invariant()
    def terminal_states_carry_a_message(self) -> None:
        if self.link.state in (State.needs_relink, State.failed):
            assert self.link.message


TestCoreLifecycle = CoreLifecycle.TestCase
