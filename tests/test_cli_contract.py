"""The command line's contract for a new user: one line and a documented exit status, never a
traceback; a quick start for the cheap commands (the commands a run prints are pasted by
tests/test_pasted_commands.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import shlex
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from linkstate import Channel, LinkMachine, Trigger, channels, load_channel
from linkstate._channel import BUNDLED_PACKAGE, ENTRY_POINT_GROUP
from linkstate.cli import build_parser, main
from linkstate.cli.common import CommandError, channel_or_exit

SCRIPT = Path(sys.executable).with_name("linkstate")


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *argv], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["diagram", "whatsapp", "-o", "/nonexistent/w.svg"],
        ["diagram", "whatsapp", "--format", "svg", "-o", "."],
        ["diagram", "whatsapp", "-o", "/proc/w.svg"],
        ["diagram", "--all", "-o", "/proc/linkstate-diagrams"],
        ["simulate", "whatsapp", "--close", "440", "--diagram", "/nonexistent/t.svg"],
        ["simulate", "whatsapp", "--bogus"],
        ["watch", "websocket", "ws://127.0.0.1:99999"],
        ["watch", "websocket", "ws://127.0.0.1:abc/"],
        ["watch", "websocket", "ws://"],
        ["bogus"],
    ],
)
def test_a_mistake_is_one_line_and_exit_2(argv: list[str], tmp_path: Path) -> None:
    done = run(*argv, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    command = argv[0] if argv[0] != "bogus" else ""
    assert done.stderr.startswith(f"linkstate {command}".rstrip() + ": error: ")


def test_the_diagram_check_comes_before_the_run(tmp_path: Path) -> None:
    done = run("simulate", "whatsapp", "--close", "440", "--diagram", "/nonexistent/t.svg")
    assert "does not exist" in done.stderr and done.stdout == ""


def test_a_closed_pipe_is_no_traceback() -> None:
    argv = [str(SCRIPT), "simulate", "whatsapp", *["--close", "428"] * 4, "--format", "json"]
    done = subprocess.run(
        f"{shlex.join(argv)} | head -1",
        check=False,
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(done.stdout)["trigger"] == "start"
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("event", "why"),
    [("44O", "no status or code"), ("-", "no status"), ("999", "status 999 matched no row")],
)
def test_classify_warns_when_an_event_falls_to_a_default(event: str, why: str) -> None:
    done = run("classify", "whatsapp", event)
    assert done.returncode == 0
    assert json.loads(done.stdout)["verdict"] == "retry"
    assert done.stderr.startswith("linkstate classify: warning: ") and why in done.stderr


def test_classify_of_a_listed_code_warns_of_nothing_and_names_no_placeholder_link() -> None:
    done = run("classify", "whatsapp", "440")
    assert done.stderr == ""
    message = json.loads(done.stdout)["message"]
    assert "classify" not in message and "`linkstate relink LINK --db PATH`" in message


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout.startswith("linkstate 0.")


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["simulate", "whatsapp", "--close", "440"], 1),
        (["simulate", "whatsapp", "--close", "401"], 1),
        (["simulate", "whatsapp", "--close", "428"], 0),
        (["classify", "whatsapp", "440"], 0),
        (["check", "whatsapp"], 0),
    ],
)
def test_exit_status_per_outcome(
    argv: list[str], status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--format", "json"] if argv[0] == "simulate" else argv) == status


def test_status_json_is_json_lines_keyed_link(tmp_path: Path) -> None:
    for link in ("a", "b"):
        run("simulate", "whatsapp", "--close", "440", "--db", "s.db", "--link", link, cwd=tmp_path)
    done = run("status", "--db", "s.db", "--json", cwd=tmp_path)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(row["link"], row["state"]) for row in rows] == [
        ("a", "needs_relink"),
        ("b", "needs_relink"),
    ]
    assert all("link_id" not in row for row in rows)


# What a one-shot command must not load: the runtime and the store, and the
# channel registry's importlib.metadata (a bundled channel is found without it).
HEAVY = ("trio", "sqlite3", "trio_websocket", "linkstate.runtime", "linkstate.store")
REGISTRY = ("importlib.metadata", "email", "zipfile")


@pytest.mark.parametrize(
    ("argv", "heavy"),
    [
        # shutil, which argparse would load for the terminal's width: the
        # commands that draw load it anyway, through the graphviz package.
        (["classify", "whatsapp", "440"], (*HEAVY, *REGISTRY, "shutil")),
        (["check", "whatsapp"], (*HEAVY, *REGISTRY, "shutil")),
        (["diagram", "--format", "dot"], (*HEAVY, *REGISTRY)),
        (["diagram", "whatsapp", "--format", "dot"], (*HEAVY, *REGISTRY)),
        # --help imports every command module, which must leave what runs a
        # command (trio, the store, the runtime, the checker) to the command;
        # and never the test tools: trio.testing would bring pytest with it.
        (
            ["--help"],
            (*HEAVY, *REGISTRY, "linkstate.check._checker", "pytest", "_pytest", "hypothesis"),
        ),
    ],
)
def test_cheap_commands_load_no_trio_store_runtime_or_registry(
    argv: list[str], heavy: tuple[str, ...]
) -> None:
    code = (
        "import sys, io, contextlib\n"
        "from linkstate.cli import main\n"
        "sys.stdout = io.TextIOWrapper(io.BytesIO())\n"
        "try:\n"
        f"    status = main({argv!r})\n"
        "except SystemExit as exit:\n"  # --help ends in argparse's exit
        "    status = exit.code\n"
        "sys.stdout = sys.__stdout__\n"
        f"print(status, sorted(m for m in sys.modules if m.startswith({heavy!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 []"


def test_a_bundled_channel_found_directly_is_the_one_registered() -> None:
    # channel_or_exit skips the registry for a module of linkstate.channels;
    # that is only right while every such module is registered by its own
    # name, and nothing else of linkstate.channels is.
    bundled = {
        ep.name: ep.value
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.value.startswith(f"{BUNDLED_PACKAGE}.")
    }
    assert bundled == {name: f"{BUNDLED_PACKAGE}.{name}:CHANNEL" for name in bundled}
    for info in pkgutil.iter_modules(channels.__path__):
        module = importlib.import_module(f"{BUNDLED_PACKAGE}.{info.name}")
        if isinstance(getattr(module, "CHANNEL", None), Channel):
            assert info.name in bundled, f"{module.__name__}.CHANNEL is not registered"
    assert len(bundled) >= 2
    for name in bundled:
        assert channel_or_exit(name) is load_channel(name)
    with pytest.raises(CommandError, match="unknown channel 'nosuch'; installed channels: "):
        channel_or_exit("nosuch")


def test_a_plugin_that_takes_a_bundled_name_does_not_replace_the_bundled_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real distribution on sys.path, found first, registering "whatsapp".
    (tmp_path / "impostor.py").write_text(
        "from dataclasses import replace\n"
        "from linkstate.channels.websocket import CHANNEL as _WS\n"
        "CHANNEL = replace(_WS, name='whatsapp', title='Impostor')\n",
        encoding="utf-8",
    )
    info = tmp_path / "impostor-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: impostor\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nwhatsapp = impostor:CHANNEL\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    first = next(ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "whatsapp")
    assert first.value == "impostor:CHANNEL"  # the clash is real, and the impostor comes first
    assert load_channel("whatsapp").title == channel_or_exit("whatsapp").title == "WhatsApp Web"


def test_help_is_wrapped_as_argparse_would_wrap_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The command line's formatter reads the width itself rather than through
    # shutil (see linkstate.cli._columns); the text must not change.
    helps = []
    for columns in ("52", "120"):
        monkeypatch.setenv("COLUMNS", columns)
        parser = build_parser("classify").commands["classify"]
        ours = parser.format_help()
        parser.formatter_class = argparse.HelpFormatter
        assert ours == parser.format_help()
        helps.append(ours)
    assert helps[0] != helps[1]
    assert max(len(line) for line in helps[0].splitlines()) <= 52


def test_transitions_logs_nothing_per_transition(caplog: pytest.LogCaptureFixture) -> None:
    machine = LinkMachine(load_channel("whatsapp"))
    link = machine.new_link("x")
    with caplog.at_level(logging.INFO):
        machine.fire(link, Trigger.start, 0.0)
        machine.fire(link, Trigger.opened, 0.0)
        machine.close(link, 428, 1.0)
    assert link.state == "reconnecting"
    assert [r for r in caplog.records if r.name.startswith("transitions")] == []


def test_definition_is_found_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(
        "from linkstate import LIFECYCLE\nFLOW = LIFECYCLE\n", encoding="utf-8"
    )
    done = run("check", "--definition", "flow:FLOW", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok    lifecycle")
