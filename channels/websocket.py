"""Plain WebSocket (RFC 6455), on trio-websocket: a close-code table and a real transport.

How closes arrive: trio-websocket raises ``ConnectionClosed`` whose ``reason``
carries the close ``code`` and ``reason`` text; 1005, 1006 and 1015 are never
sent on the wire, the library reports them locally (a TCP drop is 1006). A
handshake the server refuses raises ``ConnectionRejected`` with the HTTP
``status_code`` and ``headers`` (``Retry-After`` among them); any other
handshake failure is a ``HandshakeError`` (its cause is the network error).
:func:`extract` reads all of these into one :class:`linkstate.CloseEvent`.

Close codes (1000-4999) and handshake HTTP statuses (100-599) cannot collide,
so one table holds both. Codes 3000-4999 belong to the application on top of
the socket: this generic table retries them (flap detection and the budget
escalate), and a channel built on it adds rows of its own.

Transport liveness: :class:`WebSocketTransport` pings every
``ping_interval`` seconds. Every message and every pong counts as activity for
the supervisor's watchdog, so a quiet but healthy socket never trips it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import trio
from trio_websocket import (
    CloseReason,
    ConnectionClosed,
    ConnectionRejected,
    ConnectionTimeout,
    HandshakeError,
    open_websocket_url,
)
from trio_websocket import WebSocketConnection as TrioWebSocketConnection

from linkstate import ArgumentError
from linkstate._channel import Channel
from linkstate._events import CloseEvent, Initiator, Phase, normalise
from linkstate._policy import Jitter, ReconnectPolicy
from linkstate._verdicts import CloseTable, Rule, Verdict
from linkstate.channels._native import websockets_error
from linkstate.plugin import retry_after_header

__all__ = [
    "CHANNEL",
    "POLICY",
    "TABLE",
    "WebSocketConnection",
    "WebSocketTransport",
    "extract",
]

_STOPPED: Final = "Monitoring of this link has stopped."

# One row per close code or handshake status, from RFC 6455 section 7.4.1 and
# the IANA registry of close codes (1012-1014). Rules: every code the RFC
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
        Rule(
            Verdict.retry_now,
            "serviceRestart",
            "the server is restarting",
            status=1012,
            transient=True,
        ),
        Rule(
            Verdict.retry,
            "tryAgainLater",
            "the server is overloaded; come back later",
            status=1013,
            min_delay=30.0,
            transient=True,
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
        Rule(
            Verdict.retry,
            "tooManyRequests",
            "rate limited (HTTP 429); Retry-After is the floor of the next delay",
            status=429,
        ),
        Rule(Verdict.retry, "serverError", "the server failed (HTTP 500)", status=500),
        Rule(Verdict.retry, "httpBadGateway", "a gateway failed (HTTP 502)", status=502),
        Rule(Verdict.retry, "unavailable", "the server is unavailable (HTTP 503)", status=503),
        Rule(Verdict.retry, "gatewayTimeout", "a gateway timed out (HTTP 504)", status=504),
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
"""RFC 6455 section 7.2.3: the first delay is random in 0-5 s, then it grows (websockets' x1.618
up to 90 s); a restart (1012) waits a random 0-5 s too, so a fleet does not stampede back."""


def _from_close_reason(reason: CloseReason | None) -> CloseEvent:
    if reason is None:
        return normalise({"status": 1006, "reason": "closed without a close frame"})
    # 1005/1006/1015 are reported by our own library, not sent by the peer.
    local = reason.code in (1005, 1006, 1015)
    return normalise(
        {"status": reason.code, "reason": reason.reason or reason.name},
        initiator=Initiator.unknown if local else Initiator.remote,
    )


def _from_rejection(exc: ConnectionRejected) -> CloseEvent:
    body = exc.body[:200].decode("utf-8", "replace") if isinstance(exc.body, bytes) else ""
    return normalise(
        {
            "status": exc.status_code,
            "reason": body or f"HTTP {exc.status_code}",
            "retry_after": retry_after_header(exc.headers),
        },
        phase=Phase.handshake,
        initiator=Initiator.remote,
    )


def extract(raw: object) -> CloseEvent:
    """Read trio-websocket's exceptions (and anything else) into a :class:`CloseEvent`."""
    if isinstance(raw, ConnectionClosed):
        return _from_close_reason(raw.reason)
    if isinstance(raw, CloseReason):
        return _from_close_reason(raw)
    if isinstance(raw, ConnectionRejected):
        return _from_rejection(raw)
    if isinstance(raw, ConnectionTimeout):
        return normalise(
            {"reason": "the opening handshake timed out"},
            phase=Phase.handshake,
            initiator=Initiator.local,
        )
    if isinstance(raw, HandshakeError):
        cause = raw.__cause__ or raw.__context__
        text = f"{type(cause).__name__}: {cause}" if cause is not None else type(raw).__name__
        return normalise({"reason": text}, phase=Phase.handshake)
    # The `websockets` library's ConnectionClosed / InvalidStatus, read without importing it.
    found = websockets_error(raw)
    return normalise(raw if found is None else found)


MessageHandler = Callable[[str | bytes], None]


class WebSocketConnection:
    """One open trio-websocket connection, as the supervisor sees it (a runtime ``Connection``).

    Attributes:
        last_activity: trio time of the latest message or pong.
        messages: Messages received so far.

    """

    def __init__(
        self,
        ws: TrioWebSocketConnection,
        on_message: MessageHandler | None,
        scope: trio.CancelScope,
    ) -> None:
        self.ws = ws
        self.on_message = on_message
        self.scope = scope
        self.last_activity = trio.current_time()
        self.messages = 0
        self._closed = trio.Event()
        self._raw: object = None

    async def wait_closed(self) -> object:
        """Wait for the close; return trio-websocket's ``ConnectionClosed``."""
        await self._closed.wait()
        return self._raw

    async def aclose(self) -> None:
        """Send a normal close frame, wait for the closing handshake, then end the tasks.

        The connection's tasks are shielded until this runs (see
        :meth:`WebSocketTransport.connect`); they are released here even when
        the supervisor's close timeout cancels the handshake.
        """
        try:
            await self.ws.aclose(code=1000, reason="client closing")
        finally:
            self.scope.shield = False
            self.scope.cancel()

    async def read(self) -> None:
        """Receive messages until the connection closes, noting activity."""
        try:
            while True:
                message = await self.ws.get_message()
                self.last_activity = trio.current_time()
                self.messages += 1
                if self.on_message is not None:
                    self.on_message(message)
        except ConnectionClosed as exc:
            self._raw = exc
            self._closed.set()

    async def ping_every(self, interval: float) -> None:
        """Ping every ``interval`` seconds; a pong is proof the transport is alive."""
        while True:
            await trio.sleep(interval)
            try:
                # A pong that takes longer than the interval is left to the
                # watchdog: we simply ping again.
                with trio.move_on_after(interval):
                    await self.ws.ping()
                    self.last_activity = trio.current_time()
            except ConnectionClosed:
                return


class WebSocketTransport:
    """Connects to one ``ws://`` or ``wss://`` URL with trio-websocket.

    Args:
        url: The endpoint.
        ping_interval: Seconds between our pings; None sends none (then only
            messages count as activity for the watchdog).
        on_message: Called with every message received, synchronously.
        extra_headers: Extra HTTP headers for the opening handshake.

    """

    def __init__(
        self,
        url: str,
        *,
        ping_interval: float | None = 20.0,
        on_message: MessageHandler | None = None,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ArgumentError(f"WebSocket URL {url!r} must start with ws:// or wss://")
        self.url = url
        self.ping_interval = ping_interval
        self.on_message = on_message
        self.extra_headers = extra_headers

    async def connect(self, nursery: trio.Nursery) -> WebSocketConnection:
        """Open the connection in ``nursery``; raises trio-websocket's handshake errors.

        Once open, the connection's tasks (trio-websocket's reader, our reader
        and pinger) are shielded from cancellation until :meth:`WebSocketConnection.aclose`:
        an aborted supervisor still needs the reader to receive the server's
        reply to our close frame, or the close could only time out.
        """
        connection: WebSocketConnection = await nursery.start(self._serve)
        return connection

    async def _serve(self, task_status: trio.TaskStatus[WebSocketConnection]) -> None:
        with trio.CancelScope() as scope:
            # The supervisor owns the connect timeout (and may set none at all),
            # so trio-websocket's own is switched off rather than second-guessing it.
            async with open_websocket_url(
                self.url, extra_headers=self.extra_headers, connect_timeout=math.inf
            ) as ws:
                connection = WebSocketConnection(ws, self.on_message, scope)
                scope.shield = True  # only after the handshake: connects stay cancellable
                task_status.started(connection)
                async with trio.open_nursery() as nursery:
                    if self.ping_interval is not None:
                        nursery.start_soon(connection.ping_every, self.ping_interval)
                    await connection.read()
                    nursery.cancel_scope.cancel()


CHANNEL: Final = Channel(
    name="websocket",
    title="WebSocket",
    table=TABLE,
    policy=POLICY,
    extract=extract,
    transport=WebSocketTransport,
)
"""The plain WebSocket channel, registered under the ``linkstate.channels`` entry point."""
