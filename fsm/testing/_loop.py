"""The runtime under a test's control: a trio loop in a thread, and a transport the test drives.

Hypothesis rules are synchronous and the runtime is async; :class:`TrioLoop`
bridges the two on a virtual clock, and :class:`ControlledTransport` makes
every handshake, close and silence a move of the test.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

import anyio
import trio
import trio.testing
from anyio.abc import TaskGroup

from linkstate.runtime._supervisor import ConnectFailed

T = TypeVar("T")


class TrioLoop:
    """A trio run in a thread of its own, on a :class:`trio.testing.MockClock` jumped by hand.

    Hypothesis rules are synchronous; this is how they drive async code. Each
    :meth:`run` executes a function inside the loop and then lets every task
    run until all are blocked, so when it returns the runtime has reacted
    fully. Time moves only through :meth:`jump`. :meth:`close` ends the run.
    """

    def __init__(self) -> None:
        self.clock = trio.testing.MockClock()
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._nursery: trio.Nursery | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._host, name="linkstate-trio", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _host(self) -> None:
        try:
            trio.run(self._main, clock=self.clock)
        except BaseException as exc:  # reported by close()
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    @property
    def nursery(self) -> trio.Nursery:
        """The loop's nursery: tasks started here live until :meth:`close`."""
        assert self._nursery is not None
        return self._nursery

    @property
    def now(self) -> float:
        """The virtual time."""
        return float(self.clock.current_time())

    def run(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` inside the loop, then wait until every task is blocked; return its result."""

        async def settled() -> T:
            result = fn()
            await trio.testing.wait_all_tasks_blocked()
            return result

        return trio.from_thread.run(settled, trio_token=self._token)

    def jump(self, seconds: float) -> None:
        """Move the virtual clock forward and let every task react."""
        self.run(lambda: self.clock.jump(seconds))

    def close(self) -> None:
        """Cancel everything still running and end the loop's thread."""
        if self._token is not None and self._stop is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(timeout=30)
        if self._error is not None:
            raise self._error


class ControlledConnection:
    """A connection of :class:`ControlledTransport`: closes and goes silent when told to."""

    def __init__(self, transport: ControlledTransport) -> None:
        self.transport = transport
        self.silent_at = math.inf
        self.closed_locally = False
        self._raw: object = None
        self._closed = anyio.Event()

    @property
    def last_activity(self) -> float:
        """Now while the connection is alive; the moment it went silent, after that."""
        return min(anyio.current_time(), self.silent_at)

    @property
    def peer_closed(self) -> bool:
        """True once the test closed the connection from the peer's side."""
        return self._closed.is_set()

    async def wait_closed(self) -> object:
        """Wait for the test's close; return its raw close info."""
        await self._closed.wait()
        return self._raw

    async def aclose(self) -> None:
        """Our side closes: the transport forgets the connection."""
        self.closed_locally = True
        if self.transport.connection is self:
            self.transport.connection = None

    async def reader(self) -> None:
        """A background task that lives exactly as long as the connection (counted)."""
        self.transport.live_tasks += 1
        try:
            await anyio.sleep_forever()
        finally:
            self.transport.live_tasks -= 1


_OPEN: Final = object()


@dataclass
class _PendingConnect:
    outcome: object = None
    decided: anyio.Event = field(default_factory=anyio.Event)


class ControlledTransport:
    """A transport whose every move the test makes (call its methods inside the loop).

    ``connect`` waits until the test calls :meth:`open` or :meth:`reject`; an
    open connection ends when the test calls :meth:`close`, or goes silent
    (for the watchdog) on :meth:`silence`. Each connection runs one counted
    background task in the supervisor's per-connection task group, so a leak
    shows in :attr:`live_tasks`.

    Attributes:
        connects: How many times ``connect`` was called.
        pending: The connect attempt waiting for the test, if any.
        connection: The open connection, if any.
        live_tasks: Background tasks of connections still running.
        opened: Every connection handed out, in order.

    """

    def __init__(self) -> None:
        self.connects = 0
        self.pending: _PendingConnect | None = None
        self.connection: ControlledConnection | None = None
        self.live_tasks = 0
        self.opened: list[ControlledConnection] = []

    async def connect(self, tasks: TaskGroup) -> ControlledConnection:
        """Wait for the test to open or reject this attempt."""
        self.connects += 1
        attempt = self.pending = _PendingConnect()
        try:
            await attempt.decided.wait()
        finally:
            if self.pending is attempt:
                self.pending = None
        if attempt.outcome is not _OPEN:
            raise ConnectFailed(attempt.outcome)
        connection = ControlledConnection(self)
        tasks.start_soon(connection.reader)
        self.connection = connection
        self.opened.append(connection)
        return connection

    def open(self) -> None:
        """Complete the pending handshake."""
        self._decide(_OPEN)

    def reject(self, raw: object) -> None:
        """Fail the pending handshake with ``raw``."""
        self._decide(raw)

    def _decide(self, outcome: object) -> None:
        assert self.pending is not None, "no connect is waiting"
        self.pending.outcome = outcome
        self.pending.decided.set()

    def close(self, raw: object) -> None:
        """The peer closes the open connection with ``raw``."""
        connection = self.connection
        assert connection is not None, "no connection is open"
        connection._raw = raw
        connection._closed.set()

    def silence(self) -> None:
        """The open connection stops showing any sign of life."""
        assert self.connection is not None, "no connection is open"
        self.connection.silent_at = min(self.connection.silent_at, anyio.current_time())
