"""The reference a channel is held to: the author's golden examples, and a model of the rules.

The model, :class:`ReferenceLink`, is deliberately simple: it keeps only what
the lifecycle rules talk about, so that a disagreement with the real machine
points at the machine (or the channel), not at the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from linkstate._events import CloseEvent
from linkstate._lifecycle import LIFECYCLE, Decision, State, StopReason, Trigger
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import Rule, Verdict
from linkstate.check._checker import promised_route

Expectation = tuple[object, Verdict]
"""A golden example: a raw close as the platform sends it, and the verdict it must get."""


def example_key(raw: object) -> object:
    """A hashable stand-in for an expected raw close (dicts are compared by repr)."""
    try:
        hash(raw)
    except TypeError:
        pass
    except Exception:
        return object()  # a hostile __hash__: equal to no golden example
    else:
        return raw
    try:
        return repr(raw)
    except Exception:  # a hostile __repr__, or nesting past the recursion limit
        return object()


def terminal_examples(expected: Iterable[Expectation]) -> dict[object, Verdict]:
    """The golden examples that must stop the link, by :func:`example_key` of their raw close."""
    return {example_key(raw): verdict for raw, verdict in expected if verdict.terminal}


def delay_bound(policy: ReconnectPolicy, rule: Rule, event: CloseEvent) -> float:
    """The longest delay the policy may schedule after ``event`` classified by ``rule``."""
    hint = min(event.retry_after or 0.0, policy.max_retry_after)
    return max(policy.longest_delay, rule.min_delay, rule.max_delay or 0.0, hint)


@dataclass
class ReferenceLink:
    """A deliberately simple model of the lifecycle rules, to compare the real machine with.

    It keeps only what the rules talk about: the state, the attempt counter
    (refilled only after a healthy connection or a reset), the recent closes
    for flap detection, and the consecutive closes by one row for escalation.
    Routing comes from :func:`linkstate.check.promised_route`, the same promises
    ``linkstate check`` holds a definition to.
    """

    policy: ReconnectPolicy
    state: State = State.idle
    attempt: int = 0
    recent: tuple[float, ...] = ()
    opened_at: float | None = None
    last_rule: Rule | None = None
    repeats: int = 0
    history: list[str] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        """True in a terminal state."""
        return self.state in LIFECYCLE.terminal

    def plain(self, trigger: Trigger, now: float) -> tuple[State, StopReason | None]:
        """Apply a trigger that carries no close: (new state, stop reason)."""
        self.history.append(trigger.value)
        if self.terminal:
            if trigger is Trigger.reset:
                self.state, self.attempt, self.recent = State.idle, 0, ()
                self.opened_at, self.last_rule, self.repeats = None, None, 0
            elif trigger is Trigger.resume and self.state is State.stopped:
                self.state = State.idle  # budget, flap history and escalation count kept
            return self.state, None
        match trigger:
            case Trigger.abort:
                if self.opened_at is not None and now - self.opened_at >= self.policy.healthy_after:
                    self.attempt, self.repeats = 0, 0  # healthy before the local stop
                self.state, self.opened_at = State.stopped, None
                return self.state, StopReason.aborted
            case Trigger.start | Trigger.backoff_elapsed:
                self.state = State.connecting
            case Trigger.opened:
                self.state, self.opened_at = State.open, now
            case _:
                raise AssertionError(f"{trigger} is not a plain trigger in {self.state}")
        return self.state, None

    def close(
        self, trigger: Trigger, rule: Rule, now: float, event: CloseEvent | None = None
    ) -> tuple[State, StopReason | None, Verdict | None]:
        """Apply a close-like trigger classified by ``rule``: (state, stop reason, verdict).

        ``event`` is the classified close; with it the model applies the
        refusal rule (``ReconnectPolicy.refuse_after``), which needs to know
        whether the server sent a status or code.
        """
        self.history.append(f"{trigger.value}({rule.label})")
        if self.terminal:
            return self.state, None, None
        if trigger is not Trigger.connect_failed:
            if self.opened_at is not None and now - self.opened_at >= self.policy.healthy_after:
                self.attempt, self.repeats = 0, 0
            self.recent = self.policy.remember_close(self.recent, now)
        self.repeats = self.repeats + 1 if self.repeats and rule == self.last_rule else 1
        self.last_rule = rule
        budget = self.policy.reconnects_allowed
        verdict = rule.verdict_after(self.repeats)
        limit = self.policy.refuse_after
        if (
            trigger is Trigger.connect_failed
            and event is not None
            and (event.status is not None or event.code is not None)
            and rule.refusable
            and limit is not None
            and self.repeats >= limit
        ):
            verdict = Verdict.fatal  # a refusal that repeats unchanged stops
        decision = Decision(
            verdict=verdict,
            budget_spent=budget is not None and self.attempt >= budget,
            flapping=self.policy.is_flapping(self.recent),
        )
        self.state, reason = promised_route(decision)
        self.opened_at = None
        if self.state is State.reconnecting:
            self.attempt += 1
        return self.state, reason, decision.verdict
