"""The WebSocket transport (wsproto over anyio) on both back ends, against a real server.

The server is the ``websockets`` library's asyncio server, in a thread of its
own on 127.0.0.1, so the same server faces the trio client and the asyncio
client. The client runs in ``anyio.run`` on each back end, on the real clock:
every wait is a few tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import http
import ssl
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from linkstate._channel import load_channel
from linkstate._events import CloseEvent, Phase
from linkstate._policy import Jitter, ReconnectPolicy
from linkstate.channels.websocket import (
    CHANNEL,
    WebSocketClosed,
    WebSocketHandshakeError,
    WebSocketRejected,
    WebSocketTransport,
    extract,
)
from linkstate.runtime import Supervisor

BACKENDS = ("trio", "asyncio")
NO_DELAY = ReconnectPolicy(initial=0.0, cap=0.0, jitter=Jitter.none, retry_now_max=0.0)

Handler = Callable[[ServerConnection], Awaitable[None]]
Refuse = Callable[[ServerConnection, Request], Response | None]


@dataclass
class Server:
    """What the server saw: the close codes our client sent, and the pings it answered."""

    port: int = 0
    close_codes: list[int | None] = field(default_factory=list)
    tls: ssl.SSLContext | None = None
    closed: threading.Event = field(default_factory=threading.Event)


@contextmanager
def serve_in_thread(
    handler: Handler, refuse: Refuse | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[Server]:
    seen = Server(tls=tls)
    started = threading.Event()
    stop: list[Callable[[], object]] = []

    async def tracked(connection: ServerConnection) -> None:
        try:
            await handler(connection)
        finally:
            await connection.wait_closed()
            frame = connection.protocol.close_rcvd
            seen.close_codes.append(None if frame is None else frame.code)
            seen.closed.set()

    async def main() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        stop.append(lambda: loop.call_soon_threadsafe(done.set))
        async with serve(tracked, "127.0.0.1", 0, process_request=refuse, ssl=tls) as server:
            seen.port = server.sockets[0].getsockname()[1]
            started.set()
            await done.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield seen
    finally:
        stop[0]()
        thread.join(10)


async def stay_open(connection: ServerConnection) -> None:
    await connection.wait_closed()


def supervise(backend: str, url: str, *, abort_after: float | None = None, **kw: Any) -> Supervisor:
    supervisor = Supervisor(CHANNEL, WebSocketTransport(url, **kw.pop("transport", {})), **kw)

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            if abort_after is not None:

                async def abort() -> None:
                    await anyio.sleep(abort_after)
                    supervisor.abort()

                tasks.start_soon(abort)
            with anyio.fail_after(10):  # a guard against a hang, never reached when all is well
                await supervisor.run()
            tasks.cancel_scope.cancel()

    anyio.run(main, backend=backend)
    return supervisor


@pytest.fixture
def quiet_server() -> Iterator[Server]:
    with serve_in_thread(stay_open) as server:
        yield server


@pytest.mark.parametrize("backend", BACKENDS)
def test_pings_count_as_activity_and_abort_closes_gracefully(
    backend: str, quiet_server: Server
) -> None:
    # The server never sends a message; only the pongs keep the watchdog quiet.
    supervisor = supervise(
        backend,
        f"ws://127.0.0.1:{quiet_server.port}/",
        abort_after=0.4,
        watchdog=0.15,
        transport={"ping_interval": 0.03},
    )
    outcome = supervisor.outcome
    assert (outcome.state, outcome.stop_reason, outcome.connects) == ("stopped", "aborted", 1)
    assert not any(r.trigger == "watchdog_expired" for r in outcome.records)
    # The abort sent a normal close frame, and the server saw it.
    assert quiet_server.closed.wait(5)
    assert quiet_server.close_codes == [1000]


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_pings_the_watchdog_fires(backend: str, quiet_server: Server) -> None:
    supervisor = supervise(
        backend,
        f"ws://127.0.0.1:{quiet_server.port}/",
        abort_after=0.5,
        watchdog=0.1,
        policy=NO_DELAY,
        transport={"ping_interval": None},
    )
    assert any(r.trigger == "watchdog_expired" for r in supervisor.outcome.records)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fatal_close_code_ends_in_failed(backend: str) -> None:
    async def policy_violation(connection: ServerConnection) -> None:
        await connection.send("hello")
        await connection.close(code=1008, reason="policy violation")

    with serve_in_thread(policy_violation) as server:
        outcome = supervise(backend, f"ws://127.0.0.1:{server.port}/").outcome
        assert (outcome.state, outcome.status, outcome.verdict) == ("failed", 1008, "fatal")


def refused(url: str, error: type[Exception], backend: str, **kw: Any) -> CloseEvent:
    """Connect to ``url`` on ``backend``, which must raise ``error``; the close it reads as."""
    transport = WebSocketTransport(url, **kw)

    async def connect() -> BaseException:
        async with anyio.create_task_group() as tasks:
            with pytest.raises(error) as raised:
                await transport.connect(tasks)
        return raised.value

    return extract(anyio.run(connect, backend=backend))


def refuse_with(status: int, retry_after: str) -> Refuse:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        headers = Headers([("Retry-After", retry_after), ("Content-Type", "text/plain")])
        return Response(status, http.HTTPStatus(status).phrase, headers, b"come back later\n")

    return refuse


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_refused_handshake_carries_its_status_and_retry_after(backend: str) -> None:
    with serve_in_thread(stay_open, refuse=refuse_with(503, "7")) as server:
        event = refused(f"ws://127.0.0.1:{server.port}/", WebSocketRejected, backend)
        assert (event.status, event.retry_after, event.phase) == (503, 7.0, Phase.handshake)
        assert "come back later" in (event.reason or "")


@pytest.mark.parametrize("backend", BACKENDS)
def test_nobody_listening_is_a_handshake_failure(backend: str) -> None:
    with socket_bound() as port:
        event = refused(f"ws://127.0.0.1:{port}/", WebSocketHandshakeError, backend)
        assert event.phase == Phase.handshake and event.status is None
        assert "ConnectionRefusedError" in (event.reason or "")


class socket_bound:
    """A loopback port that is bound but not listening: a connect to it is refused."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        port: int = self.sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: the server's context, a client's trusting it."""
    folder: Path = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


@pytest.mark.parametrize("backend", BACKENDS)
def test_wss_over_tls(backend: str, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_context, client_context = tls_contexts

    async def unauthorized(connection: ServerConnection) -> None:
        await connection.close(code=4000, reason="over TLS")

    with serve_in_thread(unauthorized, tls=server_context) as server:
        url = f"wss://127.0.0.1:{server.port}/"
        transport = WebSocketTransport(url, ssl_context=client_context)

        async def once(transport: WebSocketTransport = transport) -> object:
            async with anyio.create_task_group() as tasks:
                connection = await transport.connect(tasks)
                raw = await connection.wait_closed()
                await connection.aclose()
            return raw

        raw = anyio.run(once, backend=backend)
        assert isinstance(raw, WebSocketClosed)
        assert (raw.code, raw.reason) == (4000, "over TLS")


def test_a_close_frame_from_an_untrusted_tls_server_is_never_reached(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    # Without the test CA, the system's trust store refuses the self-signed certificate.
    server_context, _ = tls_contexts
    with serve_in_thread(stay_open, tls=server_context) as server:
        url = f"wss://127.0.0.1:{server.port}/"
        event = refused(url, WebSocketHandshakeError, "asyncio")
        assert event.phase == Phase.handshake and "CERTIFICATE" in (event.reason or "").upper()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_journalled_run_persists_on_both_backends(backend: str, tmp_path: Path) -> None:
    # A real SQLite file, written from worker threads (no virtual clock here):
    # the stored link ends where the run ended, on either back end.
    from linkstate.runtime import Close, ScriptedTransport
    from linkstate.store import SQLiteStore, open_journal

    whatsapp = load_channel("whatsapp")

    async def main() -> str:
        with SQLiteStore(tmp_path / "state.db") as store:
            async with open_journal(store) as journal:
                transport = ScriptedTransport([Close(428, after=0.01), Close(440, after=0.01)])
                policy = ReconnectPolicy(initial=0.01, cap=0.01, jitter=Jitter.none)
                supervisor = Supervisor(
                    whatsapp, transport, link_id="acct", policy=policy, journal=journal
                )
                outcome = await supervisor.run()
                row = await journal.load("acct")
        assert row is not None and row.state == outcome.state
        return outcome.state

    assert anyio.run(main, backend=backend) == "needs_relink"
