"""The connection lifecycle, declared once as data.

Everything else reads this file: the runtime builds its ``transitions.Machine``
from :data:`LIFECYCLE`, the diagrams draw it, ``linkstate check`` proves it and
the model-based tests explore it. Nothing about the lifecycle is written twice.

Rules this table keeps (``linkstate.check`` proves each one):

1. Every close-like trigger (``closed``, ``connect_failed``,
   ``watchdog_expired``) is routed by the same :data:`CLOSE_ROUTES`. Their
   guards partition the :class:`Decision` space, so for every verdict and
   every budget and flapping condition exactly one edge fires.
2. A ``relink`` verdict always lands in ``needs_relink`` and a ``fatal`` one in
   ``failed``, whatever the budget: the classifier has the last word.
3. A retryable close goes to ``failed`` when the retry budget is spent, else
   when the link is flapping, else to ``reconnecting``.
4. ``abort`` takes every non-terminal state to ``stopped``.
5. Terminal states absorb every trigger except their ways out, which exist
   only there: ``reset``, a person's act, leaves every terminal state;
   ``resume``, a new run picking up a link it stopped locally, leaves only
   ``stopped`` (the state ``abort`` enters). ``needs_relink`` and ``failed``
   absorb ``resume``: they wait for a person, however often the process
   restarts. transitions' ``final`` flag is a marker, not a lock, so the
   absorbing edges are declared here.
6. A trigger that a non-terminal state does not list is a caller bug and
   raises :class:`LifecycleError`, naming the state, the trigger and the fix.
7. A :class:`Definition` is checked when it is built: every state, trigger
   and destination is declared, every guard is a plain callable and every
   stop reason is known. transitions itself would accept an unknown
   destination until the first trigger that takes it; we refuse at once
   (:class:`DefinitionError`).

Guards are plain synchronous functions of a :class:`Decision` that return a
real ``bool``: transitions silently treats an ``async`` guard as False.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from linkstate._errors import LinkstateError
from linkstate._verdicts import Verdict

__all__ = [
    "CLOSE_ROUTES",
    "CLOSE_TRIGGERS",
    "DECISIONS",
    "EXIT_TRIGGERS",
    "LIFECYCLE",
    "TERMINAL_STATES",
    "Decision",
    "Definition",
    "DefinitionError",
    "Edge",
    "Guard",
    "LifecycleError",
    "State",
    "StopReason",
    "Trigger",
]


class State(StrEnum):
    """Where a link is in its life."""

    idle = "idle"
    connecting = "connecting"
    open = "open"
    reconnecting = "reconnecting"
    needs_relink = "needs_relink"
    failed = "failed"
    stopped = "stopped"


class Trigger(StrEnum):
    """What can happen to a link."""

    start = "start"
    """Begin connecting."""
    opened = "opened"
    """The handshake completed."""
    connect_failed = "connect_failed"
    """The connect attempt raised, timed out or was closed during the handshake."""
    closed = "closed"
    """An open connection closed."""
    watchdog_expired = "watchdog_expired"
    """The transport went silent for longer than the watchdog allows."""
    backoff_elapsed = "backoff_elapsed"
    """The backoff delay is over; connect again."""
    abort = "abort"
    """We stop the link locally (cancellation, shutdown, time limit)."""
    reset = "reset"
    """An operator acted (relinked, fixed the cause): leave any terminal state, budget refilled."""
    resume = "resume"
    """A new run picks up a link stopped locally: out of ``stopped``, budget and history kept.

    Only a healthy connection or a person's ``reset`` refills the retry
    budget. A process restart says
    nothing about the link's health; were it to refill the budget, a crash
    loop (or a manager that restarts stopped workers) would retry forever.
    """


class StopReason(StrEnum):
    """Why a link entered a terminal state."""

    relink = "relink"
    fatal = "fatal"
    budget_spent = "budget_spent"
    flapping = "flapping"
    aborted = "aborted"
    lease_lost = "lease_lost"
    """Another host may own the link now: this one stopped it (an abort, never restarted)."""


TERMINAL_STATES: Final = frozenset({State.needs_relink, State.failed, State.stopped})
CLOSE_TRIGGERS: Final = (Trigger.connect_failed, Trigger.closed, Trigger.watchdog_expired)
EXIT_TRIGGERS: Final = frozenset({Trigger.reset, Trigger.resume})
"""The triggers that may leave a terminal state (rule 5); terminal states absorb the others."""


class LifecycleError(LinkstateError, RuntimeError):
    """A trigger was fired in a state that does not accept it, or no edge fired."""


class DefinitionError(LifecycleError):
    """A :class:`Definition` names an undeclared state or a guard that cannot be called."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the guards of a close-like trigger decide on.

    Attributes:
        verdict: The classifier's verdict for the close.
        budget_spent: True when the retry budget has no attempt left.
        flapping: True when the link closed too often within the flap window.

    """

    verdict: Verdict
    budget_spent: bool = False
    flapping: bool = False


# Every decision a guard can be asked about; the checker and the tests
# enumerate this, so it must stay the full product of the fields above.
DECISIONS: Final = tuple(
    Decision(verdict, budget_spent, flapping)
    for verdict in Verdict
    for budget_spent in (False, True)
    for flapping in (False, True)
)

Guard = Callable[[Decision], bool]


def is_relink(decision: Decision) -> bool:
    """The classifier said a person must relink."""
    return decision.verdict is Verdict.relink


def is_fatal(decision: Decision) -> bool:
    """The classifier said retrying cannot help."""
    return decision.verdict is Verdict.fatal


def retry_budget_spent(decision: Decision) -> bool:
    """A retryable close, but no attempt is left."""
    return decision.verdict.retryable and decision.budget_spent


def is_flapping(decision: Decision) -> bool:
    """A retryable close with budget left, but the link keeps closing."""
    return decision.verdict.retryable and not decision.budget_spent and decision.flapping


def may_retry(decision: Decision) -> bool:
    """A retryable close with budget left on a link that is not flapping."""
    return decision.verdict.retryable and not decision.budget_spent and not decision.flapping


@dataclass(frozen=True, slots=True)
class Edge:
    """One declared transition.

    Attributes:
        source: The state it leaves.
        trigger: The trigger that fires it.
        dest: The state it enters; None for an internal edge that absorbs the
            trigger without leaving ``source``.
        guard: A predicate on the close :class:`Decision`; None when unguarded.
        stop_reason: For edges into a terminal state, why the link stopped.

    """

    source: State
    trigger: Trigger
    dest: State | None
    guard: Guard | None = None
    stop_reason: StopReason | None = None

    @property
    def guard_name(self) -> str | None:
        """The guard's function name, as shown in diagrams and reports."""
        return None if self.guard is None else self.guard.__name__

    @property
    def absorbing(self) -> bool:
        """True for an internal edge that leaves the state unchanged."""
        return self.dest is None

    def describe(self) -> str:
        """``open --closed [is_relink]--> needs_relink``, for errors and reports."""
        guard = "" if self.guard is None else f" [{getattr(self.guard, '__name__', self.guard)}]"
        dest = "(absorbed)" if self.dest is None else _show(self.dest)
        return f"{_show(self.source)} --{_show(self.trigger)}{guard}--> {dest}"


def _show(value: object) -> str:
    """A state or trigger by its value; anything else (a bad definition) by its repr."""
    return value.value if isinstance(value, StrEnum) else repr(value)


@dataclass(frozen=True, slots=True)
class Route:
    """One guarded destination for close-like triggers."""

    guard: Guard
    dest: State
    stop_reason: StopReason | None = None


# The routing of every close-like trigger, in priority order. The guards are
# disjoint, so order does not change the outcome; it is the order diagrams
# list them. (LinkMachine never tries them in turn at run time: it routes
# every case once, when it is built; see machine.route_table.)
CLOSE_ROUTES: Final = (
    Route(is_relink, State.needs_relink, StopReason.relink),
    Route(is_fatal, State.failed, StopReason.fatal),
    Route(retry_budget_spent, State.failed, StopReason.budget_spent),
    Route(is_flapping, State.failed, StopReason.flapping),
    Route(may_retry, State.reconnecting),
)

# Which close-like triggers each live state accepts.
_CLOSES_FROM: Final = {
    State.connecting: (Trigger.connect_failed,),
    State.open: (Trigger.closed, Trigger.watchdog_expired),
}

# The unguarded edges between live states.
_PLAIN_EDGES: Final = (
    (State.idle, Trigger.start, State.connecting),
    (State.connecting, Trigger.opened, State.open),
    (State.reconnecting, Trigger.backoff_elapsed, State.connecting),
)

_LIVE_STATES: Final = (State.idle, State.connecting, State.open, State.reconnecting)

# The ways out of each terminal state, all back to ``idle``; it absorbs every other trigger.
_EXITS: Final = {
    State.needs_relink: (Trigger.reset,),
    State.failed: (Trigger.reset,),
    State.stopped: (Trigger.reset, Trigger.resume),
}


@dataclass(frozen=True)
class Definition:
    """A lifecycle: states, initial state, terminal states and edges, all as data."""

    states: tuple[State, ...]
    initial: State
    terminal: frozenset[State]
    edges: tuple[Edge, ...]

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise DefinitionError(
                "invalid lifecycle definition: " + "; ".join(problems) + ". Fix the definition"
            )

    def problems(self) -> tuple[str, ...]:
        """Why this definition cannot be built into a machine; empty when it can.

        Each problem names the edge (state, trigger) and the undeclared name.
        """
        declared = set(self.states)
        found = [
            f"state {_show(state)} is not a State"
            for state in self.states
            if not isinstance(state, State)
        ]
        if len(declared) != len(self.states):
            found.append("a state is declared twice")
        if self.initial not in declared:
            found.append(f"initial state {_show(self.initial)} is not a declared state")
        found.extend(
            f"terminal state {_show(state)} is not a declared state"
            for state in sorted(self.terminal, key=str)
            if state not in declared
        )
        for edge in self.edges:
            found.extend(_edge_problems(edge, declared))
        return tuple(found)

    def edges_from(self, state: State, trigger: Trigger) -> tuple[Edge, ...]:
        """The edges that ``trigger`` may take from ``state``, in priority order."""
        return tuple(e for e in self.edges if e.source is state and e.trigger is trigger)

    def carries_decision(self, state: State, trigger: Trigger) -> bool:
        """True when firing ``trigger`` in ``state`` hands the guards a :class:`Decision`.

        Close-like triggers do, except in a terminal state, which absorbs them
        unclassified (see :meth:`linkstate.LinkMachine.fire`).
        """
        return trigger in CLOSE_TRIGGERS and state not in self.terminal

    def triggers_from(self, state: State) -> tuple[Trigger, ...]:
        """The triggers ``state`` accepts, in declaration order, without repeats."""
        return tuple(dict.fromkeys(e.trigger for e in self.edges if e.source is state))

    def resolve(self, state: State, trigger: Trigger, decision: Decision | None) -> Edge:
        """The one edge that fires, computed from the data alone (no transitions).

        Raises:
            LifecycleError: when ``state`` does not accept ``trigger``, or when
                the guards leave a gap for ``decision``.

        """
        candidates = self.edges_from(state, trigger)
        if not candidates:
            raise invalid_trigger(state, trigger, self.triggers_from(state))
        for edge in candidates:
            if edge.guard is None:
                return edge
            if decision is not None and edge.guard(decision):
                return edge
        raise LifecycleError(
            f"no edge fires for trigger {trigger.value!r} in state {state.value!r} with "
            f"{decision}; the lifecycle definition has a gap: add a guarded edge for it "
            "(`linkstate check` reports every gap)"
        )


def _edge_problems(edge: Edge, declared: set[State]) -> list[str]:
    where = f"edge {edge.describe()}"
    found = []
    if not isinstance(edge.source, State) or edge.source not in declared:
        found.append(f"{where}: source state {_show(edge.source)} is not a declared state")
    if not isinstance(edge.trigger, Trigger):
        found.append(f"{where}: trigger {edge.trigger!r} is not a Trigger")
    if edge.dest is not None and (not isinstance(edge.dest, State) or edge.dest not in declared):
        found.append(f"{where}: destination {_show(edge.dest)} is not a declared state")
    if edge.guard is not None and not callable(edge.guard):
        found.append(f"{where}: guard {edge.guard!r} is not callable")
    elif edge.guard is not None and inspect.iscoroutinefunction(edge.guard):
        # transitions compares a guard's result with True; a coroutine never is.
        found.append(f"{where}: guard is async; guards must be plain functions returning bool")
    if edge.stop_reason is not None and not isinstance(edge.stop_reason, StopReason):
        found.append(f"{where}: stop reason {edge.stop_reason!r} is not a StopReason")
    return found


def invalid_trigger(
    state: State, trigger: Trigger, accepted: tuple[Trigger, ...]
) -> LifecycleError:
    """The error for a trigger that ``state`` does not accept, naming the fix."""
    return LifecycleError(
        f"trigger {trigger.value!r} is not valid in state {state.value!r}; this state "
        f"accepts {', '.join(t.value for t in accepted)}. Fire one of those, or fix the "
        "caller that sent this trigger"
    )


def _declare() -> Definition:
    edges: list[Edge] = [Edge(src, trig, dst) for src, trig, dst in _PLAIN_EDGES]
    for source, triggers in _CLOSES_FROM.items():
        for trigger in triggers:
            edges.extend(
                Edge(source, trigger, route.dest, route.guard, route.stop_reason)
                for route in CLOSE_ROUTES
            )
    edges.extend(
        Edge(state, Trigger.abort, State.stopped, stop_reason=StopReason.aborted)
        for state in _LIVE_STATES
    )
    for state in sorted(TERMINAL_STATES, key=list(State).index):
        exits = _EXITS[state]
        edges.extend(Edge(state, trigger, State.idle) for trigger in exits)
        edges.extend(Edge(state, trigger, None) for trigger in Trigger if trigger not in exits)
    return Definition(
        states=tuple(State),
        initial=State.idle,
        terminal=TERMINAL_STATES,
        edges=tuple(edges),
    )


LIFECYCLE: Final = _declare()
"""The lifecycle every channel shares."""
