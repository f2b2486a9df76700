"""What the polling and event adapters share (PTB, aiogram, nio, neonize): polls, guarded handlers.

These adapters have no socket of their own to watch: their "connection" (an
:class:`~linkstate.adapters._connection.AdapterConnection`, as for Discord
and Slack) is a poll loop (getUpdates, /sync) or a stream of events
(whatsmeow's). Either way it ends exactly once, with the raw close info in
the library's native form (the exception, the error response, the event),
and the watchdog reads ``last_activity``, which the adapter moves on what
the library really sees (an answered poll, a sync response, an event).

User handlers run apart from that loop, in tasks the adapter owns
(:class:`Handlers`): they outlive a reconnect, a raise is logged and
forgotten, and a slow one delays nothing but itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Final, Self, TypeVar

import anyio

from linkstate._errors import ArgumentError, LinkstateError
from linkstate.adapters._connection import AdapterConnection

__all__ = [
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_POLL_TIMEOUT",
    "ClosingTransport",
    "Handlers",
    "LibraryMissingError",
    "poll_updates",
    "polled_connection",
    "readable_updates",
    "whole_number",
]

U = TypeVar("U")

_log: Final = logging.getLogger("linkstate.adapters")

DEFAULT_POLL_TIMEOUT: Final = 10
"""Seconds one ``getUpdates`` long poll may be held by the server (PTB's own default)."""

DEFAULT_DRAIN_TIMEOUT: Final = 10.0
"""Seconds ``aclose()`` of an adapter waits for running handlers before it cancels them."""


class LibraryMissingError(LinkstateError, ImportError):
    """An adapter module was imported without its client library; the message names the extra."""

    def __init__(self, module: str, library: str, extra: str) -> None:
        super().__init__(
            f"{module} needs {library}, which is not installed (or fails to import); "
            f"install it with: pip install 'linkstate[{extra}]'"
        )


def whole_number(name: str, value: object, unit: str) -> int:
    """``value`` when it is a whole number, 0 or more; else the one clear error naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgumentError(f"{name}={value!r} must be a whole number of {unit}, 0 or more")
    return value


class ClosingTransport:
    """An adapter is an async context manager: leaving the block calls its ``aclose()``."""

    async def aclose(self) -> None:
        """Shut the library down (a subclass's own steps)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def polled_connection() -> AdapterConnection:
    """A connection whose only reader is a poll task.

    Closing our side needs nothing more: the supervisor cancels that task
    with the connection's task group.
    """
    return AdapterConnection(_nothing_to_close)


async def _nothing_to_close() -> None:
    return None


async def poll_updates(
    connection: AdapterConnection,
    fetch: Callable[[], Awaitable[Sequence[U]]],
    deliver: Callable[[U], Awaitable[None]],
) -> None:
    """Long-poll until the first error, which ends ``connection`` as the library raised it.

    Each answered poll is activity, an empty one included; ``deliver`` gets
    each update in order (and moves the caller's offset past it).
    """
    while True:
        try:
            updates = await fetch()
        except Exception as exc:
            connection.end(exc)  # the library's own exception: the channel's table reads it
            return
        connection.touch()
        for update in updates:
            await deliver(update)


def readable_updates(
    raw: object, decode: Callable[[dict[str, object]], U], library: str
) -> tuple[list[U], int | None]:
    """Decode a raw ``getUpdates`` result one update at a time, skipping what cannot be read.

    One update the library cannot decode makes it refuse the whole answer,
    and the next poll brings the same answer back: without this, one bad
    update would stop the bot for good. Returns the updates decoded and the
    offset past the last ``update_id`` read (None when there was none).
    """
    updates: list[U] = []
    offset: int | None = None
    for item in raw if isinstance(raw, list) else ():
        update_id = item.get("update_id") if isinstance(item, dict) else None
        if isinstance(update_id, int) and not isinstance(update_id, bool):
            offset = max(offset or 0, update_id + 1)
        problem = "not a JSON object"
        if isinstance(item, dict):
            try:
                updates.append(decode(item))
                continue
            except Exception as exc:
                problem = type(exc).__name__
        _log.warning(
            "skipped update %r: %s cannot read it (%s)",
            update_id if isinstance(update_id, int) else "?",
            library,
            problem,
        )
    return updates, offset


class Handlers:
    """Runs user handlers in tasks of their own, so none of them can stall or end a link.

    Args:
        library: Named in the log line of a handler that raised.
        sequential: Run them one at a time, in the order they came (a
            library's own callbacks ran in order); else each at once.

    """

    def __init__(self, library: str, *, sequential: bool = False) -> None:
        self.library = library
        self.sequential = sequential
        self._tasks: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[tuple[str, Callable[[], Awaitable[object] | object]]] = (
            asyncio.Queue()
        )
        self._worker: asyncio.Task[None] | None = None

    @property
    def running(self) -> int:
        """Handlers started or queued and not finished yet."""
        return len(self._tasks) + self._queue.qsize()

    def submit(self, what: str, call: Callable[[], Awaitable[object] | object]) -> None:
        """Run ``call()`` (awaiting it if it returns an awaitable) apart from the caller."""
        if not self.sequential:
            self._spawn(self._guarded(what, call))
            return
        self._queue.put_nowait((what, call))
        if self._worker is None or self._worker.done():
            self._worker = self._spawn(self._drain())

    def _spawn(self, coroutine: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        # The loop keeps only a weak reference to a task: keep it until it ends.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _drain(self) -> None:
        while not self._queue.empty():
            what, call = self._queue.get_nowait()
            await self._guarded(what, call)

    async def _guarded(self, what: str, call: Callable[[], Awaitable[object] | object]) -> None:
        try:
            result = call()
            if isinstance(result, Awaitable):
                await result
        except Exception:
            # The library would have logged it too; it is the user's bug, never a disconnect.
            _log.exception(
                "a %s handler raised while handling %s; the link is unaffected", self.library, what
            )

    async def aclose(self, timeout: float = DEFAULT_DRAIN_TIMEOUT) -> None:
        """Wait up to ``timeout`` seconds for running handlers, then cancel the rest."""
        with anyio.move_on_after(timeout):
            while self._tasks:
                await asyncio.wait(set(self._tasks))
        for task in tuple(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        while not self._queue.empty():
            self._queue.get_nowait()
