"""Static proof of a lifecycle definition, alone or together with a channel's table.

transitions checks nothing: it accepts an unknown destination until the first
trigger that takes it, silently takes the first of two passing guards, and
silently returns False when no guard passes. :func:`check` proves, from the
data alone, the promises those gaps would break. It never builds a machine and
never fires a trigger: guards are evaluated directly on every
:data:`linkstate.DECISIONS` value, exactly as transitions would evaluate
them (a guard "passes" when its result ``== True``).

The checks, and the :class:`Kind` each failure is reported as:

=====================  ====================================================
``invalid``            an undeclared state or a guard that cannot be called
                       (also refused when the :class:`Definition` is built)
``unreachable``        a state the initial state cannot reach
``dead_end``           a live state from which no terminal state is reachable
``terminal_exit``      a terminal state that leaves on a trigger other than
                       ``reset``, or on ``resume`` though no local stop
                       (``abort``) enters it
``not_absorbing``      a terminal state that does not absorb some trigger
``no_reset``           a terminal state with no ``reset`` edge (no way out
                       for the operator); ``reset`` outside a terminal state
``no_resume``          a terminal state that a local stop enters with no
                       ``resume`` edge (a new run could never pick the link
                       up); ``resume`` outside a terminal state
``no_abort``           a live state that ``abort`` does not take to a
                       terminal state
``no_stop_reason``     an edge into a terminal state with no stop reason
``guard_unused``       a guard on a trigger that carries no decision (it can
                       never pass)
``guard_error``        a guard that raises or returns something other than
                       a bool
``overlap``            two edges could fire for one state, trigger and
                       decision (transitions silently takes the first)
``gap``                no edge fires (transitions silently returns False)
``route_mismatch``     the machine's precomputed route for a case
                       (:func:`linkstate.LinkMachine` routes every case once,
                       when it is built) differs from the one edge the
                       guards pass
``broken_promise``     a close is routed against the lifecycle's rules 2
                       and 3: ``relink`` to ``needs_relink``, ``fatal`` to
                       ``failed`` whatever the budget; a retryable close to
                       ``failed`` when the budget is spent or the link
                       flaps, else to ``reconnecting``
``unknown_verdict``    a table row whose verdict is not a :class:`Verdict`
``no_message``         a ``relink`` or ``fatal`` row without an operator
                       message
``endless_refusal``    a row whose refusal at connect time, repeated, never
                       stops the link (see ``ReconnectPolicy.refuse_after``)
``dead_shape``         a flag the channel trusts (``Channel.shapes``) that
                       can change no verdict: its status has no row, or no
                       row narrows on its flag
=====================  ====================================================

Findings about one state, trigger and verdict that differ only in the budget
and flapping condition are reported once, listing the conditions.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from linkstate._channel import Channel
from linkstate._errors import LinkstateError
from linkstate._lifecycle import (
    DECISIONS,
    EXIT_TRIGGERS,
    LIFECYCLE,
    Decision,
    Definition,
    Edge,
    State,
    StopReason,
    Trigger,
)
from linkstate._machine import LinkMachine, RouteKey, route_table
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import Rule, Verdict

__all__ = [
    "Finding",
    "Kind",
    "Report",
    "check",
    "check_definition",
    "check_rows",
    "promised_route",
]


class Kind(StrEnum):
    """What a finding is about; see the module docstring for each."""

    invalid = "invalid"
    unreachable = "unreachable"
    dead_end = "dead_end"
    terminal_exit = "terminal_exit"
    not_absorbing = "not_absorbing"
    no_reset = "no_reset"
    no_resume = "no_resume"
    no_abort = "no_abort"
    no_stop_reason = "no_stop_reason"
    guard_unused = "guard_unused"
    guard_error = "guard_error"
    overlap = "overlap"
    gap = "gap"
    broken_promise = "broken_promise"
    unknown_verdict = "unknown_verdict"
    no_message = "no_message"
    endless_refusal = "endless_refusal"
    dead_shape = "dead_shape"
    route_mismatch = "route_mismatch"


# Rules 2 and 3 of linkstate: where a close must lead, decided on the
# verdict first (the classifier has the last word), then the budget, then
# flap detection. ``check`` holds every definition to these promises.
_TERMINAL_VERDICT_DEST: Final = {
    Verdict.relink: (State.needs_relink, StopReason.relink),
    Verdict.fatal: (State.failed, StopReason.fatal),
}
_BUDGET_SPENT_DEST: Final = (State.failed, StopReason.budget_spent)
_FLAPPING_DEST: Final = (State.failed, StopReason.flapping)
_RETRY_DEST: Final = (State.reconnecting, None)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem, with where it is.

    Attributes:
        kind: What is wrong.
        message: A readable sentence naming the state, trigger and verdict,
            and what to do.
        state: The state it is about, if any.
        trigger: The trigger it is about, if any.
        verdict: The verdict it is about, if any.
        decisions: The decisions it applies to (for overlaps, gaps, promises).
        edges: The edges involved, described (``open --closed [is_relink]--> needs_relink``).
        rows: The channel table rows involved, by label.

    """

    kind: Kind
    message: str
    state: State | None = None
    trigger: Trigger | None = None
    verdict: Verdict | None = None
    decisions: tuple[Decision, ...] = ()
    edges: tuple[str, ...] = ()
    rows: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict of every field."""
        return {
            "kind": self.kind.value,
            "message": self.message,
            "state": None if self.state is None else self.state.value,
            "trigger": None if self.trigger is None else self.trigger.value,
            "verdict": None if self.verdict is None else self.verdict.value,
            "decisions": [
                {"verdict": d.verdict.value, "budget_spent": d.budget_spent, "flapping": d.flapping}
                for d in self.decisions
            ],
            "edges": list(self.edges),
            "rows": list(self.rows),
        }


@dataclass(frozen=True)
class Report:
    """What :func:`check` found for one subject (the bare lifecycle or one channel).

    Attributes:
        subject: ``lifecycle`` or the channel's name.
        findings: Every problem found; empty when the subject is proven.
        states: How many states were checked.
        edges: How many edges were checked.
        cases: How many (state, trigger, decision) cases were resolved.
        rows: How many table rows were checked (0 without a channel).

    """

    subject: str
    findings: tuple[Finding, ...]
    states: int = 0
    edges: int = 0
    cases: int = 0
    rows: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.findings

    def kinds(self) -> frozenset[Kind]:
        """The kinds of finding present."""
        return frozenset(f.kind for f in self.findings)

    def render(self) -> str:
        """A readable report: one summary line, then one line per finding."""
        scope = f"{self.states} states, {self.edges} edges, {self.cases} cases"
        if self.rows:
            scope += f", {self.rows} table rows"
        if self.ok:
            return f"ok    {self.subject}: {scope}; every case fires exactly one edge"
        lines = [f"FAIL  {self.subject}: {len(self.findings)} problem(s) in {scope}"]
        lines.extend(f"  {f.kind.value}: {f.message}" for f in self.findings)
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict: subject, ok, counts and findings."""
        return {
            "subject": self.subject,
            "ok": self.ok,
            "states": self.states,
            "edges": self.edges,
            "cases": self.cases,
            "rows": self.rows,
            "findings": [f.to_json() for f in self.findings],
        }


def check(definition: Definition = LIFECYCLE, channel: Channel | None = None) -> Report:
    """Prove ``definition``, and ``channel``'s table with it when given.

    Gaps and overlaps name the table rows whose verdict they concern, so a
    channel's report says which closes would be lost or misrouted.
    """
    rows = channel.table.rows() if channel is not None else ()
    findings = [*check_definition(definition, rows), *check_rows(rows)]
    if channel is not None:
        findings.extend(check_shapes(channel))
    if channel is not None and not findings:
        findings.extend(check_refusals(channel, definition))
    cases = sum(
        len(DECISIONS) if definition.carries_decision(state, trigger) else 1
        for state in definition.states
        for trigger in definition.triggers_from(state)
    )
    return Report(
        subject="lifecycle" if channel is None else channel.name,
        findings=tuple(findings),
        states=len(definition.states),
        edges=len(definition.edges),
        cases=cases,
        rows=len(rows),
    )


def check_definition(definition: Definition, rows: Sequence[Rule] = ()) -> list[Finding]:
    """Every finding about ``definition``; ``rows`` only label gaps and overlaps."""
    problems = definition.problems()
    if problems:
        # Nothing else can be trusted about a definition that names undeclared states.
        return [Finding(Kind.invalid, problem) for problem in problems]
    return [
        *_graph_findings(definition),
        *_terminal_findings(definition),
        *_routing_findings(definition, rows),
    ]


def check_rows(rows: Iterable[Rule]) -> list[Finding]:
    """Findings about table rows: unknown verdicts and terminal rows without a message."""
    findings: list[Finding] = []
    for row in rows:
        if not isinstance(row.verdict, Verdict):
            findings.append(
                Finding(
                    Kind.unknown_verdict,
                    f"table row {row.label!r} has verdict {row.verdict!r}, which is not one of "
                    f"{', '.join(v.value for v in Verdict)}; use a linkstate.Verdict member",
                    rows=(row.label,),
                )
            )
        elif row.verdict.terminal and not row.message:
            findings.append(
                Finding(
                    Kind.no_message,
                    f"table row {row.label!r} has verdict {row.verdict.value!r} but no operator "
                    "message; add message= saying what happened and what the operator must do",
                    verdict=row.verdict,
                    rows=(row.label,),
                )
            )
    return findings


def check_shapes(channel: Channel) -> list[Finding]:
    """Findings about the flags a channel trusts: each one must be able to change a verdict.

    A trusted flag either stands for a status, which a row must list, or sets
    an event flag, which a row must narrow on (``flag=``); otherwise reading it
    changes nothing, which is a typo in the channel, not a choice.
    """
    table = channel.table
    narrowed_on = {row.flag for row in table.rules if row.flag is not None}
    listed = {row.status for row in table.rules if row.status is not None}
    findings: list[Finding] = []
    for trusted in channel.shapes.flags:
        if trusted.status is not None and trusted.status not in listed:
            problem = f"stands for status {trusted.status}, which no row lists"
        elif trusted.status is None and trusted.flag not in narrowed_on:
            problem = f"sets flag {trusted.flag!r}, which no row narrows on"
        else:
            continue
        findings.append(
            Finding(
                Kind.dead_shape,
                f"channel {channel.name!r}: trusted flag {'/'.join(trusted.keys)} {problem}; "
                "add the row it should reach, or drop the flag from the channel's shapes",
            )
        )
    return findings


def check_refusals(
    channel: Channel, definition: Definition = LIFECYCLE, policy: ReconnectPolicy | None = None
) -> list[Finding]:
    """Drive every row's bare key through a machine as a connect failure, over and over.

    The framework rule of issue 12: a refusal (a status or code at connect
    time) must end in a terminal state within ``refuse_after`` attempts, or the
    row's own ``escalate_after``; only a ``transient`` row may retry forever.
    """
    policy = policy or ReconnectPolicy()
    limit = policy.refuse_after
    findings: list[Finding] = []
    for row in channel.table.rules:
        raw = row.status if row.status is not None else row.code
        if raw is None or row.transient or row.narrowed:
            continue  # narrowed rows need a flag or text the bare key lacks
        # With the rule off, twenty refusals stand in for "forever".
        bound = row.escalate_after or limit or 20
        if channel.table.classify(channel.event(raw)) is not row:
            continue
        machine = LinkMachine(channel, policy, definition=definition, rng=random.Random(0))
        link = machine.new_link("check")
        machine.fire(link, Trigger.start, 0.0)
        for attempt in range(bound):
            record = machine.close(link, raw, attempt * 10.0, trigger=Trigger.connect_failed)
            if record.dst != State.reconnecting:
                break
            machine.fire(link, Trigger.backoff_elapsed, attempt * 10.0 + 5.0)
        if link.state not in definition.terminal:
            findings.append(
                Finding(
                    Kind.endless_refusal,
                    f"table row {row.label!r}: {bound} refusals in a row at connect time left "
                    f"the link in {link.state!r}; mark the row transient=True if the platform "
                    "documents it as temporary, or give it a terminal verdict",
                    trigger=Trigger.connect_failed,
                    verdict=row.verdict,
                    rows=(row.label,),
                )
            )
    return findings


# -- the graph ---------------------------------------------------------------------


def _successors(definition: Definition, *, through_exits: bool) -> dict[State, set[State]]:
    graph: dict[State, set[State]] = {state: set() for state in definition.states}
    for edge in definition.edges:
        if edge.dest is not None and (through_exits or edge.trigger not in EXIT_TRIGGERS):
            graph[edge.source].add(edge.dest)
    return graph


def _reachable(graph: dict[State, set[State]], start: State) -> set[State]:
    seen = {start}
    frontier = [start]
    while frontier:
        for dest in graph[frontier.pop()]:
            if dest not in seen:
                seen.add(dest)
                frontier.append(dest)
    return seen


def _graph_findings(definition: Definition) -> list[Finding]:
    findings: list[Finding] = []
    graph = _successors(definition, through_exits=True)
    reached = _reachable(graph, definition.initial)
    findings.extend(
        Finding(
            Kind.unreachable,
            f"state {state.value!r} cannot be reached from the initial state "
            f"{definition.initial.value!r}; add an edge into it or remove it",
            state=state,
        )
        for state in definition.states
        if state not in reached
    )
    forward = _successors(definition, through_exits=False)
    for state in definition.states:
        if state in definition.terminal:
            continue
        if not _reachable(forward, state) & definition.terminal:
            findings.append(
                Finding(
                    Kind.dead_end,
                    f"state {state.value!r} can never reach a terminal state, so a link in it "
                    "can neither stop nor be stopped; add an edge (abort at least) toward one",
                    state=state,
                )
            )
        abort = [e for e in definition.edges_from(state, Trigger.abort) if e.guard is None]
        if not any(e.dest in definition.terminal for e in abort):
            findings.append(
                Finding(
                    Kind.no_abort,
                    f"state {state.value!r} has no unguarded 'abort' edge into a terminal "
                    "state, so cancelling a link there raises; add one to 'stopped'",
                    state=state,
                    trigger=Trigger.abort,
                )
            )
    return findings


def _terminal_findings(definition: Definition) -> list[Finding]:
    findings: list[Finding] = []
    stopped_locally = _stopped_locally(definition)
    for edge in definition.edges:
        misplaced = _misplaced_way_out(definition, edge, stopped_locally)
        if misplaced is not None:
            findings.append(misplaced)
        if (
            edge.dest in definition.terminal
            and edge.dest is not edge.source
            and edge.stop_reason is None
        ):
            findings.append(
                Finding(
                    Kind.no_stop_reason,
                    f"edge {edge.describe()} enters a terminal state without a stop reason, so "
                    "the operator is told nothing; give it stop_reason=",
                    state=edge.source,
                    trigger=edge.trigger,
                    edges=(edge.describe(),),
                )
            )
    for state in sorted(definition.terminal, key=definition.states.index):
        accepted = set(definition.triggers_from(state))
        if Trigger.reset not in accepted:
            findings.append(
                Finding(
                    Kind.no_reset,
                    f"terminal state {state.value!r} has no 'reset' edge, so no operator "
                    "action can ever revive the link; add one to the initial state",
                    state=state,
                    trigger=Trigger.reset,
                )
            )
        resumes = [e for e in definition.edges_from(state, Trigger.resume) if not e.absorbing]
        if state in stopped_locally and not resumes:
            findings.append(
                Finding(
                    Kind.no_resume,
                    f"terminal state {state.value!r} is entered by a local stop (abort) but has "
                    "no 'resume' edge out, so a new run can never pick the link up; add one to "
                    "the initial state",
                    state=state,
                    trigger=Trigger.resume,
                )
            )
        findings.extend(
            Finding(
                Kind.not_absorbing,
                f"terminal state {state.value!r} does not accept trigger {trigger.value!r}, so "
                "a late event raises instead of being absorbed; add an absorbing edge "
                "(dest=None)",
                state=state,
                trigger=trigger,
            )
            for trigger in Trigger
            if trigger is not Trigger.reset and trigger not in accepted
        )
    return findings


def _stopped_locally(definition: Definition) -> frozenset[State]:
    """The terminal states that ``abort`` enters: a new run may resume a link there."""
    return frozenset(
        edge.dest
        for edge in definition.edges
        if edge.trigger is Trigger.abort and edge.dest in definition.terminal
    )


def _misplaced_way_out(
    definition: Definition, edge: Edge, stopped_locally: frozenset[State]
) -> Finding | None:
    """``reset`` and ``resume`` only where they belong; no other trigger leaves a terminal state."""
    terminal_source = edge.source in definition.terminal
    trigger = edge.trigger.value
    if edge.trigger is Trigger.reset and not terminal_source:
        kind = Kind.no_reset
        text = (
            f"state {edge.source.value!r} is not terminal but has a 'reset' edge; "
            "'reset' is the operator's way out of a terminal state only"
        )
    elif edge.trigger is Trigger.resume and not terminal_source:
        kind = Kind.no_resume
        text = (
            f"state {edge.source.value!r} is not terminal but has a 'resume' edge; "
            "'resume' is a new run's way out of a terminal state that a local stop enters only"
        )
    elif (
        not terminal_source
        or edge.absorbing
        or edge.trigger is Trigger.reset
        or (edge.trigger is Trigger.resume and edge.source in stopped_locally)
    ):
        return None
    elif edge.trigger is Trigger.resume:
        kind = Kind.terminal_exit
        text = (
            f"terminal state {edge.source.value!r} leaves on trigger 'resume' "
            f"({edge.describe()}), but no local stop enters it: a link there waits for a "
            "person, however often the process restarts. Make the edge absorbing (dest=None)"
        )
    else:
        kind = Kind.terminal_exit
        text = (
            f"terminal state {edge.source.value!r} leaves on trigger {trigger!r} "
            f"({edge.describe()}); only 'reset' may leave a terminal state, and 'resume' one "
            "that a local stop enters: make the edge absorbing (dest=None)"
        )
    return Finding(kind, text, state=edge.source, trigger=edge.trigger, edges=(edge.describe(),))


# -- routing: exactly one edge per case ---------------------------------------------


@dataclass
class _Group:
    """Findings of one kind for one state, trigger and verdict, across conditions."""

    kind: Kind
    state: State
    trigger: Trigger
    verdict: Verdict
    edges: tuple[Edge, ...]
    decisions: list[Decision] = field(default_factory=list)


def _routing_findings(definition: Definition, rows: Sequence[Rule]) -> list[Finding]:
    findings: list[Finding] = []
    groups: dict[tuple[Kind, State, Trigger, Verdict, tuple[Edge, ...]], _Group] = {}
    routes = _machine_routes(definition)
    for state in definition.states:
        for trigger in definition.triggers_from(state):
            edges = definition.edges_from(state, trigger)
            if not definition.carries_decision(state, trigger):
                findings.extend(_undecided_findings(state, trigger, edges))
                plain = tuple(edge for edge in edges if edge.guard is None)
                findings.extend(_route_mismatch(routes, state, trigger, None, plain))
                continue
            for decision in DECISIONS:
                fired = _fired(state, trigger, edges, decision, findings)
                findings.extend(_route_mismatch(routes, state, trigger, decision, fired))
                kind = _classify_case(fired, decision)
                if kind is not None:
                    key = (kind, state, trigger, decision.verdict, fired)
                    group = groups.setdefault(key, _Group(*key))
                    group.decisions.append(decision)
    findings.extend(_group_finding(group, rows) for group in groups.values())
    return findings


def _machine_routes(definition: Definition) -> dict[RouteKey, Edge] | None:
    """The routes a LinkMachine would precompute; None when a guard raises (a guard_error)."""
    try:
        return route_table(definition)
    except LinkstateError:
        return None


def _route_mismatch(
    routes: dict[RouteKey, Edge] | None,
    state: State,
    trigger: Trigger,
    decision: Decision | None,
    fired: tuple[Edge, ...],
) -> list[Finding]:
    """The machine's route for one case, against the one edge the guards pass.

    Only a case with exactly one passing edge has a right answer; a gap or
    an overlap is reported as such.
    """
    if routes is None or len(fired) != 1:
        return []
    routed = routes.get((state.value, trigger, decision))
    if routed is fired[0]:
        return []
    where = f"state {state.value!r}, trigger {trigger.value!r}"
    if decision is not None:
        where += f", verdict {decision.verdict.value!r} ({_conditions([decision])})"
    return [
        Finding(
            Kind.route_mismatch,
            f"{where}: the guards pass only {fired[0].describe()}, but the machine's "
            f"precomputed route is {routed.describe() if routed else 'missing'}; "
            "make every guard a pure function of the Decision",
            state=state,
            trigger=trigger,
            verdict=None if decision is None else decision.verdict,
            decisions=() if decision is None else (decision,),
            edges=(fired[0].describe(),),
        )
    ]


def _undecided_findings(state: State, trigger: Trigger, edges: tuple[Edge, ...]) -> list[Finding]:
    findings = [
        Finding(
            Kind.guard_unused,
            f"state {state.value!r}, trigger {trigger.value!r}: edge {edge.describe()} has a "
            "guard, but this trigger carries no close decision, so the guard never passes; "
            "remove the guard or route a close-like trigger",
            state=state,
            trigger=trigger,
            edges=(edge.describe(),),
        )
        for edge in edges
        if edge.guard is not None
    ]
    plain = [edge for edge in edges if edge.guard is None]
    if len(plain) > 1:
        findings.append(
            Finding(
                Kind.overlap,
                f"state {state.value!r}, trigger {trigger.value!r}: {len(plain)} unguarded "
                f"edges ({'; '.join(e.describe() for e in plain)}); transitions silently "
                "takes the first. Keep one",
                state=state,
                trigger=trigger,
                edges=tuple(e.describe() for e in plain),
            )
        )
    elif not plain and edges:
        findings.append(
            Finding(
                Kind.gap,
                f"state {state.value!r}, trigger {trigger.value!r}: no unguarded edge, so the "
                "trigger never fires and transitions silently returns False; add one",
                state=state,
                trigger=trigger,
            )
        )
    return findings


def _fired(
    state: State,
    trigger: Trigger,
    edges: tuple[Edge, ...],
    decision: Decision,
    findings: list[Finding],
) -> tuple[Edge, ...]:
    """The edges whose guard passes for ``decision``, judged the way transitions judges."""
    fired = []
    for edge in edges:
        if edge.guard is None:
            fired.append(edge)
            continue
        try:
            result = edge.guard(decision)
        except Exception as exc:
            findings.append(
                _guard_error(state, trigger, edge, decision, f"raises {type(exc).__name__}: {exc}")
            )
            continue
        if not isinstance(result, bool):
            findings.append(
                _guard_error(state, trigger, edge, decision, f"returns {type(result).__name__}")
            )
        if result == True:  # noqa: E712 - exactly transitions' test of a condition
            fired.append(edge)
    return tuple(fired)


def _guard_error(
    state: State, trigger: Trigger, edge: Edge, decision: Decision, what: str
) -> Finding:
    return Finding(
        Kind.guard_error,
        f"state {state.value!r}, trigger {trigger.value!r}, verdict "
        f"{decision.verdict.value!r} ({_conditions([decision])}): guard of {edge.describe()} "
        f"{what}; guards must be plain functions returning a real bool",
        state=state,
        trigger=trigger,
        verdict=decision.verdict,
        decisions=(decision,),
        edges=(edge.describe(),),
    )


def _classify_case(fired: tuple[Edge, ...], decision: Decision) -> Kind | None:
    if not fired:
        return Kind.gap
    if len(fired) > 1:
        return Kind.overlap
    edge = fired[0]
    if (edge.dest, edge.stop_reason) != promised_route(decision):
        return Kind.broken_promise
    return None


def promised_route(decision: Decision) -> tuple[State, StopReason | None]:
    """Where the lifecycle's rules 2 and 3 say a close with ``decision`` must lead."""
    if decision.verdict in _TERMINAL_VERDICT_DEST:
        return _TERMINAL_VERDICT_DEST[decision.verdict]
    if decision.budget_spent:
        return _BUDGET_SPENT_DEST
    if decision.flapping:
        return _FLAPPING_DEST
    return _RETRY_DEST


def _conditions(decisions: Sequence[Decision]) -> str:
    """``budget_spent=True, any flapping`` rather than listing every combination."""
    budgets = {d.budget_spent for d in decisions}
    flaps = {d.flapping for d in decisions}
    if len(decisions) != len(budgets) * len(flaps):
        return " or ".join(
            f"budget_spent={d.budget_spent}, flapping={d.flapping}" for d in decisions
        )
    if len(budgets) == len(flaps) == 2:
        return "every budget and flapping condition"
    parts = [f"budget_spent={budgets.pop()}" if len(budgets) == 1 else "any budget"]
    parts.append(f"flapping={flaps.pop()}" if len(flaps) == 1 else "any flapping")
    return ", ".join(parts)


def _group_finding(group: _Group, rows: Sequence[Rule]) -> Finding:
    where = (
        f"state {group.state.value!r}, trigger {group.trigger.value!r}, verdict "
        f"{group.verdict.value!r} ({_conditions(group.decisions)})"
    )
    labels = tuple(row.label for row in rows if row.verdict is group.verdict)
    affected = f"; affects table rows {', '.join(labels)}" if labels else ""
    described = tuple(e.describe() for e in group.edges)
    if group.kind is Kind.gap:
        text = (
            f"{where}: no edge fires, so transitions would silently return False{affected}. "
            "Add a guarded edge for this case"
        )
    elif group.kind is Kind.overlap:
        text = (
            f"{where}: {len(described)} edges could fire ({'; '.join(described)}) and "
            f"transitions silently takes the first{affected}. Make the guards disjoint"
        )
    else:
        dest, reason = promised_route(group.decisions[0])
        want = dest.value + ("" if reason is None else f" (stop reason {reason.value})")
        text = (
            f"{where}: routed by {described[0]}, but the lifecycle promises {want}{affected}. "
            "Fix the route"
        )
    return Finding(
        group.kind,
        text,
        state=group.state,
        trigger=group.trigger,
        verdict=group.verdict,
        decisions=tuple(group.decisions),
        edges=described,
        rows=labels,
    )
