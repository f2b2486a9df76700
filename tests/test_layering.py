"""The import rules of DESIGN.md: fsm is channel-agnostic; channels import fsm only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# The folders install under one import root: linkstate.channels is channels/,
# linkstate.diagrams is diagrams/, and the rest of linkstate is fsm/.
SUB_PACKAGES = {"channels", "diagrams"}


def folder_of(module: str) -> str:
    """The repository folder that ``module`` comes from, or its top-level name if not ours."""
    parts = module.split(".")
    if parts[0] != "linkstate":
        return parts[0]
    return parts[1] if len(parts) > 1 and parts[1] in SUB_PACKAGES else "fsm"


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(folder_of(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(folder_of(node.module))
            if node.module == "linkstate":  # from linkstate import channels
                found.update(alias.name for alias in node.names if alias.name in SUB_PACKAGES)
    return found


def test_folders_are_told_apart_under_the_one_import_root() -> None:
    assert [folder_of(m) for m in ("linkstate._events", "linkstate.channels._native")] == [
        "fsm",
        "channels",
    ]
    assert [folder_of(m) for m in ("linkstate.diagrams", "linkstate", "trio")] == [
        "diagrams",
        "fsm",
        "trio",
    ]


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules("fsm"), ids=lambda p: str(p.relative_to(ROOT)))
def test_fsm_imports_neither_channels_nor_diagrams(path: Path) -> None:
    forbidden = {"channels"} | ({"diagrams"} if "cli" not in path.parts else set())
    assert not imported_packages(path) & forbidden


@pytest.mark.parametrize("path", modules("channels"), ids=lambda p: str(p.relative_to(ROOT)))
def test_channels_import_fsm_only(path: Path) -> None:
    assert not imported_packages(path) & {"diagrams"}
