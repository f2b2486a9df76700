"""Mermaid ``stateDiagram-v2`` text for a :class:`~linkstate.diagrams.Picture`.

GitHub renders this inline in Markdown. Mermaid's layout handles
superstates poorly (arrows from a composite state are routed badly), so a
group's shared arrow is drawn once per member state here, and a group's
caption becomes one note. Everything else follows the picture one to one.
Lines come in the picture's order, which is also what Mermaid's layout uses
to rank the states, so the flow reads top to bottom from ``[*]``.

The output is deterministic, for the drift test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from linkstate.diagrams._picture import Arrow, ArrowKind, Group, Node, NodeKind, Picture
from linkstate.diagrams._style import EMPHASIS, LIVE, Tone, tone

__all__ = ["to_mermaid"]

_INDENT: Final = "    "

# Characters that would end a Mermaid statement or open markup inside a
# label, and the entity codes Mermaid shows them by. Replaced in one pass, so
# an entity's own "#" and ";" are never escaped again.
_ENTITIES: Final = str.maketrans(
    {"#": "#35;", ";": "#59;", ":": "#58;", "<": "#lt;", ">": "#gt;", '"': "#quot;"}
)

_LIVE_CLASS: Final = "live"
_EMPHASIS_CLASS: Final = "current"


def to_mermaid(picture: Picture) -> str:
    """The Mermaid text of ``picture``, ending with a newline."""
    lines = [
        *(f"%% {line}" for line in picture.comment.splitlines()),
        "stateDiagram-v2",
        f"{_INDENT}direction TB",
        *(_INDENT + line for line in _class_defs(picture)),
        *(_INDENT + line for line in _body(picture)),
        *(_INDENT + line for line in _classes(picture)),
    ]
    return "\n".join(lines) + "\n"


def _class_defs(picture: Picture) -> Iterator[str]:
    yield f"classDef {_LIVE_CLASS} {_style(LIVE)}"
    for tone_name in dict.fromkeys(n.tone for n in picture.nodes if n.kind is NodeKind.terminal):
        yield f"classDef {_tone_class(tone_name)} {_style(tone(tone_name))}"
    if any(node.emphasis for node in picture.nodes):
        yield f"classDef {_EMPHASIS_CLASS} stroke:{EMPHASIS},stroke-width:4px"


def _body(picture: Picture) -> Iterator[str]:
    declared: set[str] = set()
    for arrow in picture.arrows:
        for node_id in (arrow.src, arrow.dst):
            if node_id not in declared and _is_choice(picture, node_id):
                # A choice must be declared before its first use.
                declared.add(node_id)
                yield f"state {node_id} <<choice>>"
        yield from _transitions(picture, arrow)
    for group in picture.groups:
        if group.note:
            yield _group_note(group)


def _transitions(picture: Picture, arrow: Arrow) -> Iterator[str]:
    label = "<br>".join(_escape(line.text) for line in arrow.lines)
    suffix = f" : {label}" if label else ""
    if arrow.kind is ArrowKind.start:
        yield f"[*] --> {arrow.dst}{suffix}"
    elif picture.group(arrow.src) is not None:
        for source in dict.fromkeys(edge.source.value for edge in arrow.edges):
            yield f"{source} --> {arrow.dst}{suffix}"
    else:
        yield f"{arrow.src} --> {arrow.dst}{suffix}"


def _group_note(group: Group) -> str:
    # One note for the whole group, on its last member: the bottom of the flow.
    text = "<br>".join(_escape(t) for t in (group.label, ", ".join(group.members), group.note))
    return f"note right of {group.members[-1]} : {text}"


def _classes(picture: Picture) -> Iterator[str]:
    live = [n.id for n in picture.nodes if n.kind is NodeKind.state]
    if live:
        yield f"class {','.join(live)} {_LIVE_CLASS}"
    for node in picture.nodes:
        if node.kind is NodeKind.terminal:
            yield f"class {node.id} {_tone_class(node.tone)}"
    emphasised = [n.id for n in picture.nodes if n.emphasis]
    if emphasised:
        yield f"class {','.join(emphasised)} {_EMPHASIS_CLASS}"


def _is_choice(picture: Picture, node_id: str) -> bool:
    node: Node | None = None if picture.group(node_id) else picture.node(node_id)
    return node is not None and node.kind is NodeKind.choice


def _tone_class(tone_name: str) -> str:
    return f"stop_{tone_name}" if tone_name else "stop"


def _style(colours: Tone) -> str:
    return f"fill:{colours.fill},stroke:{colours.stroke},stroke-width:2px,color:#000"


def _escape(text: str) -> str:
    return text.translate(_ENTITIES)
