"""aiogram, supervised: our own ``getUpdates`` long poll feeds the user's Dispatcher.

:class:`AiogramTransport` takes the user's own ``Dispatcher`` and ``Bot``.
aiogram's retry loop is ``Dispatcher._listen_updates`` (behind
``start_polling`` / ``run_polling``): it logs every error, a revoked token's
401 included, and polls again after a backoff, forever. This adapter polls
with ``Bot.get_updates`` itself and lets the first error end the connection,
as the exception aiogram raised (``TelegramUnauthorizedError``,
``TelegramConflictError``, ``TelegramRetryAfter``, ``TelegramNetworkError``...).
The ``telegram`` channel's table decides what follows.

* **Connect** is the handshake that proves the token: ``Bot.get_me()`` (aiogram
  itself never calls it). The Dispatcher's startup hooks run once, after
  the first handshake, and its shutdown hooks on ``aclose()``, with the
  same keyword data ``start_polling`` passes (``dispatcher``, ``bots``...).
* **Updates** go to ``Dispatcher.feed_update``, each in a task of its own, as
  aiogram's own polling does (``handle_as_tasks``): ``feed_update`` runs the
  handlers inline and re-raises what they raise, so a raising handler is
  logged and a slow one never holds up the poll. A handler's answer that is
  a Telegram method is sent, as aiogram does. The offset survives reconnects.
* **Activity** for the watchdog is each answered poll (an empty one
  included): set ``watchdog`` above ``poll_timeout``.
* ``aclose()`` (or leaving ``async with``) waits for running handlers (then
  cancels them), runs the shutdown hooks and closes the bot's session.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any, Final

from anyio.abc import TaskGroup

from linkstate._errors import ArgumentError
from linkstate.adapters._connection import AdapterConnection
from linkstate.adapters._link import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_POLL_TIMEOUT,
    ClosingTransport,
    Handlers,
    LibraryMissingError,
    poll_updates,
    polled_connection,
    readable_updates,
    whole_number,
)

try:
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.exceptions import ClientDecodeError
    from aiogram.methods import TelegramMethod
    from aiogram.types import Update
except ImportError as exc:
    raise LibraryMissingError(__name__, "aiogram", "telegram") from exc

__all__ = ["AiogramTransport"]

_log: Final = logging.getLogger("linkstate.adapters")


class AiogramTransport(ClosingTransport):
    """A transport for one aiogram ``Bot`` and the ``Dispatcher`` that handles its updates.

    Args:
        dispatcher: The user's Dispatcher, its routers and handlers included.
        bot: The user's Bot (for a loopback or local Bot API, built with
            ``AiohttpSession(api=TelegramAPIServer.from_base(URL))``).
        poll_timeout: Seconds each long poll may be held open (``getUpdates`` ``timeout``).
        allowed_updates: The update types to receive; None asks the Dispatcher
            which ones its handlers use, as ``start_polling`` does.
        drain_timeout: Seconds ``aclose()`` waits for running handlers.
        workflow_data: Extra keyword data for the handlers and hooks, as
            ``start_polling(**kwargs)`` takes it.

    Use it as ``async with AiogramTransport(dp, bot) as transport:`` around the supervisor.

    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        poll_timeout: int = DEFAULT_POLL_TIMEOUT,
        allowed_updates: list[str] | None = None,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        **workflow_data: Any,
    ) -> None:
        if not isinstance(dispatcher, Dispatcher) or not isinstance(bot, Bot):
            raise ArgumentError(
                "AiogramTransport takes an aiogram Dispatcher and Bot, not "
                f"{type(dispatcher).__name__} and {type(bot).__name__}: "
                "AiogramTransport(Dispatcher(), Bot(TOKEN))"
            )
        self.dispatcher = dispatcher
        self.bot = bot
        self.poll_timeout = whole_number("poll_timeout", poll_timeout, "seconds")
        self.allowed_updates = (
            dispatcher.resolve_used_update_types() if allowed_updates is None else allowed_updates
        )
        self.drain_timeout = drain_timeout
        self.workflow_data: dict[str, Any] = {
            "dispatcher": dispatcher,
            "bots": [bot],
            **dispatcher.workflow_data,
            **workflow_data,
        }
        self.handlers = Handlers("aiogram")
        self._offset: int | None = None
        self._started = False

    async def connect(self, tasks: TaskGroup) -> AdapterConnection:
        """Prove the token (``getMe``), run the startup hooks once, and start polling."""
        await self.bot.get_me()
        if not self._started:
            self._started = True
            try:
                await self.dispatcher.emit_startup(bot=self.bot, **self.workflow_data)
            except Exception:
                # A startup hook is the user's code: its bug is logged, never a disconnect.
                _log.exception("an aiogram startup hook raised; polling starts all the same")
        connection = polled_connection()
        tasks.start_soon(self._poll, connection)
        return connection

    async def _poll(self, connection: AdapterConnection) -> None:
        await poll_updates(connection, self._fetch, self._deliver)

    async def _fetch(self) -> list[Update]:
        bot = self.bot
        try:
            return await bot.get_updates(
                offset=self._offset,
                timeout=self.poll_timeout,
                allowed_updates=self.allowed_updates,
                # A long poll outlives the session's own request timeout.
                request_timeout=int(bot.session.timeout + self.poll_timeout),
            )
        except ClientDecodeError:
            # aiogram could not read the answer: read it raw, and skip the update it chokes on.
            raw = await self._raw_updates()
            updates, offset = readable_updates(
                raw, lambda item: Update.model_validate(item, context={"bot": bot}), "aiogram"
            )
            if offset is None:
                raise
            self._offset = max(self._offset or 0, offset)
            return updates

    async def _raw_updates(self) -> object:
        """The pending updates as JSON, through the bot's aiohttp session (aiogram's default)."""
        session = self.bot.session
        if not isinstance(session, AiohttpSession):
            return None  # another session kind: nothing to skip with, the error stands
        form = {"timeout": "0", "allowed_updates": json.dumps(self.allowed_updates)}
        if self._offset is not None:
            form["offset"] = str(self._offset)
        url = session.api.api_url(token=self.bot.token, method="getUpdates")
        client = await session.create_session()
        async with client.post(url, data=form) as response:
            body = await response.json(content_type=None)
        return body.get("result") if isinstance(body, dict) else None

    async def _deliver(self, update: Update) -> None:
        self._offset = max(self._offset or 0, update.update_id + 1)
        self.handlers.submit(f"update {update.update_id}", partial(self._feed, update))

    async def _feed(self, update: Update) -> None:
        data = {key: value for key, value in self.workflow_data.items() if key != "dispatcher"}
        answer = await self.dispatcher.feed_update(self.bot, update, **data)
        if isinstance(answer, TelegramMethod):
            await self.dispatcher.silent_call_request(bot=self.bot, result=answer)

    async def aclose(self) -> None:
        """Wait for running handlers, run the shutdown hooks, close the bot's session."""
        await self.handlers.aclose(self.drain_timeout)
        try:
            if self._started:
                self._started = False
                await self.dispatcher.emit_shutdown(bot=self.bot, **self.workflow_data)
        finally:
            await self.bot.session.close()
