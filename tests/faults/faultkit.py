"""The fault suite's tools: a loopback WebSocket peer, real ``linkstate watch`` processes, a tally.

Everything is real: the peer is a ``trio_websocket`` server on 127.0.0.1 in a
thread of the test process, each ``watch`` is its own Python process started
as a shell would start it, signals are real signals, and the state database
is a real file that the test reads with the real store afterwards.

What counts as lost. A ``watch`` prints a transition only once it is
committed (issue 13, item 2), so every transition a process printed must be
in the store's history, in order, whatever happened to the process after
it; and a process stopped by SIGINT or SIGTERM must leave its link
``stopped``. :meth:`Tally.lost` counts every departure; the tests assert zero.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from linkstate.store._sqlite import SQLiteStore

LONG: Final = bool(os.environ.get("LINKSTATE_LONG"))
"""``LINKSTATE_LONG=1``: the opt-in long run (at least 50 trials of each random fault)."""

# Generous bounds for a loaded 2-core machine; reached only when something hangs.
PROCESS_TIMEOUT: Final = 60.0

# Quick reconnects, so that a trial takes a second, not the channel's minutes.
QUICK: Final = ("--initial", "0.05", "--cap", "0.1", "--retry-now-max", "0.05")


@dataclass
class _Connection:
    ws: WebSocketConnection
    number: int
    close_with: tuple[int, str] | None = None
    closing: trio.Event = field(default_factory=trio.Event)


class Peer:
    """A WebSocket server on 127.0.0.1, run in its own thread; the tests steer it.

    Each connection is held open (answering pings) until the test closes it,
    or, with :attr:`script`, the n-th connection is closed after its delay
    with its code. With :attr:`conflict` a new connection closes every older
    one with 3000, as a platform with one session per account does (WhatsApp's
    440, Telegram's 409).
    """

    def __init__(self) -> None:
        self.conflict = False
        self.script: list[tuple[float, int]] = []
        self.accepted = 0
        self.closed_by_peer: list[int] = []
        self._open: list[_Connection] = []
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    @property
    def url(self) -> str:
        """The ``ws://`` URL of the peer."""
        return f"ws://127.0.0.1:{self.port}/"

    def __enter__(self) -> Peer:
        self._thread.start()
        if not self._ready.wait(PROCESS_TIMEOUT):
            raise AssertionError("the loopback peer did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        stop = self._stop
        if stop is not None:
            self._call(stop.set)
        self._thread.join(PROCESS_TIMEOUT)

    def close_all(self, code: int, reason: str = "") -> None:
        """Close every open connection with ``code`` (a close frame from the peer)."""
        self._call(lambda: [self._close(c, code, reason) for c in tuple(self._open)])

    def open_count(self) -> int:
        """Connections open now."""
        return len(self._open)

    def _call(self, fn: Callable[[], object]) -> None:
        assert self._token is not None
        trio.from_thread.run_sync(fn, trio_token=self._token)

    @staticmethod
    def _close(connection: _Connection, code: int, reason: str) -> None:
        if connection.close_with is None:
            connection.close_with = (code, reason)
            connection.closing.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            server: Any = await nursery.start(serve_websocket, self._handle, "127.0.0.1", 0, None)
            self.port = server.port
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    async def _handle(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        self.accepted += 1
        connection = _Connection(ws, self.accepted)
        if self.conflict:
            for older in self._open:
                self._close(older, 3000, "session replaced by a newer connection")
        self._open.append(connection)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._drain, ws, nursery.cancel_scope)
                if connection.number <= len(self.script):
                    delay, code = self.script[connection.number - 1]
                    nursery.start_soon(self._close_later, connection, delay, code)
                await connection.closing.wait()
                assert connection.close_with is not None
                self.closed_by_peer.append(connection.close_with[0])
                await ws.aclose(*connection.close_with)
                nursery.cancel_scope.cancel()
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went first
        finally:
            self._open.remove(connection)

    async def _close_later(self, connection: _Connection, delay: float, code: int) -> None:
        await trio.sleep(delay)
        self._close(connection, code, "scripted")

    @staticmethod
    async def _drain(ws: WebSocketConnection, scope: trio.CancelScope) -> None:
        try:
            while True:
                await ws.get_message()
        except ConnectionClosed:
            scope.cancel()


_STARTED: Final[list[subprocess.Popen[str]]] = []


def kill_stragglers() -> int:
    """Kill every process a test started and left running (it failed half-way); how many."""
    stragglers = [process for process in _STARTED if process.poll() is None]
    for process in stragglers:
        process.kill()
        process.wait(PROCESS_TIMEOUT)
    _STARTED.clear()
    return len(stragglers)


class Command:
    """One real ``linkstate`` process (``--format json``); its stdout lines are collected."""

    def __init__(self, *argv: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "linkstate.cli", *argv, "--format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        )
        _STARTED.append(self.process)
        self.lines: list[dict[str, Any]] = []
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            try:
                line = json.loads(text)
            except ValueError:
                continue  # a line cut short by kill -9
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_for(self, done: Callable[[dict[str, Any]], bool], *, after: int = 0) -> int:
        """Block until a printed line (from index ``after`` on) satisfies ``done``; its index."""
        with self._seen:
            while True:
                for index in range(after, len(self.lines)):
                    if done(self.lines[index]):
                        return index
                if not self._reader.is_alive():
                    raise AssertionError(f"watch ended early: {self.finish()}")
                if not self._seen.wait(PROCESS_TIMEOUT):
                    raise AssertionError(f"watch printed nothing for a minute: {self.lines}")

    def wait_open(self, *, after: int = 0) -> int:
        """Block until the link is open (the committed ``opened``)."""
        return self.wait_for(lambda line: line.get("dst") == "open", after=after)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process."""
        self.process.send_signal(signum)

    def finish(self) -> tuple[int, str]:
        """Wait for the exit: its status and stderr."""
        code = self.process.wait(timeout=PROCESS_TIMEOUT)
        self._reader.join(PROCESS_TIMEOUT)
        assert self.process.stderr is not None
        with self.process.stderr as err:  # a few lines: they fit in the pipe meanwhile
            return code, err.read()

    @property
    def transitions(self) -> list[tuple[object, ...]]:
        """What this process printed as committed: one key per transition."""
        return [transition_key(line) for line in self.lines if "dst" in line]


class Watch(Command):
    """``linkstate watch websocket`` against ``peer``, on ``--db db --link link``."""

    def __init__(
        self, peer: Peer, db: Path, link: str, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(
            *("watch", "websocket", peer.url, "--db", str(db), "--link", link),
            *QUICK,
            *extra,
            env=env,
        )


def transition_key(value: dict[str, Any]) -> tuple[object, ...]:
    """What identifies a transition, in a printed line and in a stored record alike."""
    # Not "t": the printed time is relative to the run's start, the stored one is not.
    keys = ("src", "dst", "trigger", "status", "attempt", "delay", "reason")
    return tuple(value.get(k) for k in keys)


@dataclass
class Tally:
    """What a fault test injected, and what it lost (printed but not stored, and the like)."""

    name: str
    injected: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)

    def report(self) -> str:
        """One line: the counts, for the test's output."""
        injected = ", ".join(f"{k} {v}" for k, v in sorted(self.injected.items())) or "nothing"
        lost = sum(self.lost.values())
        detail = f" ({', '.join(f'{k} {v}' for k, v in sorted(self.lost.items()))})" if lost else ""
        return f"faults[{self.name}]: injected {injected}; lost {lost}{detail}"

    def check_committed(self, db: Path, link: str, watch: Command) -> None:
        """Count every transition ``watch`` printed that the store does not hold, in order."""
        with SQLiteStore(db, create=False) as store:
            if store.check():
                self.lost["inconsistent database"] += 1
            stored = [transition_key(s.record.to_json()) for s in store.history(link)]
        position = 0
        for key in watch.transitions:
            try:
                position = stored.index(key, position) + 1
            except ValueError:
                self.lost["printed but not stored"] += 1

    def check_state(self, db: Path, link: str, state: str, why: str) -> None:
        """Count a link that is not stored in ``state``."""
        with SQLiteStore(db, create=False) as store:
            row = store.load(link)
        if row is None or row.state != state:
            self.lost[why] += 1


@contextmanager
def tallied(name: str, capsys: Any) -> Iterator[Tally]:
    """A :class:`Tally` whose report is printed past pytest's capture when the test ends."""
    tally = Tally(name)
    try:
        yield tally
    finally:
        with capsys.disabled():
            print(f"\n{tally.report()}")


STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
