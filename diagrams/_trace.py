"""Trace diagrams: the path one link actually took, drawn from its transition records.

Only the states the link visited are drawn. Each arrow is one kind of step
(the same source, destination, trigger and close rule) and is numbered with
the positions it was taken at, so a retry loop is one arrow numbered
``3, 6, 9`` rather than a thicket. The state the trace ended in is
highlighted. The drawing reuses the lifecycle's node styles, so terminal
states look the same as in the lifecycle diagrams.

:func:`live_picture` is the other way round, for a status page: the whole
lifecycle of the link's channel (the picture ``linkstate diagram`` draws),
with the link's current state highlighted and the arrows of its recent path
drawn as steps and numbered in the same way. A record is matched to the arrow
that draws its definition edge (:attr:`Arrow.edges`); for a close, that is the
branch out of a choice node, and the arrow into that choice is drawn as
taken too. An absorbed trigger changes nothing, so it has no arrow to number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final

from linkstate._channel import Channel
from linkstate._lifecycle import LIFECYCLE, Definition, State
from linkstate._machine import TransitionRecord
from linkstate.diagrams._output import DiagramError, write_diagram
from linkstate.diagrams._picture import (
    START_ID,
    Arrow,
    ArrowKind,
    Line,
    Node,
    NodeKind,
    Picture,
    lifecycle_picture,
    state_node,
)
from linkstate.diagrams._renderer import Renderer

__all__ = ["RECENT_STEPS", "live_picture", "trace_picture", "write_trace"]

# An arrow taken more often than this lists its first positions and its last.
_MAX_LISTED: Final = 6

_StepKey = tuple[str, str, str, str | None, str | None, str | None]

RECENT_STEPS: Final = 12
"""How many of a link's newest transitions :func:`live_picture` numbers by default."""


def trace_picture(
    records: Sequence[TransitionRecord], definition: Definition = LIFECYCLE
) -> Picture:
    """The picture of the path in ``records``, one link's transitions in the order taken.

    Raises:
        DiagramError: no records, records of more than one link, or a state
            the definition does not have.

    """
    if not records:
        raise DiagramError("no transitions to draw: the trace is empty; run the link first")
    links = sorted({record.link for record in records})
    if len(links) > 1:
        raise DiagramError(
            f"a trace diagram shows one link, but the records are for {', '.join(links)}; "
            "pass the records of one link"
        )
    final = records[-1].dst
    visited = list(dict.fromkeys([records[0].src, *(record.dst for record in records)]))
    nodes = [Node(START_ID, NodeKind.start)]
    # The stop reason of the edge that entered the final state, if one did.
    stops = [r.stop_reason for r in records if r.dst == final and r.stop_reason is not None]
    ended = f"ended here: {stops[-1]}" if stops else "ended here"
    nodes.extend(_node(definition, value, ended if value == final else "") for value in visited)
    steps: dict[_StepKey, list[tuple[int, TransitionRecord]]] = {}
    for number, record in enumerate(records, start=1):
        key = (
            record.src,
            record.dst,
            record.trigger,
            record.rule,
            record.verdict,
            record.stop_reason,
        )
        steps.setdefault(key, []).append((number, record))
    arrows = [Arrow(START_ID, records[0].src, ArrowKind.start)]
    arrows.extend(_arrow(taken) for taken in steps.values())
    title = f"link {links[0]}: {len(records)} transitions from {records[0].src}, ended in {final}"
    comment = f"Trace of link {links[0]} drawn by linkstate from {len(records)} transition records"
    return Picture(f"trace_{links[0]}", title, tuple(nodes), tuple(arrows), comment=comment)


def write_trace(
    records: Sequence[TransitionRecord],
    path: Path,
    *,
    definition: Definition = LIFECYCLE,
    renderer: Renderer | None = None,
) -> Path:
    """Draw ``records`` into ``path``; the format follows the extension (.dot, .svg, .png, .mmd).

    Raises:
        DiagramError: the extension is unknown, or the records cannot be drawn.
        linkstate.diagrams.RendererNotFoundError: SVG or PNG was asked for and no
            renderer is installed.

    """
    return write_diagram(trace_picture(records, definition), path, renderer=renderer)


def live_picture(
    channel: Channel | None,
    state: str,
    records: Sequence[TransitionRecord] = (),
    *,
    recent: int = RECENT_STEPS,
    definition: Definition = LIFECYCLE,
) -> Picture:
    """The lifecycle of ``channel`` with ``state`` highlighted and the recent path numbered.

    ``records`` are one link's transitions, oldest first; the newest
    ``recent`` of them are numbered from 1.

    Raises:
        DiagramError: ``state`` is not a state of the definition.

    """
    base = lifecycle_picture(channel, definition)
    if state not in {node.id for node in base.nodes}:
        raise DiagramError(
            f"state {state!r} is not in the lifecycle; draw a link of this version of linkstate"
        )
    path = list(records)[-recent:] if recent > 0 else []
    choices = {node.id for node in base.nodes if node.kind is NodeKind.choice}
    numbers: dict[int, list[int]] = {}
    into: set[tuple[str, str]] = set()
    for number, record in enumerate(path, start=1):
        index = _arrow_of(base, record)
        if index is None:
            continue
        numbers.setdefault(index, []).append(number)
        source = base.arrows[index].src
        if source in choices:
            into.add((record.src, source))
    arrows = []
    for index, arrow in enumerate(base.arrows):
        if index in numbers:
            label = Line(f"{_numbers(numbers[index])}.")
            arrows.append(replace(arrow, lines=(label, *arrow.lines), taken=True))
        elif (arrow.src, arrow.dst) in into and arrow.kind is ArrowKind.into_choice:
            arrows.append(replace(arrow, taken=True))
        else:
            arrows.append(arrow)
    nodes = tuple(
        replace(node, detail=_now(node.detail), emphasis=True) if node.id == state else node
        for node in base.nodes
    )
    link = path[-1].link if path else None
    title = (
        f"link {link}: now {state}; the last {len(path)} transitions numbered"
        if link
        else f"now {state}"
    )
    return replace(base, name=f"live_{base.name}", title=title, nodes=nodes, arrows=tuple(arrows))


def _now(detail: str) -> str:
    return f"now here; {detail}" if detail else "now here"


def _arrow_of(picture: Picture, record: TransitionRecord) -> int | None:
    """The index of the arrow that draws the edge ``record`` took, or None (absorbed)."""
    if record.absorbed:
        return None
    for index, arrow in enumerate(picture.arrows):
        for edge in arrow.edges:
            if (
                edge.source.value == record.src
                and edge.trigger.value == record.trigger
                and edge.dest is not None
                and edge.dest.value == record.dst
            ):
                return index
    return None


def _node(definition: Definition, value: str, ended: str) -> Node:
    try:
        state = State(value)
    except ValueError:
        raise DiagramError(
            f"the trace names state {value!r}, which the lifecycle does not have; "
            "draw records made by this version of linkstate"
        ) from None
    node = state_node(definition, state)
    if not ended:
        return node
    return Node(node.id, node.kind, node.label, ended, node.tone, emphasis=True)


def _arrow(taken: list[tuple[int, TransitionRecord]]) -> Arrow:
    first = taken[0][1]
    numbers = _numbers([number for number, _ in taken])
    absorbed = " (absorbed)" if first.absorbed else ""
    lines = [Line(f"{numbers}. {first.trigger}{absorbed}")]
    if first.rule is not None:
        lines.append(Line(f"{first.rule}: {first.verdict}", minor=True))
    delays = [record.delay for _, record in taken if record.delay is not None]
    if delays:
        low, high = min(delays), max(delays)
        text = f"wait {low:.3g} s" if low == high else f"wait {low:.3g} to {high:.3g} s"
        lines.append(Line(text, minor=True))
    if first.stop_reason is not None:
        lines.append(Line(f"stop: {first.stop_reason}", minor=True))
    return Arrow(first.src, first.dst, ArrowKind.step, tuple(lines))


def _numbers(numbers: list[int]) -> str:
    if len(numbers) <= _MAX_LISTED:
        return ", ".join(map(str, numbers))
    head = ", ".join(map(str, numbers[: _MAX_LISTED - 1]))
    return f"{head}, ... {numbers[-1]} ({len(numbers)} times)"
