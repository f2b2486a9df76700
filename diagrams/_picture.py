"""A drawing-neutral picture of a lifecycle: the one place that decides what is drawn.

Theory of operation
-------------------
The DOT and the Mermaid writers draw the same :class:`Picture`, so what a
diagram shows is decided once, here, from the declared
:class:`linkstate.Definition` (and, for a channel, its close table).
Each definition edge is given one *arrow key*; edges with the same key
become one arrow. In declaration order, so the output is stable:

* The initial state gets an arrow from a start marker.
* States are in two groups, ``live`` and ``terminal`` (statechart
  superstates). An unguarded edge that every member of a group has, with the
  same trigger, destination and stop reason, is drawn once, from the group:
  ``abort`` leaves every live state for ``stopped``, ``reset`` takes every
  terminal state back to ``idle``. When every terminal state absorbs the
  same triggers, the group says so once in its caption; otherwise each
  terminal state gets a dashed self-loop naming what it absorbs.
* Other unguarded edges between two states are one arrow, labelled with
  their triggers.
* The guarded edges of one (source, trigger) branch on the close decision.
  Every (source, trigger) whose branches are identical (the same guards, in
  the same order, to the same destinations with the same stop reasons)
  shares one *choice* node, UML's choice pseudostate and Mermaid's
  ``<<choice>>``: one arrow per source into it, labelled with the triggers,
  and one arrow per guard out of it. So ``connect_failed``, ``closed`` and
  ``watchdog_expired``, which all follow :data:`linkstate.CLOSE_ROUTES`,
  are drawn once instead of three times.
* For a channel, each arrow out of a choice also lists the table codes that
  take it on a fresh link (retry budget left, not flapping): the codes that
  lead there. A retryable row that turns fatal when it repeats
  (``escalate_after``) is also listed on the fatal arrow as ``code xN``. The
  whole table is the legend.

Accounting: every definition edge is listed by exactly one arrow or group
(:attr:`Arrow.edges`, :attr:`Group.edges`): the arrow or caption that ends
its drawn path. Arrows into a choice list none, since the branch out of it
ends the path. The tests check this, and the DOT writer shows the lists as
tooltips.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from linkstate._channel import Channel
from linkstate._lifecycle import (
    DECISIONS,
    LIFECYCLE,
    Decision,
    Definition,
    Edge,
    Guard,
    State,
    StopReason,
    Trigger,
)
from linkstate._verdicts import CloseTable, Rule, Verdict

__all__ = [
    "GENERIC_NAME",
    "REGENERATE",
    "START_ID",
    "Arrow",
    "ArrowKind",
    "Group",
    "Legend",
    "LegendRow",
    "LegendSection",
    "Line",
    "Node",
    "NodeKind",
    "Picture",
    "absorbed_text",
    "edge_text",
    "lifecycle_picture",
    "rule_token",
    "state_node",
]

REGENERATE: Final = "linkstate diagram --all -o docs/diagrams"
"""The one command that regenerates every committed diagram."""

START_ID: Final = "start"
"""The id of the start marker; no state may use it."""

GENERIC_NAME: Final = "lifecycle"
"""The picture name of the bare definition, without a channel."""


class NodeKind(StrEnum):
    """What a node stands for; the writers style each kind."""

    start = "start"
    """The start marker, with one arrow to the initial state."""
    state = "state"
    """A live state."""
    terminal = "terminal"
    """A terminal state: final for the link until a person acts."""
    choice = "choice"
    """A branch on the close decision (UML choice pseudostate)."""


class ArrowKind(StrEnum):
    """What an arrow stands for; the writers style each kind."""

    start = "start"
    """From the start marker to the initial state."""
    plain = "plain"
    """Unguarded edges, from a state or a group to a state."""
    into_choice = "into_choice"
    """From a state into a choice node, labelled with the triggers."""
    branch = "branch"
    """From a choice node to a state, labelled with one guard."""
    absorb = "absorb"
    """A terminal state's self-loop for the triggers it absorbs."""
    step = "step"
    """A transition actually taken, in a trace."""


@dataclass(frozen=True, slots=True)
class Node:
    """One node of a picture.

    Attributes:
        id: The node's id in DOT and Mermaid; a state's value for states.
        kind: What it stands for.
        label: The main text; empty for markers and choices.
        detail: A smaller second line (a terminal state's stop reasons).
        tone: For terminal states, the stop reason whose colour it wears.
        emphasis: True for the node a trace ended in.

    """

    id: str
    kind: NodeKind
    label: str = ""
    detail: str = ""
    tone: str = ""
    emphasis: bool = False


@dataclass(frozen=True, slots=True)
class Group:
    """A superstate: states drawn together, which arrows may leave as one.

    Attributes:
        id: The group's id (``live``, ``terminal``); never a state's.
        label: Its caption.
        members: The ids of its nodes, in order.
        note: A second caption line, such as what every member absorbs.
        edges: The definition edges that ``note`` accounts for.

    """

    id: str
    label: str
    members: tuple[str, ...]
    note: str = ""
    edges: tuple[Edge, ...] = ()


@dataclass(frozen=True, slots=True)
class Line:
    """One line of an arrow's label; ``minor`` lines (codes, delays) are drawn smaller."""

    text: str
    minor: bool = False


@dataclass(frozen=True, slots=True)
class Arrow:
    """One arrow of a picture.

    Attributes:
        src: The id of the node or group it leaves.
        dst: The id of the node it enters.
        kind: What it stands for.
        lines: The label, line by line: triggers, guards, close codes, steps.
        edges: The definition edges whose drawn path ends with this arrow.
        taken: True for an arrow of a live link's recent path (drawn like a step).

    """

    src: str
    dst: str
    kind: ArrowKind
    lines: tuple[Line, ...] = ()
    edges: tuple[Edge, ...] = ()
    taken: bool = False


@dataclass(frozen=True, slots=True)
class LegendRow:
    """One row of a channel's close table, as the legend shows it."""

    token: str
    """The code as the arrows show it (``440``, ``408*``, ``unknown``)."""
    name: str
    """The platform's name for it (``connectionReplaced``)."""
    meaning: str
    """What it means, with any narrowing condition."""


@dataclass(frozen=True, slots=True)
class LegendSection:
    """The rows of one verdict, and the state a fresh close with it enters."""

    verdict: Verdict
    dest: str
    rows: tuple[LegendRow, ...]


@dataclass(frozen=True, slots=True)
class Legend:
    """A channel's close table grouped by verdict, for the picture's legend."""

    title: str
    sections: tuple[LegendSection, ...]


@dataclass(frozen=True)
class Picture:
    """Everything a writer draws, in a stable order.

    Attributes:
        name: The graph's name (``lifecycle``, ``whatsapp``).
        title: A caption for people.
        nodes: The nodes, start marker first.
        arrows: The arrows, in the order the definition declares their edges.
        groups: The superstates; a node is in at most one.
        legend: A channel's table, or None.
        comment: Where the picture came from, for a comment atop the output.

    """

    name: str
    title: str
    nodes: tuple[Node, ...]
    arrows: tuple[Arrow, ...]
    groups: tuple[Group, ...] = ()
    legend: Legend | None = None
    comment: str = ""
    _by_id: dict[str, Node] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {node.id: node for node in self.nodes})

    def node(self, node_id: str) -> Node:
        """The node with id ``node_id``."""
        return self._by_id[node_id]

    def group(self, group_id: str) -> Group | None:
        """The group with id ``group_id``, or None when it is a node's id."""
        return next((group for group in self.groups if group.id == group_id), None)


def edge_text(edge: Edge) -> str:
    """One definition edge as text: ``open --closed [is_relink]--> needs_relink (stop: relink)``.

    Tooltips and tests use this one spelling, so it is unique per edge.
    """
    stop = "" if edge.stop_reason is None else f" (stop: {edge.stop_reason.value})"
    return edge.describe() + stop


def rule_token(rule: Rule) -> str:
    """A table row as arrows show it: its status or code, starred when narrowed."""
    token = rule.key if rule.status is not None or rule.code is not None else rule.name
    return f"{token}*" if rule.narrowed else token


def absorbed_text(absorbed: Iterable[str], all_triggers: Sequence[str]) -> str:
    """Name the absorbed triggers briefly: by exception when they are most of them."""
    taken = set(absorbed)
    kept = [trigger for trigger in all_triggers if trigger not in taken]
    if len(kept) < len(taken):
        return "absorbs every trigger but " + ", ".join(kept) if kept else "absorbs every trigger"
    return "absorbs " + ", ".join(t for t in all_triggers if t in taken)


def state_node(definition: Definition, state: State, *, emphasis: bool = False) -> Node:
    """The node for ``state``: terminal states carry their stop reasons and tone."""
    if state not in definition.terminal:
        return Node(state.value, NodeKind.state, state.value, emphasis=emphasis)
    reasons = tuple(
        dict.fromkeys(
            edge.stop_reason
            for edge in definition.edges
            if edge.dest is state and edge.stop_reason is not None
        )
    )
    return Node(
        state.value,
        NodeKind.terminal,
        state.value,
        detail=", ".join(reason.value for reason in reasons),
        tone=reasons[0].value if reasons else "",
        emphasis=emphasis,
    )


def lifecycle_picture(
    channel: Channel | None = None, definition: Definition = LIFECYCLE
) -> Picture:
    """The picture of ``definition``, with ``channel``'s codes and legend when given."""
    return _Builder(definition, None if channel is None else channel.table).picture(channel)


@dataclass(frozen=True, slots=True)
class _ArrowKey:
    """Which arrow draws a definition edge; edges with equal keys share one arrow.

    Attributes:
        kind: What the arrow stands for.
        tail: The id of the node or group it leaves.
        head: The id of the node it enters.
        trigger: For an arrow that leaves a group, the trigger its edges share:
            each shared trigger is an arrow of its own.
        stop_reason: For an arrow that leaves a group, the stop reason its edges share.

    """

    kind: ArrowKind
    tail: str
    head: str
    trigger: Trigger | None = None
    stop_reason: StopReason | None = None


class _Builder:
    """Gives every definition edge its arrow key, then turns each key into an arrow."""

    def __init__(self, definition: Definition, table: CloseTable | None) -> None:
        self.definition = definition
        self.table = table
        self.triggers = tuple(dict.fromkeys(edge.trigger.value for edge in definition.edges))
        live = tuple(s for s in definition.states if s not in definition.terminal)
        terminal = tuple(s for s in definition.states if s in definition.terminal)
        self.members = {"live": live, "terminal": terminal}
        self.grouped: dict[Edge, _ArrowKey] = {}
        # The absorbing edges a group's caption accounts for, by group id.
        self.notes: dict[str, list[Edge]] = {}
        for group_id, states in self.members.items():
            self._group_edges(group_id, states)
        self.choices: dict[tuple[object, ...], str] = {}

    def _group_edges(self, group_id: str, states: tuple[State, ...]) -> None:
        """Key the edges that every member of a group shares to the group."""
        if len(states) < 2:
            return
        first, rest = states[0], states[1:]
        for edge in self.definition.edges:
            if edge.source is not first or edge.guard is not None or edge.absorbing:
                continue
            assert edge.dest is not None
            if edge.dest in states:
                continue
            twins = [self._twin(edge, state) for state in rest]
            if all(twins):
                key = _ArrowKey(
                    ArrowKind.plain, group_id, edge.dest.value, edge.trigger, edge.stop_reason
                )
                for twin in (edge, *twins):
                    assert twin is not None
                    self.grouped[twin] = key
        # What every member absorbs is said once, in the group's caption; a
        # member that absorbs more draws a self-loop for the rest.
        absorbed = [
            frozenset(e.trigger for e in self.definition.edges if e.source is s and e.absorbing)
            for s in states
        ]
        shared = frozenset.intersection(*absorbed)
        if shared:
            for edge in self.definition.edges:
                if edge.source in states and edge.absorbing and edge.trigger in shared:
                    self.notes.setdefault(group_id, []).append(edge)

    def _twin(self, edge: Edge, state: State) -> Edge | None:
        """``state``'s unguarded edge that matches ``edge`` in all but its source."""
        return next(
            (
                e
                for e in self.definition.edges_from(state, edge.trigger)
                if e.guard is None and e.dest is edge.dest and e.stop_reason is edge.stop_reason
            ),
            None,
        )

    def picture(self, channel: Channel | None) -> Picture:
        keyed: dict[_ArrowKey, list[Edge]] = {}
        noted = {edge for edges in self.notes.values() for edge in edges}
        for edge in self.definition.edges:
            if edge not in noted:
                for key in self._keys(edge):
                    keyed.setdefault(key, []).append(edge)
        arrows = [Arrow(START_ID, self.definition.initial.value, ArrowKind.start)]
        arrows.extend(self._arrow(key, edges) for key, edges in keyed.items())
        nodes = [Node(START_ID, NodeKind.start)]
        nodes.extend(state_node(self.definition, state) for state in self.definition.states)
        nodes.extend(Node(choice_id, NodeKind.choice) for choice_id in self.choices.values())
        if channel is None:
            name, title, legend = GENERIC_NAME, "linkstate lifecycle", None
        else:
            name, title = channel.name, f"{channel.title}: linkstate lifecycle"
            legend = _legend(channel, self.definition)
        comment = f"Generated by `linkstate diagram`; do not edit. Regenerate: {REGENERATE}"
        return Picture(name, title, tuple(nodes), tuple(arrows), self._groups(), legend, comment)

    def _groups(self) -> tuple[Group, ...]:
        labels = {"live": "live", "terminal": "terminal: final until a person acts"}
        groups = []
        for group_id, states in self.members.items():
            members = tuple(s.value for s in states)
            if group_id == "live":
                # Choices branch from live states; inside that group the
                # layout keeps the live states in reading order.
                members += tuple(self.choices.values())
            notes = self.notes.get(group_id, [])
            note = (
                absorbed_text(dict.fromkeys(e.trigger.value for e in notes), self.triggers)
                if notes
                else ""
            )
            groups.append(Group(group_id, labels[group_id], members, note, tuple(notes)))
        return tuple(group for group in groups if group.members)

    def _keys(self, edge: Edge) -> list[_ArrowKey]:
        source = edge.source.value
        if edge in self.grouped:
            return [self.grouped[edge]]
        if edge.dest is None:
            return [_ArrowKey(ArrowKind.absorb, source, source)]
        if edge.guard is None:
            return [_ArrowKey(ArrowKind.plain, source, edge.dest.value)]
        routes = self.definition.edges_from(edge.source, edge.trigger)
        signature = tuple((e.guard, e.dest, e.stop_reason) for e in routes)
        choice_id = self.choices.setdefault(signature, f"choice{len(self.choices) + 1}")
        return [
            _ArrowKey(ArrowKind.into_choice, source, choice_id),
            _ArrowKey(ArrowKind.branch, choice_id, edge.dest.value),
        ]

    def _arrow(self, key: _ArrowKey, edges: list[Edge]) -> Arrow:
        triggers = (Line(", ".join(dict.fromkeys(e.trigger.value for e in edges))),)
        match key.kind:
            case ArrowKind.absorb:
                text = absorbed_text((e.trigger.value for e in edges), self.triggers)
                return Arrow(key.tail, key.head, key.kind, (Line(text),), tuple(edges))
            case ArrowKind.into_choice:
                # The branch out of the choice ends these edges' paths; see the header.
                return Arrow(key.tail, key.head, key.kind, triggers)
            case ArrowKind.branch:
                return Arrow(key.tail, key.head, key.kind, self._branch_lines(edges), tuple(edges))
            case _:  # plain: from a state, or from a group for every member
                return Arrow(key.tail, key.head, key.kind, triggers, tuple(edges))

    def _branch_lines(self, edges: list[Edge]) -> tuple[Line, ...]:
        """Each guard into one state, in priority order, with what takes it."""
        lines: list[Line] = []
        for guard in dict.fromkeys(edge.guard for edge in edges):
            assert guard is not None
            lines.append(Line(f"[{guard.__name__}]"))
            lines.extend(Line(text, minor=True) for text in self._codes(guard))
        return tuple(lines)

    def _codes(self, guard: Guard) -> tuple[str, ...]:
        """What takes a branch: a channel's codes by verdict, else the verdicts."""
        verdicts = [v for v in Verdict if any(guard(d) for d in DECISIONS if d.verdict is v)]
        if self.table is not None:
            lines: list[str] = []
            for verdict in (v for v in verdicts if guard(Decision(v))):
                rules = (r for r in self.table.rows() if r.verdict is verdict)
                tokens = _sorted_tokens(rules)
                if verdict is Verdict.fatal:
                    tokens += _escalation_tokens(self.table)
                lines.extend(_wrap(f"{verdict.value}:", tokens))
            if lines:
                return tuple(lines)
        return (", ".join(v.value for v in verdicts),) if verdicts else ()


# Code lists on arrows wrap at this many characters, so labels stay compact.
_WRAP_AT: Final = 34


def _wrap(prefix: str, tokens: Iterable[str]) -> list[str]:
    lines = [prefix]
    for token in tokens:
        if len(lines[-1]) + 1 + len(token) > _WRAP_AT and lines[-1] != prefix:
            lines.append(token)
        else:
            lines[-1] = f"{lines[-1]} {token}"
    return lines


def _reading_order(rule: Rule) -> tuple[int, int, str]:
    """Statuses by number, then symbolic codes, then the table's defaults."""
    if rule.status is not None:
        return (0, rule.status, "")
    if rule.code is not None:
        return (1, 0, rule.code)
    return (2, 0, "")


def _sorted_tokens(rules: Iterable[Rule]) -> list[str]:
    return list(dict.fromkeys(rule_token(rule) for rule in sorted(rules, key=_reading_order)))


def _escalation_tokens(table: CloseTable) -> list[str]:
    """Retryable rows that turn fatal when they repeat, as ``code xN`` (N in a row)."""
    escalating = sorted((r for r in table.rows() if r.escalate_after), key=_reading_order)
    return [f"{rule_token(rule)} x{rule.escalate_after}" for rule in escalating]


def _legend(channel: Channel, definition: Definition) -> Legend:
    table = channel.table
    defaults = {
        id(table.unknown): "any status the table does not list",
        id(table.no_status): "a close with no status at all",
    }
    sections = []
    for verdict in Verdict:
        rules = sorted((r for r in table.rows() if r.verdict is verdict), key=_reading_order)
        rows = tuple(LegendRow(rule_token(r), r.name, _meaning(r, defaults)) for r in rules)
        if rows:
            dest = next(
                e.dest
                for e in definition.edges
                if e.guard is not None and e.dest is not None and e.guard(Decision(verdict))
            )
            sections.append(LegendSection(verdict, dest.value, rows))
    return Legend(f"{channel.title} close codes (channel {channel.name})", tuple(sections))


def _meaning(rule: Rule, defaults: dict[int, str]) -> str:
    parts = [rule.meaning or defaults.get(id(rule), "")]
    if rule.reason_contains is not None:
        parts.append(f"* only when the reason contains {rule.reason_contains!r}")
    if rule.flag is not None:
        parts.append(f"* only with the flag {rule.flag!r}")
    if rule.max_delay is not None:
        parts.append(f"waits {rule.min_delay:g}-{rule.max_delay:g} s, at random")
    elif rule.min_delay:
        parts.append(f"waits at least {rule.min_delay:g} s")
    if rule.escalate_after is not None:
        parts.append(f"fatal from the {_ordinal(rule.escalate_after)} in a row (xN)")
    return "; ".join(part for part in parts if part)


def _ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"
