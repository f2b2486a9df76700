"""A loopback stand-in for Discord: the two login requests and the gateway.

It speaks as much of Discord's protocol as discord.py needs to log in, connect
and receive messages: ``GET /api/v10/users/@me`` (401 for a wrong token, which
discord.py raises as ``LoginFailure``), ``GET /api/v10/oauth2/applications/@me``,
and a gateway WebSocket that sends HELLO, answers each heartbeat with an ACK,
answers IDENTIFY with READY and RESUME with RESUMED, delivers the session's
messages as ``MESSAGE_CREATE`` and then ends the session as scripted.

discord.py has no per-client base URL: the HTTP base (``discord.http.Route.BASE``)
and the gateway (``DiscordWebSocket.DEFAULT_GATEWAY``) are class attributes,
so the stand-in points them at itself while it runs and restores them on
exit. One stand-in at a time per process, then.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import discord.gateway
import discord.http
import yarl
from aiohttp import WSMsgType, web

from linkstate._errors import ArgumentError
from linkstate.adapters._loopback import LoopbackServer, json_response

__all__ = ["GatewaySession", "LoopbackDiscord"]

# A session ends in one of these ways, or with a close frame of that code.
Ending = Literal["stay", "drop", "reconnect", "invalid_session", "invalid_session_resumable"]
_ENDINGS: Final = frozenset(
    {"stay", "drop", "reconnect", "invalid_session", "invalid_session_resumable"}
)

# Discord's default heartbeat interval, in milliseconds.
DEFAULT_HEARTBEAT_MS: Final = 41_250

_USER: Final = {
    "id": "100",
    "username": "loopback-bot",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
}
_AUTHOR: Final = {"id": "400", "username": "someone", "discriminator": "0", "avatar": None}


@dataclass(frozen=True, slots=True)
class GatewaySession:
    """What the loopback gateway does on one connection, once the client identified or resumed.

    Attributes:
        messages: Texts delivered as ``MESSAGE_CREATE`` events (direct messages).
        end: How the session ends: ``"stay"`` (open until the client closes),
            ``"drop"`` (the TCP connection drops: discord.py sees 1006),
            ``"reconnect"`` (opcode 7), ``"invalid_session"`` /
            ``"invalid_session_resumable"`` (opcode 9 with ``d`` false / true),
            or a close code such as 4004, 4014 or 4000.
        ready: Send READY (or RESUMED) first; False ends the session right
            after IDENTIFY, as Discord does with 4004 and 4010-4014.
        silent: Stop answering heartbeats once the session is set up: a
            zombie connection, which only a watchdog notices.
        frames: Text frames sent as they are after READY, before the
            messages: junk, for testing what a hostile gateway does.

    """

    messages: tuple[str, ...] = ()
    end: Ending | int = "stay"
    ready: bool = True
    silent: bool = False
    frames: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        end = self.end
        if isinstance(end, bool) or not (
            (isinstance(end, int) and 1000 <= end <= 4999) or end in _ENDINGS
        ):
            raise ArgumentError(
                f"GatewaySession(end={end!r}) is not an ending; use a close code "
                f"(1000-4999) or one of {sorted(_ENDINGS)}"
            )

    @classmethod
    def refuse(cls, code: int) -> GatewaySession:
        """Close with ``code`` right after IDENTIFY (4004 bad token, 4014 disallowed intents)."""
        return cls(end=code, ready=False)


class LoopbackDiscord(LoopbackServer):
    """Discord's login API and gateway on 127.0.0.1, for discord.py; an async context manager.

    Args:
        sessions: One script per gateway connection, in order; once they run
            out, a session stays open.
        token: The bot token the stand-in accepts, at login and in IDENTIFY.
        heartbeat_interval: Milliseconds, sent in HELLO.
        login_drops: The first this many login requests lose their connection
            without an answer (an outage of Discord's API). aiohttp sends a
            GET again once when its connection drops, so 2 fail one login.

    Attributes:
        connections: Gateway connections opened so far.
        logins: Login requests (``GET /users/@me``) answered, refused ones included.
        identifies: IDENTIFY payloads received.
        resumes: RESUME payloads received.
        heartbeats: Heartbeats received (each answered with an ACK).
        closes: The close code of each gateway connection, from the client's
            close frame (None when it sent none).

    """

    def __init__(
        self,
        sessions: Sequence[GatewaySession] = (),
        *,
        token: str = "loopback-token",
        heartbeat_interval: int = DEFAULT_HEARTBEAT_MS,
        login_drops: int = 0,
    ) -> None:
        super().__init__()
        self.token = token
        self.login_drops = login_drops
        self.heartbeat_interval = heartbeat_interval
        self._script = list(sessions)
        self._seq = 0
        self.connections = 0
        self.logins = 0
        self.identifies = 0
        self.resumes = 0
        self.heartbeats = 0
        self.closes: list[int | None] = []
        self._saved: tuple[str, yarl.URL] | None = None
        self.app.router.add_get("/api/v10/users/@me", self._me)
        self.app.router.add_get("/api/v10/oauth2/applications/@me", self._application)
        self.app.router.add_get("/{path:.*}", self._gateway)

    @property
    def gateway_url(self) -> str:
        """``ws://127.0.0.1:PORT/``, the gateway discord.py connects to while this runs."""
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        """Listen on 127.0.0.1, and point discord.py's HTTP base and gateway here."""
        await super().start()
        self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = f"{self.base_url}/api/v10"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

    async def stop(self) -> None:
        """Give discord.py its own HTTP base and gateway back, then stop."""
        if self._saved is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            self._saved = None
        await super().stop()

    # -- HTTP ------------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {self.token}"

    async def _me(self, request: web.Request) -> web.Response:
        self.logins += 1
        if self.logins <= self.login_drops and request.transport is not None:
            request.transport.close()
        if not self._authorised(request):
            return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return json_response(_USER)

    async def _application(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return json_response(
            {
                "id": "200",
                "name": "loopback",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": _USER,
                "verify_key": "00",
                "flags": 0,
            }
        )

    # -- the gateway -----------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.track(socket)
        self.connections += 1
        silent = False
        try:
            await self._send(
                socket, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval}}
            )
            async for message in socket:
                if message.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(message.data)
                op = payload.get("op")
                if op == 1:
                    self.heartbeats += 1
                    if not silent:
                        await self._send(socket, {"op": 11})
                elif op in (2, 6):
                    self.identifies += op == 2
                    self.resumes += op == 6
                    token = payload.get("d", {}).get("token")
                    session = self._next() if token == self.token else GatewaySession.refuse(4004)
                    silent = session.silent
                    await self._play(request, socket, session, "READY" if op == 2 else "RESUMED")
        finally:
            self.forget(socket)
            self.closes.append(socket.close_code)
        return socket

    def _next(self) -> GatewaySession:
        return self._script.pop(0) if self._script else GatewaySession()

    async def _send(self, socket: web.WebSocketResponse, payload: object) -> None:
        await socket.send_str(json.dumps(payload))

    async def _dispatch(self, socket: web.WebSocketResponse, event: str, data: object) -> None:
        self._seq += 1
        await self._send(socket, {"op": 0, "s": self._seq, "t": event, "d": data})

    async def _play(
        self,
        request: web.Request,
        socket: web.WebSocketResponse,
        session: GatewaySession,
        greeting: str,
    ) -> None:
        if session.ready:
            if greeting == "READY":
                await self._dispatch(
                    socket,
                    "READY",
                    {
                        "v": 10,
                        "user": _USER,
                        "guilds": [],
                        "session_id": f"session-{self.connections}",
                        "resume_gateway_url": f"ws://127.0.0.1:{self.port}/resume",
                        "application": {"id": "200", "flags": 0},
                    },
                )
            else:
                await self._dispatch(socket, "RESUMED", {})
            for frame in session.frames:
                await socket.send_str(frame)
            for text in session.messages:
                await self._dispatch(socket, "MESSAGE_CREATE", _message(self._seq + 1, text))
        end = session.end
        if end == "drop":
            # No close frame: the TCP connection just goes, which discord.py sees as 1006.
            if request.transport is not None:
                request.transport.close()
        elif end == "reconnect":
            await self._send(socket, {"op": 7, "d": None})
        elif end in ("invalid_session", "invalid_session_resumable"):
            await self._send(socket, {"op": 9, "d": end == "invalid_session_resumable"})
        elif isinstance(end, int):
            await socket.close(code=end, message=b"loopback close")


def _message(number: int, text: str) -> dict[str, object]:
    """A direct message to the bot, as the ``d`` of a ``MESSAGE_CREATE``."""
    return {
        "id": str(1000 + number),
        "channel_id": "300",
        "type": 0,
        "content": text,
        "author": _AUTHOR,
        "timestamp": "2026-01-01T00:00:00+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
    }
