"""neonize (WhatsApp through whatsmeow), supervised: connection events mapped to open and close.

:class:`NeonizeTransport` takes the user's own ``neonize.aioze.client.NewAClient``,
already paired. whatsmeow reconnects by itself inside Go, and neonize 0.5
offers no switch for it; what it does offer is ``stop()``, which ends the Go
session (and every reconnect of it) and ``connect()``, which starts a new
one from the same device store. So each supervised connection is one Go
session: connect starts it and waits for ``ConnectedEv``; the first close
event ends it, and closing our side stops it, so the next attempt happens
when the supervisor says, not when whatsmeow does.

* **Close events**, reported as the event object itself for the ``whatsapp``
  channel's table (which maps them by name, never by neonize's enum numbers):
  ``LoggedOutEv``, ``StreamReplacedEv`` (the 440 session conflict),
  ``TemporaryBanEv``, ``ConnectFailureEv``, ``ClientOutdatedEv``,
  ``StreamErrorEv`` and ``DisconnectedEv``. One before ``ConnectedEv`` is a
  failed handshake; the Go session ending by itself is a close too.
* **Handlers**: neonize keeps one handler per event type, and registering
  another replaces it, so the adapter chains: it installs its own handler in
  front of the user's (read again on every connect; register yours before
  supervising) and then calls the user's. neonize runs each event's handler
  in a task of its own and drops what it raises unseen; the adapter logs it.
* **Activity** for the watchdog is every event the client is subscribed to,
  ``KeepAliveRestoredEv`` among them. whatsmeow's own ``KeepAliveTimeoutEv``
  is not a close: the watchdog decides when silence has lasted too long.

neonize delivers events to the first asyncio loop it ever saw, so run one
event loop per process. Pair the device before supervising it: a QR code
shown during a connect waits for a person, and the connect timeout would
count that as a failure (pass ``connect_timeout=None`` for a first pairing).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup

from linkstate._errors import ArgumentError
from linkstate.adapters._connection import AdapterConnection, close_quietly
from linkstate.adapters._link import ClosingTransport, LibraryMissingError
from linkstate.runtime import ConnectFailed

try:
    from neonize.aioze.client import NewAClient
    from neonize.aioze.events import (
        EVENT_TO_INT,
        ClientOutdatedEv,
        ConnectedEv,
        ConnectFailureEv,
        DisconnectedEv,
        LoggedOutEv,
        StreamErrorEv,
        StreamReplacedEv,
        TemporaryBanEv,
    )
except ImportError as exc:
    raise LibraryMissingError(__name__, "neonize", "whatsapp") from exc

__all__ = ["CLOSE_EVENTS", "DEFAULT_STOP_TIMEOUT", "NeonizeTransport"]

_log: Final = logging.getLogger("linkstate.adapters")

CLOSE_EVENTS: Final[tuple[type[Any], ...]] = (
    LoggedOutEv,
    StreamReplacedEv,
    TemporaryBanEv,
    ConnectFailureEv,
    ClientOutdatedEv,
    StreamErrorEv,
    DisconnectedEv,
)
"""The whatsmeow events that end a supervised connection; the ``whatsapp`` table reads them."""

DEFAULT_STOP_TIMEOUT: Final = 10.0
"""Seconds closing a connection waits for the Go session to end after ``stop()``."""

_CLOSE_CODES: Final = frozenset(EVENT_TO_INT[event] for event in CLOSE_EVENTS)
_CONNECTED: Final = EVENT_TO_INT[ConnectedEv]

Handler = Callable[[NewAClient, Any], Awaitable[None]]


class _Chained:
    """The adapter's handler for one event type, in front of the user's own."""

    def __init__(self, transport: NeonizeTransport, code: int, user: Handler | None) -> None:
        self.transport = transport
        self.code = code
        self.user = user

    async def __call__(self, client: NewAClient, event: Any) -> None:
        self.transport._saw(self.code, event)
        if self.user is None:
            return
        try:
            await self.user(client, event)
        except Exception:
            # neonize would drop it unseen; it is the user's bug, never a disconnect.
            _log.exception(
                "a neonize handler raised while handling %s; the link is unaffected",
                type(event).__name__,
            )


class NeonizeTransport(ClosingTransport):
    """A transport for one paired neonize ``NewAClient``: one Go session per connection.

    Args:
        client: The user's NewAClient (``neonize.aioze.client``), its handlers registered.
        stop_timeout: Seconds closing a connection waits for the Go session to end.

    """

    def __init__(self, client: NewAClient, *, stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        if not isinstance(client, NewAClient):
            raise ArgumentError(
                f"NeonizeTransport takes a neonize.aioze.client.NewAClient, not "
                f"{type(client).__name__}: NeonizeTransport(NewAClient('session.sqlite3'))"
            )
        self.client = client
        self.stop_timeout = stop_timeout
        self._connection: AdapterConnection | None = None
        self._opened = False  # whether WhatsApp said Connected to the current session
        self._changed = anyio.Event()

    def _chain(self) -> None:
        """Put the adapter's handler in front of each subscribed event's, ours included."""
        handlers = self.client.event.list_func
        for code in {*handlers, *_CLOSE_CODES, _CONNECTED}:
            current = handlers.get(code)
            if not isinstance(current, _Chained):
                handlers[code] = _Chained(self, code, current)

    def _saw(self, code: int, event: Any) -> None:
        """One event from whatsmeow: activity, the handshake, or the close."""
        connection = self._connection
        if connection is None or connection.ended:
            return  # a late event of a session we already ended
        connection.touch()
        if code == _CONNECTED:
            self._opened = True
        elif code in _CLOSE_CODES:
            connection.end(event)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def connect(self, tasks: TaskGroup) -> AdapterConnection:
        """Start a Go session and wait for ``ConnectedEv``; a close event first is a failure."""
        self._chain()  # before connect(): neonize subscribes to the handled events only
        # Closing our side stops the Go session (and whatsmeow's reconnects with it).
        connection = AdapterConnection(self._stop)
        self._opened = False
        self._connection = connection
        session: asyncio.Task[Any] = await self.client.connect()
        session.add_done_callback(lambda _: self._wake())
        try:
            while not self._opened:
                if connection.ended:
                    raise ConnectFailed(await connection.wait_closed())
                if session.done():
                    raise ConnectFailed(_session_end(session, "before WhatsApp connected"))
                await self._changed.wait()
        except BaseException:
            # A failed handshake, or the connect timeout: no Go session may outlive it,
            # or the next attempt would run a second one for the same device.
            connection.end(None)
            await close_quietly(self._stop)
            raise
        tasks.start_soon(self._watch, connection, session)
        return connection

    async def _watch(self, connection: AdapterConnection, session: asyncio.Task[Any]) -> None:
        """The Go session ending by itself (an error from neonize) ends the connection too."""
        while not session.done():
            await self._changed.wait()
        connection.end(_session_end(session, "by itself"))

    async def aclose(self) -> None:
        """Stop the Go session if one still runs (every connection's close already does)."""
        await self._stop()

    async def _stop(self) -> None:
        """End the Go session (whatsmeow's reconnects die with it) and wait for it."""
        session = self.client.connect_task
        if session is None or session.done():
            return
        await self.client.stop()
        with anyio.move_on_after(self.stop_timeout):
            await asyncio.wait({session})


def _session_end(session: asyncio.Task[Any], when: str) -> object:
    """Why a Go session ended: neonize's exception, or a plain reason."""
    if session.cancelled():
        return f"the neonize session was cancelled {when}"
    return session.exception() or f"the neonize session ended {when}"
