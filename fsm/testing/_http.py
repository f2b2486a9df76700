"""A small HTTP/1.1 server on 127.0.0.1 for the loopback platform servers.

It speaks HTTP through h11 (sans-I/O, already installed with wsproto) over
anyio streams, so it runs on trio and asyncio and needs nothing else. Each
connection is kept alive, as the client libraries (httpx, aiohttp) reuse
them, and each request is answered by the subclass's :meth:`answer`, which
may wait: that is how a long poll is held open. Closing the server cancels
every held request, as a real server going away would.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self
from urllib.parse import parse_qsl, urlsplit

import anyio
import h11
from anyio.abc import SocketStream, TaskGroup

from linkstate._errors import LinkstateError

__all__ = ["HTTPRequest", "HTTPResponse", "LoopbackHTTP", "LoopbackServerError", "number"]

# Enough for any request a bot library sends to these endpoints.
_MAX_BODY: Final = 1 << 20
_READ_SIZE: Final = 65536


class LoopbackServerError(LinkstateError, RuntimeError):
    """A loopback server was used before ``async with`` started it, or after it closed."""


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    """One request as the server read it: method, path, the merged parameters and headers."""

    method: str
    path: str
    params: Mapping[str, object]
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    """One answer: an HTTP status and a JSON body."""

    status: int
    body: object


class LoopbackHTTP:
    """The base of the loopback servers: listens on 127.0.0.1, port chosen by the system."""

    def __init__(self) -> None:
        self._tasks: TaskGroup | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """The server's root URL, ``http://127.0.0.1:PORT``."""
        if self._port is None:
            raise LoopbackServerError(
                f"{type(self).__name__} is not running; use it as `async with "
                f"{type(self).__name__}() as server:` and read server.url inside the block"
            )
        return f"http://127.0.0.1:{self._port}"

    async def __aenter__(self) -> Self:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self._port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        self._tasks = await anyio.create_task_group().__aenter__()
        self._tasks.start_soon(self._listen, listener)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        tasks, self._tasks = self._tasks, None
        self._port = None
        if tasks is not None:
            tasks.cancel_scope.cancel()
            return await tasks.__aexit__(exc_type, exc, traceback)
        return None

    async def _listen(self, listener: anyio.abc.Listener[SocketStream]) -> None:
        async with listener:
            await listener.serve(self._serve)

    async def answer(self, request: HTTPRequest) -> HTTPResponse:
        """Answer one request; a subclass's endpoints. May wait (a long poll)."""
        return HTTPResponse(404, {"error": f"no endpoint {request.path}"})

    async def _serve(self, stream: SocketStream) -> None:
        async with stream:
            connection = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_BODY)
            try:
                while True:
                    request = await self._read(stream, connection)
                    if request is None:
                        return
                    response = await self.answer(request)
                    payload = json.dumps(response.body).encode()
                    headers = [
                        ("content-type", "application/json"),
                        ("content-length", str(len(payload))),
                    ]
                    for event in (
                        h11.Response(status_code=response.status, headers=headers),
                        h11.Data(data=payload),
                        h11.EndOfMessage(),
                    ):
                        await stream.send(connection.send(event) or b"")
                    if connection.our_state is not h11.DONE:
                        return
                    connection.start_next_cycle()
            except (anyio.BrokenResourceError, anyio.EndOfStream, h11.ProtocolError, OSError):
                return  # the client went away, or spoke something else than HTTP/1.1

    async def _read(self, stream: SocketStream, connection: h11.Connection) -> HTTPRequest | None:
        """Read one whole request; None when the client closed the connection."""
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive(_READ_SIZE)
                except anyio.EndOfStream:
                    data = b""
                connection.receive_data(data)
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_BODY:
                    return None
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return _request(head, bytes(body))
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None


def _request(head: h11.Request, body: bytes) -> HTTPRequest:
    headers = {name.decode().lower(): value.decode("latin-1") for name, value in head.headers}
    target = urlsplit(head.target.decode("latin-1"))
    params: dict[str, object] = dict(parse_qsl(target.query))
    kind = headers.get("content-type", "")
    if body and "json" in kind:
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            params.update(decoded)
    elif body:
        params.update(parse_qsl(body.decode("utf-8", "replace")))
    return HTTPRequest(head.method.decode(), target.path, params, headers)


def number(value: object, default: float) -> float:
    """A request parameter as a finite number; ``default`` when it is missing or no number."""
    try:
        parsed = float(str(value))
    except ValueError:
        return default
    return parsed if math.isfinite(parsed) else default
