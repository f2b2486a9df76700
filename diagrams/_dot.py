"""DOT source for a :class:`~linkstate.diagrams.Picture`, built with the ``graphviz`` package.

The output is deterministic: nodes and arrows come in the picture's order and
nothing depends on the time, the machine or the renderer, so the committed
``.dot`` files can be compared byte for byte. The graph carries a ``comment``
with the SHA-256 of its own source (computed without that comment); Graphviz
copies it into the SVG, which lets the drift test tell a stale SVG too.
"""

from __future__ import annotations

import hashlib
from html import escape
from typing import Any, Final

import graphviz

from linkstate.diagrams._picture import (
    Arrow,
    ArrowKind,
    Group,
    Legend,
    LegendRow,
    Node,
    NodeKind,
    Picture,
    edge_text,
)
from linkstate.diagrams._style import EMPHASIS, FONT, LIVE, MUTED, tone

__all__ = ["DIGEST_PREFIX", "dot_digest", "to_dot"]

DIGEST_PREFIX: Final = "linkstate dot sha256 "
"""Starts the graph comment that carries the source digest into SVG output."""

# How each kind of node and arrow is drawn. Terminal nodes also get their
# tone's colours (see linkstate.diagrams._style); everything else is fixed here.
_NODE_ATTRS: Final[dict[NodeKind, dict[str, str]]] = {
    NodeKind.start: {"shape": "point", "width": "0.2", "color": "black"},
    NodeKind.state: {
        "shape": "box",
        "style": "rounded,filled",
        "fillcolor": LIVE.fill,
        "color": LIVE.stroke,
        "margin": "0.18,0.08",
    },
    NodeKind.terminal: {"shape": "doubleoctagon", "style": "filled", "margin": "0.05,0.03"},
    NodeKind.choice: {
        "shape": "diamond",
        "label": "",
        "width": "0.32",
        "height": "0.32",
        "style": "filled",
        "fillcolor": "white",
        "color": "#333333",
    },
}

_ARROW_ATTRS: Final[dict[ArrowKind, dict[str, str]]] = {
    ArrowKind.start: {},
    ArrowKind.plain: {},
    ArrowKind.into_choice: {},
    ArrowKind.branch: {},
    ArrowKind.absorb: {"style": "dashed", "color": MUTED, "fontcolor": MUTED, "arrowsize": "0.6"},
    ArrowKind.step: {"color": EMPHASIS, "penwidth": "1.8", "fontcolor": "#10336e"},
}

_GROUP_ATTRS: Final = {
    "style": "rounded,dashed",
    "labelloc": "t",
    "color": "#9a9a9a",
    "fontcolor": "#333333",
    "labeljust": "l",
    "margin": "12",
}

_GRAPH_ATTRS: Final = {
    "rankdir": "LR",
    "fontname": FONT,
    "fontsize": "11",
    "nodesep": "0.7",
    "ranksep": "0.75",
    "pad": "0.25",
    "bgcolor": "white",
}


def to_dot(picture: Picture) -> str:
    """The DOT source of ``picture``, with its digest comment."""
    return _build(picture, DIGEST_PREFIX + dot_digest(picture))


def dot_digest(picture: Picture) -> str:
    """The SHA-256 of ``picture``'s DOT source without the digest comment."""
    return hashlib.sha256(_build(picture, None).encode()).hexdigest()


def _build(picture: Picture, comment: str | None) -> str:
    graph: Any = graphviz.Digraph(
        name=picture.name,
        comment=picture.comment or None,
        graph_attr=dict(_GRAPH_ATTRS),
        node_attr={"fontname": FONT, "fontsize": "12"},
        edge_attr={"fontname": FONT, "fontsize": "10", "color": "#444444", "arrowsize": "0.8"},
    )
    if comment is not None:
        graph.attr(comment=comment)
    graph.attr(label=_caption(picture), labelloc="b", labeljust="l")
    if picture.groups:
        graph.attr(compound="true")
    grouped = {member for group in picture.groups for member in group.members}
    for node in picture.nodes:
        if node.id not in grouped:
            graph.node(node.id, **_node_attrs(node))
    for group in picture.groups:
        with graph.subgraph(name=f"cluster_{group.id}") as cluster:
            cluster.attr(**_group_attrs(group))
            for member in group.members:
                node = picture.node(member)
                cluster.node(node.id, **_node_attrs(node))
    for arrow in picture.arrows:
        attrs = _arrow_attrs(arrow, picture.node(arrow.dst))
        tail = arrow.src
        source_group = picture.group(arrow.src)
        if source_group is not None:
            # An arrow from a group leaves the cluster's border (statechart
            # superstate); Graphviz needs a member node to route from.
            tail = source_group.members[0]
            attrs["ltail"] = f"cluster_{source_group.id}"
        graph.edge(tail, arrow.dst, **attrs)
    source: str = graph.source
    return source


def _node_attrs(node: Node) -> dict[str, str]:
    attrs = dict(_NODE_ATTRS[node.kind])
    if node.kind is NodeKind.state or node.kind is NodeKind.terminal:
        attrs["label"] = _html(_bold(node.label), _small(node.detail) if node.detail else "")
    if node.kind is NodeKind.terminal:
        colours = tone(node.tone)
        attrs.update(fillcolor=colours.fill, color=colours.stroke)
    if node.emphasis:
        attrs.update(color=EMPHASIS, penwidth="3")
    return attrs


def _group_attrs(group: Group) -> dict[str, str]:
    attrs = dict(_GROUP_ATTRS)
    attrs["label"] = _html(_bold(group.label), _small(group.note) if group.note else "")
    if group.edges:
        attrs["tooltip"] = "\\n".join(edge_text(edge) for edge in group.edges)
    return attrs


def _arrow_attrs(arrow: Arrow, dst: Node) -> dict[str, str]:
    # A live link's recent path is drawn like a trace's steps, over the lifecycle.
    attrs = dict(_ARROW_ATTRS[ArrowKind.step if arrow.taken else arrow.kind])
    if dst.kind is NodeKind.terminal and arrow.kind is not ArrowKind.step and not arrow.taken:
        # Routes into a terminal state wear its colour, so they read at a glance.
        attrs["color"] = tone(dst.tone).stroke
    if arrow.lines:
        strong = arrow.kind is ArrowKind.into_choice
        attrs["label"] = _html(
            *(
                _small(line.text)
                if line.minor
                else _bold(line.text)
                if strong
                else escape(line.text)
                for line in arrow.lines
            )
        )
    if arrow.edges:
        attrs["tooltip"] = "\\n".join(edge_text(edge) for edge in arrow.edges)
    return attrs


def _caption(picture: Picture) -> str:
    if picture.legend is None:
        return _html(_bold(picture.title))
    return f"<{_legend_table(picture, picture.legend)}>"


def _legend_table(picture: Picture, legend: Legend) -> str:
    rows = [
        '<table border="0" cellborder="1" cellspacing="0" cellpadding="3" color="#bbbbbb">',
        f'<tr><td colspan="3" bgcolor="#f2f2f2" align="left">{_bold(legend.title)}</td></tr>',
    ]
    for section in legend.sections:
        dest = picture.node(section.dest)
        colours = tone(dest.tone) if dest.kind is NodeKind.terminal else LIVE
        head = (
            f'<td rowspan="{len(section.rows)}" bgcolor="{colours.fill}" valign="top">'
            f"{_bold(section.verdict.value)}<br/>"
            f'<font point-size="9">to {escape(section.dest)}</font></td>'
        )
        for index, row in enumerate(section.rows):
            cells = (
                f'<td align="left">{_bold(row.token)}</td><td align="left">{_legend_text(row)}</td>'
            )
            rows.append(f"<tr>{head if index == 0 else ''}{cells}</tr>")
    rows.append("</table>")
    return "".join(rows)


def _legend_text(row: LegendRow) -> str:
    meaning = f'<font color="{MUTED}">{escape(row.meaning)}</font>'
    return meaning if row.name == row.token else f"{escape(row.name)}  {meaning}"


def _html(*lines: str) -> str:
    return "<" + "<br/>".join(line for line in lines if line) + ">"


def _bold(text: str) -> str:
    return f"<b>{escape(text)}</b>" if text else ""


def _small(text: str) -> str:
    return f'<font point-size="9" color="{MUTED}">{escape(text)}</font>'
