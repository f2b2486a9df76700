"""The import rules between linkstate's layers, read from the source of every module.

The folders install under one import root: ``fsm/`` is ``linkstate`` (the
synchronous core at its top level, with ``runtime``, ``store``, ``check``,
``testing`` and ``cli`` below it), ``channels/`` is ``linkstate.channels`` and
``diagrams/`` is ``linkstate.diagrams``. The rules:

1. The core (``fsm/*.py``) imports no other layer: neither the channels nor
   the diagrams, nor the runtime, the store or the command line. It is what
   they all build on, and it runs without any of them. Of the third-party
   packages it imports only transitions: no trio, no I/O library.
2. A channel imports the core and other channels only, as a third-party
   plugin would: the framework never needs to know a channel by name.
3. Nothing but the command line (``fsm/cli/``) imports the diagrams, so that
   drawing stays an optional extra of the tool, not of the library.
4. Only the adapters (``fsm/adapters/``, one module per client library, each
   behind its extra) import a client library; they build on the core, the
   runtime and each other, and nothing else in linkstate imports them.

An import under ``if TYPE_CHECKING:`` never runs; it only names a type for
an annotation, so these rules do not apply to it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Final

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The sub-packages of linkstate, by the layer each one is; anything else under
# linkstate (its top level, its private modules) is the core.
SUB_PACKAGES: Final = (
    "runtime",
    "store",
    "check",
    "testing",
    "cli",
    "channels",
    "diagrams",
    "adapters",
)
CORE_THIRD_PARTY: Final = frozenset({"transitions"})


def layer_of(module: str) -> str | None:
    """The layer of an imported module: ``core``, a sub-package, or None outside linkstate."""
    parts = module.split(".")
    if parts[0] != "linkstate":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in SUB_PACKAGES else "core"


def imported_modules(source: str) -> set[str]:
    """Every module ``source`` imports at run time (``from linkstate import runtime`` included)."""
    found: set[str] = set()
    for node in _run_time_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from linkstate import runtime` imports the sub-package runtime.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _run_time_nodes(tree: ast.AST) -> list[ast.AST]:
    """The nodes of ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                pending.extend(child.orelse)
            else:
                pending.append(child)
    return nodes


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(encoding="utf-8"))


def modules(folder: str, pattern: str = "**/*.py") -> list[Path]:
    return sorted((ROOT / folder).glob(pattern))


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


CORE = modules("fsm", "*.py")
# Every module but those of the command line and of the diagrams themselves.
NOT_DRAWING = [
    path
    for path in (*modules("fsm"), *modules("channels"))
    if not path.is_relative_to(ROOT / "fsm" / "cli")
]


def test_the_import_reader_sees_every_form_and_skips_type_checking_blocks() -> None:
    source = (
        "import json\n"
        "import linkstate.diagrams\n"
        "from linkstate import runtime, _machine\n"
        "from linkstate.store import SQLiteStore\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from linkstate.cli import main\n"
        "else:\n"
        "    import trio\n"
        "def later() -> None:\n"
        "    from linkstate.channels import websocket\n"
    )
    layers = {layer_of(module) for module in imported_modules(source)}
    assert layers == {None, "core", "diagrams", "runtime", "store", "channels"}
    assert "trio" in imported_modules(source)
    assert "linkstate.cli" not in imported_modules(source)


@pytest.mark.parametrize("path", CORE, ids=relative)
def test_the_core_imports_no_other_layer(path: Path) -> None:
    imported = imports_of(path)
    others = sorted(m for m in imported if layer_of(m) not in (None, "core"))
    assert not others, f"{relative(path)} is core but imports {others}"
    third_party = sorted(
        m
        for m in imported
        if layer_of(m) is None
        and m.split(".")[0] not in sys.stdlib_module_names
        and m.split(".")[0] not in CORE_THIRD_PARTY
    )
    assert not third_party, f"{relative(path)} is core but imports {third_party}"


@pytest.mark.parametrize("path", modules("channels"), ids=relative)
def test_channels_import_the_core_and_channels_only(path: Path) -> None:
    others = sorted(m for m in imports_of(path) if layer_of(m) not in (None, "core", "channels"))
    assert not others, f"{relative(path)} is a channel but imports {others}"


@pytest.mark.parametrize("path", NOT_DRAWING, ids=relative)
def test_only_the_command_line_imports_the_diagrams(path: Path) -> None:
    drawing = sorted(m for m in imports_of(path) if layer_of(m) == "diagrams")
    assert not drawing, f"{relative(path)} imports {drawing}; only fsm/cli/ may"


# The runtime, the store and the channels are written against anyio, so that
# an asyncio program can use them: none of them imports trio (or a trio-only
# library) when it loads. The journal asks trio for its clock only when it
# already runs under trio, inside a function.
BACKEND_NEUTRAL: Final = [
    *modules("fsm/runtime"),
    *modules("fsm/store"),
    *modules("channels"),
    *modules("fsm/adapters"),
]
TRIO_ONLY: Final = frozenset({"trio", "trio_websocket", "pytest_trio"})


def top_level_imports(path: Path) -> set[str]:
    """The modules ``path`` imports when it loads (its module body, outside functions)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", BACKEND_NEUTRAL, ids=relative)
def test_the_runtime_store_and_channels_load_without_trio(path: Path) -> None:
    trio_only = sorted(m for m in top_level_imports(path) if m.split(".")[0] in TRIO_ONLY)
    assert not trio_only, f"{relative(path)} imports {trio_only}; use anyio instead"


def test_top_level_imports_sees_a_trio_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import trio\nfrom trio_websocket import x\n", encoding="utf-8")
    assert top_level_imports(module) == {"trio", "trio_websocket"}


def test_the_core_loads_without_anyio_and_an_asyncio_program_without_trio() -> None:
    import subprocess

    probe = (
        "import sys, linkstate\n"
        "assert 'anyio' not in sys.modules, 'the core loaded anyio'\n"
        "import linkstate.runtime, linkstate.store, linkstate.channels.websocket\n"
        "assert 'trio' not in sys.modules, 'the runtime loaded trio'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


# The client libraries the adapters supervise (their import names), and
# aiohttp, which two of them bring.
CLIENT_LIBRARIES: Final = frozenset(
    {"discord", "slack_sdk", "telegram", "aiogram", "nio", "neonize", "aiohttp"}
)
ADAPTERS: Final = modules("fsm/adapters")
NOT_ADAPTERS: Final = [
    path
    for path in (*modules("fsm"), *modules("channels"), *modules("diagrams"))
    if not path.is_relative_to(ROOT / "fsm" / "adapters")
]


@pytest.mark.parametrize("path", NOT_ADAPTERS, ids=relative)
def test_only_the_adapters_import_a_client_library_or_an_adapter(path: Path) -> None:
    imported = imports_of(path)
    libraries = sorted(m for m in imported if m.split(".")[0] in CLIENT_LIBRARIES)
    adapters = sorted(m for m in imported if layer_of(m) == "adapters")
    assert not libraries and not adapters, (
        f"{relative(path)} imports {libraries + adapters}; only fsm/adapters/ may, behind its extra"
    )


@pytest.mark.parametrize("path", ADAPTERS, ids=relative)
def test_adapters_build_on_the_core_and_the_runtime_only(path: Path) -> None:
    allowed = (None, "core", "runtime", "adapters")
    others = sorted(m for m in imports_of(path) if layer_of(m) not in allowed)
    assert not others, f"{relative(path)} is an adapter but imports {others}"
