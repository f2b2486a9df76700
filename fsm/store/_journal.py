"""The async side of the state store (trio or asyncio, via anyio): one writer task, group commit.

Theory of operation
-------------------
Every call into a :class:`linkstate.store.StateStore` blocks (SQLite reads the
disk, a commit fsyncs), so a :class:`Journal` runs each one in a worker
thread with ``anyio.to_thread.run_sync``, and never two at once: one writer
task owns the store, and reads take the same lock. The store is thus used by
one thread at a time, which is all ``sqlite3`` asks.

Why one writer task, not a thread per call with a connection per thread:
SQLite admits one writer at a time anyway, so N connections would only queue
on its file lock (and spin in its busy handler), and each would pay its own
fsync. One writer instead gathers every transition submitted while the
previous commit ran into the next transaction: group commit. A thousand
links that change state in the same instant cost one fsync, not a thousand,
and each transition is still atomic (its history row and link row are in
the same transaction).

Transitions are submitted synchronously, from inside the machine's firing,
with a snapshot of the link taken at that instant (the :class:`Link` keeps
changing). :meth:`Journal.submit` returns a :class:`Receipt`;
:meth:`Journal.wait` returns once that transition is committed, or raises the
:class:`linkstate.store.StoreError` that refused it. The supervisor waits before it
carries out a transition's effect and before ``run()`` returns: whatever it
did or reported is on disk.

Virtual clocks. trio's ``MockClock`` with autojump advances time whenever
every task is blocked, and a task waiting for a worker thread counts as
blocked: a backoff or a timeout would expire while the disk works. Under a
virtual clock the journal therefore calls the store inline (``inline=None``
picks this by itself). Nothing real waits on a virtual-clock loop, and runs
stay deterministic.

When a batch fails as a whole, its entries are written again one by one, so
a conflict on one link does not fail the transitions of every other link
that happened to share its commit.

Writer process. A worker thread shares the interpreter lock with the event
loop, so under load the loop's work and the commit's add up.
``writer="process"`` moves the writes into a child process with its own
interpreter (:mod:`linkstate.store._process` explains how); the rest of
this header holds for both, and under a virtual clock the journal writes
inline either way.

Owners. A supervisor takes its link with :meth:`Journal.claim` before it
reads or writes it, and gives it back with :meth:`Journal.release`. Each
transition submitted under a claim carries the claim's token and the
``seq`` this writer expects (the journal counts them per claim, in
submission order), which the store checks (rule 3 of
:mod:`linkstate.store`). A newer claim is also found without a write: every
``renew_every`` seconds one :meth:`StateStore.renew` call checks every claim
the journal holds, and calls the ``on_lost`` of each one taken over, so that
an old process with a quiet, healthy connection lets go within seconds
instead of at its next close. Under a virtual clock nothing renews: no other
process shares a virtual clock, and the writes are still fenced.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Final, Literal, TypeVar

import anyio
import sniffio
from anyio.abc import TaskStatus

from linkstate._errors import ArgumentError
from linkstate._machine import Link, TransitionRecord
from linkstate.store._process import IN_FLIGHT, WriterProcess, write_or_split
from linkstate.store._sqlite import (
    Claim,
    Entry,
    LinkRow,
    StateStore,
    StoredTransition,
    StoreError,
    StoreOwnedElsewhereError,
    new_owner,
    wall_clock,
)

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_RENEW_EVERY",
    "Journal",
    "JournalStatistics",
    "Receipt",
    "Writer",
    "open_journal",
]

R = TypeVar("R")

_log: Final = logging.getLogger("linkstate.store")

DEFAULT_MAX_BATCH: Final = 512
"""Transitions per commit at most: bounds one transaction's time and memory."""

DEFAULT_RENEW_EVERY: Final = 2.0
"""Seconds between two checks of the journal's claims: how long two processes may overlap."""

Writer = Literal["thread", "process"]
"""Where the journal writes: a worker thread (the default) or a child process (module header)."""


class _Held:
    """A claim the journal holds: the seq its next write expects, and whom to tell of a loss."""

    __slots__ = ("claim", "on_lost", "seq")

    def __init__(self, claim: Claim, on_lost: Callable[[StoreOwnedElsewhereError], None]) -> None:
        self.claim = claim
        self.seq = 0 if claim.row is None else claim.row.seq
        self.on_lost = on_lost


class _Batch:
    """Transitions that will be committed together."""

    __slots__ = ("done", "entries", "errors", "sealed")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.done = anyio.Event()
        self.errors: dict[int, Exception] = {}
        self.sealed = False  # its transaction has begun, or it was sent: too late to join


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof of submission; pass it to :meth:`Journal.wait`."""

    batch: _Batch
    index: int


@dataclass(frozen=True, slots=True)
class JournalStatistics:
    """What the journal has done so far.

    Attributes:
        submitted: Transitions submitted.
        committed: Transitions committed.
        failed: Transitions the store refused.
        commits: Transactions that committed at least one transition.
        largest_batch: The most transitions written in one transaction.
        pending: Transitions submitted but not yet committed or refused.

    """

    submitted: int
    committed: int
    failed: int
    commits: int
    largest_batch: int
    pending: int


class Journal:
    """Writes transitions to a :class:`StateStore` from trio or asyncio; see the module header.

    Run it with :func:`open_journal`, which starts the writer task and flushes
    on exit.

    Args:
        store: The store; the journal is its only user while it runs.
        max_batch: Transitions per commit at most.
        wall: The wall clock, read when a transition is submitted.
        inline: Call the store on the event loop thread instead of a worker thread;
            None decides when the writer starts: inline under trio's virtual
            ``MockClock``, threaded otherwise (see the module header).
        owner: This writer's identity in claims; by default host, pid and a
            random part (:func:`linkstate.store.new_owner`).
        renew_every: Seconds between checks of the claims held (module
            header); None never checks (writes are still fenced).
        writer: ``"thread"`` or ``"process"`` (module header). The process
            needs a plain :class:`linkstate.store.SQLiteStore` with its default clocks.

    """

    def __init__(
        self,
        store: StateStore,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        wall: Callable[[], float] = wall_clock,
        inline: bool | None = None,
        owner: str | None = None,
        renew_every: float | None = DEFAULT_RENEW_EVERY,
        writer: Writer = "thread",
    ) -> None:
        if writer not in ("thread", "process"):
            raise ArgumentError(f"writer={writer!r} must be 'thread' or 'process'")
        if writer == "process":
            WriterProcess.options(store)  # a store it cannot copy is refused here, not later
        if max_batch < 1:
            raise ArgumentError(f"max_batch={max_batch!r} must be at least 1")
        if renew_every is not None and not renew_every > 0:
            raise ArgumentError(f"renew_every={renew_every!r} must be a positive number or None")
        self.store = store
        self.max_batch = max_batch
        self.wall = wall
        self.inline = inline
        self.owner = owner or new_owner()
        self.renew_every = renew_every
        self.writer: Writer = writer
        self._held: dict[tuple[str, int], _Held] = {}
        self._queue: deque[_Batch] = deque()
        self._tail: _Batch | None = None
        self._wakeup = anyio.Event()
        self._idle = False  # the writer waits for _wakeup: the next submit sets it
        self._lock = anyio.Lock()
        self._lost: StoreError | None = None  # the writer process is gone (_send_to)
        self._in_flight = 0  # batches at the head of the queue the writer process has
        self._child: WriterProcess | None = None
        self._running = False
        self._submitted = 0
        self._committed = 0
        self._failed = 0
        self._commits = 0
        self._largest = 0

    # -- writing ---------------------------------------------------------------

    def submit(
        self, record: TransitionRecord, link: Link, *, channel: str, claim: Claim | None = None
    ) -> Receipt:
        """Queue ``record`` with a snapshot of ``link`` as it is now; never blocks.

        Call it right after the transition fired: the snapshot reads ``link``
        at ``record.t``. With ``claim`` (from :meth:`claim`) the write is
        fenced by it: refused with :class:`linkstate.store.StoreOwnedElsewhereError`
        once another owner has the link.
        """
        if not self._running:
            raise StoreError(
                "the journal's writer is not running; use `async with open_journal(store)`"
            )
        seq = 0
        if claim is not None:
            held = self._held.get((claim.link_id, claim.token))
            if held is None:
                raise StoreError(
                    f"link {claim.link_id!r}: its claim (token {claim.token}) was released or "
                    "lost; claim the link again (journal.claim) before writing it"
                )
            held.seq += 1
            seq = held.seq
        row = LinkRow.from_link(
            link, channel=channel, now=record.t, wall=self.wall(), claim=claim, seq=seq
        )
        batch = self._tail
        if batch is None or batch.sealed or len(batch.entries) >= self.max_batch:
            batch = _Batch()
            self._queue.append(batch)
            self._tail = batch
        batch.entries.append((record, row))
        self._submitted += 1
        if self._idle:  # one wake-up per batch, not one per transition
            self._idle = False
            self._wakeup.set()
        return Receipt(batch, len(batch.entries) - 1)

    async def wait(self, receipt: Receipt) -> None:
        """Return once the transition is committed.

        Raises:
            StoreError: the store refused it (the message names the fix).

        """
        await receipt.batch.done.wait()
        error = receipt.batch.errors.get(receipt.index)
        if error is not None:
            raise error

    async def append(self, record: TransitionRecord, link: Link, *, channel: str) -> None:
        """Submit and wait: return once ``record`` is committed."""
        await self.wait(self.submit(record, link, channel=channel))

    async def flush(self) -> None:
        """Return once everything submitted so far is committed or refused."""
        if self._tail is not None:
            await self._tail.done.wait()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The writer task: commit queued batches until cancelled (and renew the claims)."""
        await self._start()
        child = self._child
        self._running = True
        try:
            async with anyio.create_task_group() as tasks:
                if self.renew_every is not None and not self.inline:
                    tasks.start_soon(self._renew, self.renew_every)
                task_status.started()
                if child is None:
                    await self._write()
                else:
                    await self._send_to(child)
        finally:
            self._running = False
            if child is not None:
                with anyio.CancelScope(shield=True):
                    await child.aclose()
            self._abandon()

    async def _start(self) -> None:
        """Decide whether to write inline, and start the writer process if there is one.

        :func:`open_journal` calls it before its task group, so that a child
        that cannot start is a plain :class:`StoreError`, not an exception group.
        """
        if self.inline is None:
            self.inline = _on_virtual_clock()
        if self.writer == "process" and not self.inline and self._child is None:
            self._child = await WriterProcess.start(self.store)

    async def _write(self) -> None:
        while True:
            await self._queued()
            batch = self._queue[0]
            batch.sealed = True
            entries = batch.entries
            self._largest = max(self._largest, len(entries))
            errors, commits = await self._call(partial(write_or_split, self.store, entries))
            self._finish(errors, commits)

    async def _send_to(self, child: WriterProcess) -> None:
        """The writer task with a writer process: keep it fed, read its answers in order."""
        answered = anyio.Event()

        async def read_answers() -> None:
            nonlocal answered
            try:
                while True:
                    errors, commits = await child.answer()
                    self._in_flight -= 1
                    self._finish(errors, commits)
                    answered.set()
                    answered = anyio.Event()
            except StoreError as exc:
                self._child_lost(exc)
                answered.set()

        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(read_answers)
                while True:
                    if self._in_flight >= IN_FLIGHT:
                        await answered.wait()
                        continue
                    await self._queued()
                    if self._lost is not None:
                        self._child_lost(self._lost)
                        continue
                    batch = self._queue[self._in_flight]
                    batch.sealed = True
                    self._largest = max(self._largest, len(batch.entries))
                    try:
                        await child.send(batch.entries)
                        # Counted once all of it is in the pipe: a send cut short by a
                        # cancel leaves a frame the child never reads (and abandoned).
                        self._in_flight += 1
                    except StoreError:
                        # The child is gone, but answers it wrote may still be in the
                        # pipe: the reader reads them, then fails the rest.
                        while self._lost is None:
                            await answered.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await child.close_input()  # it answers what it has whole, then exits
                await self._read_last_answers(child)

    async def _read_last_answers(self, child: WriterProcess) -> None:
        """On the way out: the batches the child has are answered, not abandoned."""
        with anyio.move_on_after(60):
            while self._in_flight and self._lost is None:
                try:
                    errors, commits = await child.answer()
                except StoreError as exc:
                    self._child_lost(exc)
                    return
                self._in_flight -= 1
                self._finish(errors, commits)

    def _child_lost(self, error: StoreError) -> None:
        """Fail every queued batch with ``error``: nothing is reported that it did not confirm."""
        self._lost = error
        self._in_flight = 0
        self._fail_queued(error)

    def _fail_queued(self, error: StoreError) -> None:
        while self._queue:
            self._finish(dict.fromkeys(range(len(self._queue[0].entries)), error), 0)

    async def _queued(self) -> None:
        """Return once the queue holds a batch the writer has not taken yet."""
        while len(self._queue) <= self._in_flight:
            self._idle = True
            await self._wakeup.wait()
            self._wakeup = anyio.Event()

    def _finish(self, errors: Mapping[int, Exception], commits: int) -> None:
        """The batch at the head of the queue is written: count it and wake its waiters."""
        batch = self._queue.popleft()
        batch.sealed = True  # submit must not join a batch whose waiters are woken
        batch.errors.update(errors)
        self._commits += commits
        self._failed += len(errors)
        self._committed += len(batch.entries) - len(errors)
        batch.done.set()

    # -- owners ----------------------------------------------------------------

    async def claim(
        self, link_id: str, *, on_lost: Callable[[StoreOwnedElsewhereError], None]
    ) -> Claim:
        """Take ``link_id`` for this journal's owner, after every submitted write is done.

        ``on_lost`` is called (on the event loop, once) when a renewal finds
        that another owner took the link over.

        Raises:
            StoreOwnedElsewhereError: the store does not let the link be taken over.
            StoreError: the store cannot be written.

        """
        await self.flush()
        claim = await self._call(lambda: self.store.claim(link_id, self.owner))
        self._held[link_id, claim.token] = _Held(claim, on_lost)
        return claim

    async def release(self, claim: Claim) -> None:
        """Give ``claim``'s link back once its writes are done; idempotent, never raises.

        A release that cannot be written is logged: the claim then stays on
        record, and the next process's claim takes it over all the same.
        """
        if self._held.pop((claim.link_id, claim.token), None) is None:
            return
        await self.flush()
        try:
            await self._call(lambda: self.store.release(claim))
        except StoreError as exc:
            _log.warning("link %s: could not release its claim: %s", claim.link_id, exc)

    async def _renew(self, every: float) -> None:
        while True:
            await anyio.sleep(every)
            held = [h.claim for h in self._held.values()]
            try:
                lost = await self._call(partial(self.store.renew, held))
            except StoreError as exc:
                # The next write reports a store that stays broken; a renewal only looks.
                _log.debug("checking the claims failed: %s", exc)
                continue
            for claim in lost:
                entry = self._held.pop((claim.link_id, claim.token), None)
                if entry is not None:
                    entry.on_lost(
                        StoreOwnedElsewhereError(
                            f"link {claim.link_id!r} is owned elsewhere: a newer process "
                            "claimed it. This process stops without recording anything; run "
                            "one process per link",
                            link_id=claim.link_id,
                        )
                    )

    def _abandon(self) -> None:
        """Fail what is still queued, so nobody waits on a writer that is gone."""
        error = StoreError(
            "the journal stopped before these transitions were written; they are not in the "
            "state database. Keep the journal open until every supervisor has returned"
        )
        self._fail_queued(error)

    # -- reading ---------------------------------------------------------------

    async def load(self, link_id: str) -> LinkRow | None:
        """The stored row of ``link_id``, after every submitted write is done."""
        await self.flush()
        return await self._call(lambda: self.store.load(link_id))

    async def links(self) -> list[LinkRow]:
        """Every stored link."""
        await self.flush()
        return await self._call(self.store.links)

    async def history(self, link_id: str, limit: int | None = None) -> list[StoredTransition]:
        """The link's newest ``limit`` transitions, oldest first."""
        await self.flush()
        return await self._call(lambda: self.store.history(link_id, limit))

    async def _call(self, fn: Callable[[], R]) -> R:
        # One thread at a time uses the store. A thread cannot be interrupted, so
        # a cancelled caller still waits for its write to finish: it is atomic.
        async with self._lock:
            if self.inline:
                return fn()
            return await anyio.to_thread.run_sync(fn)

    def statistics(self) -> JournalStatistics:
        """Counters since the journal was made."""
        return JournalStatistics(
            submitted=self._submitted,
            committed=self._committed,
            failed=self._failed,
            commits=self._commits,
            largest_batch=self._largest,
            pending=self._submitted - self._committed - self._failed,
        )


@asynccontextmanager
async def open_journal(
    store: StateStore,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    inline: bool | None = None,
    renew_every: float | None = DEFAULT_RENEW_EVERY,
    owner: str | None = None,
    writer: Writer = "thread",
) -> AsyncIterator[Journal]:
    """Run a :class:`Journal` for the body of the ``async with``; flush it on the way out.

    ``owner`` names the writer in claims (a gateway host passes its store's owner);
    ``writer="process"`` writes from a child process (see :class:`Journal`).
    """
    journal = Journal(
        store,
        max_batch=max_batch,
        inline=inline,
        renew_every=renew_every,
        owner=owner,
        writer=writer,
    )
    await journal._start()
    try:
        async with anyio.create_task_group() as tasks:
            await tasks.start(journal.run)
            try:
                yield journal
            finally:
                with anyio.CancelScope(shield=True):
                    await journal.flush()
                tasks.cancel_scope.cancel()
    finally:
        if journal._child is not None:  # run closes it; this is for a run that never began
            with anyio.CancelScope(shield=True):
                await journal._child.aclose()


def _on_virtual_clock() -> bool:
    """True under trio's ``MockClock``; asyncio has no virtual clock anyio knows of."""
    if sniffio.current_async_library() != "trio":
        return False
    # Imported here: an asyncio program never needs trio loaded.
    import trio
    from trio.testing import MockClock

    return isinstance(trio.lowlevel.current_clock(), MockClock)
