"""The committed diagrams in docs/diagrams/ (and the README's) match the definition.

DOT and Mermaid are regenerated in memory and compared byte for byte. SVG
output differs between renderers, so a committed SVG is checked through the
digest of the DOT source it was rendered from, which Graphviz copies into it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from linkstate.diagrams import REGENERATE, diagram_names, picture_for, to_dot, to_mermaid
from linkstate.diagrams._dot import DIGEST_PREFIX, dot_digest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "diagrams"
FIX = f"run `{REGENERATE}` and commit docs/diagrams"


def committed(name: str) -> bytes:
    path = DOCS / name
    if not path.is_file():
        pytest.fail(f"docs/diagrams/{name} is missing; {FIX}")
    return path.read_bytes()


@pytest.mark.parametrize("name", diagram_names())
def test_committed_dot_and_mermaid_match_the_definition(name: str) -> None:
    picture = picture_for(name)
    for filename, fresh in ((f"{name}.dot", to_dot(picture)), (f"{name}.mmd", to_mermaid(picture))):
        if committed(filename) != fresh.encode():
            pytest.fail(
                f"docs/diagrams/{filename} no longer matches the lifecycle definition and the "
                f"{name} table; {FIX}"
            )


@pytest.mark.parametrize("name", diagram_names())
def test_committed_svg_was_rendered_from_the_current_dot(name: str) -> None:
    svg = committed(f"{name}.svg").decode()
    if f"{DIGEST_PREFIX}{dot_digest(picture_for(name))}" not in svg:
        pytest.fail(f"docs/diagrams/{name}.svg was rendered from an older definition; {FIX}")


@pytest.mark.parametrize("name", diagram_names())
def test_committed_png_is_a_png(name: str) -> None:
    assert committed(f"{name}.png").startswith(b"\x89PNG\r\n\x1a\n")


def test_no_diagram_is_left_for_a_channel_that_is_gone() -> None:
    stale = sorted({p.stem for p in DOCS.iterdir()} - set(diagram_names()))
    assert not stale, f"docs/diagrams has diagrams for {stale}, which no longer exist; remove them"


def test_readme_embeds_the_current_lifecycle_mermaid() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = f"```mermaid\n{to_mermaid(picture_for(None))}```"
    if block not in readme:
        pytest.fail(
            "README.md's Mermaid lifecycle diagram is missing or stale; paste "
            "docs/diagrams/lifecycle.mmd into the ```mermaid block of the Concepts section "
            f"(after `{REGENERATE}`)"
        )
