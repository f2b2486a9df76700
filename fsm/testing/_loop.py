"""The runtime under a test's control: a loop in a thread (trio or asyncio), and a driven transport.

Hypothesis rules are synchronous and the runtime is async; :class:`TrioLoop`
bridges the two on a virtual clock, and :class:`ControlledTransport` makes
every handshake, close and silence a move of the test.

No wait here is unbounded, because a plugin author's CI must never hang: a
loop that does not settle within ``timeout`` seconds of real time (a task
that never blocks, a plugin call that blocks the loop's thread, a deadlock)
raises :class:`KitTimeoutError`, which says which of these it is likely to be.
Virtual time makes every wait of the code under test instant, so the real
time a healthy step takes is milliseconds, even on a loaded machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import selectors
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn, TypeVar

import anyio
import trio
import trio.testing
from anyio.abc import TaskGroup

from linkstate._errors import LinkstateError
from linkstate.runtime._supervisor import ConnectFailed

T = TypeVar("T")

DEFAULT_TIMEOUT: Final = 60.0
"""Seconds of real time a loop may take to start, to settle after a step, or to stop.

Generous on purpose: a healthy step settles in milliseconds, even under load;
only code that is really stuck takes a minute."""


class KitTimeoutError(LinkstateError, AssertionError):
    """A kit loop did not settle in time: the code under test is stuck; the message says how."""


def fail_stuck(why: str) -> NoReturn:
    """Raise :class:`KitTimeoutError` with ``why``; the one place that raises it.

    One raise site makes every report of a stuck loop the same failure to
    hypothesis, whether a step timed out or a later example failed at once.
    """
    raise KitTimeoutError(why) from None


def _stuck(what: str, timeout: float) -> str:
    return (
        f"the conformance kit's event loop did not {what} within {timeout:g} s of real time. "
        "Every wait of the runtime is on a virtual clock, so a healthy step takes "
        "milliseconds: something under test is stuck. Look for a task that loops without "
        "ever blocking (a `while True` with only checkpoints), a synchronous call that "
        "blocks the loop's thread (the channel's extract or classify, a transport or "
        "observer calling time.sleep or waiting on a lock), or an event nobody sets. A "
        "machine that needs longer may raise its loop's timeout (RuntimeMachine.settle_timeout)"
    )


class TrioLoop:
    """A trio run in a thread of its own, on a :class:`trio.testing.MockClock` jumped by hand.

    Hypothesis rules are synchronous; this is how they drive async code. Each
    :meth:`run` executes a function inside the loop and then lets every task
    run until all are blocked, so when it returns the runtime has reacted
    fully. Time moves only through :meth:`jump`. :meth:`close` ends the run.

    Args:
        timeout: Seconds of real time that starting, each :meth:`run` and
            :meth:`close` may take; past it, :class:`KitTimeoutError`.

    """

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.clock = trio.testing.MockClock()
        self.timeout = timeout
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._nursery: trio.Nursery | None = None
        self._error: BaseException | None = None
        self.stuck: str | None = None
        """Why the loop got stuck (the first timeout), or None."""
        self._thread = threading.Thread(target=self._host, name="linkstate-trio", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stuck = _stuck("start", timeout)
            fail_stuck(self.stuck)
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
        """Call ``fn`` inside the loop, then wait until every task is blocked; return its result.

        Raises:
            KitTimeoutError: the loop did not settle within ``timeout`` seconds.

        """
        assert self._token is not None
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        scope = trio.CancelScope()

        async def settled() -> None:
            try:
                with scope:
                    result = fn()
                    await trio.testing.wait_all_tasks_blocked()
                    done.set_result(result)
            except BaseException as exc:  # handed to the test's thread, like from_thread.run
                done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

        # run_sync_soon never blocks this thread, unlike trio.from_thread.run,
        # which waits forever for a loop whose thread is stuck.
        self._token.run_sync_soon(trio.lowlevel.spawn_system_task, settled)
        try:
            return done.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            self.stuck = self.stuck or _stuck("settle after a step", self.timeout)
            self._token.run_sync_soon(scope.cancel)  # runs if the loop's thread is free
            fail_stuck(self.stuck)

    def jump(self, seconds: float) -> None:
        """Move the virtual clock forward and let every task react."""
        self.run(lambda: self.clock.jump(seconds))

    def close(self) -> None:
        """Cancel everything still running and end the loop's thread.

        Raises:
            KitTimeoutError: the thread did not end within ``timeout`` seconds
                (not raised again after a step already timed out: that error
                is the one that explains it).

        """
        if self._token is not None and self._stop is not None and self._thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):  # the run ended already
                self._token.run_sync_soon(self._stop.set)
        self._thread.join(timeout=self.timeout)
        if self._thread.is_alive():
            if self.stuck is None:
                self.stuck = _stuck("stop", self.timeout)
                fail_stuck(self.stuck)
            return  # a daemon thread, stuck in the code under test: left behind
        if self._error is not None:
            raise self._error


class _Tasks:
    """The :class:`AsyncioLoop`'s stand-in for a nursery: ``start_soon`` and ``child_tasks``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._tasks: set[asyncio.Task[None]] = set()

    def start_soon(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start ``fn()`` as a task of the loop."""
        task = self._loop.create_task(fn())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def child_tasks(self) -> frozenset[asyncio.Task[None]]:
        """The tasks started here that are still running."""
        return frozenset(self._tasks)


class _AutojumpSelector:
    """Wraps a loop's selector: when nothing is ready, jump the virtual clock to the next timer.

    What trio's ``MockClock(autojump_threshold=0)`` does, for asyncio: a loop
    with nothing to run and no I/O ready would sleep until its next timer;
    this makes that sleep take no real time.
    """

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Poll; with nothing ready, move virtual time by ``timeout`` instead of waiting.

        With no timer at all, only I/O or another thread can wake the loop: that
        wait is bounded by the loop's ``stall_timeout`` of real time, past which
        :class:`KitTimeoutError` ends the run (a deadlock would otherwise hang it).
        """
        events = self._inner.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            events = self._inner.select(self._loop.stall_timeout)
            if not events:
                fail_stuck(
                    _stuck("see any I/O or timer (every task waits)", self._loop.stall_timeout)
                )
            return events
        self._loop.virtual += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` is a virtual clock: asyncio's stand-in for ``MockClock``.

    asyncio schedules every timer (``call_at``, ``sleep``, anyio's deadlines)
    against ``loop.time()``, so replacing it is all a virtual clock takes.
    With ``autojump``, the clock jumps to the next timer whenever the loop
    would sleep (``loop.run_until_complete(main())`` then takes hours of
    backoff in milliseconds); without, only :meth:`AsyncioLoop.jump` moves it.
    Use it for code without real I/O: a jump does not wait for a socket.
    With ``autojump``, a loop with no timer left waits at most
    ``stall_timeout`` seconds of real time for I/O or another thread, then
    raises :class:`KitTimeoutError` out of the run: every task waits on
    something nobody will do.
    """

    def __init__(self, *, autojump: bool = False, stall_timeout: float = DEFAULT_TIMEOUT) -> None:
        selector: Any = selectors.DefaultSelector()
        if autojump:
            selector = _AutojumpSelector(selector, self)
        super().__init__(selector)
        self.virtual = 0.0
        self.stall_timeout = stall_timeout

    def time(self) -> float:
        """The virtual time."""
        return self.virtual


# Consecutive loop turns with nothing ready and nothing due: then every task is
# blocked (asyncio has no wait_all_tasks_blocked; a task woken by another's
# callback shows up in the ready queue within one turn).
_QUIET_TURNS: Final = 3


class AsyncioLoop:
    """An asyncio loop in a thread of its own, on a virtual clock jumped by hand.

    The asyncio twin of :class:`TrioLoop`, with the same methods, so that the
    runtime machine holds the supervisor to the model on both back ends.

    Args:
        timeout: Seconds of real time that each :meth:`run` and :meth:`close`
            may take; past it, :class:`KitTimeoutError`.

    """

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self.stuck: str | None = None
        """Why the loop got stuck (the first timeout), or None."""
        self._loop = VirtualTimeLoop()
        self.nursery = _Tasks(self._loop)
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="linkstate-asyncio", daemon=True
        )
        self._thread.start()

    @property
    def now(self) -> float:
        """The virtual time."""
        return self._loop.virtual

    def run(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` inside the loop, then wait until every task is blocked; return its result."""

        async def settled() -> T:
            result = fn()
            quiet = 0
            while quiet < _QUIET_TURNS:
                await asyncio.sleep(0)
                quiet = quiet + 1 if self._idle() else 0
            return result

        future = asyncio.run_coroutine_threadsafe(settled(), self._loop)
        return self._wait(future, "settle after a step")

    def _wait(self, future: concurrent.futures.Future[T], what: str) -> T:
        try:
            return future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            self.stuck = self.stuck or _stuck(what, self.timeout)
            future.cancel()  # cancels the coroutine, if the loop's thread is free to
            fail_stuck(self.stuck)

    def _idle(self) -> bool:
        # Private attributes of asyncio's base loop: the ready queue and the
        # timer heap; this is a test harness, pinned by the tests that use it.
        loop: Any = self._loop
        due = any(not h.cancelled() and h.when() <= loop.virtual for h in loop._scheduled)
        return not loop._ready and not due

    def jump(self, seconds: float) -> None:
        """Move the virtual clock forward and let every task react."""

        def move() -> None:
            self._loop.virtual += seconds

        self.run(move)

    def close(self) -> None:
        """Cancel everything still running and end the loop's thread."""
        if not self._thread.is_alive():
            return

        async def cancel_all() -> None:
            tasks = list(self.nursery.child_tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        stuck_before = self.stuck is not None
        try:
            self._wait(asyncio.run_coroutine_threadsafe(cancel_all(), self._loop), "stop")
        except KitTimeoutError:
            if stuck_before:
                return  # a step timed out already: that error explains this one
            raise
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=self.timeout)
        if self._thread.is_alive():
            self.stuck = _stuck("stop", self.timeout)
            fail_stuck(self.stuck)
        self._loop.close()


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
