"""A hostile WebSocket peer on 127.0.0.1: raw TCP that sends frames no library would.

``websockets``' server (and every other) refuses to put an invalid frame on
the wire, so this one writes its frames byte by byte: the handshake answer
of RFC 6455 section 4.2.2, then whatever bytes the test scripts. It records
the close code our client answered with, read from the client's (masked)
close frame, so a test can see what our side told the peer.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

# RFC 6455 section 1.3: the GUID the server appends to the client's key.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OPCODE_CLOSE = 0x8


def frame(opcode: int, payload: bytes, *, fin: bool = True, length: int | None = None) -> bytes:
    """One unmasked server frame; ``length`` overrides the length field (to lie about it)."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if size < 126:
        head += bytes([size])
    elif size < 2**16:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


def close_frame(code: int, reason: bytes = b"") -> bytes:
    """A close frame with any ``code`` (even one that must never be on the wire)."""
    return frame(_OPCODE_CLOSE, struct.pack("!H", code) + reason)


@dataclass
class HostilePeer:
    """What the peer saw: one entry per connection, the close code our client sent (or None)."""

    port: int = 0
    answers: list[int | None] = field(default_factory=list)
    done: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def served(self, connections: int) -> bool:
        """Wait (10 s at most) until ``connections`` more connections have ended."""
        return all(self.done.acquire(timeout=10) for _ in range(connections))

    @property
    def url(self) -> str:
        """The ``ws://`` URL to connect to."""
        return f"ws://127.0.0.1:{self.port}/"


def _handshake(conn: socket.socket) -> bytes:
    """Read the client's upgrade request and accept it; return bytes read past it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("the client left during the handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    return rest


def _close_code(data: bytes) -> int | None:
    """The code of the first close frame among the client's (masked) frames, else None."""
    at = 0
    while at + 2 <= len(data):
        opcode, size = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if size == 126:
            (size,) = struct.unpack("!H", data[at : at + 2])
            at += 2
        elif size == 127:
            (size,) = struct.unpack("!Q", data[at : at + 8])
            at += 8
        mask, at = data[at : at + 4], at + 4
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data[at : at + size]))
        at += size
        if opcode == _OPCODE_CLOSE:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
    return None


def _serve_one(conn: socket.socket, script: bytes, peer: HostilePeer) -> None:
    received = b""
    try:
        conn.settimeout(10)  # a guard against a hang, never reached when all is well
        received = _handshake(conn)
        conn.sendall(script)
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
    except OSError:
        pass  # the client dropped the connection: what it sent before still counts
    finally:
        conn.close()
        peer.answers.append(_close_code(received))
        peer.done.release()


@contextmanager
def hostile_peer(scripts: Sequence[bytes]) -> Iterator[HostilePeer]:
    """Serve connection n with ``scripts[n]`` (the last one for every later connection)."""
    peer = HostilePeer()
    listener = socket.create_server(("127.0.0.1", 0))
    peer.port = listener.getsockname()[1]
    stop = threading.Event()

    def accept() -> None:
        served = 0
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the test is over
            script = scripts[min(served, len(scripts) - 1)]
            served += 1
            threading.Thread(target=_serve_one, args=(conn, script, peer), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        stop.set()
        # shutdown() wakes the accept() blocked in the thread; close() alone may not.
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=10)
