"""Trace diagrams: the path one link actually took, drawn from its transition records.

Only the states the link visited are drawn. Each arrow is one kind of step
(the same source, destination, trigger and close rule) and is numbered with
the positions it was taken at, so a retry loop is one arrow numbered
``3, 6, 9`` rather than a thicket. The state the trace ended in is
highlighted. The drawing reuses the lifecycle's node styles, so terminal
states look the same as in the lifecycle diagrams.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

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
    state_node,
)
from linkstate.diagrams._renderer import Renderer

__all__ = ["trace_picture", "write_trace"]

# An arrow taken more often than this lists its first positions and its last.
_MAX_LISTED: Final = 6

_StepKey = tuple[str, str, str, str | None, str | None, str | None]


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
