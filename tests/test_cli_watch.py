"""``linkstate watch`` and ``linkstate demo`` against real WebSocket servers on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from linkstate.cli import main
from linkstate.cli.demo import Scene, serve_story

SCRIPT = Path(sys.executable).with_name("linkstate")
NO_DELAY = ["--initial", "0", "--cap", "0", "--retry-now-max", "0"]


async def run_main(*argv: str) -> int:
    """Run the CLI in a worker thread: it starts its own trio run, as from a shell."""
    with trio.fail_after(60):  # a guard against a hang, never reached when all is well
        status: int = await trio.to_thread.run_sync(main, list(argv))
    return status


async def test_watch_reconnects_after_1001_and_fails_after_1008(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with trio.open_nursery() as nursery:
        story = (Scene(0.0, 1001, "restart"), Scene(0.0, 1008, "policy"))
        port = await nursery.start(serve_story, story)
        url = f"ws://127.0.0.1:{port}"
        status = await run_main("watch", "websocket", url, "--format", "json", *NO_DELAY)
        nursery.cancel_scope.cancel()
    assert status == 1  # ended in a terminal state that needs a person
    *transitions, last = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    closes = [(t["status"], t["verdict"], t["dst"]) for t in transitions if t["verdict"]]
    assert closes == [(1001, "retry", "reconnecting"), (1008, "fatal", "failed")]
    assert (last["final"], last["connects"], last["sleeps"]) == ("failed", 2, 1)
    assert "1008" in last["message"] and "policy violation" in last["message"]


def lifecycle(out: str) -> list[tuple[object, ...]]:
    """The transitions and the end of a ``--format json`` run, without the timings."""
    lines = [json.loads(line) for line in out.splitlines()]
    keep = ("src", "dst", "trigger", "status", "verdict", "final", "connects", "sleeps", "message")
    return [tuple(line.get(key) for key in keep) for line in lines]


async def test_watch_behaves_the_same_on_asyncio_as_on_trio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: dict[str, tuple[int, list[tuple[object, ...]]]] = {}
    for backend in ("trio", "asyncio"):
        async with trio.open_nursery() as nursery:
            story = (Scene(0.0, None), Scene(0.0, 1001, "restart"), Scene(0.0, 1008, "policy"))
            port = await nursery.start(serve_story, story)
            url = f"ws://127.0.0.1:{port}"
            argv = ["watch", "websocket", url, "--format", "json", "--backend", backend]
            status = await run_main(*argv, *NO_DELAY)
            nursery.cancel_scope.cancel()
        # The operator message repeats the run's own command line: the only
        # words that may differ are the ones this loop varies.
        out = capsys.readouterr().out.replace(url, "URL").replace(backend, "BACKEND")
        seen[backend] = (status, lifecycle(out))
    assert seen["asyncio"] == seen["trio"]
    status, lines = seen["trio"]
    assert status == 1
    # Three closes (1006, 1001, 1008), then the final line, whose verdict is the last one.
    assert [line[4] for line in lines if line[4]] == ["retry", "retry", "fatal", "fatal"]


def test_watch_names_the_backends_on_a_typo(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["watch", "websocket", "ws://127.0.0.1:1/", "--backend", "curio"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--backend" in err and "'trio'" in err and "'asyncio'" in err


async def test_watch_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_story, (Scene(0.0, 1008, "policy"),))
        await run_main("watch", "websocket", f"ws://127.0.0.1:{port}/", "--format", "text")
        nursery.cancel_scope.cancel()
    out = capsys.readouterr().out
    assert "open -> failed" in out and "1008 policyViolation: fatal" in out
    assert "final state: failed after 1 connect, 0 backoff sleeps" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["watch", "whatsapp", "ws://127.0.0.1:1/"], "has no transport for live connections"),
        (["watch", "websocket", "http://127.0.0.1:1/"], "must start with ws:// or wss://"),
        (["watch", "nosuch", "ws://127.0.0.1:1/"], "unknown channel 'nosuch'"),
    ],
)
def test_watch_user_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_ctrl_c_and_sigterm_stop_the_console_script_cleanly(signum: int) -> None:
    closed_with: list[object] = []

    async def hold(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            await ws.get_message()
        except ConnectionClosed as exc:
            closed_with.append(exc.reason)

    async with trio.open_nursery() as nursery:
        server: Any = await nursery.start(serve_websocket, hold, "127.0.0.1", 0, None)
        argv = [str(SCRIPT), "watch", "websocket", f"ws://127.0.0.1:{server.port}/"]
        with trio.fail_after(60):
            process = await trio.lowlevel.open_process(
                [*argv, "--format", "json"], stdout=subprocess.PIPE
            )
            assert process.stdout is not None
            lines = _Lines(process.stdout)
            while json.loads(await lines.next())["dst"] != "open":
                pass
            process.send_signal(signum)
            rest = [json.loads(line) for line in await lines.all()]
            await process.wait()
        nursery.cancel_scope.cancel()
    assert process.returncode == 0  # stopped by the operator: ExitStatus.ok
    abort, last = rest
    assert (abort["src"], abort["trigger"], abort["dst"]) == ("open", "abort", "stopped")
    assert (last["final"], last["stop_reason"]) == ("stopped", "aborted")
    # The server saw a normal close frame from the client, not a dropped socket.
    (reason,) = closed_with
    assert getattr(reason, "code", None) == 1000


class _Lines:
    """Read a trio byte stream line by line."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def next(self) -> str:
        while b"\n" not in self.buffer:
            chunk = await self.stream.receive_some()
            if not chunk:
                raise EOFError(self.buffer)
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    async def all(self) -> list[str]:
        while chunk := await self.stream.receive_some():
            self.buffer += chunk
        return self.buffer.decode().splitlines()


def test_demo_plays_the_story_and_ends_with_the_operator_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--hold", "0", *NO_DELAY]) == 0
    out = capsys.readouterr().out
    order = [
        "server: dropping the TCP connection",
        "1006 abnormalClosure: retry",
        "server: restarting (close 1001)",
        "1001 goingAway: retry",
        "server: another client took the session (close 4440",
        "4440 sessionConflict: relink",
        "final state: needs_relink after 3 connects, 2 backoff sleeps",
        "operator message: Demo chat service closed link demo with 4440",
    ]
    positions = [out.index(needle) for needle in order]
    assert positions == sorted(positions)
    assert out.rstrip().splitlines()[-1].startswith("  linkstate relink demo --db ")


def test_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--hold", "0", *NO_DELAY, "--format", "json"]) == 0
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (last["final"], last["status"], last["connects"], last["sleeps"]) == (
        "needs_relink",
        4440,
        3,
        2,
    )
