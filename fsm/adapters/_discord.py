"""discord.py's ``Client`` as a transport: the supervisor decides every reconnect.

Why not ``Client.connect(reconnect=False)``: in discord.py 2.x it still
reconnects by itself on every close it considers recoverable (a dropped TCP
connection, a server close 1000 or 4000-4009, opcode 7 Reconnect, opcode 9
Invalid Session, its own heartbeat timeout), because those arrive as its
internal ``ReconnectWebSocket`` and that branch ignores the flag. So the
adapter drives the gateway itself, one connection per connect attempt, as
``connect`` would without its loop: ``DiscordWebSocket.from_client`` to
connect and IDENTIFY (or RESUME), then ``poll_event`` until the connection
ends. The user's ``Client`` does everything else: its state, its cache, its
handlers (each runs in a task of its own, and a raise goes to ``on_error``,
so a raising or slow handler never ends a connection).

What the table gets, per ending (discord.py's native forms):

==============================  ==============================================
the gateway                     reported as
==============================  ==============================================
login refused (HTTP 401)        ``discord.LoginFailure`` (the table: 4004)
closes with 4004, 4010-4014     ``discord.ConnectionClosed`` (``.code``)
opcode 7 / opcode 9             the payload, ``{"op": 7, "d": None}``
other close, or a TCP drop      the close code (1000, 4000-4009; 1006)
discord.py's heartbeat timeout  a local close without a status (retry)
a network error                 the exception (``OSError``, aiohttp's)
==============================  ==============================================

discord.py raises ``ReconnectWebSocket`` for all of the middle rows alike;
the adapter tells them apart from the last control opcode it saw and the
socket's close code, which is why it reports those instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import aiohttp
import anyio
import discord
import yarl
from anyio.abc import TaskGroup
from discord.gateway import DiscordWebSocket, ReconnectWebSocket

from linkstate._errors import ArgumentError
from linkstate._events import CloseEvent, Initiator
from linkstate.adapters._connection import AdapterConnection, close_quietly
from linkstate.runtime import ConnectFailed

__all__ = ["DiscordTransport"]

# Opcode 7 and opcode 9 payloads are a few dozen bytes; only frames this short,
# with a 7 or a 9 in them, are parsed a second time to see which control
# opcode ended a session (a heartbeat ACK, {"op": 11}, is not).
_CONTROL_FRAME_MAX: Final = 256
_CONTROL_OPS: Final = frozenset({7, 9})

# The gateway sockets created by the connect attempt under way in this task,
# so that an attempt cut short (a timeout, an abort) closes the one it opened.
_CREATED: ContextVar[list[_GatewaySocket] | None] = ContextVar("_CREATED", default=None)


def _nothing() -> None:
    """The frame hook of a socket no connection watches yet."""


class _GatewaySocket(DiscordWebSocket):
    """discord.py's gateway socket, telling the adapter about each frame and control opcode."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, *, loop: Any) -> None:
        super().__init__(socket, loop=loop)
        self.on_frame: Callable[[], None] = _nothing
        self.control: dict[str, object] | None = None
        # The close code our side chose, once chosen (see DiscordTransport._close).
        self.closing: int | None = None
        created = _CREATED.get()
        if created is not None:
            created.append(self)

    async def received_message(self, msg: Any, /) -> None:
        # Every frame is activity: HELLO, heartbeat ACKs, dispatches, partial
        # compressed frames. Our own heartbeats are not: they prove nothing.
        self.on_frame()
        await super().received_message(msg)

    def log_receive(self, data: Any, /) -> None:
        self._note(data)

    def debug_log_receive(self, data: Any, /) -> None:
        self._note(data)
        super().debug_log_receive(data)

    def _note(self, data: object) -> None:
        """Keep the payload of an opcode 7 or 9: discord.py raises the same exception for both."""
        if not isinstance(data, str) or len(data) > _CONTROL_FRAME_MAX:
            return
        if "7" not in data and "9" not in data:
            return
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):
            return
        if isinstance(payload, dict) and payload.get("op") in _CONTROL_OPS:
            self.control = {"op": payload["op"], "d": payload.get("d")}


@dataclass(frozen=True, slots=True)
class _Resume:
    """What the next connection needs to RESUME the session instead of IDENTIFYing anew."""

    session: str
    sequence: int | None
    gateway: yarl.URL


class DiscordTransport:
    """Connects a discord.py ``Client`` to the gateway, one connection per attempt.

    The client is the user's own, with its handlers and intents. The adapter
    logs it in once (``client.login(token)``; a refused token is
    ``LoginFailure``, which the Discord table treats as 4004: relink), then
    opens one gateway connection per connect attempt and reports how it ended.
    The connection counts as open at READY (or RESUMED), so a 4004 or 4014
    right after IDENTIFY is a failed connect. After a connection that had a
    session, the next one RESUMEs it, as discord.py does; after opcode 9
    with ``d`` false it IDENTIFYs anew (after ``before_identify_hook``, which
    by default waits Discord's 5 s between IDENTIFYs).

    Activity for the watchdog is every frame from the gateway, heartbeat ACKs
    included; set the supervisor's watchdog above the heartbeat interval
    (Discord's is 41.25 s), say ``watchdog=90``.

    Closing: an operator stop (``Supervisor.abort``) closes the socket with
    1000, which ends the session (the bot goes offline at once); a watchdog
    expiry closes with 4000, which keeps it resumable. The adapter never
    closes the client itself: ``async with client:`` around the supervisor
    does, or ``await client.close()`` after ``run()``.

    Args:
        client: The user's ``discord.Client`` (or ``commands.Bot``), not yet
            logged in. An ``AutoShardedClient`` is not supported: supervise
            one ``Client(shard_id=N, shard_count=M)`` per shard.
        token: The bot token.

    """

    def __init__(self, client: discord.Client, token: str) -> None:
        if not isinstance(client, discord.Client):
            raise ArgumentError(
                f"DiscordTransport needs a discord.Client, got {type(client).__name__}; "
                "pass the client whose handlers should receive the events"
            )
        if isinstance(client, discord.AutoShardedClient):
            raise ArgumentError(
                "DiscordTransport got an AutoShardedClient, which runs every shard in one "
                "loop of its own; supervise one discord.Client(shard_id=N, shard_count=M) "
                "per shard instead"
            )
        if not isinstance(token, str) or not token.strip():
            raise ArgumentError(
                "DiscordTransport needs the bot token as a non-empty string; copy it from "
                "the Discord Developer Portal (Bot → Token)"
            )
        self.client = client
        self._token = token.strip()
        self._logged_in = False
        self._identified = False
        self._resume: _Resume | None = None

    async def connect(self, tasks: TaskGroup) -> AdapterConnection:
        """Log in (once), open a gateway connection and return it at READY or RESUMED."""
        client = self.client
        if not self._logged_in:
            # A login that failed half way left an HTTP session behind;
            # discord.py makes a new one on each login and would leak it.
            _drop_login_session(client)
            await client.login(self._token)
            self._logged_in = True
        resume = self._resume
        created: list[_GatewaySocket] = []
        mark = _CREATED.set(created)
        connected = False
        try:
            ws = await _GatewaySocket.from_client(
                client,
                initial=not self._identified,
                shard_id=client.shard_id,
                gateway=None if resume is None else resume.gateway,
                session=None if resume is None else resume.session,
                sequence=None if resume is None else resume.sequence,
                resume=resume is not None,
            )
            connected = True
        except (ReconnectWebSocket, discord.ConnectionClosed) as exc:
            # The gateway went away before HELLO was done: the same endings as later.
            socket = created[-1] if created else None
            raise ConnectFailed(exc if socket is None else _ending(socket, exc)) from exc
        finally:
            _CREATED.reset(mark)
            self._identified = True
            if created and not connected:
                # Cut short (a timeout, an abort, an error): close what it opened.
                await close_quietly(partial(created[-1].close, code=4000))
        client.ws = ws
        opened, settled = anyio.Event(), anyio.Event()
        connection = AdapterConnection(lambda: self._close(ws, tasks))
        ws.on_frame = connection.touch
        ws._dispatch = _watching_for_ready(ws._dispatch, opened, settled)
        tasks.start_soon(self._read, ws, tasks, connection, settled)
        try:
            await settled.wait()
        except BaseException:
            # The connect timed out (or was cancelled) before READY: close
            # without ending the session, which the next attempt may resume.
            await close_quietly(partial(ws.close, code=4000))
            raise
        if not opened.is_set():
            # It ended before READY (4004 and 4010-4014 come right after IDENTIFY).
            raise ConnectFailed(connection.raw)
        # Open, even if it has ended since: the supervisor then sees it close.
        return connection

    async def _read(
        self,
        ws: _GatewaySocket,
        tasks: TaskGroup,
        connection: AdapterConnection,
        settled: anyio.Event,
    ) -> None:
        """Poll the gateway until the connection ends; report how, once."""
        raw: object = None
        try:
            while True:
                await ws.poll_event()
        except (ReconnectWebSocket, discord.ConnectionClosed) as exc:
            raw = _ending(ws, exc)
        except Exception as exc:
            # A network error, or a payload discord.py could not parse: either
            # way this connection is over, and the table classifies the error.
            raw = exc
        finally:
            self._resume = _resume_from(ws)
            connection.end(raw)
            settled.set()
            # discord.py's own loop dispatches this on every ending; handlers expect it.
            self.client.dispatch("disconnect")
            # Cancelled by an abort, this task may close the socket before the
            # supervisor does: with the same code, then.
            await close_quietly(partial(self._close, ws, tasks))

    async def _close(self, ws: _GatewaySocket, tasks: TaskGroup) -> None:
        """Close our side: 1000 (session over) on an operator stop, else 4000 (resumable).

        Called by the supervisor and by the reader as it ends, in either order:
        the first call chooses the code. Also stops discord.py's keep-alive
        thread, even when the socket is closed already.
        """
        if ws.closing is None:
            # The supervisor cancels the connection's task group before closing
            # on an abort, and only after closing on a watchdog expiry.
            ws.closing = 1000 if tasks.cancel_scope.cancel_called else 4000
        if ws.closing == 1000:
            self._resume = None
        with contextlib.suppress(Exception):
            await ws.close(code=ws.closing)


def _watching_for_ready(
    dispatch: Callable[..., Any], opened: anyio.Event, settled: anyio.Event
) -> Callable[..., None]:
    """``dispatch``, which also sets ``opened`` (and ``settled``) at READY or RESUMED."""

    def watched(event: str, /, *args: Any, **kwargs: Any) -> None:
        if event == "socket_event_type" and args and args[0] in ("READY", "RESUMED"):
            # Set before discord.py parses the event, but the waiter runs only
            # after this frame is handled, with the session in place.
            opened.set()
            settled.set()
        dispatch(event, *args, **kwargs)

    return watched


def _ending(ws: _GatewaySocket, exc: BaseException) -> object:
    """How a gateway connection ended, in the form the Discord table reads best."""
    if isinstance(exc, discord.ConnectionClosed):
        return exc  # 4004, 4010-4014: discord.py's own exception carries the code
    if ws.control is not None:
        return ws.control  # opcode 7 or 9, with 9's resumable flag
    if isinstance(exc.__context__, asyncio.TimeoutError):
        return CloseEvent(
            reason="no frame from the Discord gateway within discord.py's heartbeat_timeout",
            initiator=Initiator.local,
        )
    if ws._close_code is not None:
        # We closed first, and not on an opcode: discord.py's keep-alive heard
        # nothing for heartbeat_timeout and closed the socket with 4000.
        return CloseEvent(
            reason="discord.py's keep-alive heard nothing from the gateway and closed the socket",
            initiator=Initiator.local,
        )
    code = ws.socket.close_code
    return 1006 if code is None else code


def _resume_from(ws: _GatewaySocket) -> _Resume | None:
    """Resume the session a connection had (after opcode 9 with ``d`` false it has none)."""
    if ws.session_id is None:
        return None
    return _Resume(session=ws.session_id, sequence=ws.sequence, gateway=ws.gateway)


def _drop_login_session(client: discord.Client) -> None:
    """Detach the HTTP session a failed login left, so that the next login does not leak it.

    discord.py's ``static_login`` makes a new ``aiohttp.ClientSession`` on each
    call. Detaching leaves the connector (which the next session reuses) open.
    """
    session = getattr(client.http, "_HTTPClient__session", None)
    if isinstance(session, aiohttp.ClientSession) and not session.closed:
        session.detach()
