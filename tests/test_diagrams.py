"""Diagrams drawn from the definition: what DOT and Mermaid say, rendering, and traces."""

from __future__ import annotations

import ast
import random
import struct
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from diagram_parsing import (
    Dot,
    absorbed_by_text,
    guard_name,
    html_text,
    parse_dot,
    parse_mermaid,
)

from linkstate._channel import load_channel
from linkstate._lifecycle import LIFECYCLE, Decision, Edge, State, StopReason, Trigger
from linkstate._machine import LinkMachine, TransitionRecord
from linkstate._verdicts import Verdict
from linkstate.diagrams import (
    DiagramError,
    Format,
    RendererNotFoundError,
    RenderError,
    diagram_names,
    find_renderer,
    picture_for,
    produce,
    render,
    to_dot,
    to_mermaid,
    trace_picture,
    write_trace,
)
from linkstate.diagrams._dot import DIGEST_PREFIX, dot_digest
from linkstate.diagrams._picture import Picture, edge_text, rule_token
from linkstate.diagrams._renderer import default_scripts_dirs
from linkstate.diagrams._style import TONES

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TERMINAL = sorted(s.value for s in LIFECYCLE.terminal)
TRIGGERS = [t.value for t in Trigger]

NAMES = diagram_names()


def dot_of(name: str) -> Dot:
    return parse_dot(to_dot(picture_for(name)))


# -- DOT: structure ------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_dot_has_every_state_once_and_the_initial_arrow(name: str) -> None:
    dot = dot_of(name)
    counts = Counter(dot.node_ids())
    for state in State:
        assert counts[state.value] == 1, f"{state.value} drawn {counts[state.value]} times"
    markers = [nid for nid, attrs, _ in dot.nodes if attrs.get("shape") == "point"]
    assert len(markers) == 1
    assert [e.head for e in dot.edges if e.tail == markers[0]] == [LIFECYCLE.initial.value]


@pytest.mark.parametrize("name", NAMES)
def test_dot_draws_terminal_states_as_terminal(name: str) -> None:
    dot = dot_of(name)
    for state in State:
        attrs = dot.node(state.value)
        if state in LIFECYCLE.terminal:
            assert attrs["shape"] == "doubleoctagon"
            assert "filled" in attrs["style"] and attrs["fillcolor"].startswith("#")
            assert dot.cluster_of(state.value) == "cluster_terminal"
        else:
            assert attrs["shape"] == "box"
    fills = {dot.node(s)["fillcolor"] for s in ("needs_relink", "failed", "stopped")}
    assert len(fills) == 3, "each kind of terminal state has its own colour"


@pytest.mark.parametrize("name", NAMES)
def test_dot_accounts_for_every_definition_edge_exactly_once(name: str) -> None:
    dot = dot_of(name)
    listed = Counter(line for edge in dot.edges for line in edge.tooltip_lines)
    for attrs in dot.clusters.values():
        if "tooltip" in attrs:
            listed.update(attrs["tooltip"].split("\\n"))
    assert listed == Counter(edge_text(edge) for edge in LIFECYCLE.edges)


def drawn_from(dot: Dot, state: str) -> list[tuple[str, str]]:
    """(head, label) of every drawn edge that leaves ``state`` or its cluster."""
    cluster = dot.cluster_of(state)
    return [
        (e.head, e.label)
        for e in dot.edges
        if (e.tail == state and "ltail" not in e.attrs)
        or (cluster is not None and e.attrs.get("ltail") == cluster)
    ]


def first_line_triggers(label: str) -> list[str]:
    return label.split("\n", maxsplit=1)[0].split(", ")


@pytest.mark.parametrize("name", NAMES)
def test_dot_labels_every_path_with_its_trigger_and_guard(name: str) -> None:
    dot = dot_of(name)
    for edge in LIFECYCLE.edges:
        source = edge.source.value
        out = drawn_from(dot, source)
        if edge.dest is None:
            # Absorbed once: by the caption of the state's group, or by its own loop.
            cluster = dot.clusters[str(dot.cluster_of(source))]
            caption = html_text(cluster["label"]).split("\n")[1:]
            loops = [label for head, label in out if head == source]
            texts = [*caption, *loops]
            naming = [t for t in texts if edge.trigger.value in absorbed_by_text(t, TRIGGERS)]
            assert len(naming) == 1, edge_text(edge)
            continue
        if edge.guard is None:
            hits = [
                h
                for h, label in out
                if h == edge.dest.value and edge.trigger.value in first_line_triggers(label)
            ]
            assert len(hits) == 1, edge_text(edge)
            continue
        choices = [
            h
            for h, label in out
            if dot.node(h).get("shape") == "diamond"
            and edge.trigger.value in first_line_triggers(label)
        ]
        assert len(choices) == 1, edge_text(edge)
        branches = [
            e
            for e in dot.edges
            if e.tail == choices[0]
            and e.head == edge.dest.value
            and f"[{guard_name(edge)}]" in e.label.split("\n")
        ]
        assert len(branches) == 1, edge_text(edge)


def whatsapp_branch(dot: Dot, dest: str) -> str:
    (edge,) = [e for e in dot.edges if e.head == dest and dot.node(e.tail)["shape"] == "diamond"]
    return edge.label


def test_whatsapp_shows_440_on_the_edge_into_needs_relink() -> None:
    label = whatsapp_branch(dot_of("whatsapp"), "needs_relink")
    assert "[is_relink]" in label
    assert "440" in label.split()
    assert "440" not in whatsapp_branch(dot_of("whatsapp"), "reconnecting").split()


@pytest.mark.parametrize("name", [n for n in NAMES if n != "lifecycle"])
def test_channel_codes_sit_on_the_edges_they_take(name: str) -> None:
    table = load_channel(name).table
    dot = dot_of(name)
    for verdict in Verdict:
        dest = LIFECYCLE.resolve(State.open, Trigger.closed, Decision(verdict)).dest
        assert dest is not None
        words = whatsapp_branch(dot, dest.value).replace("\n", " ").split()
        for rule in table.rows():
            if rule.verdict is verdict:
                assert rule_token(rule) in words, f"{rule.label} not on the edge to {dest}"


def test_slack_shows_the_escalating_row_on_the_edge_into_failed() -> None:
    dot = dot_of("slack")
    failed = whatsapp_branch(dot, "failed").replace("\n", " ")
    assert "too_many_websockets x3" in failed
    reconnecting = whatsapp_branch(dot, "reconnecting").split()
    assert "too_many_websockets" in reconnecting  # still a retry the first two times
    assert "fatal from the 3rd in a row" in to_dot(picture_for("slack"))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "lifecycle"])
def test_channel_legend_lists_every_row_under_its_verdict(name: str) -> None:
    table = load_channel(name).table
    dot = parse_dot(to_dot(picture_for(name)))
    legend = to_dot(picture_for(name)).split("label=<<table", 1)[1]
    for rule in table.rows():
        assert f"<b>{rule_token(rule)}</b>" in legend
        assert rule.name in legend
    assert dot.clusters  # the legend does not replace the lifecycle


def test_generic_lifecycle_has_no_codes_but_names_the_verdicts() -> None:
    dot = dot_of("lifecycle")
    assert "relink" in whatsapp_branch(dot, "needs_relink").split("\n")
    assert "<table" not in to_dot(picture_for("lifecycle"))


def test_every_stop_reason_has_a_colour() -> None:
    assert set(TONES) == {reason.value for reason in StopReason}


@pytest.mark.parametrize("name", NAMES)
def test_dot_and_mermaid_are_deterministic(name: str) -> None:
    assert to_dot(picture_for(name)) == to_dot(picture_for(name))
    assert to_mermaid(picture_for(name)) == to_mermaid(picture_for(name))


def test_dot_digest_ignores_its_own_comment_and_follows_the_picture() -> None:
    picture = picture_for("whatsapp")
    assert f'comment="{DIGEST_PREFIX}{dot_digest(picture)}"' in to_dot(picture)
    assert dot_digest(picture) != dot_digest(picture_for("lifecycle"))


# -- Mermaid: structure --------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_mermaid_states_initial_and_terminal_classes(name: str) -> None:
    chart = parse_mermaid(to_mermaid(picture_for(name)))
    assert chart.header == "stateDiagram-v2"
    assert ("[*]", "idle", []) in chart.transitions
    mentioned = Counter(
        node for src, dst, _ in chart.transitions for node in {src, dst} if node != "[*]"
    )
    for state in State:
        assert mentioned[state.value] >= 1
        classes = chart.classes[state.value]
        if state in LIFECYCLE.terminal:
            (tone_class,) = classes
            assert "fill:" in chart.class_defs[tone_class]
        else:
            assert classes == {"live"}
    terminal_fills = {chart.class_defs[next(iter(chart.classes[s]))] for s in TERMINAL}
    assert len(terminal_fills) == 3


@pytest.mark.parametrize("name", NAMES)
def test_mermaid_draws_every_definition_edge_exactly_once(name: str) -> None:
    chart = parse_mermaid(to_mermaid(picture_for(name)))
    plain: Counter[tuple[str, str, str]] = Counter()
    into: Counter[tuple[str, str, str]] = Counter()
    branch: Counter[tuple[str, str, str]] = Counter()
    absorbed: Counter[tuple[str, str]] = Counter()
    for src, dst, lines in chart.transitions:
        if src in chart.choices:
            for line in lines:
                if line.startswith("["):
                    branch[(src, line.strip("[]"), dst)] += 1
        elif dst in chart.choices:
            into.update((src, trigger, dst) for trigger in lines[0].split(", "))
        elif src == dst and lines[0].startswith("absorbs"):
            absorbed.update((src, t) for t in absorbed_by_text(lines[0], TRIGGERS))
        elif src != "[*]":
            plain.update((src, trigger, dst) for trigger in lines[0].split(", "))
    for _, lines in chart.notes:
        members = lines[1].split(", ")
        absorbed.update((m, t) for m in members for t in absorbed_by_text(lines[2], TRIGGERS))
    expected_plain: Counter[tuple[str, str, str]] = Counter()
    expected_absorbed: Counter[tuple[str, str]] = Counter()
    for edge in LIFECYCLE.edges:
        if edge.dest is None:
            expected_absorbed[(edge.source.value, edge.trigger.value)] += 1
        elif edge.guard is None:
            expected_plain[(edge.source.value, edge.trigger.value, edge.dest.value)] += 1
        else:
            (choice,) = [c for (s, t, c) in into if (s, t) == (edge.source, edge.trigger)]
            assert into[(edge.source.value, edge.trigger.value, choice)] == 1
            assert branch[(choice, guard_name(edge), edge.dest.value)] == 1, edge_text(edge)
    assert plain == expected_plain
    assert absorbed == expected_absorbed


def test_mermaid_whatsapp_shows_440_into_needs_relink() -> None:
    chart = parse_mermaid(to_mermaid(picture_for("whatsapp")))
    (lines,) = [
        lines
        for src, dst, lines in chart.transitions
        if dst == "needs_relink" and src in chart.choices
    ]
    assert lines[0] == "[is_relink]"
    assert "440" in " ".join(lines[1:]).split()


def test_mermaid_escapes_what_would_break_a_statement() -> None:
    from linkstate.diagrams._mermaid import _escape

    assert _escape('a;b:c#d<e>"f') == "a#59;b#58;c#35;d#lt;e#gt;#quot;f"
    for line in to_mermaid(picture_for("whatsapp")).splitlines():
        if " : " in line:
            label = line.split(" : ", 1)[1].replace("<br>", "")
            assert not set(label) & set(':<>"'), line


# -- rendering ------------------------------------------------------------------


def test_svg_renders_and_parses_as_xml() -> None:
    svg = produce(picture_for("whatsapp"), Format.svg)
    builder = ET.TreeBuilder(insert_comments=True)
    root = ET.fromstring(svg, parser=ET.XMLParser(target=builder))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for state in State:
        assert state.value in texts
    assert any("440" in text.split() for text in texts)
    tooltips = [el.get("{http://www.w3.org/1999/xlink}title") or "" for el in root.iter()]
    assert any("open --closed [is_relink]--> needs_relink" in tip for tip in tooltips)
    # The digest comment travels into the SVG: the drift test relies on it.
    assert f"{DIGEST_PREFIX}{dot_digest(picture_for('whatsapp'))}" in svg.decode()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_renders_with_a_valid_header() -> None:
    width, height = png_size(produce(picture_for("lifecycle"), Format.png))
    assert width > 400 and height > 200


def test_render_rejects_an_unknown_format_and_reports_renderer_errors() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        render("digraph { a }", "pdf")
    with pytest.raises(RenderError, match="syntax error"):
        render("digraph { a -> }", "svg")


# -- finding a renderer ---------------------------------------------------------


def test_finder_uses_graphviz_pure_beside_python_when_path_has_nothing() -> None:
    renderer = find_renderer(search_path="")
    assert renderer.name == "graphviz-pure"
    assert renderer.executable.parent in default_scripts_dirs()


def test_finder_prefers_a_system_dot_on_path(tmp_path: Path) -> None:
    pure = find_renderer(search_path="").executable
    (tmp_path / "dot").symlink_to(pure)
    renderer = find_renderer(search_path=str(tmp_path))
    assert renderer.executable == tmp_path / "dot"
    # It really is used: the dot-compatible program renders through that path.
    assert render("digraph { a -> b }", "svg", renderer).lstrip().startswith(b"<?xml")


def test_finder_with_neither_names_both_fixes(tmp_path: Path) -> None:
    with pytest.raises(RendererNotFoundError) as caught:
        find_renderer(search_path=str(tmp_path), scripts_dirs=[tmp_path])
    message = str(caught.value)
    assert "apt-get install graphviz" in message
    assert "pip install 'linkstate[render]'" in message
    assert "\n" not in message


# -- traces ----------------------------------------------------------------------


def relink_trace() -> list[TransitionRecord]:
    """start, open, a 428 retry, reconnect, a 440 relink, then an absorbed start."""
    machine = LinkMachine(load_channel("whatsapp"), rng=random.Random(7))
    link = machine.new_link("acct")
    return [
        machine.fire(link, Trigger.start, 0.0),
        machine.fire(link, Trigger.opened, 1.0),
        machine.close(link, 428, 5.0),
        machine.fire(link, Trigger.backoff_elapsed, 6.0),
        machine.fire(link, Trigger.opened, 7.0),
        machine.close(link, 440, 9.0),
        machine.fire(link, Trigger.start, 10.0),
    ]


def test_trace_numbers_edges_in_order_and_highlights_the_final_state() -> None:
    dot = parse_dot(to_dot(trace_picture(relink_trace())))
    labels = {(e.tail, e.head): e.label.split("\n") for e in dot.edges}
    assert labels[("idle", "connecting")][0] == "1. start"
    assert labels[("connecting", "open")][0] == "2, 5. opened"
    assert labels[("open", "reconnecting")][:2] == ["3. closed", "428 connectionClosed: retry"]
    assert labels[("reconnecting", "connecting")][0] == "4. backoff_elapsed"
    assert labels[("open", "needs_relink")][:2] == ["6. closed", "440 connectionReplaced: relink"]
    assert labels[("needs_relink", "needs_relink")][0] == "7. start (absorbed)"
    final = dot.node("needs_relink")
    assert final["penwidth"] == "3" and "ended here: relink" in html_text(final["label"])
    assert all("penwidth" not in dot.node(s) for s in ("idle", "connecting", "open"))
    assert "failed" not in dot.node_ids(), "only visited states are drawn"


def test_trace_mermaid_marks_the_final_state() -> None:
    chart = parse_mermaid(to_mermaid(trace_picture(relink_trace())))
    assert "current" in chart.classes["needs_relink"]
    assert ("[*]", "idle", []) in chart.transitions
    assert [lines[0] for _, _, lines in chart.transitions[1:]] == [
        "1. start",
        "2, 5. opened",
        "3. closed",
        "4. backoff_elapsed",
        "6. closed",
        "7. start (absorbed)",
    ]


def test_long_loops_are_numbered_compactly() -> None:
    machine = LinkMachine(load_channel("whatsapp"), rng=random.Random(1))
    link = machine.new_link("loop")
    records = [machine.fire(link, Trigger.start, 0.0)]
    for step in range(10):
        records.append(machine.fire(link, Trigger.opened, step * 100.0))
        records.append(machine.close(link, 428, step * 100.0 + 1))
        records.append(machine.fire(link, Trigger.backoff_elapsed, step * 100.0 + 50))
    dot = parse_dot(to_dot(trace_picture(records)))
    (closed,) = [e for e in dot.edges if (e.tail, e.head) == ("open", "reconnecting")]
    assert closed.label.split("\n")[0] == "3, 6, 9, 12, 15, ... 30 (10 times). closed"


@pytest.mark.parametrize("suffix", [".dot", ".gv", ".mmd", ".mermaid", ".svg", ".png"])
def test_write_trace_follows_the_extension(tmp_path: Path, suffix: str) -> None:
    path = write_trace(relink_trace(), tmp_path / f"trace{suffix}")
    data = path.read_bytes()
    if suffix == ".png":
        png_size(data)
    elif suffix == ".svg":
        assert ET.fromstring(data).tag.endswith("svg")
    elif suffix in (".mmd", ".mermaid"):
        assert parse_mermaid(data.decode()).header == "stateDiagram-v2"
    else:
        assert parse_dot(data.decode()).node("needs_relink")["penwidth"] == "3"


def test_trace_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DiagramError, match=r"extensions \.dot"):
        write_trace(relink_trace(), tmp_path / "trace.pdf")
    with pytest.raises(DiagramError, match="empty"):
        trace_picture([])
    other = TransitionRecord(t=0.0, link="other", src="idle", dst="connecting", trigger="start")
    with pytest.raises(DiagramError, match="acct, other"):
        trace_picture([*relink_trace(), other])
    odd = TransitionRecord(t=0.0, link="x", src="idle", dst="limbo", trigger="start")
    with pytest.raises(DiagramError, match="'limbo'"):
        trace_picture([odd])


# -- pictures and layering ------------------------------------------------------


def test_picture_for_lifecycle_and_none_is_the_bare_definition() -> None:
    assert picture_for(None) == picture_for("lifecycle")
    assert isinstance(picture_for("whatsapp"), Picture)
    assert picture_for("whatsapp").legend is not None and picture_for(None).legend is None


def test_a_definition_edge_spelling_is_unique() -> None:
    texts = [edge_text(edge) for edge in LIFECYCLE.edges]
    assert len(set(texts)) == len(texts)
    sample: Edge = LIFECYCLE.edges_from(State.open, Trigger.closed)[0]
    assert edge_text(sample) == "open --closed [is_relink]--> needs_relink (stop: relink)"


@pytest.mark.parametrize("path", sorted((ROOT / "diagrams").rglob("*.py")), ids=lambda p: p.name)
def test_diagrams_import_fsm_but_no_channel(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    } | {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "channels" not in imported
