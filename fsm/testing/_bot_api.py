"""A loopback Telegram Bot API: ``getMe``, the ``getUpdates`` long poll, scripted errors.

Enough of the Bot API for python-telegram-bot and aiogram to run against it
unchanged, pointed at it through their own base-URL settings (PTB's
``base_url``, aiogram's ``TelegramAPIServer``). Requests are
``POST /bot<token>/<method>`` with form or JSON parameters, answers are
``{"ok": true, "result": ...}`` or the API's error body
``{"ok": false, "error_code": N, "description": ..., "parameters": ...}``
with HTTP status N, as Telegram sends them. ``getUpdates`` is a real long
poll: it holds the request up to its ``timeout`` until an update arrives, and
an ``offset`` confirms every update before it, so a client that reconnects
loses none and sees none twice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

import anyio

from linkstate._errors import ArgumentError
from linkstate.testing._http import HTTPRequest, HTTPResponse, LoopbackHTTP, number

__all__ = ["BotAPIServer"]

# The descriptions Telegram sends with each error (as client libraries log them).
_DESCRIPTIONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
    "instance is running",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
# A long poll never waits longer than this, whatever the client asks.
_MAX_POLL: Final = 50.0


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    description: str
    retry_after: int | None


class BotAPIServer(LoopbackHTTP):
    """A loopback Bot API on 127.0.0.1 for one bot token (use it as ``async with``).

    Args:
        token: The bot token it accepts; any other token gets 401, as
            Telegram answers a revoked one.

    Attributes:
        calls: Every method called, in order (``getMe``, ``getUpdates``...).

    """

    def __init__(self, token: str = "123456:loopback-TOKEN") -> None:
        super().__init__()
        self.token = token
        self.calls: list[str] = []
        self._revoked = False
        self._updates: list[dict[str, object]] = []
        self._failures: dict[str, deque[_Failure]] = {}
        self._changed = anyio.Event()

    @property
    def base_url(self) -> str:
        """python-telegram-bot's ``base_url``: ``http://127.0.0.1:PORT/bot`` (the token follows)."""
        return f"{self.url}/bot"

    def send_message(self, text: str, *, chat_id: int = 1, user_id: int = 1) -> int:
        """Queue a private text message to the bot as an update; returns its ``update_id``."""
        update_id = len(self._updates) + 1
        return self.send_raw(
            {
                "message": {
                    "message_id": update_id,
                    "date": 0,
                    "chat": {"id": chat_id, "type": "private"},
                    "from": {"id": user_id, "is_bot": False, "first_name": "loopback"},
                    "text": text,
                },
            }
        )

    def send_raw(self, payload: dict[str, object]) -> int:
        """Queue an update exactly as given (junk included), under the next ``update_id``."""
        update_id = len(self._updates) + 1
        self._updates.append({"update_id": update_id, **payload})
        self._notify()
        return update_id

    def fail(
        self,
        status: int,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        method: str = "getUpdates",
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error, a held poll included.

        ``description`` defaults to Telegram's own for the status (409 is the
        conflict between two pollers, 429 says "retry after N");
        ``retry_after`` adds ``parameters.retry_after``, as a 429 carries it.
        """
        if not 400 <= status <= 599:
            raise ArgumentError(f"status={status!r} is not an HTTP error status; use 400-599")
        text = description or _DESCRIPTIONS.get(status, "Error").format(retry_after=retry_after)
        queue = self._failures.setdefault(method, deque())
        queue.extend(_Failure(status, text, retry_after) for _ in range(times))
        self._notify()

    def revoke(self) -> None:
        """Revoke the token, as @BotFather's /revoke does: from now on every call is a 401."""
        self._revoked = True
        self._notify()

    def _notify(self) -> None:
        # Wake every held long poll; each looks again at what changed.
        self._changed.set()
        self._changed = anyio.Event()

    async def answer(self, request: HTTPRequest) -> HTTPResponse:
        """Answer ``POST /bot<token>/<method>``: ``getMe``, ``getUpdates``, ``deleteWebhook``."""
        prefix, _, method = request.path.rpartition("/")
        self.calls.append(method)
        if prefix != f"/bot{self.token}" or self._revoked:
            return _error(_Failure(401, _DESCRIPTIONS[401], None))
        if method == "getMe":
            return self._failure(method) or HTTPResponse(
                200,
                {
                    "ok": True,
                    "result": {
                        "id": int(self.token.partition(":")[0] or 0),
                        "is_bot": True,
                        "first_name": "Loopback",
                        "username": "loopback_bot",
                    },
                },
            )
        if method == "getUpdates":
            return await self._get_updates(request)
        if method == "deleteWebhook":  # PTB's Updater sends it before it polls
            return self._failure(method) or HTTPResponse(200, {"ok": True, "result": True})
        return _error(_Failure(404, _DESCRIPTIONS[404], None))

    def _failure(self, method: str) -> HTTPResponse | None:
        queue = self._failures.get(method)
        return _error(queue.popleft()) if queue else None

    async def _get_updates(self, request: HTTPRequest) -> HTTPResponse:
        offset = number(request.params.get("offset"), 0)
        limit = max(1, min(100, int(number(request.params.get("limit"), 100))))
        deadline = anyio.current_time() + min(_MAX_POLL, number(request.params.get("timeout"), 0.0))
        while True:
            failure = self._failure("getUpdates")
            if failure is not None or self._revoked:
                return failure or _error(_Failure(401, _DESCRIPTIONS[401], None))
            pending = [u for u in self._updates if int(str(u["update_id"])) >= offset]
            if pending or anyio.current_time() >= deadline:
                return HTTPResponse(200, {"ok": True, "result": pending[:limit]})
            with anyio.move_on_after(deadline - anyio.current_time()):
                await self._changed.wait()


def _error(failure: _Failure) -> HTTPResponse:
    body: dict[str, object] = {
        "ok": False,
        "error_code": failure.status,
        "description": failure.description,
    }
    if failure.retry_after is not None:
        body["parameters"] = {"retry_after": failure.retry_after}
    return HTTPResponse(failure.status, body)
