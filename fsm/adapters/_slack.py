"""slack_sdk's Socket Mode client (its aiohttp one) as a transport.

Why more than ``auto_reconnect_enabled=False``: slack_sdk's ``connect()``
retries forever when opening a socket fails (an ``invalid_auth`` from
``apps.connections.open`` included, which it only logs), whatever that flag
says, and a ``disconnect`` frame makes it reconnect by itself, also whatever
the flag says. So the adapter does what ``connect()`` does, once per connect
attempt: it asks ``apps.connections.open`` for a socket URL (its
``SlackApiError`` is the close info), opens the WebSocket with the client's
own aiohttp session and settings, and runs the client's own
``receive_messages`` reader in the connection's task group. The client's
``connect_to_new_endpoint``, the one path by which it reconnects, is replaced
on the instance by a hand-off that leaves the decision to the supervisor,
and both auto-reconnect attributes are switched off.

The client's message processor (started by its constructor) keeps running
your ``socket_mode_request_listeners`` and ``message_listeners``, each call
in a task of its own with its exception logged, so a raising or slow
handler never ends a connection. Raw ``on_message_listeners`` are awaited
inline by the reader, as slack_sdk does: keep slow work out of them.

What the table gets, per ending: the ``disconnect`` frame itself (its
``reason`` is the code), the ``SlackApiError`` of ``apps.connections.open``,
a close frame's code, 1006 for a connection that dropped without one, and
aiohttp's error for a ping that got no pong.
"""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from typing import Final

import aiohttp
import anyio
from aiohttp import WSMessage, WSMsgType
from anyio.abc import TaskGroup
from slack_sdk.socket_mode.aiohttp import SocketModeClient

from linkstate._errors import ArgumentError
from linkstate._events import CloseEvent, Initiator, Phase
from linkstate.adapters._connection import AdapterConnection, close_quietly
from linkstate.runtime import ConnectFailed

__all__ = ["SlackSocketModeTransport"]

_log: Final = logging.getLogger("linkstate.adapters.slack")

# A close without a close frame (RFC 6455 §7.1.5).
ABNORMAL_CLOSURE: Final = 1006

# Only frames that may be a hello or a disconnect are parsed a second time
# (the client parses every frame for its listeners anyway): the substring test
# is cheap, and a message that merely mentions "hello" is parsed and let go.
_HELLO: Final = '"hello"'
_DISCONNECT: Final = '"disconnect"'


class SlackSocketModeTransport:
    """Connects a slack_sdk Socket Mode client, one WebSocket per connect attempt.

    The client is the user's own ``slack_sdk.socket_mode.aiohttp.SocketModeClient``,
    with its listeners; build it inside the running event loop (slack_sdk
    starts its message processor in the constructor) and never call its
    ``connect()``: the supervisor connects. Each attempt gets a fresh socket
    URL from ``apps.connections.open`` through the client's ``web_client``,
    so that client's settings apply (its ``base_url``, its retry handlers:
    the default one retries a refused connection once, inside the attempt).
    The connection counts as open at Slack's ``hello`` frame.

    Activity for the watchdog is every frame the client reads: messages,
    Slack's pings and the pongs to the client's own pings (every
    ``ping_interval`` seconds, 5 by default), so a quiet workspace keeps a
    healthy socket alive; ``watchdog=30`` is a reasonable setting.

    The adapter never closes the client: call ``await client.close()`` after
    ``run()`` returns (it stops the client's message processor for good).

    Args:
        client: The user's Socket Mode client (aiohttp flavour).

    """

    def __init__(self, client: SocketModeClient) -> None:
        if not isinstance(client, SocketModeClient):
            raise ArgumentError(
                f"SlackSocketModeTransport needs a slack_sdk.socket_mode.aiohttp."
                f"SocketModeClient, got {type(client).__name__}; build that client (inside "
                "the running event loop) and pass it"
            )
        self.client = client
        # Both: connect() resets the first from the second.
        client.auto_reconnect_enabled = False
        client.default_auto_reconnect_enabled = False
        # The one method through which the client reconnects (on a disconnect
        # frame, a close frame, or its session monitor): now a hand-off.
        setattr(client, "connect_to_new_endpoint", self._hand_off)  # noqa: B010 - a method

    async def _hand_off(self, force: bool = False) -> None:
        """Where slack_sdk would reconnect: the supervisor decides instead."""
        _log.debug("slack_sdk asked to reconnect (force=%s); the supervisor decides", force)

    async def connect(self, tasks: TaskGroup) -> AdapterConnection:
        """Get a socket URL, open the WebSocket and return it once Slack said hello."""
        client = self.client
        if client.closed:
            raise ArgumentError(
                "the SocketModeClient was closed (client.close() stops it for good); "
                "build a new client and a new SlackSocketModeTransport"
            )
        # SlackApiError (invalid_auth, ratelimited with Retry-After...) propagates:
        # it is this attempt's close info.
        response = await client.web_client.apps_connections_open(app_token=client.app_token)
        url = response.get("url")
        if not isinstance(url, str) or not url.startswith(("wss://", "ws://")):
            raise ConnectFailed(
                CloseEvent(
                    reason="apps.connections.open answered ok without a WebSocket URL",
                    phase=Phase.handshake,
                    initiator=Initiator.remote,
                )
            )
        old = client.current_session
        if old is not None and not old.closed:
            await old.close()
        if client.aiohttp_client_session.closed:
            client.aiohttp_client_session = aiohttp.ClientSession()
        ssl = client.web_client.ssl
        session = await client.aiohttp_client_session.ws_connect(
            url,
            autoping=False,
            heartbeat=client.ping_interval,
            proxy=client.proxy,
            ssl=ssl if ssl is not None else True,
        )
        client.wss_uri = url
        client.current_session = session
        client.stale = False
        hello, settled = anyio.Event(), anyio.Event()
        connection = AdapterConnection(lambda: _close(session))
        _watch(session, connection, hello, settled)
        try:
            # The client's first ping, as its connect() sends it; the pong
            # sets last_ping_pong_time.
            await session.ping(f"sdk-ping-pong:{time.time()}".encode())
            tasks.start_soon(client.receive_messages)
            await settled.wait()
        except BaseException:
            # Cut short (a connect timeout, an abort): close what it opened.
            await close_quietly(partial(_close, session))
            raise
        if not hello.is_set():
            # It ended before hello: a failed connect, whatever ended it.
            raise ConnectFailed(connection.raw)
        # Open, even if it has ended since: the supervisor then sees it close.
        return connection


def _watch(
    session: aiohttp.ClientWebSocketResponse,
    connection: AdapterConnection,
    hello: anyio.Event,
    settled: anyio.Event,
) -> None:
    """Read each frame the client's reader receives, on its way to the client.

    Sets ``hello`` (and ``settled``) at Slack's hello frame, ``settled`` alone
    when the connection ends first.
    """
    receive = session.receive

    async def watched(timeout: float | None = None) -> WSMessage:
        message = await receive(timeout)
        if _saw(message, session, connection) == "hello":
            hello.set()
            settled.set()
        elif connection.ended:
            settled.set()
        return message

    session.receive = watched  # type: ignore[method-assign]


def _saw(
    message: WSMessage, session: aiohttp.ClientWebSocketResponse, connection: AdapterConnection
) -> object:
    """Activity, or the ending (a disconnect frame, a close frame, an error, a drop).

    Returns the ``type`` of a hello or disconnect frame, else None.
    """
    kind = message.type
    if kind in (WSMsgType.TEXT, WSMsgType.PING, WSMsgType.PONG, WSMsgType.BINARY):
        connection.touch()
        frame = _control(message)
        if frame is None:
            return None
        if frame.get("type") == "disconnect":
            connection.end(frame)
        return frame.get("type")
    if kind is WSMsgType.CLOSE:
        connection.end(message.data if isinstance(message.data, int) else ABNORMAL_CLOSURE)
    elif kind is WSMsgType.ERROR:
        # aiohttp's heartbeat: no pong within half the ping interval.
        connection.end(message.data)
    elif kind in (WSMsgType.CLOSING, WSMsgType.CLOSED):
        code = session.close_code
        connection.end(ABNORMAL_CLOSURE if code is None else code)
    return None


def _control(message: WSMessage) -> dict[str, object] | None:
    """The frame as a dict, if it may be a hello or a disconnect frame."""
    data = message.data
    if message.type is not WSMsgType.TEXT or not isinstance(data, str):
        return None
    if _HELLO not in data and _DISCONNECT not in data:
        return None
    try:
        frame = json.loads(data)
    except (ValueError, RecursionError):
        # Not JSON, or nested past the parser's depth: no frame of ours. This
        # runs inside the client's reader, which must get the frame back.
        return None
    return frame if isinstance(frame, dict) else None


async def _close(session: aiohttp.ClientWebSocketResponse) -> None:
    """Close the WebSocket (a normal close frame); idempotent."""
    if not session.closed:
        await session.close()
