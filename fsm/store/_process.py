"""The journal's writer in a child process: SQLite's work off the event loop's interpreter.

Theory of operation
-------------------
A worker thread does not give SQLite a core of its own. CPython runs Python
code under one lock, the GIL, and the event loop thread holds it while it
runs its tasks (a thousand links' transitions take about 10 ms at a time).
The writer thread needs it back after every call into SQLite, and waits for
it up to the interpreter's switch interval each time, so the loop's work and
the commit's work add up instead of overlapping (``docs/benchmarks.md``
measures it: a store that only sleeps, GIL-free, still took the loop's
whole time on top of its own).

A child process has an interpreter and a GIL of its own. With
``open_journal(store, writer="process")`` the journal starts one (the same
Python, running :func:`main`) that opens the same SQLite file with a plain
:class:`SQLiteStore`, and sends it each batch on its stdin: the records and
rows as tuples of their fields, pickled, behind a 4-byte length. The child
answers each batch on its stdout, in order, with the refusals by index. Up to
:data:`IN_FLIGHT` batches are in the pipe at once, so the child starts the
next batch while the loop is still busy waking the waiters of the last one.

The child writes each batch with :func:`write_or_split`, the journal's own
rule for a batch: a batch refused as a whole is written again one entry at
a time. It answers before it reads the next batch, so every batch sees
exactly what the batches before it left, as with the threaded writer.

Only writes go to the child. Claims, renewals, releases and reads use the
parent's store (the same file, through the journal's worker thread) after a
flush; they are rare, and SQLite's locks keep the two connections apart.

The pipe carries pickles only between a parent and the child it started,
never anything a peer sent. If the child exits early (killed, out of
memory), every batch it had not answered fails with a :class:`StoreError`
that says its outcome is unknown, and so does every later batch. When the
parent goes away, the child reads the end of its stdin, finishes the batch it
has and exits; it ignores the signals of a Ctrl-C or a service manager's
stop, which reach it with its parent, so that the parent's clean stop can
still write.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from operator import attrgetter
from typing import Any, BinaryIO, Final

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from linkstate._errors import ArgumentError
from linkstate._machine import TransitionRecord
from linkstate.store._sqlite import (
    _LINK_ROW_SLOTS,
    Entry,
    LinkRow,
    SQLiteStore,
    StoreConflictError,
    StoreError,
    StoreOwnedElsewhereError,
    StoreRequestError,
    StoreRowError,
    _filled,
    boot_clock,
    wall_clock,
)

__all__ = ["IN_FLIGHT", "WriterProcess", "write_or_split"]

IN_FLIGHT: Final = 2
"""Batches sent to the child and not yet answered, at most: one written, one waiting."""

_LENGTH: Final = struct.Struct("!I")
# Not ``-m linkstate.store._process``: the package imports this module first,
# and runpy warns about running a module that is already imported.
_CHILD: Final = "from linkstate.store._process import main; main()"
_RECORD_VALUES: Final = attrgetter(*(f.name for f in fields(TransitionRecord)))
_ROW_VALUES: Final = attrgetter(*(f.name for f in fields(LinkRow)))
_RECORD_SLOTS: Final = tuple(
    getattr(TransitionRecord, f.name).__set__ for f in fields(TransitionRecord)
)

# What a refusal is called on the pipe, and how it is built again on the other
# side: the exceptions keep their own attributes, which pickle would not pass
# to their keyword-only constructors.
_ERRORS: Final[dict[str, Callable[[str, Any, Any], Exception]]] = {
    "StoreError": lambda message, _link, _owner: StoreError(message),
    "StoreRequestError": lambda message, _link, _owner: StoreRequestError(message),
    "StoreConflictError": lambda message, _link, _owner: StoreConflictError(message),
    "StoreRowError": lambda message, link, _owner: StoreRowError(message, link),
    "StoreOwnedElsewhereError": lambda message, link, owner: StoreOwnedElsewhereError(
        message, link_id=link, owner=owner
    ),
    "ArgumentError": lambda message, _link, _owner: ArgumentError(message),
}
_Refusal = tuple[str, str, Any, Any]


def write_or_split(store: Any, entries: Sequence[Entry]) -> tuple[dict[int, StoreError], int]:
    """Write ``entries`` in one transaction, or one by one if it is refused as a whole.

    Returns the refusals by index and the number of transactions that
    committed. A conflict on one link then does not fail the transitions of
    every other link that happened to share its commit. The journal's rule,
    run in its worker thread or in its writer process alike.
    """
    try:
        store.write(entries)
    except StoreError as exc:
        if len(entries) == 1:
            return {0: exc}, 0
    else:
        return {}, 1
    errors: dict[int, StoreError] = {}
    commits = 0
    for index, entry in enumerate(entries):
        try:
            store.write([entry])
        except StoreError as exc:
            errors[index] = exc
        else:
            commits += 1
    return errors, commits


def _refusal(exc: Exception) -> _Refusal:
    kind = type(exc).__name__
    if kind not in _ERRORS:  # a subclass of ours, or a bug in the child: said as a StoreError
        kind, text = "StoreError", f"the journal's writer process failed: {exc!r}"
    else:
        text = str(exc)
    return kind, text, getattr(exc, "link_id", None), getattr(exc, "owner", None)


def _rebuilt(refusal: _Refusal) -> Exception:
    kind, message, link_id, owner = refusal
    return _ERRORS.get(kind, _ERRORS["StoreError"])(message, link_id, owner)


class WriterProcess:
    """The parent's side of the writer process: start it, send batches, read its answers.

    Made by :meth:`start`; the journal is its only user.
    """

    def __init__(self, process: Process, path: str) -> None:
        self.process = process
        self.path = path
        self._buffer = bytearray()
        self._closed = False

    @staticmethod
    def options(store: object) -> dict[str, object]:
        """What the child needs to open the same store; refuses a store it cannot copy.

        Raises:
            ArgumentError: ``store`` is not a plain :class:`SQLiteStore` with the default clocks.

        """
        if type(store) is not SQLiteStore:
            raise ArgumentError(
                f"writer='process' runs a plain SQLiteStore in a child process; "
                f"{type(store).__name__} cannot be copied there. Use writer='thread' "
                "for this store"
            )
        if store.wall is not wall_clock or store.boot is not boot_clock:
            raise ArgumentError(
                "writer='process' cannot call the wall= or boot= clock given to SQLiteStore "
                "from its child process; drop them (LINKSTATE_WALL_OFFSET shifts the wall "
                "clock for both processes) or use writer='thread'"
            )
        if store.read_only:
            raise ArgumentError(
                f"state database {store.path} was opened read_only=True: the journal "
                "cannot write it; open it without read_only"
            )
        return {
            "path": store.path,
            "keep": store.keep,
            "synchronous": store.synchronous,
            "timeout": store.timeout,
            "boot_id": store.boot_id,
        }

    @classmethod
    async def start(cls, store: object) -> WriterProcess:
        """Start the child for ``store`` and wait until it has opened the file.

        Raises:
            ArgumentError: see :meth:`options`.
            StoreError: the child could not open the store, or did not start.

        """
        options = cls.options(store)
        path = str(options["path"])
        process = await anyio.open_process(
            [sys.executable, "-c", _CHILD], stderr=None, env=_child_environment()
        )
        writer = cls(process, path)
        try:
            await writer._send(("open", options))
            answer = await writer._receive()
        except StoreError:
            with anyio.CancelScope(shield=True):
                await writer.aclose()
            raise StoreError(
                f"the journal's writer process for {path} did not start (exit code "
                f"{process.returncode}); its stderr, above, says why. Use writer='thread' "
                "meanwhile"
            ) from None
        except BaseException:
            with anyio.CancelScope(shield=True):
                await writer.aclose()
            raise
        if answer[0] != "opened":
            with anyio.CancelScope(shield=True):
                await writer.aclose()
            raise _rebuilt(answer[1])
        return writer

    async def send(self, entries: Sequence[Entry]) -> None:
        """Send one batch; the answers come back in the order the batches went."""
        await self._send(
            ("write", [(_RECORD_VALUES(record), _ROW_VALUES(row)) for record, row in entries])
        )

    async def answer(self) -> tuple[dict[int, StoreError], int]:
        """The next batch's refusals by index, and its commits (see :func:`write_or_split`)."""
        _, refusals, commits = await self._receive()
        errors = {index: _rebuilt(refusal) for index, refusal in refusals}
        return errors, commits  # type: ignore[return-value]

    def lost(self) -> StoreError:
        """The error of a batch the child never answered."""
        code = self.process.returncode
        how = "is gone" if code is None else f"exited with code {code}"
        return StoreError(
            f"the journal's writer process (pid {self.process.pid}) {how} before it answered "
            f"for these transitions: they may or may not be in the state database "
            f"{self.path}. Check them with `linkstate history`; its stderr says why it stopped"
        )

    async def aclose(self) -> None:
        """Close its stdin (it finishes and exits), and wait for it; kill it if it hangs.

        Idempotent: the second call returns at once.
        """
        if self._closed:
            return
        self._closed = True
        await self.close_input()
        with anyio.move_on_after(10) as waiting:
            await self.process.wait()
        if waiting.cancelled_caught:
            self.process.kill()
            await self.process.wait()
        await self.process.aclose()

    async def close_input(self) -> None:
        """Close its stdin: it writes the batches it has whole, answers them, and exits."""
        stdin = self.process.stdin
        if stdin is not None:
            with contextlib.suppress(OSError, anyio.BrokenResourceError):
                await stdin.aclose()

    async def _send(self, message: object) -> None:
        stream: ByteSendStream | None = self.process.stdin
        assert stream is not None
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            await stream.send(_LENGTH.pack(len(data)) + data)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise self.lost() from exc

    async def _receive(self) -> Any:
        stream: ByteReceiveStream | None = self.process.stdout
        assert stream is not None
        buffer = self._buffer
        try:
            while len(buffer) < _LENGTH.size:
                buffer += await stream.receive()
            (size,) = _LENGTH.unpack_from(buffer)
            while len(buffer) < _LENGTH.size + size:
                buffer += await stream.receive()
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            with anyio.move_on_after(1):  # its exit code, if it is exiting
                await self.process.wait()
            raise self.lost() from exc
        message = pickle.loads(buffer[_LENGTH.size : _LENGTH.size + size])
        del buffer[: _LENGTH.size + size]
        return message


def _child_environment() -> dict[str, str]:
    """The environment for the child: ours, with this linkstate first on its import path.

    The child must run the same code as its parent, also when the parent found
    linkstate through its own ``sys.path`` (a source checkout, ``PYTHONPATH``).
    """
    import linkstate

    root = os.path.dirname(os.path.dirname(os.path.abspath(linkstate.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
    return env


# -- the child -----------------------------------------------------------------------


def _read(source: BinaryIO) -> Any:
    """The next message, or None at the end of the input."""
    head = source.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    body = source.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)


def _write(sink: BinaryIO, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sink.write(_LENGTH.pack(len(data)) + data)
    sink.flush()


def _entries(values: Sequence[tuple[tuple[Any, ...], tuple[Any, ...]]]) -> list[Entry]:
    return [
        (_filled(TransitionRecord, _RECORD_SLOTS, record), _filled(LinkRow, _LINK_ROW_SLOTS, row))
        for record, row in values
    ]


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """The child's loop: open the store the first message names, then write each batch."""
    opening = _read(source)
    if opening is None:
        return
    try:
        store = SQLiteStore(**opening[1])
    except (StoreError, ArgumentError) as exc:
        _write(sink, ("refused", _refusal(exc)))
        return
    with store:
        _write(sink, ("opened", None))
        while (message := _read(source)) is not None:
            try:
                errors, commits = write_or_split(store, _entries(message[1]))
                refusals = [(index, _refusal(exc)) for index, exc in errors.items()]
            except Exception as exc:  # every entry then fails, and says why
                refusals = [(index, _refusal(exc)) for index in range(len(message[1]))]
                commits = 0
            _write(sink, ("written", refusals, commits))


def main() -> None:
    """The child's entry point (see ``_CHILD``): the protocol on stdin and stdout."""
    # The parent decides when its writer stops: it closes the child's stdin. A
    # Ctrl-C, a hang-up or a service manager's SIGTERM reaches the whole process
    # group (systemd's default KillMode), and the parent's clean stop after it
    # still has transitions to write: the "stopped" of every live link.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    # The protocol keeps the real stdout; anything else printed goes to stderr.
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with contextlib.suppress(BrokenPipeError):  # the parent is gone: nobody is left to answer
        serve(sys.stdin.buffer, sink)
