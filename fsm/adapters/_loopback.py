"""The aiohttp server under every adapter's loopback stand-in for a platform.

aiohttp comes with discord.py and with slack_sdk's Socket Mode client, so a
stand-in costs no extra dependency. It listens on 127.0.0.1 only, on a free
port, and on exit closes the WebSockets still open before it stops, so that a
test never waits for a client that is not going to hang up.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Self

from aiohttp import web

from linkstate._errors import LinkstateError

__all__ = ["LoopbackError", "LoopbackServer", "json_response"]

LOOPBACK = "127.0.0.1"


class LoopbackError(LinkstateError, RuntimeError):
    """A loopback stand-in was used before it started, or started twice."""


def json_response(body: object, status: int = 200) -> web.Response:
    """A JSON answer whose Content-Type is exactly ``application/json``.

    discord.py decodes a body only under that exact type (not with aiohttp's
    ``; charset=utf-8``), and a real platform sends it so.
    """
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )


class LoopbackServer:
    """An HTTP and WebSocket server on 127.0.0.1; subclasses add the platform's routes."""

    def __init__(self) -> None:
        self.app = web.Application()
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._port = 0

    @property
    def port(self) -> int:
        """The port it listens on (after ``start``)."""
        if self._runner is None:
            raise LoopbackError(
                f"{type(self).__name__} has not started; use it as `async with ...:` first"
            )
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self.port}"

    def track(self, socket: web.WebSocketResponse) -> None:
        """Remember an open WebSocket so that ``stop`` closes it; ``forget`` it when it ends."""
        self._sockets.add(socket)

    def forget(self, socket: web.WebSocketResponse) -> None:
        """A WebSocket ended; ``stop`` need not close it."""
        self._sockets.discard(socket)

    async def start(self) -> None:
        """Listen on 127.0.0.1, on a free port."""
        if self._runner is not None:
            raise LoopbackError(f"{type(self).__name__} has started already; start it once")
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, LOOPBACK, 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Close the WebSockets still open, then stop listening."""
        for socket in tuple(self._sockets):
            await socket.close()
        self._sockets.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
