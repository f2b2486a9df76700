"""Plain WebSocket (RFC 6455): a close-code table and a transport for trio and asyncio.

The transport speaks the protocol with wsproto (sans-I/O) over anyio streams,
so the same code runs on both back ends the runtime supports; TLS (``wss://``)
comes from anyio's TLS stream.

How closes arrive: the transport's :class:`WebSocketClosed` carries the close
``code`` and ``reason``; 1005, 1006 and 1015 are never sent on the wire, they
are reported locally (a TCP drop is 1006). A peer that breaks the protocol (a
close code that must never be on the wire, such as 999, 1005 or 5000; a
control frame over 125 bytes; text that is not UTF-8; a message over
``max_message_size``) makes our side fail the connection, answering 1002, 1007
or 1009: that is :class:`WebSocketProtocolError`, read as a local close
without a status, so it is retried with backoff and left to flap detection.
Only a code the peer really sent means what the table says. A handshake the server refuses
raises :class:`WebSocketRejected` with the HTTP ``status_code`` and ``headers``
(``Retry-After`` among them); any other handshake failure is a
:class:`WebSocketHandshakeError` (its cause is the network error).
:func:`extract` reads these into one :class:`linkstate.CloseEvent`, and reads
trio-websocket's and the ``websockets`` library's exceptions the same way
(by class name, without importing either): a gateway may hand us those.

Close codes (1000-4999) and handshake HTTP statuses (100-599) cannot collide,
so one table holds both. Codes 3000-4999 belong to the application on top of
the socket, except the three the IANA registry assigns (3000 Unauthorized is
``relink``, 3003 Forbidden ``fatal``, 3008 Timeout ``retry``): this generic
table retries the others (flap detection and the budget
escalate), and a channel built on it adds rows of its own.

Transport liveness: :class:`WebSocketTransport` pings every
``ping_interval`` seconds. Every frame received (message, ping or pong)
counts as activity for the supervisor's watchdog, so a quiet but healthy
socket never trips it.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Final
from urllib.parse import SplitResult, urlsplit

import anyio
from anyio.abc import ByteStream, TaskGroup
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from linkstate import ArgumentError, LinkstateError
from linkstate._channel import Channel
from linkstate._events import CloseEvent, Initiator, Phase, normalise, read_safely
from linkstate._policy import Jitter, ReconnectPolicy
from linkstate._verdicts import CloseTable, Rule, Verdict
from linkstate.channels._native import websockets_error
from linkstate.plugin import get, is_a, json_text, retry_after_header, text

__all__ = [
    "CHANNEL",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "POLICY",
    "SERVICE_RESTART_DELAY",
    "TABLE",
    "TRY_AGAIN_LATER_LIMIT",
    "WebSocketClosed",
    "WebSocketConnection",
    "WebSocketHandshakeError",
    "WebSocketProtocolError",
    "WebSocketRejected",
    "WebSocketTransport",
    "extract",
]

_STOPPED: Final = "Monitoring of this link has stopped."

SERVICE_RESTART_DELAY: Final = (5.0, 30.0)
"""Seconds: the window a reconnect after 1012 (Service Restart) is drawn from, uniformly."""
TRY_AGAIN_LATER_LIMIT: Final = 3
"""1013 (Try Again Later) that many times in a row is ``fatal``: come back on a user's action."""

# One row per close code or handshake status, from RFC 6455 section 7.4.1 and
# the IANA registry of close codes (1012-1014, 3000, 3003, 3008). Rules: every code the RFC
# defines has a row; fatal and relink rows say what to change; no status (a
# network error, a timeout) and unknown codes are retried, so escalation is
# left to flap detection.
TABLE: Final = CloseTable(
    channel="websocket",
    rules=(
        Rule(
            Verdict.retry,
            "normalClosure",
            "the server ended the connection",
            status=1000,
            transient=True,
        ),
        Rule(Verdict.retry, "goingAway", "the server is going away", status=1001, transient=True),
        Rule(
            Verdict.retry,
            "noStatusReceived",
            "a close frame without a code",
            status=1005,
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "abnormalClosure",
            "the TCP connection dropped",
            status=1006,
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "internalError",
            "the server hit an internal error",
            status=1011,
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "badGateway",
            "a gateway got a bad upstream response",
            status=1014,
            transient=True,
        ),
        # 1012 Service Restart, registered by the hybi message "[hybi] Additional
        # WebSocket Close Error Codes" (IETF hybi archive msg09670, which the IANA
        # registry cites): "a client may reconnect, and if it chooses to do, should
        # reconnect using a randomized delay of 5 - 30s". So a delay window, not
        # the policy's schedule: a restarted fleet comes back spread over 25 s.
        Rule(
            Verdict.retry,
            "serviceRestart",
            "the server is restarting; its registration asks for a randomised delay",
            status=1012,
            min_delay=SERVICE_RESTART_DELAY[0],
            max_delay=SERVICE_RESTART_DELAY[1],
            transient=True,
        ),
        # 1013 Try Again Later, the same registration: "a client should only connect
        # to a different IP (when there are multiple for the target) or reconnect to
        # the same IP upon user action". We cannot pick another IP, but the name may
        # resolve to one, and a load balancer may send us elsewhere: two retries at
        # least 30 s apart, then the third in a row stops for the user action.
        Rule(
            Verdict.retry,
            "tryAgainLater",
            "the server is overloaded; reconnect elsewhere or on user action (its registration)",
            status=1013,
            min_delay=30.0,
            escalate_after=TRY_AGAIN_LATER_LIMIT,
            transient=True,
            message=(
                "WebSocket close {status} (try again later) on link {link}, "
                f"{TRY_AGAIN_LATER_LIMIT} times in a row: the server is overloaded and "
                "asks clients to come back only on a user's action. Check the server's "
                f"load or status page, then run `{{reset_command}}`. {_STOPPED}"
            ),
        ),
        Rule(
            Verdict.fatal,
            "protocolError",
            "the peer saw a protocol error",
            status=1002,
            message=(
                "WebSocket close {status} (protocol error) on link {link}: {reason}. Client and "
                f"server disagree on the protocol; fix or upgrade one of them, then run "
                f"`{{reset_command}}`. {_STOPPED}"
            ),
        ),
        Rule(
            Verdict.fatal,
            "unsupportedData",
            "the peer cannot accept this kind of data",
            status=1003,
            message=(
                "WebSocket close {status} (unsupported data) on link {link}: {reason}. Send "
                "the message type the server expects, then run `{reset_command}`. "
                f"{_STOPPED}"
            ),
        ),
        Rule(
            Verdict.fatal,
            "invalidPayload",
            "a message was not valid for its type (bad UTF-8)",
            status=1007,
            message=(
                "WebSocket close {status} (invalid payload) on link {link}: {reason}. Fix the "
                f"encoding of what the client sends, then run `{{reset_command}}`. "
                f"{_STOPPED}"
            ),
        ),
        Rule(
            Verdict.fatal,
            "policyViolation",
            "the server's policy forbids this client or message",
            status=1008,
            message=(
                "WebSocket close {status} (policy violation) on link {link}: {reason}. The "
                "server refuses this client; check its credentials, origin and what it sends, "
                f"then run `{{reset_command}}`. {_STOPPED}"
            ),
        ),
        Rule(
            Verdict.fatal,
            "messageTooBig",
            "a message exceeded the peer's size limit",
            status=1009,
            message=(
                "WebSocket close {status} (message too big) on link {link}: {reason}. Send "
                "smaller messages or raise the limit on the receiving side, then run "
                f"`{{reset_command}}`. {_STOPPED}"
            ),
        ),
        Rule(
            Verdict.fatal,
            "mandatoryExtension",
            "the server did not negotiate an extension the client requires",
            status=1010,
            message=(
                "WebSocket close {status} (mandatory extension) on link {link}: {reason}. "
                "Configure the client and server to agree on extensions, then run "
                f"`{{reset_command}}`. {_STOPPED}"
            ),
        ),
        Rule(
            Verdict.fatal,
            "tlsHandshake",
            "the TLS handshake failed",
            status=1015,
            message=(
                "WebSocket close {status} (TLS handshake failure) on link {link}: {reason}. "
                "Fix the certificate or TLS settings, then run `{reset_command}`. "
                f"{_STOPPED}"
            ),
        ),
        # Handshake answers other than 101: RFC 6455 section 4.1 has the client
        # handle them per HTTP's procedures, so each status means what HTTP says
        # (RFC 9110); 401 and 403 are credentials a person must renew.
        Rule(
            Verdict.fatal,
            "badRequest",
            "the server rejected the handshake request (HTTP 400)",
            status=400,
            message=(
                "WebSocket handshake rejected with HTTP {status} (bad request) on link {link}: "
                "{reason}. Fix the URL, headers or subprotocol, then run "
                f"`{{reset_command}}`. {_STOPPED}"
            ),
        ),
        Rule(
            Verdict.fatal,
            "notFound",
            "no WebSocket endpoint at this URL (HTTP 404)",
            status=404,
            message=(
                "WebSocket handshake rejected with HTTP {status} (not found) on link {link}. "
                "The URL has no WebSocket endpoint; fix the URL, then run "
                f"`{{reset_command}}`. {_STOPPED}"
            ),
        ),
        Rule(
            Verdict.relink,
            "unauthorized",
            "the server did not accept the credentials (HTTP 401)",
            status=401,
            message=(
                "WebSocket handshake rejected with HTTP {status} (unauthorized) on link {link}. "
                "The credentials are missing, expired or revoked; issue new ones, then relink "
                f"with `{{relink_command}}`. {_STOPPED}"
            ),
        ),
        Rule(
            Verdict.relink,
            "forbidden",
            "the credentials do not allow this endpoint (HTTP 403)",
            status=403,
            message=(
                "WebSocket handshake rejected with HTTP {status} (forbidden) on link {link}. "
                "These credentials may not use this endpoint; grant access or use other "
                f"credentials, then relink with `{{relink_command}}`. {_STOPPED}"
            ),
        ),
        # websockets' reconnect loop gives up on a handshake 429 (asyncio/client.py
        # process_exception retries only 500, 502, 503 and 504); we retry, because
        # the server's Retry-After says when to come back (RFC 6585 section 4).
        Rule(
            Verdict.retry,
            "tooManyRequests",
            "rate limited (HTTP 429); Retry-After is the floor of the next delay",
            status=429,
            transient=True,
        ),
        # 3000, 3003 and 3008 are not the application's: the IANA "WebSocket
        # Close Code Number Registry" assigns them (Unauthorized, Forbidden,
        # Timeout), so every server that uses them means the same thing.
        Rule(
            Verdict.relink,
            "closeUnauthorized",
            "the endpoint needs authentication (IANA registry: 3000 Unauthorized)",
            status=3000,
            message=(
                "WebSocket close {status} (unauthorized) on link {link}: {reason}. The "
                "credentials are missing, expired or revoked; issue new ones, then relink "
                f"with `{{relink_command}}`. {_STOPPED}"
            ),
        ),
        Rule(
            Verdict.fatal,
            "closeForbidden",
            "the credentials may not do this (IANA registry: 3003 Forbidden)",
            status=3003,
            message=(
                "WebSocket close {status} (forbidden) on link {link}: {reason}. These "
                "credentials lack the permission; grant it on the server, then run "
                f"`{{reset_command}}`. {_STOPPED}"
            ),
        ),
        Rule(
            Verdict.retry,
            "closeTimeout",
            "the server timed out waiting for the client (IANA registry: 3008 Timeout)",
            status=3008,
            transient=True,
        ),
        # Handshake 5xx: the server's own trouble, which ends (RFC 9110 section 15.6);
        # websockets' reconnect loop retries exactly these four (asyncio/client.py
        # process_exception). Transient, so no number of them is a refusal.
        Rule(
            Verdict.retry, "serverError", "the server failed (HTTP 500)", status=500, transient=True
        ),
        Rule(
            Verdict.retry,
            "httpBadGateway",
            "a gateway failed (HTTP 502)",
            status=502,
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "unavailable",
            "the server is unavailable (HTTP 503)",
            status=503,
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "gatewayTimeout",
            "a gateway timed out (HTTP 504)",
            status=504,
            transient=True,
        ),
    ),
    unknown=Rule(
        Verdict.retry,
        "unknown",
        "a code this table does not list (3000-4999 belong to the application)",
    ),
    no_status=Rule(Verdict.retry, "noStatus", "a network error or timeout without a code"),
)

POLICY: Final = ReconnectPolicy(
    initial=5.0,
    factor=1.618,
    cap=90.0,
    jitter=Jitter.full,
    retry_now_max=5.0,
)
"""RFC 6455 section 7.2.3: the first delay is random in 0-5 s, then it grows by websockets'
x1.618 up to 90 s (src/websockets/client.py ``backoff``), with full jitter throughout where
websockets jitters only the first delay; a ``retry_now`` row of a channel built on this one
waits a random 0-5 s. A restart (1012) draws its own 5-30 s window, as its registration asks."""


# What a refused handshake may send back: enough of the body for a reason, and
# a cap, so a peer that streams an endless error page cannot fill our memory.
_MAX_BODY: Final = 4096
_READ_SIZE: Final = 65536
# 1005/1006/1015 are reported by the local side, never sent by the peer.
_LOCAL_CODES: Final = frozenset({1005, 1006, 1015})

DEFAULT_MAX_MESSAGE_SIZE: Final = 2**20
"""Bytes: the largest message the transport accepts (the ``websockets`` library's default).

A peer that sends more is failed with 1009 before the message is held in
memory whole; raise it with ``max_message_size=`` (``--max-message-size``)."""
# What the network may raise under a stream: each ends the connection (1006).
_STREAM_ERRORS: Final = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
    ssl.SSLError,
)


class WebSocketClosed(LinkstateError):  # noqa: N818 - it names the event, like ConnectFailed
    """How an open connection ended: the close ``code`` and ``reason`` (the raw close info)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"WebSocket closed with code {code}: {reason}")
        self.code = code
        self.reason = reason


class WebSocketProtocolError(WebSocketClosed):
    """Our side failed the connection because the peer broke the protocol (RFC 6455 7.1.7).

    ``code`` is the close code *we* sent the peer (1002 protocol error, 1007
    invalid payload, 1009 message too big), never one the peer sent, and
    ``reason`` says what the peer did. :func:`extract` reads it as a local
    close without a status: a broken connection, retried with backoff.
    """


class WebSocketRejected(LinkstateError):  # noqa: N818 - it names the event
    """The server refused the opening handshake with an HTTP ``status_code``."""

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__(f"WebSocket handshake refused with HTTP {status_code}")
        self.status_code = status_code
        self.headers = headers
        self.body = body


class WebSocketHandshakeError(LinkstateError):
    """The opening handshake failed before any HTTP answer (its cause is the network error)."""


def _closed(code: object, reason: object, name: object = None) -> CloseEvent:
    if not isinstance(code, int):
        return normalise({"status": 1006, "reason": "closed without a close frame"})
    return normalise(
        {"status": code, "reason": text(reason) or text(name)},
        initiator=Initiator.unknown if code in _LOCAL_CODES else Initiator.remote,
    )


def _rejected(status: object, headers: object, body: object) -> CloseEvent:
    reason = body[:200].decode("utf-8", "replace") if isinstance(body, bytes) else ""
    return normalise(
        {
            "status": status,
            "reason": reason or f"HTTP {status}",
            "retry_after": retry_after_header(headers),
        },
        phase=Phase.handshake,
        initiator=Initiator.remote,
    )


def _handshake_error(raw: BaseException) -> CloseEvent:
    cause = raw.__cause__ or raw.__context__
    reason = f"{type(cause).__name__}: {cause}" if cause is not None else str(raw)
    return normalise({"reason": reason or type(raw).__name__}, phase=Phase.handshake)


def _trio_websocket(raw: object) -> CloseEvent | None:
    """trio-websocket's exceptions, read by class name: its users may still hand us those."""
    if is_a(raw, "trio_websocket", "ConnectionClosed"):
        reason = get(raw, "reason")
        return _closed(get(reason, "code"), get(reason, "reason"), get(reason, "name"))
    if is_a(raw, "trio_websocket", "CloseReason"):
        return _closed(get(raw, "code"), get(raw, "reason"), get(raw, "name"))
    if is_a(raw, "trio_websocket", "ConnectionRejected"):
        return _rejected(get(raw, "status_code"), get(raw, "headers"), get(raw, "body"))
    if is_a(raw, "trio_websocket", "ConnectionTimeout"):
        return normalise(
            {"reason": "the opening handshake timed out"},
            phase=Phase.handshake,
            initiator=Initiator.local,
        )
    if is_a(raw, "trio_websocket", "HandshakeError") and isinstance(raw, BaseException):
        return _handshake_error(raw)
    return None


def extract(raw: object) -> CloseEvent:
    """Read this transport's exceptions (and trio-websocket's, websockets', anything else).

    Never raises, whatever the peer or a caller hands it.
    """
    return read_safely(_extract, raw)


def _extract(raw: object) -> CloseEvent:
    if isinstance(raw, WebSocketProtocolError):
        # Our own stack's 1002/1007/1009 is not the server's verdict: the
        # table's rows for those codes are for a peer that sent them.
        return normalise(
            {"reason": f"the peer broke the protocol ({raw.reason}); we closed with {raw.code}"},
            initiator=Initiator.local,
        )
    if isinstance(raw, WebSocketClosed):
        return _closed(raw.code, raw.reason)
    if isinstance(raw, WebSocketRejected):
        return _rejected(raw.status_code, raw.headers, raw.body)
    if isinstance(raw, WebSocketHandshakeError):
        return _handshake_error(raw)
    found_trio = _trio_websocket(raw)
    if found_trio is not None:
        return found_trio
    # The `websockets` library's ConnectionClosed / InvalidStatus, read without importing it.
    found = websockets_error(raw)
    # Raw frame text holding a JSON object reads like its dict, as on every channel.
    return normalise(json_text(raw) if found is None else found)


MessageHandler = Callable[[str | bytes], None]


class WebSocketConnection:
    """One open WebSocket connection, as the supervisor sees it (a runtime ``Connection``).

    Attributes:
        last_activity: ``anyio.current_time()`` of the latest frame received.
        messages: Messages received so far.

    """

    def __init__(
        self,
        stream: ByteStream,
        ws: WSConnection,
        on_message: MessageHandler | None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.stream = stream
        self.ws = ws
        self.on_message = on_message
        self.max_message_size = max_message_size
        self.last_activity = anyio.current_time()
        self.messages = 0
        # Shielded from the start: an aborted supervisor still needs the reader
        # to receive the server's reply to our close frame. aclose() lifts it.
        self.scope = anyio.CancelScope(shield=True)
        self._send_lock = anyio.Lock()
        self._closed = anyio.Event()
        self._pong = anyio.Event()
        self._raw: object = None
        self._parts: list[str | bytes] = []
        self._size = 0  # bytes of the message being received, counted as its frames arrive

    async def wait_closed(self) -> object:
        """Wait for the close; return the :class:`WebSocketClosed` that ended it."""
        await self._closed.wait()
        return self._raw

    async def aclose(self) -> None:
        """Send a normal close frame, wait for the closing handshake, then end the tasks.

        The connection's tasks are shielded until this runs; they are released
        here even when the supervisor's close timeout cancels the handshake.
        """
        try:
            if self.ws.state is ConnectionState.OPEN:
                await self._send(CloseConnection(code=1000, reason="client closing"))
                await self._closed.wait()
        except (*_STREAM_ERRORS, LocalProtocolError):
            pass  # the peer is gone already: nothing left to close politely
        finally:
            self.scope.shield = False
            self.scope.cancel()

    async def serve(self, ping_interval: float | None, pending: list[Event]) -> None:
        """The connection's task: read (and ping) until it ends, then drop the socket."""
        try:
            with self.scope:
                async with anyio.create_task_group() as tasks:
                    if ping_interval is not None:
                        tasks.start_soon(self._ping_every, ping_interval)
                    # Frames that came in the same packet as the handshake's answer.
                    for event in pending:
                        await self._handle(event)
                    await self._read()
                    tasks.cancel_scope.cancel()
        finally:
            self._end(1006, "closed without a close frame")
            await anyio.aclose_forcefully(self.stream)

    async def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data: bytes | None = await self.stream.receive(_READ_SIZE)
            except _STREAM_ERRORS:
                data = None
            try:
                self.ws.receive_data(data)
                for event in self.ws.events():
                    await self._handle(event)
                    if self._closed.is_set():
                        break  # what a failed connection sent after the failure is not read
            except RemoteProtocolError as exc:
                await self._fail(1002, str(exc))
            if data is None:
                self._end(1006, "closed without a close frame")

    async def _handle(self, event: Event) -> None:
        self.last_activity = anyio.current_time()
        match event:
            case TextMessage() | BytesMessage():
                part = bytes(event.data) if isinstance(event, BytesMessage) else event.data
                self._size += (
                    len(part)
                    if isinstance(part, bytes) or part.isascii()
                    else len(part.encode("utf-8"))
                )
                if self._size > self.max_message_size:
                    self._parts.clear()
                    await self._fail(
                        1009, f"a message over the size limit of {self.max_message_size} bytes"
                    )
                    return
                self._parts.append(part)
                if event.message_finished:
                    message = (
                        "".join(p for p in self._parts if isinstance(p, str))
                        if isinstance(event, TextMessage)
                        else b"".join(p for p in self._parts if isinstance(p, bytes))
                    )
                    self._parts.clear()
                    self._size = 0
                    self.messages += 1
                    if self.on_message is not None:
                        self.on_message(message)
            case Ping():
                await self._send_quietly(event.response())
            case Pong():
                self._pong.set()
            case CloseConnection() if self.ws.state in _STILL_OPEN:
                # wsproto reports a frame it cannot parse as a CloseConnection
                # carrying the code *we* must answer with, and leaves the state
                # as it was; a close the peer really sent has moved it on.
                await self._fail(event.code, event.reason or "a malformed frame")
            case CloseConnection():
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    await self._send_quietly(event.response())
                self._end(event.code, event.reason or "")

    async def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): tell the peer ``code``, then drop it."""
        if self.ws.state is ConnectionState.OPEN:
            await self._send_quietly(CloseConnection(code=code, reason=reason))
        self._end(code, reason, WebSocketProtocolError)

    def _end(self, code: int, reason: str, kind: type[WebSocketClosed] = WebSocketClosed) -> None:
        if not self._closed.is_set():
            self._raw = kind(code, reason)
            self._closed.set()

    async def _send(self, event: Event) -> None:
        # Reader (ping replies), pinger and aclose all send: one at a time.
        async with self._send_lock:
            await self.stream.send(self.ws.send(event))

    async def _send_quietly(self, event: Event) -> None:
        try:
            await self._send(event)
        except (*_STREAM_ERRORS, LocalProtocolError):
            pass  # the reader sees the end of the stream and reports the close

    async def _ping_every(self, interval: float) -> None:
        """Ping every ``interval`` seconds; a pong is proof the transport is alive."""
        while True:
            await anyio.sleep(interval)
            self._pong = anyio.Event()
            try:
                await self._send(Ping())
            except (*_STREAM_ERRORS, LocalProtocolError):
                return
            # A pong that takes longer than the interval is left to the
            # watchdog: we simply ping again.
            with anyio.move_on_after(interval):
                await self._pong.wait()


# The states in which wsproto has seen no close from the peer.
_STILL_OPEN: Final = frozenset({ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING})


def _check_url(url: str) -> tuple[SplitResult, str]:
    """Refuse a URL no connect could use (a configuration error, not a close to retry).

    Returns the URL's parts and its host, which a usable URL always has.
    """
    if not url.startswith(("ws://", "wss://")):
        raise ArgumentError(f"WebSocket URL {url!r} must start with ws:// or wss://")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it validates it: out of range or not a number
    except ValueError as exc:
        raise ArgumentError(
            f"WebSocket URL {url!r} is malformed ({exc}); write it as ws://HOST:PORT/PATH "
            "with a port from 1 to 65535"
        ) from None
    if not parts.hostname:
        raise ArgumentError(f"WebSocket URL {url!r} names no host; write it as ws://HOST:PORT/PATH")
    if parts.port == 0:
        raise ArgumentError(
            f"WebSocket URL {url!r}: port 0 is not a port to connect to; use 1-65535"
        )
    return parts, parts.hostname


class WebSocketTransport:
    """Connects to one ``ws://`` or ``wss://`` URL (wsproto over anyio: trio or asyncio).

    Args:
        url: The endpoint.
        ping_interval: Seconds between our pings; None sends none (then only
            frames the peer sends count as activity for the watchdog).
        on_message: Called with every message received, synchronously.
        extra_headers: Extra HTTP headers for the opening handshake.
        ssl_context: The TLS context for ``wss://``; None uses the system's
            default trust store.
        max_message_size: The largest message accepted, in bytes; a peer that
            sends more is failed with 1009 (a local close, retried).

    """

    def __init__(
        self,
        url: str,
        *,
        ping_interval: float | None = 20.0,
        on_message: MessageHandler | None = None,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        parts, host = _check_url(url)
        if (
            isinstance(max_message_size, bool)
            or not isinstance(max_message_size, int)
            or max_message_size < 1
        ):
            raise ArgumentError(
                f"max_message_size={max_message_size!r} must be a whole number of bytes, "
                f"1 or more (the default is {DEFAULT_MAX_MESSAGE_SIZE})"
            )
        self.max_message_size = max_message_size
        port = parts.port
        self.url = url
        self.secure = parts.scheme == "wss"
        self.host = host
        self.port = port or (443 if self.secure else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.ping_interval = ping_interval
        self.on_message = on_message
        self.extra_headers = extra_headers
        self.ssl_context = ssl_context

    async def connect(self, tasks: TaskGroup) -> WebSocketConnection:
        """Open the connection; its reader and pinger run in ``tasks``.

        Raises :class:`WebSocketRejected` when the server refuses the
        handshake and :class:`WebSocketHandshakeError` when the network does.
        Once open, the connection's tasks are shielded from cancellation until
        :meth:`WebSocketConnection.aclose`, so that an aborted supervisor still
        receives the server's reply to our close frame.
        """
        try:
            stream: ByteStream
            if self.secure:
                stream = await anyio.connect_tcp(
                    self.host,
                    self.port,
                    tls=True,
                    ssl_context=self.ssl_context,
                    tls_hostname=self.host,
                )
            else:
                stream = await anyio.connect_tcp(self.host, self.port)
        except _STREAM_ERRORS as exc:
            raise WebSocketHandshakeError(f"cannot reach {self.url}") from _network_cause(exc)
        try:
            ws = WSConnection(ConnectionType.CLIENT)
            pending = await self._handshake(stream, ws)
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        connection = WebSocketConnection(stream, ws, self.on_message, self.max_message_size)
        tasks.start_soon(connection.serve, self.ping_interval, pending)
        return connection

    async def _handshake(self, stream: ByteStream, ws: WSConnection) -> list[Event]:
        """Send the upgrade request; return the frames that arrived with the acceptance."""
        default = self.port == (443 if self.secure else 80)
        host = self.host if default else f"{self.host}:{self.port}"
        request = Request(host=host, target=self.target, extra_headers=self.extra_headers or [])
        rejection: RejectConnection | None = None
        body = bytearray()
        try:
            await stream.send(ws.send(request))
            while True:
                try:
                    data: bytes | None = await stream.receive(_READ_SIZE)
                except anyio.EndOfStream:
                    data = None
                ws.receive_data(data)
                events = list(ws.events())
                for index, event in enumerate(events):
                    if isinstance(event, AcceptConnection):
                        return events[index + 1 :]
                    if isinstance(event, RejectConnection):
                        rejection = event
                        if not event.has_body:
                            raise WebSocketRejected(event.status_code, list(event.headers), b"")
                    elif isinstance(event, RejectData) and rejection is not None:
                        body += event.data[: _MAX_BODY - len(body)]
                        if event.body_finished or len(body) >= _MAX_BODY:
                            raise WebSocketRejected(
                                rejection.status_code, list(rejection.headers), bytes(body)
                            )
                if data is None:
                    if rejection is not None:
                        raise WebSocketRejected(
                            rejection.status_code, list(rejection.headers), bytes(body)
                        )
                    raise WebSocketHandshakeError(
                        f"{self.url} closed the connection during the opening handshake"
                    )
        except (*_STREAM_ERRORS, RemoteProtocolError) as exc:
            raise WebSocketHandshakeError(f"the opening handshake with {self.url} failed") from exc


def _network_cause(exc: BaseException) -> BaseException:
    """The error that names what went wrong (refused, unreachable), not anyio's summary of it.

    ``anyio.connect_tcp`` tries every address and raises ``OSError("All
    connection attempts failed")`` from a group of the attempts' errors.
    """
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        return cause.exceptions[0]
    return cause if cause is not None else exc


CHANNEL: Final = Channel(
    name="websocket",
    title="WebSocket",
    table=TABLE,
    policy=POLICY,
    extract=extract,
    transport=WebSocketTransport,
)
"""The plain WebSocket channel, registered under the ``linkstate.channels`` entry point."""
