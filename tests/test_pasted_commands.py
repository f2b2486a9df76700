"""Every command that ``demo``, ``simulate --db`` or ``watch --db`` prints works when pasted.

A user copies a command out of an operator message (or out of the demo's
"try next" list) into a shell, in the directory the run was started from.
So each run here is the console script in a subprocess, ``watch`` against a
real WebSocket server on 127.0.0.1; every ``linkstate ...`` command found in
what it printed is split as a shell splits it (shlex) and run the same way,
and must exit 0 with nothing on stderr. Then the stored link must show the
effect: the relink or reset took it back to ``idle``. The database file and
the link id hold spaces, so a command that is not quoted as a shell needs
fails here.

Without ``--db`` nothing outlives the run; the message names the same
command line again, and pasting it must run the link again to the same end.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import pytest
import trio

from linkstate.cli.demo import Scene, serve_story

ROOT: Final = Path(__file__).resolve().parent.parent
SCRIPT: Final = Path(sys.executable).with_name("linkstate")
DB: Final = "my links.db"
LINK: Final = "acct 1"
NO_DELAY: Final = ("--initial", "0", "--cap", "0", "--retry-now-max", "0")
URL: Final = "URL"  # stands for the loopback server's address in the argv below


async def linkstate(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run the console script as a shell would, in ``cwd``."""
    with trio.fail_after(120):  # a guard against a hang, never reached when all is well
        return await trio.run_process(
            [str(SCRIPT), *argv], cwd=cwd, capture_stdout=True, capture_stderr=True, check=False
        )


def printed_commands(output: str) -> list[str]:
    """Every ``linkstate`` command a run printed, in order, each once.

    Commands appear in backticks inside operator messages (the ``message`` of
    a JSON line, or the text line ``operator message: ...``) and, for the
    demo, as the indented lines under "try next".
    """
    found: list[str] = []
    for line in output.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        text = str(value.get("message") or "") if isinstance(value, dict) else line
        found.extend(part for part in text.split("`")[1::2] if part.startswith("linkstate "))
        if line.startswith("  linkstate "):
            found.append(line.strip())
    return list(dict.fromkeys(found))


async def paste(command: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    program, *argv = shlex.split(command)
    assert program == "linkstate", command
    return await linkstate(argv, cwd)


async def stored_state(cwd: Path, link: str) -> str:
    done = await linkstate(["status", "--db", DB, "--json"], cwd)
    assert done.returncode == 0, done.stderr
    rows = {row["link"]: row for row in map(json.loads, done.stdout.decode().splitlines())}
    state: str = rows[link]["state"]
    return state


# (name, argv, the story the loopback server plays for watch, final state, exit status)
RUNS: Final = [
    ("simulate relink", ["simulate", "whatsapp", "--close", "428", "--close", "440"],
     None, "needs_relink", 1),
    ("simulate fatal", ["simulate", "websocket", "--close", "1008"], None, "failed", 1),
    ("simulate budget spent",
     ["simulate", "whatsapp", "--close", "428", "--close", "428", "--max-attempts", "1"],
     None, "failed", 1),
    ("watch fatal", ["watch", "websocket", URL, *NO_DELAY],
     (Scene(0.0, 1001, "restart"), Scene(0.0, 1008, "policy")), "failed", 1),
    ("watch relink", ["watch", "websocket", URL], (Scene(0.0, 3000, "unauthorized"),),
     "needs_relink", 1),
]  # fmt: skip


@asynccontextmanager
async def loopback(
    story: tuple[Scene, ...] | None,
) -> AsyncIterator[Callable[[list[str]], list[str]]]:
    """Serve ``story`` on 127.0.0.1 (if any); yields what puts its address into an argv."""
    async with trio.open_nursery() as nursery:
        url = URL
        if story is not None:
            url = f"ws://127.0.0.1:{await nursery.start(serve_story, story)}/"
        yield lambda argv: [url if arg == URL else arg for arg in argv]
        nursery.cancel_scope.cancel()


# Text output carries the message on its "operator message:" line; once for
# each command is enough.
TEXT_TOO: Final = ("simulate fatal", "watch relink")


@pytest.mark.parametrize(
    ("argv", "story", "final", "status", "fmt"),
    [
        pytest.param(*run[1:], fmt, id=f"{run[0]}, {fmt}")
        for run in RUNS
        for fmt in ("json", "text")
        if fmt == "json" or run[0] in TEXT_TOO
    ],
)
async def test_every_command_a_run_with_db_prints_works_when_pasted(
    tmp_path: Path,
    argv: list[str],
    story: tuple[Scene, ...] | None,
    final: str,
    status: int,
    fmt: str,
) -> None:
    async with loopback(story) as address:
        done = await linkstate(
            address([*argv, "--db", DB, "--link", LINK, "--format", fmt]), tmp_path
        )
    assert done.returncode == status, done.stderr
    commands = printed_commands(done.stdout.decode())
    verb = "relink" if final == "needs_relink" else "reset"
    assert commands == [f"linkstate {verb} {shlex.quote(LINK)} --db {shlex.quote(DB)}"]
    assert await stored_state(tmp_path, LINK) == final
    pasted = await paste(commands[0], tmp_path)
    assert (pasted.returncode, pasted.stderr) == (0, b"")
    assert f"{final} -> idle" in pasted.stdout.decode()
    assert await stored_state(tmp_path, LINK) == "idle"


def make_demo() -> list[str]:
    """The arguments that ``make demo`` gives the demo's ``linkstate``."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^demo:.*\n\t(?P<command>.+)$", makefile, re.MULTILINE)
    assert recipe is not None, "the Makefile has no demo target"
    program, *argv = shlex.split(recipe["command"])
    assert program == "$(DEMO_VENV)/bin/linkstate"
    return argv


def documented_status(command: str) -> int:
    """The exit status docs/cli.md's contract table gives ``command``'s expected end."""
    cli = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", cli, re.MULTILINE)
    (status,) = [int(code) for code, when in rows if f"`{command}` when its story ends" in when]
    return status


async def test_every_command_the_demo_prints_works_when_pasted(tmp_path: Path) -> None:
    # The demo as `make demo` runs it, only quicker: its scripted end (a
    # session conflict, needs_relink) must exit as documented, 0, or `make
    # demo` would fail on a fresh clone.
    argv = [*make_demo(), "--hold", "0", "--format", "text", "--db", DB]
    assert argv[0] == "demo"
    done = await linkstate(argv, tmp_path)
    assert done.returncode == documented_status("linkstate demo") == 0, done.stderr
    out = done.stdout.decode()
    assert "4440 sessionConflict: relink" in out
    commands = printed_commands(out)
    # The plain websocket link's relink, then the story's, which is also the
    # last of the three to try next.
    assert [command.split()[1:3] for command in commands[:2]] == [
        ["relink", "demo-websocket"],
        ["relink", "demo"],
    ]
    assert [command.split()[1] for command in commands[2:]] == ["status", "history"]
    tried = [line.strip() for line in out.split("try next", 1)[1].splitlines()[1:]]
    assert tried == [*commands[2:], commands[1]]
    results = {}
    for command in [*tried, commands[0]]:
        pasted = await paste(command, tmp_path)
        assert (pasted.returncode, pasted.stderr) == (0, b""), command
        results[" ".join(command.split()[1:3])] = pasted.stdout.decode()
    assert "needs_relink" in results["status --db"]
    assert "open -> needs_relink" in results["history demo"]
    assert "needs_relink -> idle" in results["relink demo"]
    assert "needs_relink -> idle" in results["relink demo-websocket"]
    assert await stored_state(tmp_path, "demo-websocket") == "idle"
    assert await stored_state(tmp_path, "demo") == "idle"


@pytest.mark.parametrize(
    ("argv", "story", "final", "status"),
    [pytest.param(*run[1:], id=run[0]) for run in RUNS if run[0] in ("simulate relink",)]
    + [
        pytest.param(
            ["watch", "websocket", URL],
            (Scene(0.0, 1008, "policy"), Scene(0.0, 1008, "policy")),
            "failed",
            1,
            id="watch fatal",
        )
    ],
)
async def test_without_db_the_command_printed_runs_the_link_again(
    tmp_path: Path,
    argv: list[str],
    story: tuple[Scene, ...] | None,
    final: str,
    status: int,
) -> None:
    async with loopback(story) as address:
        run = address([*argv, "--link", LINK, "--format", "json"])
        done = await linkstate(run, tmp_path)
        (command,) = printed_commands(done.stdout.decode())
        assert command == shlex.join(["linkstate", *run])
        again = await paste(command, tmp_path)
    for result in (done, again):
        assert result.returncode == status, result.stderr
        assert json.loads(result.stdout.decode().splitlines()[-1])["final"] == final
    assert not (tmp_path / DB).exists()
