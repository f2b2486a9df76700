"""Proof that the suite catches bugs: each seeded bug below must make a check or a test fail.

| seeded bug                              | caught by                                         |
|-----------------------------------------|---------------------------------------------------|
| 440 mapped to ``retry``                 | golden examples; kit state machine; runtime       |
|                                         | stateful test (generic and the explicit 440 rule) |
| attempt counter reset on every open     | kit state machine (core); runtime stateful test   |
| a terminal state with an exit edge      | ``linkstate check``; kit state machine            |
| two overlapping guards                  | ``linkstate check``; path coverage (shadowed edge)|
| a gap for one verdict                   | ``linkstate check``; kit state machine            |
| ``needs_relink`` resumes on its own     | ``linkstate check``; kit state machine            |
| ``resume`` refills the retry budget     | kit state machine (core); runtime stateful test   |

The state machines are run programmatically with a fixed seed and no
shrinking (the failure is what matters here, not its minimal form).
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from expectations import EXPECTED
from hypothesis import Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test
from test_runtime_stateful import WhatsAppRuntime

from linkstate._channel import Channel, load_channel
from linkstate._events import CloseEvent
from linkstate._lifecycle import (
    LIFECYCLE,
    Decision,
    Definition,
    Edge,
    LifecycleError,
    State,
    Trigger,
)
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import CloseTable, Rule, Verdict
from linkstate.check._checker import Kind, check
from linkstate.check._paths import edge_cover
from linkstate.testing import (
    ConformanceMachine,
    MachineFactory,
    RuntimeMachine,
    assert_conformance,
    assert_expected,
    assert_terminal_rows_stop,
)

WHATSAPP = load_channel("whatsapp")
HUNT = settings(
    max_examples=1000,
    stateful_step_count=40,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    print_blob=False,
)


def fails(machine: type[RuleBasedStateMachine], match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        run_state_machine_as_test(machine, settings=HUNT)


# -- bug 1: 440 mapped to retry ----------------------------------------------------------


def with_440_as_retry() -> Channel:
    table = WHATSAPP.table
    rules = tuple(
        replace(rule, verdict=Verdict.retry, message=None) if rule.status == 440 else rule
        for rule in table.rules
    )
    return replace(WHATSAPP, table=CloseTable(table.channel, rules, table.unknown, table.no_status))


def test_440_as_retry_breaks_the_golden_examples() -> None:
    with pytest.raises(AssertionError, match=r"440.*'retry'.*must be 'relink'"):
        assert_expected(with_440_as_retry(), EXPECTED["whatsapp"])
    with pytest.raises(AssertionError):
        assert_conformance(with_440_as_retry(), expected=EXPECTED["whatsapp"], max_examples=20)


def test_440_as_retry_is_caught_by_the_kit_state_machine() -> None:
    class RetryOn440(ConformanceMachine):
        channel = with_440_as_retry()
        expected = EXPECTED["whatsapp"]

    fails(RetryOn440, "must stop")


def test_440_as_retry_is_caught_by_the_runtime_stateful_test() -> None:
    mutant = with_440_as_retry()

    class RetryOn440Runtime(RuntimeMachine):
        channel = mutant
        expected = EXPECTED["whatsapp"]

    fails(RetryOn440Runtime, "led to reconnecting")

    # Without any golden example, the explicit 440 invariant alone still catches it.
    class RetryOn440WhatsAppRuntime(WhatsAppRuntime):
        channel = mutant
        expected = ()

    fails(RetryOn440WhatsAppRuntime, "a 440 led to")


# -- bug 2: the attempt counter reset on every open --------------------------------------


class ResetOnOpen(LinkMachine):
    """The classic flapping bug: every successful open refills the retry budget."""

    def fire(
        self,
        link: Link,
        trigger: Trigger,
        now: float,
        *,
        event: CloseEvent | None = None,
        rule: Rule | None = None,
    ) -> TransitionRecord:
        record = super().fire(link, trigger, now, event=event, rule=rule)
        if record.dst == State.open:
            link.attempt = 0
            record = replace(record, attempt=0)
        return record


def reset_on_open(channel: Channel, policy: ReconnectPolicy, rng: random.Random) -> LinkMachine:
    return ResetOnOpen(channel, policy, rng=rng)


class ResetOnOpenConformance(ConformanceMachine):
    channel = WHATSAPP
    machine_factory = reset_on_open


class ResetOnOpenRuntime(RuntimeMachine):
    channel = WHATSAPP
    machine_factory = reset_on_open


def test_reset_on_open_is_caught_by_the_kit_state_machine() -> None:
    fails(ResetOnOpenConformance, "attempt counter")


def test_reset_on_open_is_caught_by_the_runtime_stateful_test() -> None:
    fails(ResetOnOpenRuntime, "attempt counter")


# -- bug 3: a terminal state with an exit edge ---------------------------------------------


def needs_relink_leaves_on(trigger: Trigger, dst: State) -> Definition:
    """The lifecycle with the absorbing edge of ``needs_relink`` on ``trigger`` sent to ``dst``."""
    return replace(
        LIFECYCLE,
        edges=tuple(
            Edge(State.needs_relink, trigger, dst)
            if e.source is State.needs_relink and e.trigger is trigger
            else e
            for e in LIFECYCLE.edges
        ),
    )


def running(definition: Definition) -> MachineFactory:
    """A machine factory that runs ``definition`` instead of the bundled lifecycle."""

    def factory(channel: Channel, policy: ReconnectPolicy, rng: random.Random) -> LinkMachine:
        return LinkMachine(channel, policy, definition=definition, rng=rng)

    return factory


def exit_from_needs_relink() -> Definition:
    return needs_relink_leaves_on(Trigger.start, State.connecting)


def test_terminal_exit_is_caught_by_check_and_the_kit() -> None:
    broken = exit_from_needs_relink()
    report = check(broken, WHATSAPP)
    assert report.kinds() == {Kind.terminal_exit}
    (finding,) = report.findings
    assert (finding.state, finding.trigger) == (State.needs_relink, Trigger.start)
    assert "terminal state 'needs_relink' leaves on trigger 'start'" in report.render()

    factory = running(broken)

    class ExitFromNeedsRelink(ConformanceMachine):
        channel = WHATSAPP
        machine_factory = factory

    with pytest.raises(AssertionError, match="a late start left 'needs_relink'"):
        assert_terminal_rows_stop(WHATSAPP, machine_factory=factory)
    fails(ExitFromNeedsRelink, "machine went to 'connecting'")


# -- bug 4: two overlapping guards -----------------------------------------------------------


def retry_whenever_retryable(decision: Decision) -> bool:
    return decision.verdict.retryable


def test_overlapping_guards_are_caught_by_check_and_coverage() -> None:
    edges = list(LIFECYCLE.edges)
    first = edges.index(LIFECYCLE.edges_from(State.open, Trigger.closed)[0])
    edges.insert(
        first, Edge(State.open, Trigger.closed, State.reconnecting, retry_whenever_retryable)
    )
    broken = replace(LIFECYCLE, edges=tuple(edges))
    report = check(broken, WHATSAPP)
    assert report.kinds() == {Kind.overlap}
    assert "state 'open', trigger 'closed', verdict 'retry'" in report.render()
    # The earlier guard wins, so the budget and flap edges can never fire.
    assert {e.guard_name for e in edge_cover(broken).uncovered} >= {
        "retry_budget_spent",
        "is_flapping",
    }


# -- bug 5: a gap for one verdict --------------------------------------------------------------


def test_a_gap_for_one_verdict_is_caught_by_check_and_the_kit() -> None:
    broken = replace(
        LIFECYCLE,
        edges=tuple(
            e
            for e in LIFECYCLE.edges
            if not (
                e.source is State.open
                and e.trigger is Trigger.closed
                and e.guard_name == "is_fatal"
            )
        ),
    )
    report = check(broken, WHATSAPP)
    assert report.kinds() == {Kind.gap}
    assert "state 'open', trigger 'closed', verdict 'fatal'" in report.render()

    factory = running(broken)

    class GapForFatal(ConformanceMachine):
        channel = WHATSAPP
        machine_factory = factory

    gap = "no edge fired for trigger 'closed' in state 'open'"
    with pytest.raises(LifecycleError, match=gap):
        assert_terminal_rows_stop(WHATSAPP, machine_factory=factory)
    with pytest.raises(LifecycleError, match=gap):
        run_state_machine_as_test(GapForFatal, settings=HUNT)


# -- bug 6: needs_relink resumes on its own when the process restarts ------------------------


def resume_from_needs_relink() -> Definition:
    return needs_relink_leaves_on(Trigger.resume, State.idle)


def test_a_needs_relink_that_resumes_is_caught_by_check_and_the_kit() -> None:
    broken = resume_from_needs_relink()
    report = check(broken, WHATSAPP)
    assert report.kinds() == {Kind.terminal_exit}
    (finding,) = report.findings
    assert (finding.state, finding.trigger) == (State.needs_relink, Trigger.resume)

    factory = running(broken)

    class ResumesFromNeedsRelink(ConformanceMachine):
        channel = WHATSAPP
        machine_factory = factory

    fails(ResumesFromNeedsRelink, "machine went to 'idle'")


# -- bug 7: resume refills the retry budget ---------------------------------------------------


class RefillOnResume(LinkMachine):
    """A restart loop's favourite bug: every new run of a stopped link gets a fresh budget."""

    def fire(
        self,
        link: Link,
        trigger: Trigger,
        now: float,
        *,
        event: CloseEvent | None = None,
        rule: Rule | None = None,
    ) -> TransitionRecord:
        record = super().fire(link, trigger, now, event=event, rule=rule)
        if trigger is Trigger.resume:
            link.attempt = 0
            record = replace(record, attempt=0)
        return record


def refill_on_resume(channel: Channel, policy: ReconnectPolicy, rng: random.Random) -> LinkMachine:
    return RefillOnResume(channel, policy, rng=rng)


def test_refill_on_resume_is_caught_by_the_kit_state_machine() -> None:
    class RefillsOnResume(ConformanceMachine):
        channel = WHATSAPP
        machine_factory = refill_on_resume

    fails(RefillsOnResume, "attempt counter")


def test_refill_on_resume_is_caught_by_the_runtime_stateful_test() -> None:
    class RefillsOnResumeRuntime(RuntimeMachine):
        channel = WHATSAPP
        machine_factory = refill_on_resume

    fails(RefillsOnResumeRuntime, "attempt counter")
