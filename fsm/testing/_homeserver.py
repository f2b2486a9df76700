"""A loopback Matrix homeserver: the ``/sync`` long poll, with scripted errors and logouts.

Enough of the client-server API for matrix-nio to sync against it unchanged,
pointed at it through nio's own homeserver URL. ``GET
/_matrix/client/v3/sync`` checks the ``Authorization: Bearer`` token, holds
the request up to its ``timeout`` (milliseconds) until an event arrives, and
answers ``{"next_batch": "sN", "rooms": {"join": ...}}``: ``since`` resumes
after the events already seen, so a client that reconnects loses none.
Errors are the spec's bodies, ``{"errcode": "M_...", "error": ...}`` with
``soft_logout`` on ``M_UNKNOWN_TOKEN`` and ``retry_after_ms`` on
``M_LIMIT_EXCEEDED``, under the matching HTTP status.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import anyio

from linkstate._errors import ArgumentError
from linkstate.testing._http import HTTPRequest, HTTPResponse, LoopbackHTTP, number

__all__ = ["MatrixHomeserver"]

_SYNC: Final = "/_matrix/client/v3/sync"
_WHOAMI: Final = "/_matrix/client/v3/account/whoami"
_STATUS: Final = {
    "M_UNKNOWN_TOKEN": 401,
    "M_MISSING_TOKEN": 401,
    "M_LIMIT_EXCEEDED": 429,
    "M_FORBIDDEN": 403,
    "M_USER_DEACTIVATED": 403,
    "M_UNRECOGNIZED": 404,
    "M_UNKNOWN": 500,
}
# A long poll never waits longer than this, whatever the client asks.
_MAX_POLL: Final = 50.0


class MatrixHomeserver(LoopbackHTTP):
    """A loopback homeserver on 127.0.0.1 for one user and access token (use it as ``async with``).

    Args:
        user_id: The user the token belongs to.
        access_token: The token it accepts; any other gets ``M_UNKNOWN_TOKEN``.
        room_id: The one joined room messages arrive in.

    Attributes:
        syncs: How many ``/sync`` requests it received.

    """

    def __init__(
        self,
        user_id: str = "@bot:loopback",
        access_token: str = "loopback-access-token",
        room_id: str = "!room:loopback",
    ) -> None:
        super().__init__()
        self.user_id = user_id
        self.access_token = access_token
        self.room_id = room_id
        self.syncs = 0
        self._events: list[dict[str, object]] = []
        self._errors: deque[HTTPResponse] = deque()
        self._logout: HTTPResponse | None = None
        self._changed = anyio.Event()

    def send_message(self, body: str, *, sender: str = "@someone:loopback") -> str:
        """Post a text message in the room; returns its event id."""
        event_id = f"$event{len(self._events) + 1}"
        self._events.append(
            {
                "type": "m.room.message",
                "event_id": event_id,
                "sender": sender,
                "origin_server_ts": len(self._events) + 1,
                "content": {"msgtype": "m.text", "body": body},
            }
        )
        self._notify()
        return event_id

    def fail(
        self,
        errcode: str,
        error: str | None = None,
        *,
        status: int | None = None,
        soft_logout: bool | None = None,
        retry_after_ms: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` syncs (a held one included) with an error body.

        ``status`` defaults to the spec's for the errcode (``M_LIMIT_EXCEEDED``
        is 429, ``M_UNKNOWN_TOKEN`` 401).
        """
        if not errcode.startswith("M_"):
            raise ArgumentError(f"errcode={errcode!r} is not a Matrix errcode; they start with M_")
        answer = _error(errcode, error, status, soft_logout, retry_after_ms)
        self._errors.extend(answer for _ in range(times))
        self._notify()

    def logout(self, *, soft: bool) -> None:
        """Invalidate the access token: every request now gets ``M_UNKNOWN_TOKEN``.

        ``soft=True`` is an expired token whose device survives
        (``soft_logout: true``); ``soft=False`` a destroyed session.
        """
        reason = "Access token has expired" if soft else "Invalid access token passed."
        self._logout = _error("M_UNKNOWN_TOKEN", reason, None, soft, None)
        self._notify()

    def _notify(self) -> None:
        # Wake every held sync; each looks again at what changed.
        self._changed.set()
        self._changed = anyio.Event()

    async def answer(self, request: HTTPRequest) -> HTTPResponse:
        """Answer ``/sync`` and ``/account/whoami``; anything else is ``M_UNRECOGNIZED``."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if request.path == _SYNC:
            self.syncs += 1
        if not token:
            return _error("M_MISSING_TOKEN", "Missing access token", None, None, None)
        if token != self.access_token:
            return _error("M_UNKNOWN_TOKEN", "Unrecognised access token", None, False, None)
        if self._logout is not None:
            return self._logout
        if request.path == _WHOAMI:
            return HTTPResponse(200, {"user_id": self.user_id})
        if request.path == _SYNC:
            return await self._sync(request)
        return _error("M_UNRECOGNIZED", "Unrecognized request", None, None, None)

    async def _sync(self, request: HTTPRequest) -> HTTPResponse:
        since = str(request.params.get("since") or "s0")
        seen = int(number(since.removeprefix("s"), 0))
        deadline = anyio.current_time() + min(
            _MAX_POLL, number(request.params.get("timeout"), 0.0) / 1000
        )
        while True:
            if self._errors:
                return self._errors.popleft()
            if self._logout is not None:
                return self._logout
            fresh = self._events[seen:]
            if fresh or anyio.current_time() >= deadline:
                return HTTPResponse(200, self._batch(fresh))
            with anyio.move_on_after(deadline - anyio.current_time()):
                await self._changed.wait()

    def _batch(self, events: list[dict[str, object]]) -> dict[str, object]:
        body: dict[str, object] = {"next_batch": f"s{len(self._events)}"}
        if events:
            timeline = {"events": events, "limited": False, "prev_batch": "p0"}
            body["rooms"] = {
                "join": {self.room_id: {"timeline": timeline, "state": {"events": []}}}
            }
        return body


def _error(
    errcode: str,
    error: str | None,
    status: int | None,
    soft_logout: bool | None,
    retry_after_ms: int | None,
) -> HTTPResponse:
    body: dict[str, object] = {"errcode": errcode, "error": error or errcode}
    if soft_logout is not None:
        body["soft_logout"] = soft_logout
    if retry_after_ms is not None:
        body["retry_after_ms"] = retry_after_ms
    return HTTPResponse(status or _STATUS.get(errcode, 400), body)
