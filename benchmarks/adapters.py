"""What supervising a client library costs: updates per second, adapter against the library's loop.

Run: ``.venv/bin/python benchmarks/adapters.py [--size N]``

For python-telegram-bot, aiogram and matrix-nio, N updates wait on the
loopback server (``linkstate.testing.BotAPIServer`` / ``MatrixHomeserver``);
the clock runs from the start of the run until the user's handler has seen
all N. The baseline is the library's own loop in the same process, against
the same server: PTB's ``Updater.start_polling``, aiogram's
``Dispatcher.start_polling``, nio's ``sync_forever``. Ours is the same
client under a :class:`~linkstate.runtime.Supervisor` with the adapter. Both
sides pay the same HTTP round trips (100 updates per ``getUpdates``, every
event in one ``/sync``), so the ratio is what the adapter's poll loop,
handler tasks and supervision add. Best of five rounds, the two taking turns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import nio
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message
from harness import Table, fmt_ratio, parser, print_lines, target
from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from linkstate import load_channel
from linkstate.adapters.aiogram import AiogramTransport
from linkstate.adapters.nio import NioTransport
from linkstate.adapters.ptb import PTBTransport
from linkstate.runtime import Supervisor, Transport
from linkstate.testing import BotAPIServer, MatrixHomeserver

ROUNDS = 5
RATIO_CEILING = 1.5
"""Ours may take at most this many times the library's own loop."""


async def until_seen(seen: list[int], count: int, start: float) -> float:
    while seen[0] < count:
        await asyncio.sleep(0.001)
    return time.perf_counter() - start


async def supervised(channel: str, transport: Transport, seen: list[int], count: int) -> float:
    start = time.perf_counter()
    supervisor = Supervisor(load_channel(channel), transport, link_id="bench")
    running = asyncio.ensure_future(supervisor.run())
    took = await until_seen(seen, count, start)
    supervisor.abort()
    await running
    return took


def ptb_app(api: BotAPIServer, updater: bool, seen: list[int]) -> Any:
    builder = ApplicationBuilder().token(api.token).base_url(api.base_url)
    app = (builder if updater else builder.updater(None)).build()

    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen[0] += 1

    app.add_handler(MessageHandler(filters.TEXT, on_text))
    return app


async def ptb(count: int, ours: bool) -> float:
    seen = [0]
    async with BotAPIServer() as api:
        for n in range(count):
            api.send_message(f"m{n}")
        app = ptb_app(api, updater=not ours, seen=seen)
        if ours:
            async with PTBTransport(app, poll_timeout=1) as transport:
                return await supervised("telegram", transport, seen, count)
        start = time.perf_counter()
        await app.initialize()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        await app.start()
        took = await until_seen(seen, count, start)
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
        return took


async def aiogram(count: int, ours: bool) -> float:
    seen = [0]
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def on_message(message: Message) -> None:
        seen[0] += 1

    async with BotAPIServer() as api:
        for n in range(count):
            api.send_message(f"m{n}")
        bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
        if ours:
            async with AiogramTransport(dispatcher, bot, poll_timeout=1) as transport:
                return await supervised("telegram", transport, seen, count)
        start = time.perf_counter()
        polling = asyncio.ensure_future(
            dispatcher.start_polling(bot, polling_timeout=1, handle_signals=False)
        )
        took = await until_seen(seen, count, start)
        await dispatcher.stop_polling()
        await polling
        return took


async def matrix(count: int, ours: bool) -> float:
    seen = [0]
    async with MatrixHomeserver() as server:
        for n in range(count):
            server.send_message(f"m{n}")
        client = nio.AsyncClient(server.url, server.user_id)
        client.restore_login(server.user_id, "BENCH", server.access_token)

        async def on_text(room: nio.MatrixRoom, event: nio.RoomMessageText) -> None:
            seen[0] += 1

        client.add_event_callback(on_text, nio.RoomMessageText)
        if ours:
            async with NioTransport(client, sync_timeout=1000) as transport:
                return await supervised("matrix", transport, seen, count)
        start = time.perf_counter()
        syncing = asyncio.ensure_future(client.sync_forever(timeout=1000))
        took = await until_seen(seen, count, start)
        syncing.cancel()
        await asyncio.gather(syncing, return_exceptions=True)
        await client.close()
        return took


def best(
    run: Callable[[int, bool], Coroutine[Any, Any, float]], count: int, rounds: int
) -> tuple[float, float]:
    """The best time of the library's own loop and of ours; they take turns, so a noisy
    moment of the machine hits both alike."""
    own, ours = [], []
    for _ in range(rounds):
        own.append(asyncio.run(run(count, False)))
        ours.append(asyncio.run(run(count, True)))
    return min(own), min(ours)


def main() -> None:
    args = parser(__doc__.splitlines()[0], size=2000, size_help="updates per run").parse_args()
    logging.disable(logging.INFO)  # the libraries log every update at INFO
    table = Table(
        f"{args.size} updates to the user's handler, best of {ROUNDS} (taking turns)",
        ["library (its own loop)", "own loop", "adapter, supervised", "adapter / own"],
    )
    worst = 0.0
    for name, run, own in (
        ("python-telegram-bot", ptb, "Updater.start_polling"),
        ("aiogram", aiogram, "Dispatcher.start_polling"),
        ("matrix-nio", matrix, "sync_forever"),
    ):
        base, ours = best(run, args.size, ROUNDS)
        ratio = ours / base
        worst = max(worst, ratio)
        table.add(
            f"{name} ({own})",
            f"{args.size / base:,.0f} updates/s",
            f"{args.size / ours:,.0f} updates/s",
            fmt_ratio(ratio),
        )
    table.print()
    print_lines(
        [
            target(
                "worst adapter time / library's own loop",
                fmt_ratio(worst),
                f"<= {RATIO_CEILING:g}x",
                worst <= RATIO_CEILING,
            )
        ]
    )


if __name__ == "__main__":
    main()
