"""The import rules of DESIGN.md: fsm is channel-agnostic; channels import fsm only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules("fsm"), ids=lambda p: str(p.relative_to(ROOT)))
def test_fsm_imports_neither_channels_nor_diagrams(path: Path) -> None:
    forbidden = {"channels"} | ({"diagrams"} if "cli" not in path.parts else set())
    assert not imported_packages(path) & forbidden


@pytest.mark.parametrize("path", modules("channels"), ids=lambda p: str(p.relative_to(ROOT)))
def test_channels_import_fsm_only(path: Path) -> None:
    assert not imported_packages(path) & {"diagrams"}
