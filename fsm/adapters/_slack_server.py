"""A loopback stand-in for Slack Socket Mode: ``apps.connections.open`` and the socket.

``POST /api/apps.connections.open`` checks the app token (``Authorization:
Bearer xapp-...``) and answers ``{"ok": true, "url": ...}``, or the scripted
error: ``{"ok": false, "error": ...}`` with HTTP 200, as Slack does, and for
``ratelimited`` HTTP 429 with ``Retry-After``. The URL leads to a WebSocket
that sends ``hello``, delivers the session's events as ``events_api``
envelopes and then ends as scripted: a ``disconnect`` frame, a close frame,
a dropped TCP connection, or nothing (it stays open). Point slack_sdk at it
with ``AsyncWebClient(base_url=server.api_url)``, its own setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from aiohttp import WSMsgType, web

from linkstate._errors import ArgumentError
from linkstate.adapters._loopback import LoopbackServer, json_response

__all__ = ["LoopbackSlack", "SocketSession"]

# Slack's Retry-After for a rate-limited apps.connections.open, in seconds.
DEFAULT_RETRY_AFTER: Final = 30

# Slack expects an envelope's acknowledgement within 3 seconds; a scripted
# ending waits for the session's acknowledgements, or this long.
ACK_DEADLINE: Final = 3.0


@dataclass(frozen=True, slots=True)
class SocketSession:
    """What the loopback Slack does on one connect attempt.

    Attributes:
        events: Event payloads (the ``event`` of an ``event_callback``), each
            delivered in an ``events_api`` envelope after ``hello``.
        error: ``apps.connections.open`` refuses with this error
            (``invalid_auth``, ``ratelimited``...) and no socket opens.
        disconnect: After the events (once the client acknowledged them),
            send a ``disconnect`` frame with this reason (``refresh_requested``, ``link_disabled``,
            ``too_many_websockets``...); the socket then stays open until the
            client closes it.
        close: After the events, close with this code.
        drop: After the events, drop the TCP connection (no close frame).
        retry_after: The ``Retry-After`` header sent with ``ratelimited``.
        frames: Text frames sent as they are after ``hello``, before the
            events: junk, for testing what a hostile peer does.

    """

    events: tuple[Mapping[str, object], ...] = ()
    error: str | None = None
    disconnect: str | None = None
    close: int | None = None
    drop: bool = False
    retry_after: int = DEFAULT_RETRY_AFTER
    frames: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        endings = [self.disconnect is not None, self.close is not None, self.drop]
        if sum(endings) > 1 or (self.error is not None and any(endings)):
            raise ArgumentError(
                f"{self!r} has more than one ending; give at most one of error=, "
                "disconnect=, close= and drop="
            )
        if self.close is not None and not 1000 <= self.close <= 4999:
            raise ArgumentError(f"SocketSession(close={self.close!r}): use a code in 1000-4999")


class LoopbackSlack(LoopbackServer):
    """Slack's Socket Mode endpoints on 127.0.0.1, for slack_sdk; an async context manager.

    Args:
        sessions: One script per connect attempt, in order; once they run out,
            a socket says hello and stays open.
        app_token: The app-level token it accepts; any other is ``invalid_auth``.

    Attributes:
        opens: ``apps.connections.open`` requests answered, refused ones included.
        connections: WebSockets opened.
        acks: Envelope ids the client acknowledged.
        pings: Pings the client sent (each answered with a pong).
        closes: The close code of each WebSocket, from the client's close frame
            (None when it sent none).

    """

    def __init__(
        self, sessions: Sequence[SocketSession] = (), *, app_token: str = "xapp-loopback"
    ) -> None:
        super().__init__()
        self.app_token = app_token
        self._script = list(sessions)
        self._pending: dict[str, SocketSession] = {}
        self._envelopes = 0
        self.opens = 0
        self.connections = 0
        self.acks: list[str] = []
        self.pings = 0
        self.closes: list[int | None] = []
        self.app.router.add_post("/api/apps.connections.open", self._open)
        self.app.router.add_get("/link/", self._socket)

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/``: pass it as ``AsyncWebClient(base_url=...)``."""
        return f"{self.base_url}/api/"

    async def _open(self, request: web.Request) -> web.Response:
        self.opens += 1
        if request.headers.get("Authorization") != f"Bearer {self.app_token}":
            return json_response({"ok": False, "error": "invalid_auth"})
        session = self._script.pop(0) if self._script else SocketSession()
        if session.error == "ratelimited":
            response = json_response({"ok": False, "error": "ratelimited"}, status=429)
            response.headers["Retry-After"] = str(session.retry_after)
            return response
        if session.error is not None:
            return json_response({"ok": False, "error": session.error})
        ticket = f"t{self.opens}"
        self._pending[ticket] = session
        return json_response(
            {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}"}
        )

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        session = self._pending.pop(request.query.get("ticket", ""), None)
        if session is None:
            # A URL is good for one connection, as Slack's are.
            return web.Response(status=401, text="unknown or used ticket")
        # Pings answered here, not by aiohttp, so that they can be counted.
        socket = web.WebSocketResponse(autoping=False)
        await socket.prepare(request)
        self.track(socket)
        self.connections += 1
        waiting = await self._greet(socket, session)
        acked = asyncio.Event()
        if not waiting:
            acked.set()
        ending = asyncio.ensure_future(self._end(request, socket, session, acked))
        try:
            async for message in socket:
                if message.type is WSMsgType.PING:
                    self.pings += 1
                    await socket.pong(message.data)
                if message.type is not WSMsgType.TEXT:
                    continue
                envelope = json.loads(message.data)
                if isinstance(envelope, dict) and "envelope_id" in envelope:
                    self.acks.append(str(envelope["envelope_id"]))
                    waiting.discard(str(envelope["envelope_id"]))
                    if not waiting:
                        acked.set()
        finally:
            ending.cancel()
            self.forget(socket)
            self.closes.append(socket.close_code)
        return socket

    async def _greet(self, socket: web.WebSocketResponse, session: SocketSession) -> set[str]:
        """Send hello and the session's events; return the envelope ids sent."""
        await _send(
            socket,
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "applink-loopback", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0LOOPBACK"},
            },
        )
        for frame in session.frames:
            await socket.send_str(frame)
        sent: set[str] = set()
        for event in session.events:
            self._envelopes += 1
            envelope_id = f"e{self._envelopes}"
            sent.add(envelope_id)
            await _send(
                socket,
                {
                    "type": "events_api",
                    "envelope_id": envelope_id,
                    "payload": {"type": "event_callback", "event": dict(event)},
                    "accepts_response_payload": False,
                    "retry_attempt": 0,
                    "retry_reason": "",
                },
            )
        return sent

    async def _end(
        self,
        request: web.Request,
        socket: web.WebSocketResponse,
        session: SocketSession,
        acked: asyncio.Event,
    ) -> None:
        """End as scripted once the events are acknowledged (or Slack's ack deadline passed)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(acked.wait(), ACK_DEADLINE)
        if session.disconnect is not None:
            await _send(
                socket,
                {
                    "type": "disconnect",
                    "reason": session.disconnect,
                    "debug_info": {"host": "applink-loopback"},
                },
            )
        elif session.close is not None:
            await socket.close(code=session.close, message=b"loopback close")
        elif session.drop and request.transport is not None:
            request.transport.close()


async def _send(socket: web.WebSocketResponse, frame: object) -> None:
    await socket.send_str(json.dumps(frame))
