"""``--diagram FILE`` on ``simulate`` and ``watch``: the path taken, drawn when the run ends."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import trio
from diagram_parsing import html_text, parse_dot, parse_mermaid

import linkstate.diagrams._renderer
from linkstate.cli import main
from linkstate.cli.demo import Scene, serve_story


def test_simulate_draws_the_path_numbered_with_the_final_state_highlighted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trace.mmd"
    status = main(
        ["simulate", "whatsapp", "--close", "428", "--close", "440", "--diagram", str(out)]
    )
    capsys.readouterr()
    assert status == 1  # needs_relink: a person must act
    chart = parse_mermaid(out.read_text())
    steps = [(src, dst, lines[0]) for src, dst, lines in chart.transitions if src != "[*]"]
    assert steps == [
        ("idle", "connecting", "1. start"),
        ("connecting", "open", "2, 5. opened"),
        ("open", "reconnecting", "3. closed"),
        ("reconnecting", "connecting", "4. backoff_elapsed"),
        ("open", "needs_relink", "6. closed"),
    ]
    assert "current" in chart.classes["needs_relink"]


@pytest.mark.parametrize("suffix", [".svg", ".png", ".dot"])
def test_simulate_diagram_format_follows_the_extension(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    out = tmp_path / f"trace{suffix}"
    main(["simulate", "whatsapp", "--close", "440", "--diagram", str(out)])
    capsys.readouterr()
    data = out.read_bytes()
    if suffix == ".svg":
        texts = [t.text for t in ET.fromstring(data).iter("{http://www.w3.org/2000/svg}text")]
        assert "3. closed" in texts
    elif suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        final = parse_dot(data.decode()).node("needs_relink")
        assert final["penwidth"] == "3"
        assert "ended here: relink" in html_text(final["label"])


def test_a_bad_extension_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["simulate", "whatsapp", "--close", "440", "--diagram", str(tmp_path / "t.pdf")])
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert "argument --diagram" in captured.err and ".svg" in captured.err
    assert captured.out == "", "the run did not start"


def test_no_renderer_is_refused_before_the_run_naming_both_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(linkstate.diagrams._renderer, "default_scripts_dirs", lambda: (tmp_path,))
    with pytest.raises(SystemExit):
        main(["simulate", "whatsapp", "--close", "440", "--diagram", str(tmp_path / "t.svg")])
    err = capsys.readouterr().err
    assert "apt-get install graphviz" in err and "pip install 'linkstate[render]'" in err
    # Text formats need no renderer.
    assert main(["simulate", "whatsapp", "--diagram", str(tmp_path / "t.mmd")]) == 0
    assert (tmp_path / "t.mmd").is_file()


async def test_watch_draws_the_path_against_a_real_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "watch.dot"
    async with trio.open_nursery() as nursery:
        story = (Scene(0.0, 1001, "restart"), Scene(0.0, 1008, "policy"))
        port = await nursery.start(serve_story, story)
        argv = ["watch", "websocket", f"ws://127.0.0.1:{port}", "--format", "json"]
        argv += ["--initial", "0", "--cap", "0", "--retry-now-max", "0", "--diagram", str(out)]
        with trio.fail_after(60):  # a guard against a hang, never reached when all is well
            status = await trio.to_thread.run_sync(main, argv)
        nursery.cancel_scope.cancel()
    capsys.readouterr()
    assert status == 1
    dot = parse_dot(out.read_text())
    labels = {(e.tail, e.head): e.label.split("\n") for e in dot.edges}
    assert labels[("open", "reconnecting")][:2] == ["3. closed", "1001 goingAway: retry"]
    assert labels[("open", "failed")][:2] == ["6. closed", "1008 policyViolation: fatal"]
    assert dot.node("failed")["penwidth"] == "3"
