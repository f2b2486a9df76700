"""The connection object every adapter hands to the supervisor.

An adapter's reader calls :meth:`AdapterConnection.touch` on each frame the
library receives (the watchdog's "activity") and :meth:`AdapterConnection.end`
once, with the library's native close info; the supervisor waits on
:meth:`AdapterConnection.wait_closed` and classifies what it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

import anyio

__all__ = ["CLOSE_TIMEOUT", "AdapterConnection", "close_quietly"]

CLOSE_TIMEOUT: Final = 5.0
"""Seconds closing our side may take before we give up on the peer's reply (the
supervisor's default close timeout too)."""


class AdapterConnection:
    """One connection of a client library, as the supervisor sees it.

    Args:
        closer: Closes our side (called by :meth:`aclose`, under the
            supervisor's shield and close timeout).

    """

    __slots__ = ("_closer", "_ended", "_now", "_raw", "last_activity")

    def __init__(self, closer: Callable[[], Awaitable[None]]) -> None:
        self._closer = closer
        self._ended = anyio.Event()
        self._raw: object = None
        self._now = _clock()
        self.last_activity = self._now()

    def touch(self) -> None:
        """Record a sign of life from the server (a frame, a heartbeat ACK, a pong)."""
        self.last_activity = self._now()

    def end(self, raw: object) -> None:
        """Record how the connection ended; only the first ending counts."""
        if not self._ended.is_set():
            self._raw = raw
            self._ended.set()

    @property
    def ended(self) -> bool:
        """Whether :meth:`end` was called."""
        return self._ended.is_set()

    @property
    def raw(self) -> object:
        """The close info passed to :meth:`end` (None before it)."""
        return self._raw

    async def wait_closed(self) -> object:
        """Wait until the connection ended; return the library's close info."""
        await self._ended.wait()
        return self._raw

    async def aclose(self) -> None:
        """Close our side; idempotent, as every adapter's closer is."""
        await self._closer()


def _clock() -> Callable[[], float]:
    """The running loop's clock, which is what ``anyio.current_time()`` reads.

    ``touch`` runs on every frame; the event loop's own ``time`` costs a
    fraction of ``anyio.current_time()``, which finds the back end on each call
    (benchmarks/adapter_frames.py).
    """
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:  # not on asyncio (trio): ask anyio each time
        return anyio.current_time


async def close_quietly(close: Callable[[], Awaitable[object]]) -> None:
    """Await ``close()`` even inside a cancelled scope, for at most CLOSE_TIMEOUT; best effort.

    Used where a connection is abandoned half way (a connect timeout, an
    abort): a socket that cannot even close is as closed as it will get.
    """
    with (
        anyio.CancelScope(shield=True),
        anyio.move_on_after(CLOSE_TIMEOUT),
        contextlib.suppress(Exception),
    ):
        await close()
