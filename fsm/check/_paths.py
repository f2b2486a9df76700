"""Path coverage of a lifecycle, in the manner of XState's graph utilities.

Theory of operation
-------------------
A path is a sequence of :class:`Step` values, each a trigger with the
decision (or the raw close) it carries and the :class:`~linkstate.Edge`
it fires. There are two layers.

**Abstract paths** walk the :class:`~linkstate.Definition` alone. A step
of a close-like trigger may carry any :data:`~linkstate.DECISIONS` value,
so every edge whose guard can pass is one step away from its source.
:func:`shortest_paths` is a breadth-first search from the initial state (the
shortest path to every state); :func:`edge_cover` extends the shortest path
to each edge's source by that edge, which covers every coverable edge. An
edge that no decision fires (shadowed by an earlier, overlapping guard) or
whose source is unreachable stays in :attr:`Cover.uncovered`.

**Realised paths** walk the real :class:`~linkstate.LinkMachine` with a
channel and a policy. Here a close step carries a raw close that the
channel classifies, and the budget and flap conditions are not chosen: they
follow from the link's history and the policy. :func:`realised_cover`
searches, breadth first and per policy, for the shortest run that fires each
edge. :data:`COVERAGE_POLICIES` make the budget (one attempt) and flap
detection (two closes) reachable in a few steps. The decision each step
carried is observed, not recomputed: the search builds its machine from a
copy of the definition whose guards record the decision they are asked about.

Some edges cannot be realised from a fresh link, and :func:`realised_cover`
reports them rather than hiding them. With the bundled lifecycle:

* ``connecting --connect_failed [is_flapping]``: flap detection counts closes
  of *open* connections, and the close that makes a link flap already fails
  it, so a link is never flapping when a connect fails (it can be, after a
  restart with a stricter policy).
* ``open --watchdog_expired [is_relink|is_fatal]``: the supervisor's
  watchdog close carries no status, so a channel whose no-status row is
  retryable never classifies it as terminal.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from linkstate._channel import Channel
from linkstate._events import CloseEvent, Initiator
from linkstate._lifecycle import (
    CLOSE_TRIGGERS,
    DECISIONS,
    LIFECYCLE,
    Decision,
    Definition,
    Edge,
    LifecycleError,
    State,
    Trigger,
)
from linkstate._machine import Link, LinkMachine
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import Rule

__all__ = [
    "COVERAGE_POLICIES",
    "WATCHDOG_CLOSE",
    "Cover",
    "Path",
    "Step",
    "coverage",
    "edge_cover",
    "example_event",
    "realised_cover",
    "row_event",
    "shortest_paths",
    "unlisted_status",
]

# The raw close a watchdog expiry carries at runtime (a local close, no status).
WATCHDOG_CLOSE: Final = CloseEvent(reason="watchdog: transport silent", initiator=Initiator.local)

COVERAGE_POLICIES: Final = (
    ReconnectPolicy(initial=0.5, cap=2.0, flap_closes=0, healthy_after=3600.0),
    ReconnectPolicy(initial=0.5, cap=2.0, max_attempts=1, flap_closes=0, healthy_after=3600.0),
    ReconnectPolicy(initial=0.5, cap=2.0, flap_closes=2, flap_window=3600.0, healthy_after=3600.0),
)
"""Plain retries; a budget of one attempt; flapping at the second close. Connections
never stay up for ``healthy_after``, so the budget never refills on the way."""

# How many steps the realised search explores before giving up on an edge.
MAX_DEPTH: Final = 12


@dataclass(frozen=True, slots=True)
class Step:
    """One trigger of a path.

    Attributes:
        trigger: What fires.
        edge: The edge it fires.
        decision: The decision the guards saw; None for triggers that carry none.
        raw: For realised paths, the raw close the channel classified.

    """

    trigger: Trigger
    edge: Edge
    decision: Decision | None = None
    raw: object = None

    @property
    def target(self) -> State:
        """The state after this step."""
        return self.edge.source if self.edge.dest is None else self.edge.dest

    def describe(self) -> str:
        """``closed(relink)``, ``closed(retry, budget spent)``, ``opened``."""
        if self.decision is None:
            return self.trigger.value
        conditions = [self.decision.verdict.value]
        if self.decision.budget_spent:
            conditions.append("budget spent")
        if self.decision.flapping:
            conditions.append("flapping")
        return f"{self.trigger.value}({', '.join(conditions)})"


@dataclass(frozen=True, slots=True)
class Path:
    """Steps from the initial state; for realised paths, the policy they need.

    Attributes:
        steps: The steps, in order.
        start: The state the path starts in.
        policy: The reconnect policy a realised path was found under.

    """

    steps: tuple[Step, ...]
    start: State = State.idle
    policy: ReconnectPolicy | None = None

    @property
    def target(self) -> State:
        """Where the path ends."""
        return self.steps[-1].target if self.steps else self.start

    @property
    def edges(self) -> tuple[Edge, ...]:
        """The edges fired, in order."""
        return tuple(step.edge for step in self.steps)

    def extend(self, step: Step) -> Path:
        """A copy of the path with ``step`` appended."""
        return replace(self, steps=(*self.steps, step))

    def describe(self) -> str:
        """``start, opened, closed(relink) -> needs_relink``."""
        if not self.steps:
            return f"(empty) -> {self.start.value}"
        return f"{', '.join(s.describe() for s in self.steps)} -> {self.target.value}"


@dataclass(frozen=True)
class Cover:
    """Paths that together fire every edge they can, and the edges they cannot.

    Attributes:
        paths: The paths; none is a prefix of another.
        uncovered: The edges of the definition that no path fires.

    """

    paths: tuple[Path, ...]
    uncovered: tuple[Edge, ...]


# -- abstract paths ----------------------------------------------------------------


def _moves(definition: Definition, state: State) -> list[Step]:
    """One step per edge that can fire from ``state``, with the first decision firing it."""
    steps: dict[Edge, Step] = {}
    for trigger in definition.triggers_from(state):
        options: Sequence[Decision | None]
        options = DECISIONS if definition.carries_decision(state, trigger) else (None,)
        for decision in options:
            try:
                edge = definition.resolve(state, trigger, decision)
            except LifecycleError:
                continue  # a gap: `linkstate check` reports it
            steps.setdefault(edge, Step(trigger, edge, decision))
    return list(steps.values())


def shortest_paths(definition: Definition = LIFECYCLE) -> dict[State, Path]:
    """The shortest abstract path from the initial state to every reachable state."""
    found = {definition.initial: Path((), definition.initial)}
    queue = deque([definition.initial])
    while queue:
        state = queue.popleft()
        for step in _moves(definition, state):
            if step.target not in found:
                found[step.target] = found[state].extend(step)
                queue.append(step.target)
    return found


def _without_prefixes(paths: Iterable[Path]) -> tuple[Path, ...]:
    unique = list(dict.fromkeys(paths))
    return tuple(
        p
        for p in unique
        if not any(q is not p and q.steps[: len(p.steps)] == p.steps for q in unique)
    )


def edge_cover(definition: Definition = LIFECYCLE) -> Cover:
    """Abstract paths that fire every coverable edge: shortest path to its source, then it."""
    to_state = shortest_paths(definition)
    paths: list[Path] = []
    for state, path in to_state.items():
        paths.extend(path.extend(step) for step in _moves(definition, state))
    covered = {edge for path in paths for edge in path.edges}
    uncovered = tuple(edge for edge in definition.edges if edge not in covered)
    return Cover(_without_prefixes(paths), uncovered)


def coverage(paths: Iterable[Path], definition: Definition = LIFECYCLE) -> float:
    """The fraction of the definition's edges that ``paths`` fire (1.0 is every edge)."""
    fired = {edge for path in paths for edge in path.edges}
    return sum(edge in fired for edge in definition.edges) / len(definition.edges)


# -- realised paths ----------------------------------------------------------------


class _DecisionTap(LinkMachine):
    """A LinkMachine that keeps the decision of its latest close, for the path's step.

    The guards run only when a machine is built (its routes are precomputed),
    so the decision a close carried is read where the machine makes it.
    """

    last_decision: Decision | None = None

    def _decide(
        self, link: Link, trigger: Trigger, event: CloseEvent, rule: Rule, now: float
    ) -> Decision:
        self.last_decision = super()._decide(link, trigger, event, rule, now)
        return self.last_decision


def _copy(link: Link) -> Link:
    twin = Link(link.link_id)
    for name in Link.__slots__:
        setattr(twin, name, getattr(link, name))
    return twin


# Slots that do not influence any later decision; configurations differing
# only in them are the same configuration for the search.
_IRRELEVANT: Final = frozenset({"since", "delay", "message", "last_event", "link_id", "verdict"})


def _config(link: Link) -> tuple[object, ...]:
    return tuple(getattr(link, name) for name in Link.__slots__ if name not in _IRRELEVANT)


def row_event(rule: Rule) -> CloseEvent:
    """The canonical :class:`CloseEvent` that ``rule`` matches (a keyed row)."""
    return CloseEvent(
        status=rule.status,
        code=rule.code,
        reason=rule.reason_contains or "",
        flags=frozenset() if rule.flag is None else frozenset({rule.flag}),
    )


def unlisted_status(channel: Channel) -> int:
    """A status the channel's table does not list, to reach its ``unknown`` row."""
    listed = {row.status for row in channel.table.rules}
    return next(status for status in range(9999, 0, -1) if status not in listed)


def example_event(channel: Channel, rule: Rule) -> CloseEvent:
    """An event that the channel's table classifies by ``rule``, defaults included."""
    if rule is channel.table.unknown:
        return CloseEvent(status=unlisted_status(channel))
    if rule is channel.table.no_status:
        return CloseEvent()
    return row_event(rule)


def _raws(channel: Channel, trigger: Trigger) -> list[object]:
    """One raw close per verdict the channel's table gives (its first row of each)."""
    if trigger is Trigger.watchdog_expired:
        return [WATCHDOG_CLOSE]
    first: dict[object, object] = {}
    for row in channel.table.rows():
        first.setdefault(row.verdict, example_event(channel, row))
    return list(first.values())


class _Explorer:
    """Breadth-first search over real link configurations under one policy."""

    def __init__(self, channel: Channel, definition: Definition, policy: ReconnectPolicy) -> None:
        self.channel = channel
        self.definition = definition
        self.policy = policy
        self.machine = _DecisionTap(channel, policy, definition=definition, rng=random.Random(0))

    def step(self, link: Link, trigger: Trigger, raw: object) -> Step:
        """Fire ``trigger`` on ``link`` (mutated) and return the step it took."""
        state = State(link.state)
        self.machine.last_decision = None
        if trigger in CLOSE_TRIGGERS:
            self.machine.close(link, raw, 0.0, trigger=trigger)
        else:
            self.machine.fire(link, trigger, 0.0)
        decision = self.machine.last_decision
        edge = self.definition.resolve(state, trigger, decision)
        return Step(trigger, edge, decision, raw if trigger in CLOSE_TRIGGERS else None)

    def search(self, depth: int) -> dict[Edge, Path]:
        """The shortest realised path to each edge this policy can fire."""
        start = self.machine.new_link("path")
        found: dict[Edge, Path] = {}
        visited = {_config(start)}
        queue = deque([(start, Path((), State(start.state), self.policy))])
        while queue:
            link, path = queue.popleft()
            if len(path.steps) >= depth:
                continue
            state = State(link.state)
            for trigger in self.definition.triggers_from(state):
                raws = _raws(self.channel, trigger) if trigger in CLOSE_TRIGGERS else [None]
                for raw in raws:
                    twin = _copy(link)
                    step = self.step(twin, trigger, raw)
                    longer = path.extend(step)
                    found.setdefault(step.edge, longer)
                    if step.edge.dest is not None and _config(twin) not in visited:
                        visited.add(_config(twin))
                        queue.append((twin, longer))
        return found


def realised_cover(
    channel: Channel,
    definition: Definition = LIFECYCLE,
    policies: Sequence[ReconnectPolicy] = COVERAGE_POLICIES,
    *,
    depth: int = MAX_DEPTH,
) -> Cover:
    """Real runs of ``channel`` on ``definition`` that fire every edge they can.

    For each edge, the shortest run over all ``policies`` (the earlier policy
    wins a tie); edges no run reaches within ``depth`` steps are uncovered.
    """
    best: dict[Edge, Path] = {}
    for policy in policies:
        for edge, path in _Explorer(channel, definition, policy).search(depth).items():
            if edge not in best or len(path.steps) < len(best[edge].steps):
                best[edge] = path
    uncovered = tuple(edge for edge in definition.edges if edge not in best)
    ordered = [best[edge] for edge in definition.edges if edge in best]
    return Cover(_without_prefixes(ordered), uncovered)
