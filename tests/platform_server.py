"""A loopback "platform" that behaves like WhatsApp Web towards linked sessions.

One live session per account, at ``ws://127.0.0.1:PORT/ACCOUNT``. The newest
connection wins: the older one is closed with 4440 (WhatsApp's 440,
``connectionReplaced``, as the demo channel's table reads it). The platform
pings every session and drops one that has not answered for ``idle``
seconds with 1001 (going away), as a real service drops a frozen client.

It counts what the multi-host tests assert on: ``overlaps`` (a session opened
while another one of the same account was live: each one a 440 our own hosts
caused), sessions opened, and when each account was last without a session.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

__all__ = ["Platform"]


@dataclass(eq=False)
class _Session:
    account: str
    ws: WebSocketConnection
    opened: float


@dataclass
class Platform:
    """The server's state; run :meth:`serve` in a nursery (``await nursery.start``)."""

    idle: float = 1.0
    ping_every: float = 0.25
    live: dict[str, _Session] = field(default_factory=dict)
    overlaps: collections.Counter[str] = field(default_factory=collections.Counter)
    opened: int = 0
    dropped_idle: int = 0
    port: int = 0
    host: str = "127.0.0.1"
    # (account, wall-clock time) of every session that ended: the partition
    # test compares them with lease expiries, which are on the server's clock.
    ended: list[tuple[str, float]] = field(default_factory=list)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on a free port of ``host`` (127.0.0.1 by default); reports the port."""
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                lambda task_status: serve_websocket(
                    self._handle, self.host, 0, ssl_context=None, task_status=task_status
                )
            )
            self.port = server.port
            task_status.started(self.port)

    def url(self) -> str:
        """The base URL; a link's endpoint is ``url() + '/' + account``."""
        return f"ws://{self.host}:{self.port}"

    async def _handle(self, request: WebSocketRequest) -> None:
        account = request.path.strip("/")
        ws = await request.accept()
        session = _Session(account, ws, trio.current_time())
        self.opened += 1
        old = self.live.get(account)
        self.live[account] = session
        if old is not None:
            # Two of our hosts connected the same account: the fight we must never start.
            self.overlaps[account] += 1
            await _close(old.ws, 4440, "connectionReplaced: another client took the session")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keepalive, session, nursery.cancel_scope)
            try:
                while True:
                    await ws.get_message()
            except ConnectionClosed:
                pass
            finally:
                nursery.cancel_scope.cancel()
                self.ended.append((account, time.time()))
                if self.live.get(account) is session:
                    del self.live[account]

    async def _keepalive(self, session: _Session, scope: trio.CancelScope) -> None:
        try:
            await self._ping(session, scope)
        except ConnectionClosed:
            return

    async def _ping(self, session: _Session, scope: trio.CancelScope) -> None:
        while True:
            with trio.move_on_after(self.idle) as waited:
                await session.ws.ping()
            if waited.cancelled_caught:
                self.dropped_idle += 1
                if self.live.get(session.account) is session:
                    del self.live[session.account]
                await _close(session.ws, 1001, "no answer to pings")
                scope.cancel()
                return
            await trio.sleep(self.ping_every)


async def _close(ws: WebSocketConnection, code: int, reason: str) -> None:
    # A frozen client never answers the close frame: do not wait for it long.
    with trio.move_on_after(0.5):
        await ws.aclose(code, reason)
