"""Real client-library errors and events, classified as the libraries raise or emit them.

Each library is driven for real where it is cheap: python-telegram-bot,
aiogram, slack_sdk and matrix-nio talk to a canned HTTP API on 127.0.0.1,
``websockets``, aiohttp (under discord.py) and trio-websocket to a real
WebSocket server on 127.0.0.1. Where the library's own code path needs a
live platform (discord.py's gateway, whatsmeow), the object is built with
the library's own constructor, exactly as the library builds it.
The channels never import these libraries; only the tests do.
"""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trio
import trio_websocket
import websockets.exceptions
import websockets.sync.client
import websockets.sync.server
from aiogram import Bot as AiogramBot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramConflictError, TelegramRetryAfter
from aiogram.methods import GetUpdates
from discord.errors import ConnectionClosed as DiscordConnectionClosed
from discord.errors import LoginFailure, PrivilegedIntentsRequired
from discord.gateway import ReconnectWebSocket
from neonize.events import (
    ClientOutdatedEv,
    ConnectFailureEv,
    DisconnectedEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    StreamErrorEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.proto.Neonize_pb2 import ConnectFailureReason, Node
from nio import AsyncClient
from nio.responses import ErrorResponse, SyncError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse
from telegram import Bot as PTBBot
from telegram.error import Conflict, InvalidToken, RetryAfter, TimedOut
from websockets.datastructures import Headers
from websockets.http11 import Response

from linkstate._channel import Channel, load_channel
from linkstate._events import CloseEvent, Phase
from linkstate._verdicts import Rule, Verdict

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("discord", "slack_sdk", "telegram", "aiogram", "nio", "websockets", "neonize")

TELEGRAM_409_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
TELEGRAM_409_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
    "delete the webhook first"
)


def classify(channel: str, raw: object) -> tuple[CloseEvent, Rule]:
    return load_channel(channel).classify(raw)


# -- a canned HTTP API on 127.0.0.1 ------------------------------------------------------


class CannedAPI:
    """Answers every request whose path ends with a route with that route's canned response."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], object]] = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                status, headers, body = next(
                    (answer for route, answer in api.routes.items() if path.endswith(route)),
                    (404, {}, {"ok": False, "error": f"no route for {path}"}),
                )
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, suffix: str, status: int, body: object, **headers: str) -> None:
        self.routes[suffix] = (status, {k.replace("_", "-"): v for k, v in headers.items()}, body)


@pytest.fixture(scope="module")
def api_server() -> Iterator[CannedAPI]:
    canned = CannedAPI()
    thread = threading.Thread(target=canned.server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield canned
    finally:
        canned.server.shutdown()
        canned.server.server_close()
        thread.join()


@pytest.fixture
def api(api_server: CannedAPI) -> CannedAPI:
    """The module's canned API with no routes: each test states the answers it needs."""
    api_server.routes.clear()
    return api_server


# -- python-telegram-bot ------------------------------------------------------------------


def ptb_get_updates_error(api: CannedAPI) -> BaseException:
    async def poll() -> None:
        bot = PTBBot("123456:ABC-DEF", base_url=f"{api.url}/bot")
        await bot.get_updates(timeout=0)

    with pytest.raises(Exception) as caught:
        asyncio.run(poll())
    return caught.value


@pytest.mark.parametrize(
    ("status", "body", "kind", "rule", "verdict"),
    [
        (409, TELEGRAM_409_POLL, Conflict, "conflictOtherGetUpdates", Verdict.retry),
        (409, TELEGRAM_409_WEBHOOK, Conflict, "conflictWebhookActive", Verdict.fatal),
        (
            409,
            "Conflict: terminated by setWebhook request",
            Conflict,
            "conflictSetWebhook",
            Verdict.fatal,
        ),
        (401, "Unauthorized", InvalidToken, "unauthorized", Verdict.relink),
        (404, "Not Found", InvalidToken, "notFound", Verdict.fatal),
        (502, "Bad Gateway", Exception, "networkError", Verdict.retry),
    ],
)
def test_python_telegram_bot_errors_as_raised(
    api: CannedAPI, status: int, body: str, kind: type, rule: str, verdict: Verdict
) -> None:
    api.route("/getUpdates", status, {"ok": False, "error_code": status, "description": body})
    error = ptb_get_updates_error(api)
    assert isinstance(error, kind)
    event, found = classify("telegram", error)
    assert (found.name, found.verdict) == (rule, verdict)
    assert event.reason == body


# python-telegram-bot's own RetryAfter constructor reads its deprecated int property.
PTB_OWN_WARNING = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@PTB_OWN_WARNING
def test_python_telegram_bot_retry_after_as_raised(api: CannedAPI) -> None:
    api.route(
        "/getUpdates",
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 17",
            "parameters": {"retry_after": 17},
        },
    )
    error = ptb_get_updates_error(api)
    assert isinstance(error, RetryAfter)
    event, rule = classify("telegram", error)
    assert (event.status, rule.verdict, event.retry_after) == (429, Verdict.retry, 17.0)


@PTB_OWN_WARNING
def test_python_telegram_bot_constructed_errors() -> None:
    # The forms python-telegram-bot raises outside the request layer.
    rejected = InvalidToken("The token `123:x` was rejected by the server.")
    rejected.__cause__ = InvalidToken("Not Found")
    assert classify("telegram", rejected)[1].name == "notFound"
    assert classify("telegram", InvalidToken())[1].verdict is Verdict.relink
    assert classify("telegram", RetryAfter(5))[0].retry_after == 5.0
    timed_out = TimedOut()
    assert classify("telegram", timed_out)[1].verdict is Verdict.retry_now
    timed_out.__cause__ = ConnectionRefusedError()
    assert classify("telegram", timed_out)[1].name == "connectError"


# -- aiogram -------------------------------------------------------------------------


def aiogram_get_updates_error(api: CannedAPI) -> BaseException:
    async def poll() -> None:
        session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
        bot = AiogramBot("123456:ABC-DEF", session=session)
        try:
            await bot.get_updates(timeout=0)
        finally:
            # AiohttpSession.close() sleeps 250 ms for TLS shutdown; plain HTTP needs none.
            await (await session.create_session()).close()

    with pytest.raises(Exception) as caught:
        asyncio.run(poll())
    return caught.value


def test_aiogram_conflict_as_raised(api: CannedAPI) -> None:
    api.route(
        "/getUpdates", 409, {"ok": False, "error_code": 409, "description": TELEGRAM_409_POLL}
    )
    error = aiogram_get_updates_error(api)
    assert isinstance(error, TelegramConflictError)
    event, rule = classify("telegram", error)
    assert (event.status, rule.name, rule.verdict) == (
        409,
        "conflictOtherGetUpdates",
        Verdict.retry,
    )


def test_aiogram_retry_after_as_raised(api: CannedAPI) -> None:
    api.route(
        "/getUpdates",
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 9",
            "parameters": {"retry_after": 9},
        },
    )
    error = aiogram_get_updates_error(api)
    assert isinstance(error, TelegramRetryAfter)
    event, rule = classify("telegram", error)
    assert (event.status, rule.verdict, event.retry_after) == (429, Verdict.retry, 9.0)


@pytest.mark.parametrize(
    ("status", "rule"),
    [(401, "unauthorized"), (404, "notFound"), (500, "internalServerError")],
)
def test_aiogram_other_statuses_as_raised(api: CannedAPI, status: int, rule: str) -> None:
    api.route("/getUpdates", status, {"ok": False, "error_code": status, "description": "x"})
    assert classify("telegram", aiogram_get_updates_error(api))[1].name == rule


def test_aiogram_constructed_errors() -> None:
    conflict = TelegramConflictError(method=GetUpdates(), message=TELEGRAM_409_WEBHOOK)
    assert classify("telegram", conflict)[1].name == "conflictWebhookActive"
    flood = TelegramRetryAfter(method=GetUpdates(), message="Too Many Requests", retry_after=3)
    assert classify("telegram", flood)[0].retry_after == 3.0


# -- slack_sdk ---------------------------------------------------------------------------


def slack_open_error(api: CannedAPI) -> SlackApiError:
    client = WebClient(token="xapp-1-test", base_url=f"{api.url}/api/")
    with pytest.raises(SlackApiError) as caught:
        client.apps_connections_open(app_token="xapp-1-test")
    return caught.value


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        ("invalid_auth", Verdict.relink),
        ("token_revoked", Verdict.relink),
        ("link_disabled", Verdict.fatal),
        ("too_many_websockets", Verdict.retry),
    ],
)
def test_slack_api_error_as_raised(api: CannedAPI, error: str, verdict: Verdict) -> None:
    api.route("/apps.connections.open", 200, {"ok": False, "error": error})
    event, rule = classify("slack", slack_open_error(api))
    assert (event.code, rule.verdict) == (error, verdict)


def test_slack_ratelimited_reads_retry_after_header(api: CannedAPI) -> None:
    api.route(
        "/apps.connections.open", 429, {"ok": False, "error": "ratelimited"}, Retry_After="42"
    )
    event, rule = classify("slack", slack_open_error(api))
    assert (event.status, rule.name, event.retry_after) == (429, "ratelimited", 42.0)


def test_slack_api_error_constructed_like_slack_sdk() -> None:
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/apps.connections.open",
        req_args={},
        data={"ok": False, "error": "account_inactive"},
        headers={},
        status_code=200,
    )
    message = "The request to the Slack API failed."
    error = SlackApiError(message, response)  # type: ignore[no-untyped-call]
    assert classify("slack", error)[1].name == "account_inactive"


# -- matrix-nio ------------------------------------------------------------------------


def nio_sync(api: CannedAPI) -> object:
    async def sync() -> object:
        client = AsyncClient(api.url, "@bot:example.org", device_id="DEVICE")
        client.access_token = "secret"
        try:
            return await client.sync(timeout=0)
        finally:
            await client.close()

    return asyncio.run(sync())


@pytest.mark.parametrize(
    ("status", "body", "rule", "flags"),
    [
        (
            401,
            {"errcode": "M_UNKNOWN_TOKEN", "error": "expired", "soft_logout": True},
            "softLogout",
            {"soft_logout"},
        ),
        (401, {"errcode": "M_UNKNOWN_TOKEN", "error": "gone"}, "unknownToken", set()),
        (401, {"errcode": "M_MISSING_TOKEN", "error": "no token"}, "missingToken", set()),
        (403, {"errcode": "M_USER_DEACTIVATED", "error": "bye"}, "userDeactivated", set()),
        (404, {"errcode": "M_UNRECOGNIZED", "error": "what"}, "unrecognized", set()),
        (502, {"errcode": "M_UNKNOWN", "error": "proxy"}, "badGateway", set()),
    ],
)
def test_nio_sync_error_as_returned(
    api: CannedAPI, status: int, body: dict[str, object], rule: str, flags: set[str]
) -> None:
    api.route("/sync", status, body)
    response = nio_sync(api)
    assert isinstance(response, SyncError)
    event, found = classify("matrix", response)
    assert found.name == rule
    assert event.status == status  # read from nio's transport_response
    assert event.flags == flags


def test_nio_soft_and_hard_logout_get_different_messages() -> None:
    soft = SyncError.from_dict({"errcode": "M_UNKNOWN_TOKEN", "error": "x", "soft_logout": True})
    hard = SyncError.from_dict({"errcode": "M_UNKNOWN_TOKEN", "error": "x"})
    soft_rule, hard_rule = classify("matrix", soft)[1], classify("matrix", hard)[1]
    assert soft_rule.verdict is hard_rule.verdict is Verdict.relink
    assert "SAME device_id" in str(soft_rule.message)
    assert "destroyed" in str(hard_rule.message)


def test_nio_limit_exceeded_uses_retry_after_ms() -> None:
    limited = ErrorResponse.from_dict(
        {"errcode": "M_LIMIT_EXCEEDED", "error": "slow down", "retry_after_ms": 2500}
    )
    event, rule = classify("matrix", limited)
    assert (rule.name, event.retry_after) == ("limitExceeded", 2.5)


# -- websockets, aiohttp (discord.py) and trio-websocket against a real server ----------------


class ClosingServer:
    """A ``websockets`` server on 127.0.0.1 that closes every connection with ``code``."""

    def __init__(self, code: int, reason: str, reject: tuple[int, str] | None = None) -> None:
        def handler(connection: websockets.sync.server.ServerConnection) -> None:
            connection.close(code, reason)

        def process_request(
            connection: websockets.sync.server.ServerConnection, request: object
        ) -> Response | None:
            if reject is None:
                return None
            response = connection.respond(reject[0], reject[1])
            response.headers["Retry-After"] = "7"
            return response

        self.server = websockets.sync.server.serve(
            handler, "127.0.0.1", 0, process_request=process_request
        )
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ClosingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join()


def websockets_close_error(url: str) -> BaseException:
    with websockets.sync.client.connect(url) as ws, pytest.raises(Exception) as caught:
        ws.recv()
    return caught.value


@pytest.mark.parametrize(
    ("channel", "code", "verdict"),
    [
        ("websocket", 1008, Verdict.fatal),
        ("websocket", 1012, Verdict.retry),
        ("discord", 4004, Verdict.relink),
        ("discord", 4014, Verdict.fatal),
        ("discord", 4009, Verdict.retry_now),
    ],
)
def test_websockets_connection_closed_as_raised(channel: str, code: int, verdict: Verdict) -> None:
    with ClosingServer(code, "bye") as server:
        error = websockets_close_error(server.url)
    assert isinstance(error, websockets.exceptions.ConnectionClosed)
    event, rule = classify(channel, error)
    assert (event.status, rule.verdict, event.reason) == (code, verdict, "bye")


def test_websockets_connection_closed_without_frame_is_1006() -> None:
    error = websockets.exceptions.ConnectionClosedError(None, None)
    event, rule = classify("websocket", error)
    assert (event.status, rule.name) == (1006, "abnormalClosure")


@pytest.mark.parametrize(
    ("status", "verdict"), [(401, Verdict.relink), (404, Verdict.fatal), (429, Verdict.retry)]
)
def test_websockets_handshake_rejection_as_raised(status: int, verdict: Verdict) -> None:
    with (
        ClosingServer(1000, "", reject=(status, "no")) as server,
        pytest.raises(websockets.exceptions.InvalidStatus) as caught,
    ):
        websockets.sync.client.connect(server.url)
    event, rule = classify("websocket", caught.value)
    assert (event.status, rule.verdict, event.phase) == (status, verdict, Phase.handshake)
    assert event.retry_after == 7.0


def test_websockets_invalid_status_constructed() -> None:
    rejected = websockets.exceptions.InvalidStatus(
        Response(403, "Forbidden", Headers({"retry-after": "3"}))
    )
    event, rule = classify("websocket", rejected)
    assert (rule.name, event.retry_after) == ("forbidden", 3.0)


@pytest.mark.parametrize(
    ("code", "rule"),
    [(4004, "authenticationFailed"), (4013, "invalidIntents"), (4000, "unknownError")],
)
def test_discord_py_connection_closed_on_a_real_aiohttp_socket(code: int, rule: str) -> None:
    async def closed_by_server(url: str) -> DiscordConnectionClosed:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            message = await ws.receive()
            assert message.type is aiohttp.WSMsgType.CLOSE
            # discord.py's gateway does exactly this when it cannot handle the close.
            return DiscordConnectionClosed(ws, shard_id=0)

    with ClosingServer(code, "closed") as server:
        error = asyncio.run(closed_by_server(server.url))
    assert error.code == code
    assert classify("discord", error)[1].name == rule


def test_discord_py_exceptions_constructed_as_discord_py_does() -> None:
    # discord.py reads the socket's close_code only when no code is passed.
    no_frame: Any = type("Socket", (), {"close_code": None})()
    sharding = DiscordConnectionClosed(no_frame, shard_id=None, code=4011)
    assert classify("discord", sharding)[1].name == "shardingRequired"
    # code -1: discord.py's "unknown"
    unknown = DiscordConnectionClosed(no_frame, shard_id=None)
    assert unknown.code == -1
    assert classify("discord", unknown)[1].name == "noStatus"
    assert classify("discord", PrivilegedIntentsRequired(3))[1].name == "disallowedIntents"
    login = LoginFailure("Improper token has been passed.")
    assert classify("discord", login)[1].verdict is Verdict.relink
    assert classify("discord", ReconnectWebSocket(0))[1].name == "Reconnect"
    assert classify("discord", ReconnectWebSocket(0, resume=False))[1].name == "Invalid Session"


async def test_trio_websocket_close_and_rejection_as_raised() -> None:
    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        if request.path == "/reject":
            await request.reject(401, body=b"bad token")
            return
        ws = await request.accept()
        await ws.aclose(code=4004, reason="Authentication failed.")

    async with trio.open_nursery() as nursery:
        server = await nursery.start(trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None)
        port = server.port
        async with trio_websocket.open_websocket("127.0.0.1", port, "/", use_ssl=False) as ws:
            with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await ws.get_message()
        with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
            async with trio_websocket.open_websocket("127.0.0.1", port, "/reject", use_ssl=False):
                pass  # pragma: no cover - the handshake is rejected
        nursery.cancel_scope.cancel()
    event, rule = classify("discord", closed.value)
    assert (event.status, rule.verdict) == (4004, Verdict.relink)
    event, rule = classify("websocket", rejected.value)
    assert (event.status, rule.verdict, event.reason) == (401, Verdict.relink, "bad token")


# -- neonize (whatsmeow) events ------------------------------------------------------------


def failure(reason: str) -> int:
    return int(ConnectFailureReason.Value(reason))


def connect_failure(reason: str, message: str = "") -> ConnectFailureEv:
    return ConnectFailureEv(Reason=failure(reason), Message=message, Raw=Node(Tag="failure"))


# Every required field set, as whatsmeow fills them before neonize serialises the event.
@pytest.mark.parametrize(
    ("event", "status", "verdict"),
    [
        (StreamReplacedEv(), 440, Verdict.relink),
        (LoggedOutEv(OnConnect=False, Reason=failure("LOGGED_OUT")), 401, Verdict.relink),
        (LoggedOutEv(OnConnect=True, Reason=failure("MAIN_DEVICE_GONE")), 403, Verdict.relink),
        (LoggedOutEv(OnConnect=True, Reason=failure("GENERIC")), 401, Verdict.relink),
        (connect_failure("LOGGED_OUT", "401"), 401, Verdict.relink),
        (connect_failure("UNKNOWN_LOGOUT"), 406, Verdict.relink),
        (connect_failure("CLIENT_OUTDATED"), 405, Verdict.fatal),
        (connect_failure("BAD_USER_AGENT"), 409, Verdict.fatal),
        (connect_failure("TEMP_BANNED"), 402, Verdict.fatal),
        # A ConnectFailure event is permanent in whatsmeow, whatever its reason.
        (connect_failure("SERVICE_UNAVAILABLE"), None, Verdict.fatal),
        (connect_failure("INTERNAL_SERVER_ERROR"), None, Verdict.fatal),
        (connect_failure("GENERIC", "bad request"), 400, Verdict.fatal),
        (connect_failure("EXPERIMENTAL"), 501, Verdict.fatal),
        (TemporaryBanEv(Code=1, Expire=3600), 402, Verdict.fatal),
        (ClientOutdatedEv(), 405, Verdict.fatal),
        (KeepAliveTimeoutEv(ErrorCount=3, LastSuccess=1_700_000_000), 408, Verdict.retry),
        # Not permanent: whatsmeow reconnects after an unknown stream error.
        (StreamErrorEv(Code="516", Raw=Node(Tag="stream:error")), None, Verdict.retry),
        (StreamErrorEv(Code="401", Raw=Node(Tag="stream:error")), None, Verdict.retry),
        (DisconnectedEv(status=True), None, Verdict.retry),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, (int, Verdict)) else None,
)
def test_neonize_events(event: object, status: int | None, verdict: Verdict) -> None:
    # neonize hands these over as parsed protobuf messages; round-trip like it does.
    parsed = type(event).FromString(event.SerializeToString())  # type: ignore[attr-defined]
    found_event, rule = classify("whatsapp", parsed)
    assert (found_event.status, rule.verdict) == (status, verdict)


def cat_refresh_error(error: str) -> object:
    """whatsmeow's CATRefreshError as neonize would deliver it: a ``neonize`` protobuf message.

    neonize 0.5 has no such message yet (its Go side does not forward the event), so the
    message class is built with protobuf's own descriptor pool, under neonize's package.
    """
    from google.protobuf import (  # type: ignore[import-untyped]  # no stubs in the libs extra
        descriptor_pb2,
        descriptor_pool,
        message_factory,
    )

    file = descriptor_pb2.FileDescriptorProto(name="cat_refresh.proto", package="neonize")
    message = file.message_type.add(name="CATRefreshError")
    message.field.add(
        name="Error",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("neonize.CATRefreshError"))
    return cls(Error=error)


def test_neonize_connect_failure_without_a_reason_is_fatal() -> None:
    # neonize's encoder has no enum value for 413, 414, 415 or 418 and leaves Reason unset.
    event, rule = classify("whatsapp", ConnectFailureEv(Message="415", Raw=Node(Tag="failure")))
    assert (event.status, rule.name, rule.verdict) == (None, "connectFailure", Verdict.fatal)


def test_neonize_cat_refresh_error_is_relink() -> None:
    event, rule = classify("whatsapp", cat_refresh_error("refresh failed: 401"))
    assert (event.code, rule.name, rule.verdict) == (
        "cat_refresh_error",
        "catRefreshError",
        Verdict.relink,
    )
    assert "refresh failed: 401" in event.reason


def test_every_permanent_whatsmeow_event_stops_the_link() -> None:
    # whatsmeow types/events/events.go: the PermanentDisconnect implementations.
    permanent = [
        StreamReplacedEv(),
        LoggedOutEv(OnConnect=True, Reason=failure("LOGGED_OUT")),
        ClientOutdatedEv(),
        cat_refresh_error("x"),
        TemporaryBanEv(Code=1, Expire=60),
        *(connect_failure(name) for name in ConnectFailureReason.DESCRIPTOR.values_by_name),
    ]
    for event in permanent:
        assert classify("whatsapp", event)[1].verdict.terminal, event


def test_neonize_stream_replaced_message_says_session_conflict() -> None:
    _, rule = classify("whatsapp", StreamReplacedEv())
    assert "session conflict" in str(rule.message)


# -- the libraries stay optional ----------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((ROOT / "channels").glob("*.py")), ids=lambda p: p.name)
def test_channels_import_no_client_library(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
    assert not imported & set(LIBRARIES)


def test_loading_every_channel_imports_no_client_library() -> None:
    script = (
        "import sys\n"
        "from linkstate import available_channels, load_channel\n"
        "for name in available_channels(): load_channel(name).classify({'op': 7})\n"
        f"print(sorted(set({LIBRARIES!r}) & {{m.split('.')[0] for m in sys.modules}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"


def test_every_bundled_channel_is_a_channel() -> None:
    for name in ("discord", "slack", "telegram", "matrix", "whatsapp"):
        assert isinstance(load_channel(name), Channel)


def test_python_telegram_bot_timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    # With PTB_TIMEDELTA set, python-telegram-bot 22 gives retry_after as a timedelta.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    event, rule = classify("telegram", RetryAfter(dt.timedelta(seconds=90)))
    assert (rule.name, event.retry_after) == ("tooManyRequests", 90.0)
