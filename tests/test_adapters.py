"""The adapters, each over its real client library, against a loopback server on 127.0.0.1.

python-telegram-bot and aiogram poll :class:`linkstate.testing.BotAPIServer`
through their own base-URL settings; matrix-nio syncs with
:class:`linkstate.testing.MatrixHomeserver` through its homeserver URL. Each
test runs a real :class:`~linkstate.runtime.Supervisor` on asyncio (the
libraries are asyncio-only) and asserts the connects, the sleeps, the final
state, the operator message, and what the user's own handlers received,
after a reconnect too. Waits are real but short: the policy's delays are
tenths of a second, and a 429's ``retry_after`` is the one-second minimum
Telegram can send.

No WhatsApp server can run locally, so neonize's tests drive the real
``NewAClient`` event dispatcher (``Event.execute``, the function whatsmeow
calls from Go) with serialized real protobuf events; only the Go session
(``connect``/``stop``) is replaced, by one that plays those events.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import nio
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from linkstate import ArgumentError, Jitter, ReconnectPolicy, TransitionRecord, load_channel
from linkstate.adapters._link import readable_updates
from linkstate.adapters.aiogram import AiogramTransport
from linkstate.adapters.nio import NioTransport
from linkstate.adapters.ptb import PTBTransport
from linkstate.runtime import Outcome, Supervisor, Transport
from linkstate.testing import BotAPIServer, MatrixHomeserver

T = TypeVar("T")

TELEGRAM = load_channel("telegram")
MATRIX = load_channel("matrix")
WHATSAPP = load_channel("whatsapp")
# No jitter: the first retry's delay is exactly `initial`, so a test can hold the sleep to it.
POLICY = ReconnectPolicy(initial=0.1, factor=2.0, cap=0.4, jitter=Jitter.none)  # 0.1 s: the floor
# Longer than the long polls below (Telegram's are whole seconds), as the docs tell users to set it.
WATCHDOG = 2.0
MATRIX_WATCHDOG = 0.6  # a /sync long poll is held 200 ms here
SHORT_WATCHDOG = 0.5  # for short polling (getUpdates timeout 0), answered at once


def run(main: Callable[[], Awaitable[T]], limit: float = 20.0) -> T:
    """Run ``main()`` on a fresh asyncio loop; a hang fails the test instead of the suite."""

    async def bounded() -> T:
        async with asyncio.timeout(limit):
            return await main()

    return asyncio.run(bounded())


def supervise(channel_name: str, transport: Transport, **kwargs: Any) -> Supervisor:
    channel = {"telegram": TELEGRAM, "matrix": MATRIX, "whatsapp": WHATSAPP}[channel_name]
    return Supervisor(channel, transport, link_id="bot", policy=POLICY, **kwargs)


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def closes(outcome: Outcome) -> list[TransitionRecord]:
    return [r for r in outcome.records if r.trigger in ("closed", "connect_failed")]


def waited(outcome: Outcome) -> float:
    """Seconds from the first close into ``reconnecting`` to the reconnect it scheduled,
    plus a millisecond: asyncio may run a timer up to its clock resolution early."""
    records = list(outcome.records)
    close = next(i for i, r in enumerate(records) if r.dst == "reconnecting")
    elapsed = next(r for r in records[close:] if r.trigger == "backoff_elapsed")
    return elapsed.t - records[close].t + 1e-3


@pytest.fixture
def handler_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.ERROR, logger="linkstate.adapters"):
        yield caplog


# -- python-telegram-bot ----------------------------------------------------------------------


def ptb_application(
    api: BotAPIServer, token: str | None = None
) -> Application[Any, Any, Any, Any, Any, Any]:
    return (
        ApplicationBuilder().token(token or api.token).base_url(api.base_url).updater(None).build()
    )


def test_ptb_revoked_token_stops_in_needs_relink_without_a_reconnect() -> None:
    async def main() -> tuple[Outcome, list[str]]:
        async with BotAPIServer() as api:
            api.revoke()
            async with PTBTransport(ptb_application(api), poll_timeout=1) as transport:
                outcome = await supervise("telegram", transport).run()
            return outcome, api.calls

    outcome, calls = run(main)
    assert (outcome.state, outcome.status, outcome.connects, outcome.opens) == (
        "needs_relink",
        401,
        1,
        0,
    )
    assert outcome.sleeps == 0 and calls == ["getMe"]
    assert outcome.message is not None and "bot token was refused" in outcome.message
    # PTB writes the token into the error initialize() raises; it must not reach the operator.
    assert "loopback-TOKEN" not in outcome.message


def test_ptb_a_transient_failure_reconnects_after_the_policy_delay_and_updates_keep_flowing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[str] = []

    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        received.append(update.message.text)
        if update.message.text == "boom":
            raise RuntimeError("a bug in the user's handler")

    async def main() -> Outcome:
        async with BotAPIServer() as api:
            app = ptb_application(api)
            app.add_handler(MessageHandler(filters.TEXT, on_text))
            api.send_message("before")
            api.send_message("boom")
            async with PTBTransport(app, poll_timeout=1) as transport:
                supervisor = supervise("telegram", transport, watchdog=WATCHDOG)
                running = asyncio.ensure_future(supervisor.run())
                await until(lambda: len(received) == 2)
                api.fail(502)  # the held poll gets it: PTB raises NetworkError
                api.send_message("after")
                await until(lambda: len(received) == 3)
                api.revoke()
                return await running

    outcome = run(main)
    assert received == ["before", "boom", "after"]  # each exactly once, across the reconnect
    assert (outcome.state, outcome.connects, outcome.opens, outcome.sleeps) == (
        "needs_relink",
        2,
        2,
        1,
    )
    first, last = closes(outcome)
    assert (first.dst, first.delay) == ("reconnecting", POLICY.initial)
    assert waited(outcome) >= POLICY.initial  # the reconnect came after the policy's delay
    assert (last.dst, last.status) == ("needs_relink", 401)
    # The raising handler went to PTB's error handling, never to the supervisor.
    assert any(
        "a bug in the user's handler" in r.getMessage() or r.exc_info for r in caplog.records
    )


def test_ptb_a_slow_handler_is_no_disconnect() -> None:
    received: list[str] = []

    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        received.append(update.message.text)
        if update.message.text == "slow":
            await asyncio.sleep(SHORT_WATCHDOG * 2)  # twice the watchdog window
            received.append("slow done")

    async def main() -> Outcome:
        async with BotAPIServer() as api:
            app = ptb_application(api)
            app.add_handler(MessageHandler(filters.TEXT, on_text))
            api.send_message("slow")
            # Short polling (timeout 0): answered at once, so a 0.5 s watchdog fits.
            async with PTBTransport(app, poll_timeout=0) as transport:
                supervisor = supervise("telegram", transport, watchdog=SHORT_WATCHDOG)
                running = asyncio.ensure_future(supervisor.run())
                await until(lambda: "slow done" in received)
                api.send_message("after")
                await until(lambda: "after" in received)
                api.revoke()
                return await running

    outcome = run(main)
    assert received == ["slow", "slow done", "after"]
    assert (outcome.state, outcome.connects, outcome.sleeps) == ("needs_relink", 1, 0)
    assert not [r for r in outcome.records if r.trigger == "watchdog_expired"]


def test_ptb_429_sleeps_for_retry_after_and_409_for_the_conflict_floor() -> None:
    delays: list[float | None] = []

    async def main() -> Outcome:
        async with (
            BotAPIServer() as api,
            PTBTransport(ptb_application(api), poll_timeout=1) as transport,
        ):
            supervisor = supervise("telegram", transport)

            def observe(record: TransitionRecord) -> None:
                if record.dst == "reconnecting":
                    delays.append(record.delay)
                    if len(delays) == 2:
                        supervisor.abort()  # the 30 s floor is proven by the delay itself

            supervisor.subscribe(observe)
            api.fail(429, retry_after=1)
            api.fail(409)
            return await supervisor.run()

    outcome = run(main)
    assert delays[0] is not None and delays[0] >= 1.0  # retry_after is the floor
    assert delays[1] is not None and delays[1] >= 30.0  # CONFLICT_FLOOR: the old poll has ended
    assert (outcome.state, outcome.connects, outcome.sleeps) == ("stopped", 2, 1)
    assert [r.status for r in closes(outcome)] == [429, 409]


# -- aiogram --------------------------------------------------------------------------------


def aiogram_bot(api: BotAPIServer) -> Bot:
    return Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))


def test_aiogram_revoked_token_stops_in_needs_relink_without_a_reconnect() -> None:
    async def main() -> tuple[Outcome, list[str]]:
        async with BotAPIServer() as api:
            api.revoke()
            async with AiogramTransport(Dispatcher(), aiogram_bot(api)) as transport:
                outcome = await supervise("telegram", transport).run()
            return outcome, api.calls

    outcome, calls = run(main)
    assert (outcome.state, outcome.status, outcome.connects, outcome.sleeps) == (
        "needs_relink",
        401,
        1,
        0,
    )
    assert calls == ["getMe"]
    assert outcome.message is not None and "@BotFather" in outcome.message


def test_aiogram_raising_and_slow_handlers_are_no_disconnect_and_updates_survive_a_429(
    handler_log: pytest.LogCaptureFixture,
) -> None:
    received: list[str] = []
    started: list[str] = []
    dispatcher = Dispatcher()

    @dispatcher.startup()
    async def on_startup(bot: Bot) -> None:
        started.append("startup")

    @dispatcher.shutdown()
    async def on_shutdown(bot: Bot) -> None:
        started.append("shutdown")

    @dispatcher.message()
    async def on_message(message: Message) -> None:
        assert message.text is not None
        received.append(message.text)
        if message.text == "boom":
            raise RuntimeError("a bug in the user's handler")
        if message.text == "slow":
            await asyncio.sleep(SHORT_WATCHDOG * 2)  # longer than the watchdog window
            received.append("slow done")

    async def main() -> Outcome:
        async with BotAPIServer() as api:
            for text in ("boom", "slow"):
                api.send_message(text)
            bot = aiogram_bot(api)
            async with AiogramTransport(dispatcher, bot, poll_timeout=0) as transport:
                supervisor = supervise("telegram", transport, watchdog=SHORT_WATCHDOG)
                running = asyncio.ensure_future(supervisor.run())
                await until(lambda: "slow done" in received)
                api.fail(429, retry_after=1)
                api.send_message("after")
                await until(lambda: "after" in received)
                api.revoke()
                return await running

    outcome = run(main)
    assert received == ["boom", "slow", "slow done", "after"]
    assert started == ["startup", "shutdown"]  # once each, across the reconnect
    assert [(r.status, r.dst) for r in closes(outcome)] == [
        (429, "reconnecting"),
        (401, "needs_relink"),
    ]
    assert (outcome.connects, outcome.sleeps) == (2, 1) and waited(outcome) >= 1.0
    assert not [r for r in outcome.records if r.trigger == "watchdog_expired"]
    assert "a bug in the user's handler" in handler_log.text


def test_aiogram_a_raising_startup_hook_is_logged_and_polling_starts(
    handler_log: pytest.LogCaptureFixture,
) -> None:
    received: list[str] = []
    dispatcher = Dispatcher()

    @dispatcher.startup()
    async def on_startup(bot: Bot) -> None:
        raise RuntimeError("a bug in the user's startup hook")

    @dispatcher.message()
    async def on_message(message: Message) -> None:
        received.append(str(message.text))

    async def main() -> Outcome:
        async with BotAPIServer() as api:
            api.send_message("hello")
            async with AiogramTransport(dispatcher, aiogram_bot(api), poll_timeout=1) as transport:
                supervisor = supervise("telegram", transport)
                running = asyncio.ensure_future(supervisor.run())
                await until(lambda: bool(received))
                api.revoke()
                return await running

    outcome = run(main)
    assert received == ["hello"]
    assert (outcome.state, outcome.connects, outcome.opens) == ("needs_relink", 1, 1)
    assert "a bug in the user's startup hook" in handler_log.text


# -- both Telegram libraries: an update the library cannot read -----------------------------

JUNK_UPDATES: list[dict[str, object]] = [
    {"message": {"chat": "not an object"}},
    {"message": {"message_id": "x", "date": None, "chat": {"id": []}, "text": 5}},
]


async def telegram_junk_run(library: str, received: list[str]) -> Outcome:
    async with BotAPIServer() as api:
        api.send_message("before")
        for junk in JUNK_UPDATES:
            api.send_raw(junk)
        api.send_message("after")
        transport: PTBTransport | AiogramTransport
        if library == "ptb":
            app = ptb_application(api)

            async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
                assert update.message is not None and update.message.text is not None
                received.append(update.message.text)

            app.add_handler(MessageHandler(filters.TEXT, on_text))
            transport = PTBTransport(app, poll_timeout=1)
        else:
            dispatcher = Dispatcher()

            @dispatcher.message()
            async def on_message(message: Message) -> None:
                assert message.text is not None
                received.append(message.text)

            transport = AiogramTransport(dispatcher, aiogram_bot(api), poll_timeout=1)
        async with transport:
            supervisor = supervise("telegram", transport)
            running = asyncio.ensure_future(supervisor.run())
            await until(lambda: "after" in received)
            api.revoke()
            return await running


@pytest.mark.parametrize("library", ["ptb", "aiogram"])
def test_an_update_the_library_cannot_read_is_skipped_not_a_disconnect(
    library: str, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[str] = []
    with caplog.at_level(logging.WARNING, logger="linkstate.adapters"):
        outcome = run(lambda: telegram_junk_run(library, received))
    assert received == ["before", "after"]
    # One connection: the junk neither closed it nor came back on the next poll.
    assert (outcome.state, outcome.connects, outcome.sleeps) == ("needs_relink", 1, 0)
    assert [r.status for r in closes(outcome)] == [401]
    name = "python-telegram-bot" if library == "ptb" else "aiogram"
    skipped = [r.getMessage() for r in caplog.records if "skipped update" in r.getMessage()]
    assert [m.partition(" (")[0] for m in skipped] == [
        f"skipped update 2: {name} cannot read it",
        f"skipped update 3: {name} cannot read it",
    ]


def test_readable_updates_takes_any_json_and_only_skips_past_real_update_ids() -> None:
    def decode(item: dict[str, object]) -> str:
        if "text" not in item:
            raise ValueError("no text")
        return str(item["text"])

    assert readable_updates("not a list", decode, "lib") == ([], None)
    assert readable_updates([1, None, {"update_id": True}], decode, "lib") == ([], None)
    raw = [{"update_id": 7}, {"update_id": 5, "text": "a"}, {"update_id": 2**70, "text": "b"}]
    assert readable_updates(raw, decode, "lib") == (["a", "b"], 2**70 + 1)


# -- matrix-nio -----------------------------------------------------------------------------


def nio_client(server: MatrixHomeserver, token: str | None = None) -> nio.AsyncClient:
    client = nio.AsyncClient(server.url, server.user_id)
    client.restore_login(server.user_id, "LOOPBACKDEVICE", token or server.access_token)
    return client


def test_nio_unknown_token_without_soft_logout_stops_in_needs_relink_without_a_reconnect() -> None:
    async def main() -> tuple[Outcome, int]:
        async with MatrixHomeserver() as server:
            server.logout(soft=False)
            async with NioTransport(nio_client(server), sync_timeout=200) as transport:
                outcome = await supervise("matrix", transport).run()
            return outcome, server.syncs

    outcome, syncs = run(main)
    assert (outcome.state, outcome.connects, outcome.opens, outcome.sleeps) == (
        "needs_relink",
        1,
        0,
        0,
    )
    assert syncs == 1
    assert outcome.message is not None and "session (device) was destroyed" in outcome.message


def test_nio_soft_logout_stops_with_the_keep_your_device_message() -> None:
    async def main() -> Outcome:
        async with MatrixHomeserver() as server:
            client = nio_client(server)
            async with NioTransport(client, sync_timeout=200) as transport:
                supervisor = supervise("matrix", transport)
                running = asyncio.ensure_future(supervisor.run())
                await until(lambda: supervisor.link.state == "open")
                server.logout(soft=True)
                return await running

    outcome = run(main)
    assert (outcome.state, outcome.connects, outcome.sleeps) == ("needs_relink", 1, 0)
    assert outcome.message is not None and "SAME device_id" in outcome.message


def test_nio_limit_exceeded_waits_retry_after_ms_and_callbacks_survive(
    handler_log: pytest.LogCaptureFixture,
) -> None:
    received: list[str] = []
    responses: list[str] = []

    async def on_text(room: nio.MatrixRoom, event: nio.RoomMessageText) -> None:
        received.append(event.body)
        if event.body == "boom":
            raise RuntimeError("a bug in the user's callback")
        if event.body == "slow":
            await asyncio.sleep(MATRIX_WATCHDOG * 1.5)
            received.append("slow done")

    async def on_sync(response: nio.SyncResponse) -> None:
        responses.append(type(response).__name__)

    async def main() -> Outcome:
        async with MatrixHomeserver() as server:
            client = nio_client(server)
            client.add_event_callback(on_text, nio.RoomMessageText)
            for body in ("boom", "slow"):
                server.send_message(body)
            async with NioTransport(client, sync_timeout=200) as transport:
                supervisor = supervise("matrix", transport, watchdog=MATRIX_WATCHDOG)
                running = asyncio.ensure_future(supervisor.run())
                # Added while the link runs: deferred like the others.
                client.add_response_callback(on_sync, nio.SyncResponse)
                await until(lambda: "slow done" in received)
                server.fail("M_LIMIT_EXCEEDED", retry_after_ms=300)
                server.send_message("after")
                await until(lambda: "after" in received)
                server.logout(soft=False)
                return await running

    outcome = run(main)
    assert received == ["boom", "slow", "slow done", "after"]
    assert responses and set(responses) == {"SyncResponse"}
    # A close for the 429 at all means nio did not sleep on it and retry by itself.
    limited, logged_out = closes(outcome)
    assert (limited.status, limited.dst) == (429, "reconnecting")
    assert limited.delay is not None and limited.delay >= 0.3  # retry_after_ms is the floor
    assert waited(outcome) >= limited.delay
    assert (logged_out.dst, outcome.state, outcome.connects, outcome.sleeps) == (
        "needs_relink",
        "needs_relink",
        2,
        1,
    )
    assert not [r for r in outcome.records if r.trigger == "watchdog_expired"]
    assert "a bug in the user's callback" in handler_log.text


def test_nio_client_without_a_token_fails_without_asking_the_server() -> None:
    async def main() -> tuple[Outcome, int]:
        async with MatrixHomeserver() as server:
            client = nio.AsyncClient(server.url, server.user_id)
            async with NioTransport(client) as transport:
                outcome = await supervise("matrix", transport).run()
            return outcome, server.syncs

    outcome, syncs = run(main)
    assert (outcome.state, outcome.verdict, outcome.connects, syncs) == ("failed", "fatal", 1, 0)
    assert outcome.message is not None and "access token" in outcome.message


# -- wrong arguments: one clear error each -------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: PTBTransport(object()),  # type: ignore[arg-type]
        lambda: AiogramTransport(object(), object()),  # type: ignore[arg-type]
        lambda: NioTransport(object()),
    ],
    ids=["ptb", "aiogram", "nio"],
)
def test_a_wrong_client_object_is_one_clear_error(build: Callable[[], object]) -> None:
    with pytest.raises(ArgumentError, match="takes a"):
        build()


def test_a_bad_poll_timeout_is_one_clear_error(tmp_path: Path) -> None:
    app = ApplicationBuilder().token("1:x").updater(None).build()
    with pytest.raises(ArgumentError, match="poll_timeout=-1"):
        PTBTransport(app, poll_timeout=-1)
    with pytest.raises(ArgumentError, match=r"sync_timeout=1\.5"):
        NioTransport(nio.AsyncClient("http://127.0.0.1:1", "@a:b"), sync_timeout=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("module", "hidden", "extra"),
    [
        ("ptb", "telegram", "telegram"),
        ("aiogram", "aiogram", "telegram"),
        ("nio", "nio", "matrix"),
        ("neonize", "neonize", "whatsapp"),
    ],
)
def test_an_adapter_without_its_library_names_the_extra(
    module: str, hidden: str, extra: str
) -> None:
    # None in sys.modules makes `import hidden` fail, as if it were not installed.
    probe = (
        f"import sys; sys.modules[{hidden!r}] = None\n"
        "from linkstate.adapters import LibraryMissingError\n"
        f"try:\n    import linkstate.adapters.{module}\n"
        "except LibraryMissingError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert f"pip install 'linkstate[{extra}]'" in done.stdout, done.stdout + done.stderr


# -- neonize: the real event dispatcher, a played Go session -----------------------------------

# neonize loads its Go library on import (seconds); test_channel_libraries imports it anyway.
import neonize.aioze.events as neonize_events  # noqa: E402
from neonize.aioze.client import NewAClient  # noqa: E402
from neonize.proto.Neonize_pb2 import ConnectFailureReason, Node, TemporaryBan  # noqa: E402

from linkstate.adapters.neonize import NeonizeTransport  # noqa: E402

Ev = neonize_events


def emit(client: NewAClient, event: Any) -> None:
    """Deliver ``event`` exactly as whatsmeow does: serialized, through ``Event.execute``."""
    data = event.SerializeToString()
    buffer = ctypes.create_string_buffer(data, len(data) or 1)
    code = neonize_events.EVENT_TO_INT[type(event)]
    client.event.execute(0, ctypes.addressof(buffer), len(data), code)


class PlayedSession:
    """Stands in for the Go session only: each ``connect()`` plays its script of real events.

    An exception in a script ends the session with it, as neonize's ``NeonizeError`` does.
    """

    def __init__(self, client: NewAClient, *scripts: list[Any]) -> None:
        self.client = client
        self.scripts = list(scripts)
        self.stops = 0
        self._stopped = asyncio.Event()
        client.connect = self.connect
        client.stop = self.stop

    async def connect(self) -> asyncio.Task[None]:
        # What neonize's connect() does first: events go to this loop.
        neonize_events.set_event_loop(asyncio.get_running_loop())
        self._stopped = asyncio.Event()
        script = self.scripts.pop(0)

        async def session() -> None:
            for item in script:
                await asyncio.sleep(0.01)
                if isinstance(item, BaseException):
                    raise item
                emit(self.client, item)
            await self._stopped.wait()

        task = asyncio.ensure_future(session())
        self.client.connect_task = task
        return task

    async def stop(self) -> None:
        self.stops += 1
        self._stopped.set()


@pytest.fixture
def whatsapp_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NewAClient:
    # neonize keeps the first event loop it ever saw; each test runs a loop of its own.
    monkeypatch.setattr(neonize_events, "event_global_loop", None)
    return NewAClient(str(tmp_path / "session.sqlite3"))


CONNECTED = Ev.ConnectedEv(status=True)
TERMINAL = [
    (Ev.StreamReplacedEv(), "needs_relink", 440),
    (Ev.LoggedOutEv(OnConnect=False, Reason=ConnectFailureReason.LOGGED_OUT), "needs_relink", 401),
    (
        Ev.TemporaryBanEv(Code=TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=3600),
        "failed",
        402,
    ),
    (
        Ev.ConnectFailureEv(
            Reason=ConnectFailureReason.CLIENT_OUTDATED, Message="update", Raw=Node(Tag="failure")
        ),
        "failed",
        405,
    ),
    (Ev.ClientOutdatedEv(), "failed", 405),
]


@pytest.mark.parametrize(
    ("event", "state", "status"), TERMINAL, ids=[type(e).__name__ for e, _, _ in TERMINAL]
)
def test_neonize_terminal_events_stop_without_a_reconnect(
    whatsapp_client: NewAClient, event: Any, state: str, status: int
) -> None:
    session = PlayedSession(whatsapp_client, [CONNECTED, event])
    outcome = run(supervise("whatsapp", NeonizeTransport(whatsapp_client)).run)
    assert (outcome.state, outcome.status, outcome.connects, outcome.opens) == (
        state,
        status,
        1,
        1,
    )
    assert outcome.sleeps == 0 and outcome.message
    assert session.stops == 1  # the Go session (and whatsmeow's own reconnects) ended


def test_neonize_a_close_before_connected_is_a_failed_handshake(
    whatsapp_client: NewAClient,
) -> None:
    PlayedSession(whatsapp_client, [Ev.StreamReplacedEv()])
    outcome = run(supervise("whatsapp", NeonizeTransport(whatsapp_client)).run)
    assert (outcome.state, outcome.connects, outcome.opens) == ("needs_relink", 1, 0)
    assert [r.trigger for r in closes(outcome)] == ["connect_failed"]
    assert outcome.message is not None and "session conflict" in outcome.message


@pytest.mark.parametrize(
    "transient",
    [Ev.DisconnectedEv(status=True), Ev.StreamErrorEv(Code="515", Raw=Node(Tag="stream:error"))],
    ids=["Disconnected", "StreamError515"],
)
def test_neonize_a_transient_close_reconnects_a_new_session_and_user_handlers_keep_running(
    whatsapp_client: NewAClient, transient: Any, handler_log: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def on_connected(client: NewAClient, event: Any) -> None:
        seen.append("connected")

    async def on_restored(client: NewAClient, event: Any) -> None:
        seen.append("restored")
        raise RuntimeError("a bug in the user's handler")

    # neonize's decorator form, `@client.event(ConnectedEv)`, untyped for mypy.
    whatsapp_client.event(Ev.ConnectedEv)(on_connected)
    whatsapp_client.event(Ev.KeepAliveRestoredEv)(on_restored)

    restored = Ev.KeepAliveRestoredEv()
    session = PlayedSession(
        whatsapp_client,
        [CONNECTED, restored, transient],
        [CONNECTED, restored, Ev.StreamReplacedEv()],
    )
    outcome = run(supervise("whatsapp", NeonizeTransport(whatsapp_client)).run)
    assert [(r.dst) for r in closes(outcome)] == ["reconnecting", "needs_relink"]
    first = closes(outcome)[0]
    assert first.delay is not None and waited(outcome) >= first.delay >= POLICY.initial
    assert (outcome.connects, outcome.opens, outcome.sleeps, session.stops) == (2, 2, 1, 2)
    assert seen == ["connected", "restored", "connected", "restored"]
    assert "a bug in the user's handler" in handler_log.text


def test_neonize_a_connect_timeout_stops_the_go_session_it_started(
    whatsapp_client: NewAClient,
) -> None:
    session = PlayedSession(whatsapp_client, [], [])  # WhatsApp never says Connected
    supervisor = supervise("whatsapp", NeonizeTransport(whatsapp_client), connect_timeout=0.2)

    def observe(record: TransitionRecord) -> None:
        if record.trigger == "connect_failed" and record.attempt >= 2:
            supervisor.abort()

    supervisor.subscribe(observe)
    outcome = run(supervisor.run)
    assert [r.trigger for r in closes(outcome)] == ["connect_failed", "connect_failed"]
    assert (outcome.state, outcome.connects, outcome.opens) == ("stopped", 2, 0)
    assert session.stops == 2  # no Go session outlived its attempt


def test_neonize_a_session_that_ends_by_itself_is_a_close(whatsapp_client: NewAClient) -> None:
    from neonize.exc import NeonizeError

    PlayedSession(
        whatsapp_client,
        [CONNECTED, NeonizeError("websocket: close 1006")],
        [CONNECTED, Ev.StreamReplacedEv()],
    )
    outcome = run(supervise("whatsapp", NeonizeTransport(whatsapp_client)).run)
    assert [r.dst for r in closes(outcome)] == ["reconnecting", "needs_relink"]
    assert outcome.connects == 2


def test_neonize_wrong_client_is_one_clear_error() -> None:
    with pytest.raises(ArgumentError, match="takes a neonize"):
        NeonizeTransport(object())
