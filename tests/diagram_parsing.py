"""Small readers for the DOT and Mermaid that diagrams/ writes, for structural tests.

They read only the shapes our writers produce (one statement per line, as
the ``graphviz`` package and linkstate.diagrams emit them), which is enough
to check what a diagram says without a full DOT or Mermaid grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from linkstate._lifecycle import Edge

_ID = r'(?:"(?:[^"\\]|\\.)*"|[\w.]+)'
_EDGE = re.compile(rf"^\s*({_ID}) -> ({_ID})(?: \[(.*)\])?$")
_NODE = re.compile(rf"^\s*({_ID})(?: \[(.*)\])?$")
_SUBGRAPH = re.compile(rf"^\s*subgraph ({_ID}) \{{$")
_KEYWORDS = frozenset({"graph", "node", "edge", "digraph", "subgraph", "}"})


def _unquote(text: str) -> str:
    return text[1:-1] if text.startswith('"') else text


def parse_attrs(text: str) -> dict[str, str]:
    """``a=b c="d e" label=<<b>x</b>>`` into a dict; HTML values keep their brackets."""
    attrs: dict[str, str] = {}
    i = 0
    while i < len(text):
        if text[i] == " ":
            i += 1
            continue
        eq = text.index("=", i)
        key = text[i:eq]
        j = eq + 1
        if text[j] == '"':
            k = j + 1
            while text[k] != '"':
                k += 2 if text[k] == "\\" else 1
            attrs[key] = text[j + 1 : k]
            i = k + 1
        elif text[j] == "<":
            depth, k = 0, j
            while True:
                depth += {"<": 1, ">": -1}.get(text[k], 0)
                k += 1
                if depth == 0:
                    break
            attrs[key] = text[j:k]
            i = k
        else:
            k = text.find(" ", j)
            k = len(text) if k == -1 else k
            attrs[key] = text[j:k]
            i = k
    return attrs


def html_text(label: str) -> str:
    """The visible text of an HTML-like label, lines joined with newlines."""
    text = re.sub(r"<br/>", "\n", label.removeprefix("<").removesuffix(">"))
    text = re.sub(r"<[^>]+>", "", text)
    return (
        text.replace("&#x27;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )


@dataclass
class DotEdge:
    """One edge statement."""

    tail: str
    head: str
    attrs: dict[str, str]

    @property
    def label(self) -> str:
        return html_text(self.attrs.get("label", ""))

    @property
    def tooltip_lines(self) -> list[str]:
        tooltip = self.attrs.get("tooltip", "")
        return tooltip.split("\\n") if tooltip else []


@dataclass
class Dot:
    """Nodes (with the cluster they sit in), edges and cluster attributes of a DOT source."""

    nodes: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)
    edges: list[DotEdge] = field(default_factory=list)
    clusters: dict[str, dict[str, str]] = field(default_factory=dict)

    def node(self, node_id: str) -> dict[str, str]:
        return next(attrs for nid, attrs, _ in self.nodes if nid == node_id)

    def cluster_of(self, node_id: str) -> str | None:
        return next(cluster for nid, _, cluster in self.nodes if nid == node_id)

    def node_ids(self) -> list[str]:
        return [nid for nid, _, _ in self.nodes]


def parse_dot(source: str) -> Dot:
    """Read the statements our DOT writer emits."""
    dot = Dot()
    cluster: str | None = None
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("//") or stripped.startswith("digraph"):
            continue
        if match := _SUBGRAPH.match(line):
            cluster = _unquote(match.group(1))
            dot.clusters[cluster] = {}
            continue
        if stripped == "}":
            cluster = None
            continue
        if match := _EDGE.match(line):
            tail, head = _unquote(match.group(1)), _unquote(match.group(2))
            dot.edges.append(DotEdge(tail, head, parse_attrs(match.group(3) or "")))
            continue
        if "=" in stripped.split(" ")[0] or stripped.split(" ")[0] in _KEYWORDS:
            # A graph or cluster attribute statement.
            if cluster is not None and stripped.split(" ")[0] not in _KEYWORDS:
                dot.clusters[cluster].update(parse_attrs(stripped))
            continue
        if match := _NODE.match(line):
            node_id = _unquote(match.group(1))
            dot.nodes.append((node_id, parse_attrs(match.group(2) or ""), cluster))
    return dot


_TRANSITION = re.compile(r"^\s*(\[\*\]|\w+) --> (\w+)(?: : (.*))?$")
_ENTITY = re.compile(r"#(\d+|lt|gt|quot);")
_NAMED = {"lt": "<", "gt": ">", "quot": '"'}


def mermaid_text(label: str) -> list[str]:
    """A Mermaid label's lines, with entity codes decoded."""

    def decode(match: re.Match[str]) -> str:
        code = match.group(1)
        return _NAMED[code] if code in _NAMED else chr(int(code))

    return [_ENTITY.sub(decode, line) for line in label.split("<br>")] if label else []


@dataclass
class Mermaid:
    """Transitions, choices, notes and classes of a Mermaid state diagram."""

    header: str
    transitions: list[tuple[str, str, list[str]]]
    choices: set[str]
    notes: list[tuple[str, list[str]]]
    classes: dict[str, set[str]]
    class_defs: dict[str, str]


def parse_mermaid(text: str) -> Mermaid:
    """Read the statements our Mermaid writer emits."""
    lines = [line for line in text.splitlines() if not line.startswith("%%")]
    result = Mermaid(lines[0], [], set(), [], {}, {})
    for line in lines[1:]:
        stripped = line.strip()
        if match := _TRANSITION.match(line):
            result.transitions.append(
                (match.group(1), match.group(2), mermaid_text(match.group(3) or ""))
            )
        elif stripped.startswith("state ") and stripped.endswith("<<choice>>"):
            result.choices.add(stripped.split()[1])
        elif stripped.startswith("note right of "):
            target, _, label = stripped.removeprefix("note right of ").partition(" : ")
            result.notes.append((target, mermaid_text(label)))
        elif stripped.startswith("classDef "):
            _, name, style = stripped.split(" ", 2)
            result.class_defs[name] = style
        elif stripped.startswith("class "):
            _, ids, name = stripped.split(" ")
            for node_id in ids.split(","):
                result.classes.setdefault(node_id, set()).add(name)
    return result


def absorbed_by_text(text: str, triggers: list[str]) -> set[str]:
    """The triggers an ``absorbs ...`` caption names (by list or by exception)."""
    if text.startswith("absorbs every trigger but "):
        kept = set(text.removeprefix("absorbs every trigger but ").split(", "))
        return {t for t in triggers if t not in kept}
    if text == "absorbs every trigger":
        return set(triggers)
    return set(text.removeprefix("absorbs ").split(", "))


def guard_name(edge: Edge) -> str:
    """The guard's name; the edge must be guarded."""
    assert edge.guard_name is not None
    return edge.guard_name
