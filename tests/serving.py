"""Helpers for the tests of ``linkstate serve``: a loopback WebSocket server the test
controls, the real ``serve`` process, and plain HTTP requests to it.

Nothing here sleeps: the tests wait for lines the process prints (its
``--verbose`` log has one line per transition) and for HTTP answers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

SCRIPT = Path(sys.executable).with_name("linkstate")


@dataclass
class Closer:
    """How the server ends the connections on one path, once the test says so."""

    code: int
    reason: str
    now: trio.Event = field(default_factory=trio.Event)


class LoopbackServer:
    """A real WebSocket server on 127.0.0.1: each connection stays open until its path's
    :class:`Closer` is set, then closes with that code and reason; a path without
    a closer stays open until the test ends."""

    def __init__(self) -> None:
        self.closers: dict[str, Closer] = {}
        self.port = 0
        self.connections: dict[str, int] = {}

    async def run(self, task_status: trio.TaskStatus[LoopbackServer]) -> None:
        """Serve until cancelled; reports itself once listening."""

        async def handler(request: WebSocketRequest) -> None:
            path = request.path
            self.connections[path] = self.connections.get(path, 0) + 1
            ws = await request.accept()
            try:
                await ws.send_message("hello")
                closer = self.closers.get(path)
                if closer is None:
                    await trio.sleep_forever()
                    return
                await closer.now.wait()
                await ws.aclose(closer.code, closer.reason)
            except ConnectionClosed:
                pass

        async with trio.open_nursery() as nursery:
            server: Any = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
            self.port = server.port
            task_status.started(self)

    def url(self, path: str) -> str:
        """``ws://127.0.0.1:PORT/path``."""
        return f"ws://127.0.0.1:{self.port}/{path.lstrip('/')}"


class Lines:
    """Read a trio byte stream line by line, keeping what was read.

    :meth:`until` looks from a cursor that only moves past what it matched, so
    the tests can wait for lines in the order they must come, whenever they
    were read.
    """

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.seen: list[str] = []
        self.cursor = 0

    async def next(self) -> str:
        """Read the next line; EOFError at the end."""
        while b"\n" not in self.buffer:
            chunk = await self.stream.receive_some()
            if not chunk:
                raise EOFError("\n".join(self.seen) + self.buffer.decode())
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        text = line.decode()
        self.seen.append(text)
        return text

    async def until(self, pattern: str, *, move: bool = True) -> re.Match[str]:
        """The first line from the cursor on that matches ``pattern``, reading as needed.

        With ``move`` the cursor then moves past it, so the next wait finds a later line.
        """
        index = self.cursor
        while True:
            while index >= len(self.seen):
                await self.next()
            found = re.search(pattern, self.seen[index])
            if found is not None:
                if move:
                    self.cursor = index + 1
                return found
            index += 1

    async def rest(self) -> list[str]:
        """Every line from the cursor until the end."""
        while chunk := await self.stream.receive_some():
            self.buffer += chunk
        self.seen.extend(self.buffer.decode().splitlines())
        self.buffer = b""
        return self.seen[self.cursor :]


@dataclass
class Served:
    """A running ``linkstate serve``: the process, its output, and its base URL."""

    process: trio.Process
    lines: Lines
    base: str


async def start_serve(
    args: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Served:
    """Start ``linkstate serve ARGS -v --listen 127.0.0.1:0``; returns once it serves."""
    process = await trio.lowlevel.open_process(
        [str(SCRIPT), "serve", *args, "-v", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
    )
    assert process.stdout is not None
    lines = Lines(process.stdout)
    # The lines before this one (links opening) stay for the test to wait for.
    found = await lines.until(r"^linkstate serve: (http://127\.0\.0\.1:\d+)/", move=False)
    return Served(process, lines, found.group(1))


@dataclass
class Answer:
    """An HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer of its own: the tests look at its Location and cookie."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def get_blocking(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Answer:
    """One HTTP request with the standard library; any status is an answer, not a raise."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with _OPENER.open(request, timeout=30) as response:
            return Answer(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers.items()), error.read())


async def get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Answer:
    """:func:`get_blocking` in a worker thread."""
    return await trio.to_thread.run_sync(get_blocking, url, headers, method)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, parsed by prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    """A sample key's labels, sorted, as :func:`metric_samples` keys them."""
    return tuple(sorted(values.items()))


class DeafPeer:
    """A WebSocket server on 127.0.0.1 that completes the handshake, then never reads
    again: a close frame sent to it is never answered, so closing our side takes
    the transport's whole close timeout."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3

    def __init__(self) -> None:
        self.port = 0

    async def run(self, task_status: trio.TaskStatus[DeafPeer]) -> None:
        """Serve until cancelled; reports itself once listening."""
        import base64
        import hashlib

        async def handler(stream: trio.SocketStream) -> None:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = await stream.receive_some()
                if not chunk:
                    return
                request += chunk
            key = re.search(rb"(?im)^sec-websocket-key:\s*(\S+)", request)
            assert key is not None
            digest = hashlib.sha1(key.group(1) + self.GUID.encode()).digest()
            accept = base64.b64encode(digest).decode()
            await stream.send_all(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            )
            await trio.sleep_forever()

        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(handler, listeners)
