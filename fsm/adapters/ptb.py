"""python-telegram-bot, supervised: our own ``getUpdates`` long poll feeds the user's Application.

:class:`PTBTransport` takes the user's own ``telegram.ext.Application`` (build
it with ``.updater(None)``: its Updater is never started). PTB's network
retry loop lives in the Updater (``start_polling``), which retries every
error, a revoked token's 401 included, forever; this adapter polls with
``Bot.get_updates`` itself and lets the first error end the connection, as
the exception PTB raised (``InvalidToken``, ``Conflict``, ``RetryAfter``,
``NetworkError``...). The ``telegram`` channel's table decides what follows.

* **Connect** is the handshake that proves the token: ``Application.initialize()``
  the first time (it calls ``getMe``), ``getMe`` on every reconnect; then
  ``Application.start()`` once, which starts PTB's own update processing.
* **Updates** go onto ``Application.update_queue``; PTB's update fetcher
  runs the user's handlers from there, apart from the poll, so a handler that
  raises reaches PTB's error handlers and a slow one only lengthens the
  queue. The offset survives reconnects: no update is lost or seen twice.
* **Activity** for the watchdog is each answered poll (an empty one
  included): set ``watchdog`` above ``poll_timeout`` plus PTB's read timeout.
* ``aclose()`` (or leaving ``async with``) stops and shuts the Application down.

The token never reaches a log or an operator message: PTB writes it into
the ``InvalidToken`` that ``initialize()`` raises, so the adapter reports
the server's own answer underneath instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from anyio.abc import TaskGroup

from linkstate._errors import ArgumentError
from linkstate.adapters._connection import AdapterConnection
from linkstate.adapters._link import (
    DEFAULT_POLL_TIMEOUT,
    ClosingTransport,
    LibraryMissingError,
    poll_updates,
    polled_connection,
    readable_updates,
    whole_number,
)

try:
    from telegram import Update
    from telegram.error import InvalidToken, TelegramError
    from telegram.ext import Application
    from telegram.warnings import PTBUserWarning
except ImportError as exc:
    raise LibraryMissingError(__name__, "python-telegram-bot", "telegram") from exc

__all__ = ["DEFAULT_POLL_TIMEOUT", "PTBTransport"]

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


class PTBTransport(ClosingTransport):
    """A transport for one python-telegram-bot ``Application``, polled by the supervisor.

    Args:
        application: The user's Application, its handlers registered
            (``ApplicationBuilder().token(...).updater(None).build()``).
        poll_timeout: Seconds each long poll may be held open (``getUpdates`` ``timeout``).
        allowed_updates: The update types to receive; None keeps the bot's setting.

    Use it as ``async with PTBTransport(app) as transport:`` around the supervisor.

    """

    def __init__(
        self,
        application: AnyApplication,
        *,
        poll_timeout: int = DEFAULT_POLL_TIMEOUT,
        allowed_updates: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(application, Application):
            raise ArgumentError(
                f"PTBTransport takes a telegram.ext.Application, not {type(application).__name__}; "
                "build one with ApplicationBuilder().token(TOKEN).updater(None).build()"
            )
        self.application = application
        self.poll_timeout = whole_number("poll_timeout", poll_timeout, "seconds")
        self.allowed_updates = allowed_updates
        self._offset: int | None = None
        self._initialized = False

    async def connect(self, tasks: TaskGroup) -> AdapterConnection:
        """Prove the token (``getMe``), start the Application once, and start polling."""
        app = self.application
        if self._initialized:
            await app.bot.get_me()
        else:
            try:
                await app.initialize()
            except InvalidToken as exc:
                # PTB's own message repeats the token; the server's answer is underneath.
                cause = exc.__cause__
                raise (cause if isinstance(cause, InvalidToken) else InvalidToken()) from None
            self._initialized = True
        if not app.running:
            await app.start()
        connection = polled_connection()
        tasks.start_soon(self._poll, connection)
        return connection

    async def _poll(self, connection: AdapterConnection) -> None:
        await poll_updates(connection, self._fetch, self._deliver)

    async def _fetch(self) -> Sequence[Update]:
        bot = self.application.bot
        try:
            updates: tuple[Update, ...] = await bot.get_updates(
                offset=self._offset, timeout=self.poll_timeout, allowed_updates=self.allowed_updates
            )
        except TelegramError:
            raise
        except Exception:
            # PTB could not read the answer: read it raw, and skip the update it chokes on.
            kwargs = {"offset": self._offset, "timeout": 0, "allowed_updates": self.allowed_updates}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PTBUserWarning)  # "use Bot.get_updates"
                raw = await bot.do_api_request(
                    "getUpdates", api_kwargs={k: v for k, v in kwargs.items() if v is not None}
                )
            readable, offset = readable_updates(
                raw, lambda item: Update.de_json(item, bot), "python-telegram-bot"
            )
            if offset is None:
                raise
            self._offset = max(self._offset or 0, offset)
            return readable
        return updates

    async def _deliver(self, update: Update) -> None:
        self._offset = max(self._offset or 0, update.update_id + 1)
        await self.application.update_queue.put(update)

    async def aclose(self) -> None:
        """Stop the Application (it finishes the queued updates) and shut it down."""
        app = self.application
        if app.running:
            await app.stop()
        await app.shutdown()
        self._initialized = False
