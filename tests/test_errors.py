"""One error root: every error linkstate raises is a LinkstateError and keeps its stdlib base."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

import linkstate
from linkstate import LinkMachine, LinkstateError, Trigger, load_channel

ROOT = Path(__file__).resolve().parent.parent
TREES = ("fsm", "channels", "diagrams")

# Raising these is how a check fails (the conformance kit, under pytest) or
# how code marks a branch that cannot happen; neither is a linkstate error.
ALLOWED_BUILTINS = frozenset({"AssertionError"})

# The conformance kit's junk must raise what hostile third-party code raises:
# these functions stand in for a broken proxy and an unprintable exception.
HOSTILE = frozenset({"_Hostile.__getattr__", "_UnprintableError.__str__"})

# Exception classes that stand in for a client library's own, so that the kit
# can hand linkstate an exception it did not define.
STAND_INS = frozenset({"CloseError", "_UnprintableError", "_HostileError"})

BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)


def raised_name(node: ast.Raise) -> str | None:
    """The bare name a ``raise`` statement raises, as in ``raise X`` or ``raise X(...)``."""
    target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return target.id if isinstance(target, ast.Name) else None


def builtin_raises(path: Path, root: Path = ROOT) -> list[str]:
    found: list[str] = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, (*scope, child.name))
                continue
            if isinstance(child, ast.Raise):
                name = raised_name(child)
                if (
                    name in BUILTIN_EXCEPTIONS
                    and name not in ALLOWED_BUILTINS
                    and ".".join(scope[-2:]) not in HOSTILE
                ):
                    found.append(f"{path.relative_to(root)}:{child.lineno}: raise {name}")
            visit(child, scope)

    visit(ast.parse(path.read_text(encoding="utf-8")), ())
    return found


def library_files() -> list[Path]:
    return sorted(path for tree in TREES for path in (ROOT / tree).rglob("*.py"))


def test_the_scan_sees_every_form_of_a_builtin_raise(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(x):\n"
        "    if x:\n"
        "        raise ValueError('bad')\n"
        "    raise LookupError\n"
        "class _Hostile:\n"
        "    def __getattr__(self, name):\n"
        "        raise RuntimeError(name)\n"
        "def g():\n"
        "    raise AssertionError('unreachable')\n",
        encoding="utf-8",
    )
    found = builtin_raises(sample, root=tmp_path)
    assert found == ["sample.py:3: raise ValueError", "sample.py:4: raise LookupError"]


def test_no_builtin_exception_is_raised_from_the_library() -> None:
    found = [line for path in library_files() for line in builtin_raises(path)]
    assert not found, (
        "raise a LinkstateError subclass (keep the builtin as a second base where "
        "callers catch it):\n" + "\n".join(found)
    )


def library_exception_classes() -> list[type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(linkstate.__path__, "linkstate."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                classes[f"{value.__module__}.{value.__qualname__}"] = value
    return [classes[name] for name in sorted(classes)]


def test_every_library_exception_derives_from_the_root() -> None:
    classes = library_exception_classes()
    assert len(classes) > 10  # the walk found the library
    strays = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in classes
        if not issubclass(cls, LinkstateError) and cls.__qualname__ not in STAND_INS
    ]
    assert not strays, f"derive these from linkstate.LinkstateError: {strays}"


def test_the_stand_ins_are_what_the_kit_exports_or_hides() -> None:
    from linkstate.testing import CloseError

    names = {cls.__qualname__ for cls in library_exception_classes()}
    assert names >= STAND_INS
    assert not issubclass(CloseError, LinkstateError)


def error(path: str) -> type[BaseException]:
    module, _, name = path.rpartition(".")
    found: type[BaseException] = getattr(importlib.import_module(module), name)
    return found


# What callers caught before the root existed, and must still be able to catch.
STDLIB_BASES = [
    ("linkstate.ArgumentError", ValueError),
    ("linkstate.ChannelError", LookupError),
    ("linkstate.DefinitionError", RuntimeError),
    ("linkstate.LifecycleError", RuntimeError),
    ("linkstate.PolicyError", ValueError),
    ("linkstate.TableError", ValueError),
    ("linkstate.runtime.FleetError", LookupError),
    ("linkstate.runtime.SupervisorError", RuntimeError),
    ("linkstate.store.StoreConflictError", RuntimeError),
    ("linkstate.store.StoreError", RuntimeError),
    ("linkstate.diagrams.DiagramError", ValueError),
    ("linkstate.diagrams.RenderError", RuntimeError),
    ("linkstate.diagrams.RendererNotFoundError", RuntimeError),
]


@pytest.mark.parametrize(("path", "base"), STDLIB_BASES, ids=[p for p, _ in STDLIB_BASES])
def test_each_error_keeps_the_stdlib_base_callers_catch(
    path: str, base: type[BaseException]
) -> None:
    cls = error(path)
    assert issubclass(cls, LinkstateError)
    assert issubclass(cls, base)


def restart_policy(tmp_path: Path) -> object:
    from linkstate.runtime import RestartPolicy

    return RestartPolicy(max_restarts=-1)


def store_keeping_nothing(tmp_path: Path) -> object:
    from linkstate.store import SQLiteStore

    return SQLiteStore(tmp_path / "x.db", keep=0)


def store_synchronous_off(tmp_path: Path) -> object:
    from linkstate.store import SQLiteStore

    return SQLiteStore(tmp_path / "x.db", synchronous="OFF")


def journal_without_batches(tmp_path: Path) -> object:
    from linkstate.store import Journal, SQLiteStore

    with SQLiteStore(tmp_path / "x.db") as store:
        return Journal(store, max_batch=0)


def journal_not_running(tmp_path: Path) -> object:
    from linkstate.store import Journal, SQLiteStore

    machine = LinkMachine(load_channel("whatsapp"))
    link = machine.new_link("a")
    record = machine.fire(link, Trigger.start, 0.0)
    with SQLiteStore(tmp_path / "x.db") as store:
        return Journal(store).submit(record, link, channel="whatsapp")


def render_gif(tmp_path: Path) -> object:
    from linkstate.diagrams import render

    return render("digraph {}", "gif")


def http_websocket(tmp_path: Path) -> object:
    from linkstate.channels.websocket import WebSocketTransport

    return WebSocketTransport("http://example.invalid/")


def transport_of_whatsapp(tmp_path: Path) -> object:
    from linkstate.runtime import transport_factory

    return transport_factory(load_channel("whatsapp"))


def supervisor_keeping_nothing(tmp_path: Path) -> object:
    from linkstate.runtime import ScriptedTransport, Supervisor

    return Supervisor(load_channel("whatsapp"), ScriptedTransport([]), keep_records=0)


# Every place that raised a bare builtin before the root existed.
FORMER_BUILTIN_RAISES = [
    (restart_policy, "PolicyError", "max_restarts=-1 must be a whole number >= 0"),
    (store_keeping_nothing, "ArgumentError", "keep=0 must be at least 1"),
    (store_synchronous_off, "ArgumentError", "must be 'FULL' or 'NORMAL'"),
    (journal_without_batches, "ArgumentError", "max_batch=0 must be at least 1"),
    (journal_not_running, "StoreError", "use `async with open_journal"),
    (render_gif, "ArgumentError", "cannot render 'gif'; choose one of"),
    (http_websocket, "ArgumentError", "must start with ws:// or wss://"),
    (transport_of_whatsapp, "ChannelError", "use a channel that ships one"),
    (supervisor_keeping_nothing, "ArgumentError", "keep_records=0 must be 1 or more"),
]


@pytest.mark.parametrize(
    ("make", "kind", "advice"),
    FORMER_BUILTIN_RAISES,
    ids=[kind + ": " + advice for _, kind, advice in FORMER_BUILTIN_RAISES],
)
def test_each_former_builtin_raise_is_a_linkstate_error_naming_the_fix(
    make: Callable[[Path], object], kind: str, advice: str, tmp_path: Path
) -> None:
    with pytest.raises(LinkstateError, match=re.escape(advice)) as caught:
        make(tmp_path)
    assert type(caught.value).__name__ == kind


async def test_a_second_run_of_a_running_supervisor_is_a_supervisor_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from linkstate.runtime import Hang, ScriptedTransport, Supervisor, SupervisorError

    supervisor = Supervisor(load_channel("whatsapp"), ScriptedTransport([Hang()]), link_id="l1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        await trio.sleep(1.0)
        with pytest.raises(SupervisorError, match=r"'l1' is already running; make one Supervisor"):
            await supervisor.run()
        supervisor.abort()
