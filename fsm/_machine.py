"""One shared ``transitions.Machine`` driving many light links.

Theory of operation
-------------------
``transitions`` wants each model registered with ``add_model``, which scans a
list on every call (quadratic overall) and decorates the model with methods
(kilobytes each). A ``Machine`` per link is worse still. So a
:class:`LinkMachine` builds one ``Machine`` with no models from the declared
:data:`linkstate.LIFECYCLE`, and fires its events directly on slotted
:class:`Link` objects: ``machine.events[name].trigger(link, ctx=...)``.
Registering a link is allocating a ``Link``: O(1), about a hundred bytes.

Because the models are unregistered, every guard and callback is a callable,
never a method name. Guards are pure functions of a :class:`linkstate.Decision`
that :meth:`LinkMachine.fire` computes *before* the trigger (budget,
flapping), and states × triggers × decisions is a finite set. So the routing
is decided once, when the machine is built: :func:`route_table` asks
:meth:`Definition.resolve` for every case and keeps ``(state, trigger,
decision) -> edge``. At run time ``fire`` looks its edge up and has
transitions execute that edge's ``Transition``: transitions still evaluates
its condition, runs its callbacks and sets the state. The condition is an
identity check (is this the routed edge?), so even a caller who fires through
transitions' own ``Event.trigger`` lands on the edge the table chose, and no
edge is tried and rejected on the way (each rejected trial costs about 2 µs,
``benchmarks/event_cost.py``). An unguarded edge alone for its state and
trigger (``start``, ``opened``) has no condition at all: transitions has no
other edge to take. ``linkstate check`` proves that the table
equals what the guards decide, case by case. Once the transition is done,
:meth:`LinkMachine._apply` records the edge's effect, the one the supervisor
must carry out: a backoff delay to sleep, a connect, or a stop with its
operator message. (Not an ``after`` callback: transitions' callback
machinery costs ~2 µs an event.)

This module is synchronous and has no clock: time comes in as ``now``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from transitions import Event, EventData, Machine, Transition
from transitions import State as _TransitionsState

from linkstate._channel import Channel
from linkstate._events import CloseEvent, Initiator, Phase
from linkstate._lifecycle import (
    DECISIONS,
    LIFECYCLE,
    Decision,
    Definition,
    Edge,
    LifecycleError,
    State,
    StopReason,
    Trigger,
    invalid_trigger,
)
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import CLI_COMMANDS, OperatorCommands, Rule, Verdict

__all__ = ["Link", "LinkMachine", "Observer", "RouteKey", "TransitionRecord", "route_table"]

_log: Final = logging.getLogger("linkstate.machine")


class Link:
    """One connection's lifecycle state: small, slotted, and not registered anywhere.

    Attributes:
        link_id: The caller's name for the link (an account, a bot).
        state: The current :class:`linkstate.State` value.
        since: When the link entered ``state``.
        attempt: Reconnect attempts since the link was last healthy.
        recent_closes: Times of the latest closes of open connections.
        opened_at: When the current connection opened; None when not open.
        delay: The latest backoff delay scheduled.
        last_event: The latest close event.
        last_rule: The table row that classified ``last_event``.
        verdict: The verdict the guards decided on for ``last_event``: the
            row's own, or ``fatal`` once the row escalated
            (:attr:`linkstate.Rule.escalate_after`). Records,
            outcomes, statuses and the store all read it from here.
        repeats: Consecutive closes classified by ``last_rule`` since the link
            was last healthy; drives :attr:`linkstate.Rule.escalate_after`.
        stop_reason: Why the link is in a terminal state.
        message: The operator message for a terminal state.

    """

    __slots__ = (
        "attempt",
        "delay",
        "last_event",
        "last_rule",
        "link_id",
        "message",
        "opened_at",
        "recent_closes",
        "repeats",
        "since",
        "state",
        "stop_reason",
        "verdict",
    )

    def __init__(self, link_id: str, state: State = State.idle, since: float = 0.0) -> None:
        self.link_id = link_id
        self.state: str = state.value
        self.since = since
        self.attempt = 0
        self.recent_closes: tuple[float, ...] = ()
        self.opened_at: float | None = None
        self.delay: float | None = None
        self.last_event: CloseEvent | None = None
        self.last_rule: Rule | None = None
        self.verdict: Verdict | None = None
        self.repeats = 0
        self.stop_reason: StopReason | None = None
        self.message: str | None = None

    @property
    def terminal(self) -> bool:
        """True while the link is in a terminal state."""
        return self.state in _TERMINAL_VALUES

    def __repr__(self) -> str:
        return f"<Link {self.link_id!r} {self.state} attempt={self.attempt}>"


_TERMINAL_VALUES: Final = frozenset(state.value for state in LIFECYCLE.terminal)

# Every Decision by its fields, to hand out the shared frozen value.
_DECISION_OF: Final = {(d.verdict, d.budget_spent, d.flapping): d for d in DECISIONS}

# An enum member read from its class costs ~0.1 µs on Python 3.11; the hot
# path reads these module constants instead.
_CONNECT_FAILED: Final = Trigger.connect_failed
_RECONNECTING: Final = State.reconnecting
# The same for ``member.value`` (a property): each value by its member.
_VALUE: Final[dict[StrEnum, str]] = {m: m.value for enum in (Trigger, Verdict) for m in enum}


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One transition as it happened: what the supervisor logs, stores and shows.

    Attributes:
        t: The time it happened (the caller's clock).
        link: The link's id.
        src: The state it left.
        dst: The state it entered (equal to ``src`` for an absorbed trigger).
        trigger: What fired it.
        status: The close status, for close-like triggers.
        code: The symbolic close code, for close-like triggers.
        rule: The table row's label (``440 connectionReplaced``).
        verdict: The classifier's verdict, for close-like triggers.
        attempt: The link's attempt counter after the transition.
        delay: The backoff delay scheduled, for edges into ``reconnecting``.
        stop_reason: Why the link stopped, for edges into a terminal state.
        message: The operator message, for edges into a terminal state.
        reason: The sanitised close reason text.

    """

    t: float
    link: str
    src: str
    dst: str
    trigger: str
    status: int | None = None
    code: str | None = None
    rule: str | None = None
    verdict: str | None = None
    attempt: int = 0
    delay: float | None = None
    stop_reason: str | None = None
    message: str | None = None
    reason: str | None = None

    @property
    def absorbed(self) -> bool:
        """True when a terminal state absorbed the trigger."""
        return self.src == self.dst and self.src in _TERMINAL_VALUES

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict of every field."""
        return {
            "t": self.t,
            "link": self.link,
            "src": self.src,
            "dst": self.dst,
            "trigger": self.trigger,
            "status": self.status,
            "code": self.code,
            "rule": self.rule,
            "verdict": self.verdict,
            "attempt": self.attempt,
            "delay": self.delay,
            "stop_reason": self.stop_reason,
            "message": self.message,
            "reason": self.reason,
        }


class _RecordFields:
    """Setters for each :class:`TransitionRecord` slot, for building records on the hot path.

    A frozen dataclass's ``__init__`` sets every field through
    ``object.__setattr__``: for fourteen fields that is about 2 µs, a sixth
    of a close (``benchmarks/event_cost.py``). The slots' own descriptors set
    the same fields in half that, and leave the class frozen for everyone
    else: a record is built only here and by ``__init__``, and ``replace``,
    equality, hashing and pickling are the dataclass's own.
    """

    __slots__ = TransitionRecord.__slots__

    def __init__(self) -> None:
        for name in TransitionRecord.__slots__:
            object.__setattr__(self, name, getattr(TransitionRecord, name).__set__)

    t: Callable[[TransitionRecord, float], None]
    link: Callable[[TransitionRecord, str], None]
    src: Callable[[TransitionRecord, str], None]
    dst: Callable[[TransitionRecord, str], None]
    trigger: Callable[[TransitionRecord, str], None]
    status: Callable[[TransitionRecord, int | None], None]
    code: Callable[[TransitionRecord, str | None], None]
    rule: Callable[[TransitionRecord, str | None], None]
    verdict: Callable[[TransitionRecord, str | None], None]
    attempt: Callable[[TransitionRecord, int], None]
    delay: Callable[[TransitionRecord, float | None], None]
    stop_reason: Callable[[TransitionRecord, str | None], None]
    message: Callable[[TransitionRecord, str | None], None]
    reason: Callable[[TransitionRecord, str | None], None]


_FIELDS: Final = _RecordFields()


def _blank_record() -> TransitionRecord:
    """A record with no field set yet; :meth:`LinkMachine._record` sets every one."""
    return object.__new__(TransitionRecord)


Observer = Callable[[TransitionRecord], None]


class _Firing:
    """What one trigger carries into transitions' condition and into ``_apply``."""

    __slots__ = ("decision", "edge", "event", "now", "rule", "verdict")

    def __init__(
        self,
        now: float,
        decision: Decision | None,
        event: CloseEvent | None,
        rule: Rule | None,
        edge: Edge,
    ) -> None:
        self.now = now
        self.decision = decision
        self.event = event
        self.rule = rule
        # The routed edge: the one transitions' identity condition lets pass.
        self.edge = edge
        # The one place the verdict is decided: the guards' (escalated) one
        # when they are asked, else the row's own, for a close that a
        # terminal state absorbs without asking them.
        self.verdict = (
            decision.verdict if decision is not None else None if rule is None else rule.verdict
        )


class _QuietState(_TransitionsState):
    """A transitions state that enters and exits without logging.

    transitions' own ``State.enter`` and ``exit`` log two INFO records per
    transition on the ``transitions.core`` logger. linkstate logs one
    structured record per transition itself, and a library must not set the
    levels of other libraries' loggers, so the machine avoids that code path:
    the callbacks still run (there are none; guards are conditions).
    """

    def enter(self, event_data: EventData) -> None:
        if self.on_enter:
            event_data.machine.callbacks(self.on_enter, event_data)

    def exit(self, event_data: EventData) -> None:
        if self.on_exit:
            event_data.machine.callbacks(self.on_exit, event_data)


class _QuietMachine(Machine):
    """A transitions machine whose states are :class:`_QuietState`."""

    state_cls = _QuietState


class LinkMachine:
    """Drives any number of :class:`Link` objects through one lifecycle definition.

    Args:
        channel: The channel whose table classifies closes.
        policy: The reconnect policy; defaults to the channel's.
        definition: The lifecycle; defaults to :data:`linkstate.LIFECYCLE`.
        rng: The random source for jitter; pass a seeded one for reproducible runs.
        commands: The operator commands that stop messages name; defaults to
            the ``linkstate`` command line's.

    """

    def __init__(
        self,
        channel: Channel,
        policy: ReconnectPolicy | None = None,
        *,
        definition: Definition = LIFECYCLE,
        rng: random.Random | None = None,
        commands: OperatorCommands = CLI_COMMANDS,
    ) -> None:
        self.channel = channel
        self.policy = policy if policy is not None else channel.policy
        self.definition = definition
        self.rng = rng if rng is not None else random.Random()
        self.commands = commands
        self._observers: list[Observer] = []
        # Each accepted (state, trigger): whether it hands the guards a Decision.
        self._carries = {
            (e.source.value, e.trigger): definition.carries_decision(e.source, e.trigger)
            for e in definition.edges
        }
        self.machine = self._build(definition)
        self._events = {trigger: self.machine.events[trigger.value] for trigger in Trigger}
        # Every case's edge, with the transitions objects that execute it.
        self._routes = {
            key: _Route(
                edge,
                self._transition_of(edge),
                self.machine.get_state(key[0]),
                self._events[edge.trigger],
            )
            for key, edge in route_table(definition).items()
        }
        # Each table row's label (a property that formats a string), by the row's
        # id: the table keeps its rows alive, so no other live rule has that id.
        self._labels = {id(row): row.label for row in channel.table.rows()}
        # What entering a state records on the link: the effect the supervisor
        # carries out (a table, so the hot path does one dict lookup).
        self._on_enter: dict[State, Callable[[Link, Edge, _Firing], None]] = {
            **dict.fromkeys(definition.terminal, self._stop),
            State.open: _enter_open,
            State.reconnecting: self._schedule_backoff,
            State.idle: _enter_idle,
        }

    def _build(self, definition: Definition) -> Machine:
        machine = _QuietMachine(
            model=None,
            states=[state.value for state in definition.states],
            initial=definition.initial.value,
            auto_transitions=False,
            send_event=True,
            queued=False,
        )
        for edge in definition.edges:
            # An unguarded edge that is alone for its state and trigger is the
            # only one transitions could take: no condition can change that,
            # and each one transitions checks costs about 0.7 µs.
            alone = (
                edge.guard is None and len(definition.edges_from(edge.source, edge.trigger)) == 1
            )
            machine.add_transition(
                edge.trigger.value,
                edge.source.value,
                None if edge.dest is None else edge.dest.value,
                conditions=None if alone else [_routed_to(edge)],
            )
        return machine

    def _transition_of(self, edge: Edge) -> Transition:
        # transitions keeps a state's transitions for a trigger in the order
        # they were added: the definition's order, the same as edges_from's.
        siblings = self.definition.edges_from(edge.source, edge.trigger)
        index = next(i for i, sibling in enumerate(siblings) if sibling is edge)
        transition: Transition = self._events[edge.trigger].transitions[edge.source.value][index]
        return transition

    # -- links -----------------------------------------------------------------

    def new_link(self, link_id: str, *, now: float = 0.0) -> Link:
        """Register a link: O(1), no ``add_model``."""
        return Link(link_id, self.definition.initial, now)

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer`` with every transition; returns a function that unsubscribes."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    # -- firing ----------------------------------------------------------------

    def fire(
        self,
        link: Link,
        trigger: Trigger,
        now: float,
        *,
        event: CloseEvent | None = None,
        rule: Rule | None = None,
    ) -> TransitionRecord:
        """Fire ``trigger`` on ``link`` at time ``now`` and return what happened.

        Close-like triggers need the classified ``event`` and ``rule``; use
        :meth:`close` to normalise and classify raw input in one step.

        Raises:
            LifecycleError: the state does not accept the trigger, or a
                close-like trigger came without its classification.

        """
        source = link.state
        carries = self._carries.get((source, trigger))
        if carries is None:
            raise invalid_trigger(
                State(source), trigger, self.definition.triggers_from(State(source))
            )
        decision: Decision | None = None
        if carries:
            if event is None or rule is None:
                raise LifecycleError(
                    f"trigger {trigger.value!r} in state {source!r} needs the close event and "
                    "its rule; call LinkMachine.close() with the raw close instead"
                )
            decision = self._decide(link, trigger, event, rule, now)
        route = self._routes.get((source, trigger, decision))
        if route is None:
            raise LifecycleError(
                f"no edge fired for trigger {trigger.value!r} in state {source!r} with "
                f"{decision}; the definition has a gap (run `linkstate check`)"
            )
        edge = route.edge
        firing = _Firing(now, decision, event, rule, edge)
        event_data = EventData(route.state, route.event, self.machine, link, (), {"ctx": firing})
        if not route.transition.execute(event_data):
            raise LifecycleError(
                f"transitions refused the routed edge {edge.describe()} for trigger "
                f"{trigger.value!r} in state {source!r}; its transitions machine was changed "
                "after the LinkMachine was built: build a new LinkMachine instead"
            )
        self._apply(link, edge, firing)
        record = self._record(link, source, trigger, firing)
        for observer in tuple(self._observers) if self._observers else ():
            try:
                observer(record)
            except Exception:
                # A metrics or status-page bug must not change a link's fate.
                _log.exception("transition observer %r failed", observer)
        return record

    def close(
        self,
        link: Link,
        raw: object,
        now: float,
        *,
        trigger: Trigger = Trigger.closed,
        phase: Phase | None = None,
        initiator: Initiator | None = None,
    ) -> TransitionRecord:
        """Normalise ``raw``, classify it with the channel's table, and fire ``trigger``."""
        if phase is None and trigger is _CONNECT_FAILED:
            phase = Phase.handshake
        event, rule = self.channel.classify(raw, phase=phase, initiator=initiator)
        return self.fire(link, trigger, now, event=event, rule=rule)

    def _decide(
        self, link: Link, trigger: Trigger, event: CloseEvent, rule: Rule, now: float
    ) -> Decision:
        policy = self.policy
        if trigger is not _CONNECT_FAILED:
            if link.opened_at is not None and now - link.opened_at >= policy.healthy_after:
                # The connection proved healthy: only now may the budget refill.
                link.attempt = 0
                link.repeats = 0
            link.recent_closes = policy.remember_close(link.recent_closes, now)
        # Count closes of every kind (connect failures too) by the same row, so
        # that a row's escalate_after sees an error that keeps happening.
        same_row = rule is link.last_rule or rule == link.last_rule
        link.repeats = link.repeats + 1 if link.repeats and same_row else 1
        # DECISIONS holds every Decision there is: look the frozen value up
        # instead of building an equal one on every close.
        verdict = rule.verdict_after(link.repeats)
        if trigger is _CONNECT_FAILED and self._refused(link, event, rule):
            verdict = Verdict.fatal
        return _DECISION_OF[
            verdict,
            policy.reconnects_allowed is not None and link.attempt >= policy.reconnects_allowed,
            policy.is_flapping(link.recent_closes),
        ]

    def _refused(self, link: Link, event: CloseEvent, rule: Rule) -> bool:
        # The framework rule of issue 12: a server that answers the handshake
        # with the same status or code every time is refusing, whatever the
        # table says about that code on an open connection. An event without
        # status or code is the network (timeout, DNS) and keeps retrying.
        limit = self.policy.refuse_after
        return (
            limit is not None
            and link.repeats >= limit
            and (event.status is not None or event.code is not None)
            and rule.refusable
        )

    def _apply(self, link: Link, edge: Edge, firing: _Firing) -> None:
        """Record the effect of ``edge`` on ``link``; the supervisor carries it out."""
        if edge.dest is None:
            return
        link.since = firing.now
        if firing.event is not None:
            link.last_event = firing.event
            link.last_rule = firing.rule
            link.verdict = firing.verdict
            link.opened_at = None
        enter = self._on_enter.get(edge.dest)
        if enter is not None:
            enter(link, edge, firing)

    def _stop(self, link: Link, edge: Edge, firing: _Firing) -> None:
        if (
            firing.event is None  # a local stop (abort), not a close
            and link.opened_at is not None
            and firing.now - link.opened_at >= self.policy.healthy_after
        ):
            # The connection proved healthy before we stopped it: a restart of
            # the process must not cost the link that proof (the budget refills
            # as a close now would refill it).
            link.attempt = 0
            link.repeats = 0
        link.opened_at = None
        link.stop_reason = edge.stop_reason
        link.message = self._stop_message(link, edge.stop_reason, firing)

    def _schedule_backoff(self, link: Link, edge: Edge, firing: _Firing) -> None:
        assert firing.rule is not None and firing.event is not None and firing.verdict is not None
        link.attempt += 1
        rule = firing.rule
        floor = max(rule.min_delay, firing.event.retry_after or 0.0)
        window = None if rule.max_delay is None else (rule.min_delay, rule.max_delay)
        link.delay = self.policy.backoff_delay(
            link.attempt,
            firing.verdict,
            floor=floor,
            previous=link.delay,
            rng=self.rng,
            window=window,
        )

    def _stop_message(self, link: Link, reason: StopReason | None, firing: _Firing) -> str:
        channel = self.channel
        event, rule = firing.event, firing.rule
        reset = self.commands.reset_for(link.link_id)
        if reason is StopReason.fatal and event and rule and rule.refusable:
            # Only a refusal makes a refusable row fatal (see _refused).
            key = rule.key if rule.status is not None or rule.code is not None else None
            code = key or (str(event.status) if event.status is not None else event.code)
            return (
                f"{channel.title} link {link.link_id!r} failed: the server refused the "
                f"connection {link.repeats} times in a row with {code} ({rule.name}) and it "
                f"never opened. Fix what {code} names (token, permissions, intents, "
                f"account), then run `{reset}`."
            )
        if reason in (StopReason.relink, StopReason.fatal) and event and rule:
            return rule.operator_message(
                event, link=link.link_id, channel=channel.name, commands=self.commands
            )
        last = _describe_close(event, rule, firing.verdict)
        if reason is StopReason.budget_spent:
            return (
                f"{channel.title} link {link.link_id!r} failed: gave up after {link.attempt} "
                f"reconnect attempts ({link.attempt + 1} connects) without a healthy "
                f"connection (last close: {last}). "
                f"Fix the cause, then run `{reset}`."
            )
        if reason is StopReason.flapping:
            return (
                f"{channel.title} link {link.link_id!r} failed: it closed "
                f"{len(link.recent_closes)} times within {self.policy.flap_window:g} s "
                f"(last close: {last}). Something keeps taking the session; find it, then run "
                f"`{reset}`."
            )
        return f"{channel.title} link {link.link_id!r} stopped locally; start it again when ready."

    def _record(
        self, link: Link, source: str, trigger: Trigger, firing: _Firing
    ) -> TransitionRecord:
        edge = firing.edge
        event, rule = firing.event, firing.rule
        entered_terminal = edge.dest is not None and edge.dest in self.definition.terminal
        # Field by field through the slots, not through the frozen __init__
        # (see _RecordFields). tests/test_hot_path.py checks each field.
        record = _blank_record()
        fields = _FIELDS
        fields.t(record, firing.now)
        fields.link(record, link.link_id)
        fields.src(record, source)
        fields.dst(record, link.state)
        fields.trigger(record, _VALUE[trigger])
        fields.attempt(record, link.attempt)
        fields.delay(record, link.delay if edge.dest is _RECONNECTING else None)
        fields.stop_reason(record, None if edge.stop_reason is None else edge.stop_reason.value)
        fields.message(record, link.message if entered_terminal else None)
        if event is None:
            fields.status(record, None)
            fields.code(record, None)
            fields.reason(record, None)
        else:
            fields.status(record, event.status)
            fields.code(record, event.code)
            fields.reason(record, event.reason)
        fields.rule(record, None if rule is None else self._labels.get(id(rule)) or rule.label)
        fields.verdict(record, None if firing.verdict is None else _VALUE[firing.verdict])
        return record


RouteKey = tuple[str, Trigger, Decision | None]
"""A routing case: a state's value, a trigger, and the decision (None when it carries none)."""


def route_table(definition: Definition) -> dict[RouteKey, Edge]:
    """Every case's edge, decided once from the data by :meth:`Definition.resolve`.

    A close-like trigger in a live state carries a :class:`Decision`, so it has
    one case per :data:`linkstate.DECISIONS` value; every other accepted
    trigger has one case, with no decision. A case the guards leave open (a
    gap) has no entry, and firing it raises; ``linkstate check`` lists gaps.
    """
    table: dict[RouteKey, Edge] = {}
    for state, trigger in dict.fromkeys((e.source, e.trigger) for e in definition.edges):
        decisions = DECISIONS if definition.carries_decision(state, trigger) else (None,)
        for decision in decisions:
            try:
                edge = definition.resolve(state, trigger, decision)
            except LifecycleError:
                continue
            except Exception as exc:
                raise LifecycleError(
                    f"a guard raised {type(exc).__name__} for trigger {trigger.value!r} in "
                    f"state {state.value!r} with {decision}; guards must be total functions "
                    "of the Decision (run `linkstate check` for every case)"
                ) from exc
            table[state.value, trigger, decision] = edge
    return table


class _Route:
    """One case's edge with the transitions objects that execute it."""

    __slots__ = ("edge", "event", "state", "transition")

    def __init__(
        self, edge: Edge, transition: Transition, state: _TransitionsState, event: Event
    ) -> None:
        self.edge = edge
        self.transition = transition
        self.state = state
        self.event = event


def _enter_open(link: Link, edge: Edge, firing: _Firing) -> None:
    link.opened_at = firing.now


def _enter_idle(link: Link, edge: Edge, firing: _Firing) -> None:
    """Clear the stop; ``reset``, an operator's act, also forgets the link's history.

    Any other way back (``resume`` after a local stop) keeps the attempt
    counter, the escalation count and the flap history, so that restarting
    the process never refills the retry budget (see
    :attr:`linkstate.Trigger.resume`).
    """
    if edge.trigger is Trigger.reset:
        link.attempt = 0
        link.repeats = 0
        link.recent_closes = ()
    link.opened_at = None
    link.delay = None
    link.stop_reason = None
    link.message = None


def _describe_close(event: CloseEvent | None, rule: Rule | None, verdict: Verdict | None) -> str:
    if event is None or rule is None or verdict is None:
        return "none"
    text = f"{rule.label}, {verdict.value}"
    return f"{text}: {event.reason}" if event.reason else text


def _routed_to(edge: Edge) -> Callable[[EventData], bool]:
    """The transitions condition of ``edge``: it passes only for the edge the table routed.

    A pure identity check, so transitions takes exactly the routed edge
    whichever way it is fired, and the guards themselves run only when the
    table is built.
    """

    def condition(event_data: EventData) -> bool:
        firing: _Firing = event_data.kwargs["ctx"]
        return firing.edge is edge

    condition.__name__ = f"routed_to_{edge.dest.value if edge.dest else 'self'}"
    return condition
