"""The supervisor: runs one link's connections through the declared lifecycle, on trio or asyncio.

Theory of operation
-------------------
The machine decides, the supervisor executes. :class:`Supervisor` never
chooses a delay or a destination itself; it reads the effect the machine
recorded on the :class:`linkstate.Link` and carries it out:

======================  =====================================================
link state              what the supervisor does
======================  =====================================================
``idle``                fire ``start``
``connecting``          call ``transport.connect`` (under the connect timeout);
                        success fires ``opened``, a raise or timeout fires
                        ``connect_failed`` with the raw close info
``open``                wait for the connection to end; a close fires
                        ``closed``, transport silence fires ``watchdog_expired``
``reconnecting``        sleep ``link.delay`` (counted as one sleep), then fire
                        ``backoff_elapsed``
terminal                return the :class:`Outcome`
======================  =====================================================

Every connection lives inside its own anyio task group, which the transport may
use for background tasks (a reader, a pinger). The task group closes when the connection
ends, so no transport task outlives its connection, and none outlives the
supervisor.

The connect timeout is a deadline too: of the connection's task group,
lifted once connected (a handshake that returns after it passed is a
timed-out connect all the same); in a fleet, one timer task keeps every
link's (:class:`ConnectDeadlines`), which is cheaper than trio setting and
lifting a deadline per connect.

The watchdog is a deadline, not a task: the supervisor waits for the close
until ``last_activity + watchdog``; when the deadline passes it looks again,
and expires only if the transport really stayed silent. Each connection's
window starts when it opens. "Activity" means transport frames or pings, so a
quiet chat on a healthy connection never trips it.

Abort is cancellation. :meth:`Supervisor.abort` cancels the scope of the wait
under way (the connection's task group, or the backoff sleep's scope), and
``run()`` returns the ``stopped`` outcome; a cancellation from outside does
the same bookkeeping and then propagates, as trio and asyncio require. In
both cases the open connection is closed under a shield first.

Reported means committed. With a journal, a transition is logged and shown
to observers only once its commit returned, and the supervisor carries out
nothing (no connect, no sleep, no watching an opened connection) before
that. A transition the store refuses is never reported: a refusal that says
the link is owned elsewhere (a newer process claimed it) ends the run
quietly, in ``stopped`` with the stop reason ``owned_elsewhere`` and
nothing more written, never retried or restarted; any other refusal (a full
disk, a lock) is raised from ``run()``.

The code is written once, against anyio, and runs on either back end: trio
(the default, and the one the tests drive on a virtual clock) or asyncio.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Final, Protocol, runtime_checkable

import anyio
import sniffio
from anyio.abc import TaskGroup

from linkstate._channel import Channel, ChannelError
from linkstate._errors import ArgumentError, LinkstateError
from linkstate._events import CloseEvent, Initiator, Phase
from linkstate._lifecycle import State, StopReason, Trigger
from linkstate._machine import Link, LinkMachine, Observer, TransitionRecord
from linkstate._policy import DEFAULT_CONNECT_TIMEOUT, ReconnectPolicy
from linkstate.store._journal import Journal, Receipt
from linkstate.store._sqlite import (
    Claim,
    StoreError,
    StoreOwnedElsewhereError,
    StoreRequestError,
)

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_KEEP_RECORDS",
    "DEFAULT_STOP_TIMEOUT",
    "GONE",
    "OWNED_ELSEWHERE",
    "ConnectFailed",
    "Connection",
    "Outcome",
    "Supervisor",
    "SupervisorError",
    "Transport",
    "transport_factory",
]

_log: Final = logging.getLogger("linkstate.runtime")

# Enough for any run a person reads; a link flapping for months must not grow
# without bound. The durable history is the store's.
DEFAULT_KEEP_RECORDS: Final = 1000

# Closing our side is best effort: a peer that never answers our close frame
# must not keep an aborted supervisor alive.
DEFAULT_CLOSE_TIMEOUT: Final = 5.0

# A stop (abort: Ctrl-C, SIGTERM, --max-time, fleet.stop) waits this long at
# most for the peer's answer to our close: a person, or a service manager,
# is waiting on it. A second abort does not wait at all.
DEFAULT_STOP_TIMEOUT: Final = 1.0

RESUMED: Final = "resumed on start after a local stop; retry budget and flap history kept"
"""The reason recorded on the ``resume`` transition that starts a run of a ``stopped`` link."""

GONE: Final = "the process that had this link open is gone (restarted, killed or taken over)"
"""The reason on the ``abort`` that starts a run of a link stored ``open``, before it resumes."""

OWNED_ELSEWHERE: Final = "owned_elsewhere"
"""The stop reason of a run that ended because another owner claimed its link.

Not a lifecycle :class:`linkstate.StopReason`: nothing is recorded for the
link, which carries on under its new owner; only this run's outcome says it.
"""


class SupervisorError(LinkstateError, RuntimeError):
    """A :class:`Supervisor` was asked to run while its one run is under way."""


class ConnectFailed(LinkstateError):  # noqa: N818 - it names the event, like trio's Cancelled
    """Raised by a transport to report a handshake failure with arbitrary raw close info.

    A transport may raise any exception from ``connect``; the supervisor
    classifies the exception itself. Raise this instead when the close info is
    not an exception (a status dict, a bare 440): the supervisor classifies
    ``raw``.
    """

    def __init__(self, raw: object) -> None:
        super().__init__(raw)
        self.raw = raw


@runtime_checkable
class Connection(Protocol):
    """One open connection, as the supervisor sees it.

    Attributes:
        last_activity: ``anyio.current_time()`` of the latest transport frame,
            ping or pong. A plain attribute is fine. The watchdog reads it.

    """

    @property
    def last_activity(self) -> float:
        """When the transport last showed a sign of life (``anyio.current_time()``)."""
        ...

    async def wait_closed(self) -> object:
        """Wait until the connection ends; return the raw close info (any shape).

        Must be safe to cancel and to call again, like ``anyio.Event.wait``: the
        supervisor cancels it at each watchdog deadline and calls it again. A
        raise is treated as a close whose raw info is the exception.
        """
        ...

    async def aclose(self) -> None:
        """Close our side; idempotent. Called under a shield with a timeout."""
        ...


@runtime_checkable
class Transport(Protocol):
    """Opens connections for one link."""

    async def connect(self, tasks: TaskGroup) -> Connection:
        """Open a connection and return it once the handshake completed.

        ``tasks`` (an anyio task group) lives exactly as long as this connection: start any
        background tasks (a reader, a pinger) in it; it is cancelled after
        ``aclose``. On an abort, cancellation reaches those tasks at once; a
        transport that needs one of them for a graceful close (to read the
        peer's close reply) may shield it, and must then lift the shield in
        ``aclose``, in a ``finally``, because ``aclose`` runs under a timeout.

        Raising any ``Exception`` means the handshake failed; the exception is
        the raw close info (or raise :class:`ConnectFailed` to pass other raw
        info) and is classified by the channel's table like any other close.
        """
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a supervised run ended (or where it stands, for a snapshot).

    Attributes:
        link_id: The link's id.
        state: The final state (a terminal one after ``run()`` returns).
        verdict: The verdict the guards decided on for the latest close
            (``fatal`` once a row escalated), or None if none was seen.
        status: The status of the latest close, or None.
        stop_reason: Why the link stopped (``relink``, ``fatal``, ``aborted``...,
            or :data:`OWNED_ELSEWHERE`).
        message: The operator message of the terminal state, or None.
        connects: Connect attempts made, failed ones included.
        opens: Connect attempts that completed the handshake.
        sleeps: Backoff sleeps taken; a ``retry_now`` delay counts too.
        slept: Total seconds of backoff sleep.
        attempts: The link's reconnect-attempt counter at the end.
        records: The transitions of this run, in order: all of them, or the
            newest ``keep_records`` on a very long run (subscribe, or use a
            journal, to see every one).

    """

    link_id: str
    state: str
    verdict: str | None
    status: int | None
    stop_reason: str | None
    message: str | None
    connects: int
    opens: int
    sleeps: int
    slept: float
    attempts: int
    records: tuple[TransitionRecord, ...]

    def to_json(self) -> dict[str, object]:
        """A JSON-ready summary (without the records)."""
        return {
            "link": self.link_id,
            "final": self.state,
            "verdict": self.verdict,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "connects": self.connects,
            "opens": self.opens,
            "sleeps": self.sleeps,
            "slept": self.slept,
            "attempts": self.attempts,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class _Ending:
    """How one connect attempt ended: the close-like trigger to fire and its raw info."""

    trigger: Trigger
    raw: object


class Supervisor:
    """Runs one link: connects, watches, and executes what the machine decides.

    Args:
        channel: The channel whose table classifies closes.
        transport: Opens the connections.
        link_id: The link's name, used in messages and records.
        link: Resume this link instead of a fresh one. A ``needs_relink`` or
            ``failed`` link is not connected at all: ``run()`` returns at once. A
            ``stopped`` one (a local abort) resumes through the lifecycle's
            ``resume`` edge, which keeps its retry budget.
        machine: A shared :class:`LinkMachine` (fleets share one); by default
            one is built from ``channel``, ``policy`` and ``rng``.
        policy: The reconnect policy; defaults to the channel's.
        connect_timeout: Seconds one connect attempt may take; None for no limit.
        watchdog: Seconds of transport silence that force a reconnect; None
            turns the watchdog off.
        close_timeout: Seconds closing our side may take.
        stop_timeout: Seconds closing our side may take once the link is being
            stopped (:meth:`abort`), when that is shorter than ``close_timeout``.
        rng: The random source for jitter; pass a seeded one for reproducible runs.
        clock: Where ``now`` comes from; defaults to ``anyio.current_time``.
        keep_records: How many of the newest transitions ``outcome.records``
            keeps; bounds the memory of a link that runs (and flaps) for months.
        journal: Persist the link: ``run()`` first claims it and loads it from
            the journal's store (the stored link wins over ``link``; a stored
            ``stopped`` link resumes, a ``needs_relink`` or ``failed`` one does
            not connect), commits each transition before reporting it or
            acting on it, and returns only once every transition it made is
            committed. Losing the claim ends the run (see the module header).

    """

    # Slots: a fleet holds one supervisor per link (benchmarks/supervised.py).
    __slots__ = (
        "_abort_reason",
        "_abort_requested",
        "_claim",
        "_clock_given",
        "_close_scope",
        "_connecting",
        "_connects",
        "_cut_short",
        "_deadlines",
        "_keep_records",
        "_loop_now",
        "_lost",
        "_observers",
        "_opens",
        "_receipts",
        "_records",
        "_running",
        "_sleeps",
        "_slept",
        "_store_error",
        "_wait_scope",
        "channel",
        "clock",
        "close_timeout",
        "connect_timeout",
        "journal",
        "link",
        "machine",
        "stop_timeout",
        "transport",
        "watchdog",
    )

    def __init__(
        self,
        channel: Channel,
        transport: Transport,
        *,
        link_id: str = "link",
        link: Link | None = None,
        machine: LinkMachine | None = None,
        policy: ReconnectPolicy | None = None,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        watchdog: float | None = None,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
        journal: Journal | None = None,
        keep_records: int = DEFAULT_KEEP_RECORDS,
    ) -> None:
        if machine is not None and (policy is not None or rng is not None):
            raise ArgumentError(
                "Supervisor got both machine= and policy=/rng=; a shared machine already has "
                "its policy and random source: pass one or the other"
            )
        if machine is not None and machine.channel is not channel:
            raise ArgumentError(
                f"Supervisor for channel {channel.name!r} got a machine for channel "
                f"{machine.channel.name!r}; build the machine from the same channel"
            )
        for name, value in (("connect_timeout", connect_timeout), ("watchdog", watchdog)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ArgumentError(
                    f"{name}={value!r} must be a positive number of seconds or None"
                )
        for name, value in (("close_timeout", close_timeout), ("stop_timeout", stop_timeout)):
            if not (math.isfinite(value) and value >= 0):
                raise ArgumentError(f"{name}={value!r} must be a number of seconds, 0 or more")
        self.channel = channel
        self.transport = transport
        self.machine = machine or LinkMachine(channel, policy, rng=rng)
        self.clock = clock or anyio.current_time
        self._clock_given = clock is not None
        # The event loop's own clock, for deadlines; run() picks the back end's.
        self._loop_now: Callable[[], float] = anyio.current_time
        self.link = link if link is not None else self.machine.new_link(link_id)
        self.connect_timeout = connect_timeout
        self.watchdog = watchdog
        self.close_timeout = close_timeout
        self.stop_timeout = stop_timeout
        # The scope of our close under way, which abort() shortens or cancels.
        self._close_scope: anyio.CancelScope | None = None
        self._cut_short = False  # a second abort: close without waiting for the peer
        # A fleet's shared connect timer (ConnectDeadlines), which the fleet sets;
        # without one, the connect timeout is a deadline of the connection's scope.
        self._deadlines: ConnectDeadlines | None = None
        self._connecting = 0  # the attempt whose handshake is under way, else 0
        self.journal = journal
        # A list, not a deque: it holds a receipt or two at a time, and an empty
        # deque costs ~760 bytes per supervisor (benchmarks/supervised.py).
        # Made by the first submit: without a journal nothing waits for a commit.
        self._receipts: list[tuple[Receipt, TransitionRecord]] | None = None
        self._store_error: StoreError | None = None
        self._claim: Claim | None = None
        self._lost: StoreOwnedElsewhereError | None = None
        # A tuple, replaced on (un)subscribe: most supervisors have one observer
        # or none, and reporting iterates it without a copy.
        self._observers: tuple[Observer, ...] = ()
        if keep_records < 1:
            raise ArgumentError(f"keep_records={keep_records!r} must be 1 or more")
        self._records: list[TransitionRecord] = []
        self._keep_records = keep_records
        # Abort cancels the scope of the wait under way: the connection's task
        # group, or the backoff sleep's scope. No scope of its own lives as long
        # as the link: an anyio cancel scope costs ~1.3 KB per open link on trio
        # (benchmarks/supervised.py), and the task group already has one.
        self._wait_scope: anyio.CancelScope | None = None
        self._abort_requested = False
        self._abort_reason = StopReason.aborted
        self._connects = 0
        self._opens = 0
        self._sleeps = 0
        self._slept = 0.0
        self._running = False

    # -- observing -------------------------------------------------------------

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer`` with each transition of this link; returns an unsubscribe function.

        Observers run synchronously inside the supervisor; an observer that
        raises is logged and ignored, so a metrics bug cannot change a link's fate.
        """
        self._observers = (*self._observers, observer)

        def unsubscribe() -> None:
            observers = list(self._observers)
            observers.remove(observer)
            self._observers = tuple(observers)

        return unsubscribe

    @property
    def outcome(self) -> Outcome:
        """A snapshot of the run so far; after ``run()`` ends, its final outcome."""
        link = self.link
        event = link.last_event
        stop_reason = None if link.stop_reason is None else link.stop_reason.value
        if self._lost is not None:
            # Nothing more was written; a stop asked for a reason of its own
            # (a lapsed lease) keeps it, else the loss is the reason.
            reason = self._abort_reason
            stop_reason = reason.value if reason is not StopReason.aborted else OWNED_ELSEWHERE
        return Outcome(
            link_id=link.link_id,
            state=link.state,
            verdict=None if link.verdict is None else link.verdict.value,
            status=None if event is None else event.status,
            stop_reason=stop_reason,
            message=link.message if link.terminal else None,
            connects=self._connects,
            opens=self._opens,
            sleeps=self._sleeps,
            slept=self._slept,
            attempts=link.attempt,
            records=tuple(self._records[-self._keep_records :]),
        )

    # -- running ---------------------------------------------------------------

    def abort(self, reason: StopReason = StopReason.aborted) -> None:
        """Stop the link: ``run()`` closes the connection and returns in ``stopped``.

        Safe to call from any task of the same event loop, from an observer, and
        before ``run()`` starts. ``reason`` is the stop reason recorded
        (``lease_lost`` when the host's lease on the link lapsed). Closing the
        connection then waits for the peer's answer at most ``stop_timeout``
        seconds; a second call cuts a close under way short at once (the
        connection is dropped).
        """
        again = self._abort_requested
        if not again:
            self._abort_reason = reason
        self._abort_requested = True
        self._cut_short = again
        if self._wait_scope is not None:
            self._wait_scope.cancel()
        closing = self._close_scope
        if closing is not None:
            if again:
                closing.cancel()
            else:
                closing.deadline = min(closing.deadline, anyio.current_time() + self.stop_timeout)

    @property
    def abort_requested(self) -> bool:
        """True once :meth:`abort` was called (or the link was lost to another owner)."""
        return self._abort_requested

    async def run(self) -> Outcome:
        """Supervise the link until it reaches a terminal state; return the outcome.

        An external cancellation also stops the link in ``stopped`` (closing the
        connection first) and then propagates.
        """
        if self._running:
            raise SupervisorError(
                f"Supervisor for link {self.link.link_id!r} is already running; "
                "make one Supervisor per run"
            )
        self._running = True
        self._loop_now = loop_clock()
        if not self._clock_given:
            self.clock = self._loop_now
        restored = False
        try:
            if self.journal is not None:
                self._claim = await self.journal.claim(self.link.link_id, on_lost=self._lose)
                self._restore(self.journal, self._claim)
            restored = True
            if self.link.state == State.open:
                # Restored from a record of a connection whose process is gone
                # (killed, or being taken over). That was our restart, not the
                # peer's close: stopped and resumed, it counts towards neither
                # flap detection nor the retry budget.
                record = self.machine.fire(self.link, Trigger.abort, self.clock())
                self._after(replace(record, reason=GONE))
            if self.link.state == State.stopped:
                # A local stop ends one run, not the link: resume it, on the record.
                record = self.machine.fire(self.link, Trigger.resume, self.clock())
                self._after(replace(record, reason=RESUMED))
            await self._drive()
        finally:
            # Cancellation (abort() or from outside) or a bug: either way the
            # link must not stay "live" in the record of a supervisor that is
            # gone; unless it is not ours any more, when nothing may be written.
            if restored and self._lost is None and not self.link.terminal:
                self._stop()
            self._running = False
            with anyio.CancelScope(shield=True):
                try:
                    await self._persisted()
                finally:
                    await self._let_go()
        return self.outcome

    def _restore(self, journal: Journal, claim: Claim) -> None:
        row = claim.row
        if row is None:
            return
        if row.channel != self.channel.name:
            raise StoreRequestError(
                f"link {row.link_id!r} is stored for channel {row.channel!r}, not "
                f"{self.channel.name!r}; give this link another id"
            )
        if claim.previous is not None and not row.terminal:
            _log.warning(
                "link %s: took it over from %s, which still had it (state %s); that process "
                "stops at its next write",
                row.link_id,
                claim.previous,
                row.state,
                extra={"link": row.link_id, "state": row.state},
            )
        self.link = row.to_link(now=self.clock(), wall=journal.wall(), channel=self.channel)

    async def _let_go(self) -> None:
        """Release the claim (unless lost); a lost link ends ``stopped`` in this run alone."""
        if self._lost is not None:
            link = Link(self.link.link_id, State.stopped, self.clock())
            link.message = str(self._lost)
            self.link = link
        elif self.journal is not None and self._claim is not None:
            await self.journal.release(self._claim)

    def _lose(self, exc: StoreOwnedElsewhereError) -> None:
        """Another owner has the link: stop at once, without writing anything more."""
        if self._lost is None:
            self._lost = exc
            _log.warning("%s", exc, extra={"link": self.link.link_id})
        self.abort()

    async def _persisted(self) -> None:
        """Wait until every transition so far is committed, reporting each; raise a refusal.

        A refusal that says the link is owned elsewhere ends the run quietly
        (:meth:`_lose`). Any other one is raised, and is the one that explains
        the others (a refused write makes the next one from this link a
        conflict), so it is raised again on every later call, including the
        final one in ``run()``. A refused transition, and every one after it,
        is never reported.
        """
        if self.journal is None:
            return
        while self._receipts and self._lost is None and self._store_error is None:
            receipt, record = self._receipts[0]
            try:
                # Popped only after the wait: a cancelled wait must leave the
                # receipt for the final, shielded call in run().
                await self.journal.wait(receipt)
            except StoreOwnedElsewhereError as exc:
                self._lose(exc)
            except StoreError as exc:
                self._store_error = exc
            else:
                self._report(record)
            self._receipts.pop(0)
        if self._lost is None and self._store_error is not None:
            raise self._store_error

    async def _drive(self) -> None:
        # No checkpoint first: an abort() before run() is seen by the loop before
        # it fires start, and the first connect or wait yields anyway (a
        # checkpoint is ~10 µs of a link's start).
        if self.link.terminal:
            _log.error(
                "%s",
                self.link.message or f"link {self.link.link_id!r} is {self.link.state}",
                extra=self._extra_for_link(),
            )
            return
        while not self.link.terminal:
            # The decision is on disk before it is carried out.
            if self.journal is not None:
                await self._persisted()
            if self._abort_requested:
                return  # run() records the abort
            match self.link.state:  # a str: State is a StrEnum, so no State() lookup
                case State.idle:
                    self._fire(Trigger.start)
                case State.connecting:
                    await self._attempt()
                case State.reconnecting:
                    await self._backoff()
                case other:  # pragma: no cover - terminal states end the loop
                    raise AssertionError(other)

    async def _backoff(self) -> None:
        link = self.link
        delay = link.delay or 0.0
        # When resuming, only the rest of the scheduled delay is left.
        remaining = min(delay, max(0.0, link.since + delay - self.clock()))
        self._sleeps += 1
        started = anyio.current_time()
        try:
            with self._abortable(anyio.CancelScope()):
                await anyio.sleep(remaining)
        finally:
            # What was really slept: an abort cuts the sleep short.
            self._slept += anyio.current_time() - started
        if not self._abort_requested:
            self._fire(Trigger.backoff_elapsed)

    @contextmanager
    def _abortable(self, scope: anyio.CancelScope) -> Iterator[None]:
        """Let :meth:`abort` cancel ``scope`` (entered by the caller) while the block runs."""
        self._wait_scope = scope
        if self._abort_requested:
            scope.cancel()
        try:
            with scope:
                yield
        finally:
            self._wait_scope = None

    async def _attempt(self) -> None:
        """One connect attempt, start to end; fires the close-like trigger that ended it."""
        self._connects += 1
        ending: _Ending | None = None
        try:
            async with anyio.create_task_group() as tasks:
                scope = tasks.cancel_scope
                # The connect timeout is a deadline on the connection's own scope,
                # not a scope of its own: one cancel scope less per connect
                # (benchmarks/supervised.py). _session lifts it once connected; a
                # connect that outlives it takes the transport's tasks with it,
                # which a failed connect does anyway.
                if self.connect_timeout is not None:
                    deadline = self._loop_now() + self.connect_timeout
                    if self._deadlines is None:
                        scope.deadline = deadline
                    else:
                        self._connecting = self._connects
                        self._deadlines.add(deadline, self, self._connects)
                self._wait_scope = scope
                if self._abort_requested:
                    scope.cancel()
                try:
                    ending = await self._session(tasks)
                finally:
                    self._wait_scope = None
                scope.cancel()
        except Exception as exc:
            # A transport's background task crashed. That is how this connection
            # ended, so it is classified like any other close, never a crash.
            if ending is None:
                ending = self._ending_for(_single(exc))
        if ending is None:
            if self._store_error is not None:
                raise self._store_error  # the open was not committed: nothing to carry on
            if self._abort_requested or self._lost is not None:
                # The task group caught abort()'s cancellation, or the open was refused.
                return
            # Nothing else cancels the group while connecting: the deadline passed.
            assert self.link.state == State.connecting, self.link.state
            ending = self._connect_timed_out()
        self._close(ending.trigger, ending.raw)

    def _connect_timed_out(self) -> _Ending:
        return _Ending(
            Trigger.connect_failed,
            CloseEvent(
                reason=f"connect timed out after {self.connect_timeout:g} s",
                initiator=Initiator.local,
                phase=Phase.handshake,
            ),
        )

    def _expire_connect(self, attempt: int) -> None:
        """The shared timer says connect ``attempt`` ran out of time: end it, if still under way."""
        if self._connecting == attempt and self._wait_scope is not None:
            self._wait_scope.cancel()

    async def _session(self, tasks: TaskGroup) -> _Ending | None:
        try:
            connection = await self.transport.connect(tasks)
        except ConnectFailed as exc:
            return _Ending(Trigger.connect_failed, exc.raw)
        except Exception as exc:
            return _Ending(Trigger.connect_failed, exc)
        finally:
            self._connecting = 0
        try:
            if self.connect_timeout is not None:
                group = tasks.cancel_scope
                if group.cancel_called and not self._abort_requested:
                    # Connected as the deadline passed: too late all the same, and
                    # the scope cannot be un-cancelled.
                    return self._connect_timed_out()
                if self._deadlines is None:
                    group.deadline = math.inf
            self._opens += 1
            self._fire(Trigger.opened)
            if self.journal is not None:
                try:
                    # An open the store refuses is not ours to watch (module header).
                    await self._persisted()
                except StoreError:
                    return None
                if self._lost is not None:
                    return None
            if self.watchdog is None:
                # No deadline to watch: skip the cancel scope (~0.7 KB per open link),
                # and wait right here: a coroutine frame less (~0.2 KB) than _wait_closed.
                try:
                    return _Ending(Trigger.closed, await connection.wait_closed())
                except Exception as exc:
                    return _Ending(Trigger.closed, exc)
            return await self._watch(connection, self.watchdog)
        finally:
            limit = self.close_timeout
            if self._abort_requested:
                limit = 0.0 if self._cut_short else min(limit, self.stop_timeout)
            # Shielded from the abort's cancellation (the close frame must go
            # out), yet bounded; abort() shortens or cancels it (see there).
            with anyio.CancelScope(shield=True, deadline=anyio.current_time() + limit) as scope:
                self._close_scope = scope
                try:
                    await connection.aclose()
                except Exception:
                    _log.debug(
                        "closing the connection of link %r failed", self.link.link_id, exc_info=True
                    )
                finally:
                    self._close_scope = None

    async def _watch(self, connection: Connection, window: float) -> _Ending:
        """Wait for the close, or for ``window`` seconds of transport silence."""
        opened = anyio.current_time()
        while True:
            with anyio.CancelScope(deadline=max(_activity(connection), opened) + window):
                return await _wait_closed(connection)
            silent_for = anyio.current_time() - max(_activity(connection), opened)
            if silent_for >= window:
                return _Ending(
                    Trigger.watchdog_expired,
                    CloseEvent(
                        reason=f"watchdog: no frames or pings for {silent_for:g} s "
                        f"(limit {window:g} s)",
                        initiator=Initiator.local,
                    ),
                )

    def _ending_for(self, exc: BaseException) -> _Ending:
        trigger = Trigger.closed if self.link.state == State.open else Trigger.connect_failed
        return _Ending(trigger, exc)

    # -- firing and logging ----------------------------------------------------

    def _close(self, trigger: Trigger, raw: object) -> None:
        record = self.machine.close(self.link, raw, self.clock(), trigger=trigger)
        self._after(record)

    def _stop(self) -> None:
        """Fire ``abort`` with the reason given to :meth:`abort` (the edge says ``aborted``)."""
        record = self.machine.fire(self.link, Trigger.abort, self.clock())
        reason = self._abort_reason
        if reason is not StopReason.aborted and record.dst == State.stopped:
            self.link.stop_reason = reason
            record = replace(record, stop_reason=reason.value)
        self._after(record)

    def _fire(self, trigger: Trigger) -> None:
        self._after(self.machine.fire(self.link, trigger, self.clock()))

    def _after(self, record: TransitionRecord) -> None:
        self._records.append(record)
        if len(self._records) >= 2 * self._keep_records:
            # Trim in batches: amortised O(1) per transition, at most 2x the bound.
            del self._records[: -self._keep_records]
        if self.journal is None:
            self._report(record)
            return
        receipt = self.journal.submit(
            record, self.link, channel=self.channel.name, claim=self._claim
        )
        if self._receipts is None:
            self._receipts = []
        self._receipts.append((receipt, record))

    def _report(self, record: TransitionRecord) -> None:
        """Log ``record`` and show it to the observers: once it is committed, with a journal."""
        if _log.isEnabledFor(logging.INFO):
            _log_transition(record)
        if record.message and record.dst in (State.needs_relink, State.failed):
            # The one place the operator message is logged: at the transition
            # into the terminal state, which happens once per run.
            _log.error("%s", record.message, extra=self._extra_for_link())
        for observer in self._observers:
            try:
                observer(record)
            except Exception:
                _log.exception("transition observer %r failed", observer)

    def _extra_for_link(self) -> dict[str, object]:
        link = self.link
        return {
            "link": link.link_id,
            "state": link.state,
            "stop_reason": None if link.stop_reason is None else link.stop_reason.value,
            "status": None if link.last_event is None else link.last_event.status,
            "verdict": None if link.verdict is None else link.verdict.value,
            "operator_message": True,
        }


def _log_transition(record: TransitionRecord) -> None:
    """Log one transition at INFO; only called when INFO is on (its ``extra`` costs ~2 µs)."""
    _log.info(
        "link %s: %s --%s--> %s%s",
        record.link,
        record.src,
        record.trigger,
        record.dst,
        _detail(record),
        extra={
            "link": record.link,
            "src": record.src,
            "state": record.dst,
            "trigger": record.trigger,
            "status": record.status,
            "verdict": record.verdict,
            "delay": record.delay,
            "attempt": record.attempt,
            "stop_reason": record.stop_reason,
        },
    )


class ConnectDeadlines:
    """The connect timeouts of many supervisors (a fleet's), kept by one task.

    A connect timeout set on the connection's scope costs trio a context
    manager and a heap entry to set, and the same to lift once connected:
    about a tenth of a link's start (``benchmarks/supervised.py``). Here a
    connect adds one entry to a heap; :meth:`run`, one task for every link,
    wakes at the earliest deadline and cancels each handshake still under
    way by then. An entry whose connect finished lapses unseen. Timing is
    the same: the handshake is cancelled when its deadline passes.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Supervisor, int]] = []
        self._count = itertools.count()
        self._wake: anyio.Event | None = None
        self._until = math.inf
        self._closed = False

    def add(self, deadline: float, supervisor: Supervisor, attempt: int) -> None:
        """End ``supervisor``'s connect ``attempt`` at ``deadline`` if it is still under way."""
        heapq.heappush(self._heap, (deadline, next(self._count), supervisor, attempt))
        if deadline < self._until and self._wake is not None:
            self._wake.set()

    def close(self) -> None:
        """Stop :meth:`run`: the fleet is closing, and every link is being stopped."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Cancel each handshake whose deadline passed, until :meth:`close`."""
        heap = self._heap
        while not self._closed:
            now = anyio.current_time()
            while heap and heap[0][0] <= now:
                _, _, supervisor, attempt = heapq.heappop(heap)
                supervisor._expire_connect(attempt)
            self._until = heap[0][0] if heap else math.inf
            self._wake = anyio.Event()
            with anyio.CancelScope(deadline=self._until):
                await self._wake.wait()


def loop_clock() -> Callable[[], float]:
    """The running event loop's clock: the same values as ``anyio.current_time``.

    Under trio, trio's own function: anyio's looks the back end up on every
    call, three times the cost, and a link's start reads the clock four
    times (``benchmarks/supervised.py``).
    """
    if sniffio.current_async_library() == "trio":
        import trio  # only under trio, where it is loaded already

        return trio.current_time
    return anyio.current_time


def transport_factory(channel: Channel) -> Callable[[str], Transport]:
    """The channel's transport factory (``url -> Transport``).

    Raises:
        ChannelError: the channel has no transport the runtime can use, with the fix.

    """
    factory = channel.transport
    # callable() too: a plugin's Channel is built at run time, where the
    # annotation checks nothing.
    if factory is None or not callable(factory):
        raise ChannelError(
            f"channel {channel.name!r} has no transport for live connections; use a channel "
            "that ships one (such as websocket), or `linkstate simulate` for this channel"
        )
    return factory


def _detail(record: TransitionRecord) -> str:
    parts = []
    if record.rule is not None:
        parts.append(f"{record.rule} ({record.verdict})")
    if record.delay is not None:
        parts.append(f"retry in {record.delay:.2f} s")
    if record.stop_reason is not None:
        parts.append(f"reason {record.stop_reason}")
    return f" [{'; '.join(parts)}]" if parts else ""


async def _wait_closed(connection: Connection) -> _Ending:
    """Wait until ``connection`` ends; a raise is a close whose raw info is the exception."""
    try:
        return _Ending(Trigger.closed, await connection.wait_closed())
    except Exception as exc:
        return _Ending(Trigger.closed, exc)


def _activity(connection: Connection) -> float:
    try:
        value = float(connection.last_activity)
    except Exception:
        return -math.inf
    return value if not math.isnan(value) else -math.inf


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value


def _single(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member groups, else the group itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
