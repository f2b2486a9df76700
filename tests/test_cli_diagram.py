"""``linkstate diagram``: formats, files, stdout, --all, and the errors users meet."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from diagram_parsing import parse_dot, parse_mermaid

import linkstate.diagrams._renderer
from linkstate.cli import main
from linkstate.cli.common import CommandError
from linkstate.cli.diagram import _to_stdout
from linkstate.diagrams import Format, diagram_names, picture_for, to_dot, to_mermaid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_svg_to_a_file_as_in_the_readme(tmp_path: Path) -> None:
    out = tmp_path / "x.svg"
    assert main(["diagram", "whatsapp", "--format", "svg", "-o", str(out)]) == 0
    root = ET.fromstring(out.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any("440" in text.split() for text in texts)


def test_text_formats_go_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", "whatsapp", "--format", "mermaid"]) == 0
    assert capsys.readouterr().out == to_mermaid(picture_for("whatsapp"))
    assert main(["diagram", "whatsapp"]) == 0
    assert capsys.readouterr().out == to_dot(picture_for("whatsapp"))


def test_no_channel_and_lifecycle_draw_the_bare_definition(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["diagram"]) == 0
    bare = capsys.readouterr().out
    assert main(["diagram", "lifecycle"]) == 0
    assert capsys.readouterr().out == bare == to_dot(picture_for(None))
    assert "<table" not in bare


def test_format_follows_the_output_extension(tmp_path: Path) -> None:
    for name, check in (
        ("d.mmd", lambda data: parse_mermaid(data.decode()).header == "stateDiagram-v2"),
        ("d.gv", lambda data: "needs_relink" in parse_dot(data.decode()).node_ids()),
        ("d.png", lambda data: data.startswith(PNG_MAGIC)),
    ):
        assert main(["diagram", "whatsapp", "-o", str(tmp_path / name)]) == 0
        assert check((tmp_path / name).read_bytes()), name


def test_png_goes_to_stdout_when_it_is_not_a_terminal() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "linkstate.cli", "diagram", "whatsapp", "--format", "png"],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(PNG_MAGIC)


def test_png_refuses_a_terminal() -> None:
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "wb", closefd=False) as terminal:
            with pytest.raises(CommandError, match="pass -o FILE"):
                _to_stdout(PNG_MAGIC, binary=True, stream=terminal)
            _to_stdout(b"digraph {}\n", binary=False, stream=terminal)
        assert os.read(master, 100) == b"digraph {}\r\n"
    finally:
        os.close(master)
        os.close(slave)


def test_all_writes_every_diagram_in_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diagram", "--all", "-o", str(tmp_path / "out")]) == 0
    written = {Path(line) for line in capsys.readouterr().out.splitlines()}
    expected = {
        tmp_path / "out" / f"{name}{fmt.extension}" for name in diagram_names() for fmt in Format
    }
    assert written == expected
    assert {"lifecycle", "whatsapp"} <= {path.stem for path in written}
    for path in expected:
        assert path.stat().st_size > 100, path


def test_all_with_one_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", "--all", "--format", "mermaid", "-o", str(tmp_path)]) == 0
    assert {p.suffix for p in tmp_path.iterdir()} == {".mmd"}
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["diagram", "nosuch"], "unknown channel 'nosuch'"),
        (["diagram", "whatsapp", "-o", "x.pdf"], "use one of the extensions"),
        (["diagram", "--all"], "pass -o DIR"),
        (["diagram", "whatsapp", "--all", "-o", "d"], "takes no CHANNEL"),
    ],
)
def test_user_errors_are_one_line_with_status_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert err.count("\n") == 1


def test_all_into_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("")
    assert main(["diagram", "--all", "-o", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_no_renderer_is_one_error_naming_both_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A machine with neither: an empty PATH and no graphviz-pure beside Python.
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(linkstate.diagrams._renderer, "default_scripts_dirs", lambda: (tmp_path,))
    assert main(["diagram", "whatsapp", "--format", "svg"]) == 2
    err = capsys.readouterr().err
    assert "apt-get install graphviz" in err and "pip install 'linkstate[render]'" in err
    assert err.count("\n") == 1
    # --all fails before writing anything; DOT and Mermaid still work.
    assert main(["diagram", "--all", "-o", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    assert main(["diagram", "whatsapp", "--format", "mermaid"]) == 0
