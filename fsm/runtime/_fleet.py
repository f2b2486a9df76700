"""A fleet: many supervised links in one trio or asyncio process, started and stopped by id.

Theory of operation
-------------------
Each link runs in its own task of the fleet's task group, and that task runs one
:class:`linkstate.runtime.Supervisor` after another. What ends a supervisor decides
what happens next:

==========================  ================================================
``run()`` ...               the fleet ...
==========================  ================================================
returns (terminal state)    keeps the outcome; the link is never restarted.
                            ``needs_relink`` and ``failed`` wait for a
                            person; ``stopped`` waits for :meth:`Fleet.start`
raises (the supervisor      restarts it after ``restarts.delay(n)``, at most
crashed: a bug, a store     ``restarts.max_restarts`` times per start; then
that cannot be written)     gives up and shows the error in the status
==========================  ================================================

A manager that restarts a worker which stopped on purpose undoes the stop:
that was OpenClaw's most common bug. So only a crash is restarted, never an
ending, and not even a crash once the link is ``needs_relink`` or ``failed``.

A restarted supervisor resumes the link where it was. With a journal the
store is the truth (it holds exactly what was committed), so the new
supervisor loads the link from it; without one it takes over the crashed
supervisor's :class:`linkstate.Link`, which its abort left ``stopped``,
and resumes it with its retry budget kept.

Links of one channel and policy share one :class:`linkstate.LinkMachine`.

Mass starts. While :data:`linkstate.runtime._heap.MASS_START_LINKS` or
more links are starting at once (started, first connect attempt not yet
over), the fleet holds CPython's cyclic collector off and freezes the
survivors once they are up, without a collection first
(:mod:`linkstate.runtime._heap`): with 100k links the collector would
otherwise spend a large part of the start walking objects that are all
alive. One task of the fleet's watches the starting links every
:data:`_SETTLE_EVERY` seconds; nothing is added to each link.

A link's start is kept to what it needs, since a gateway starts 100k at
once (``benchmarks/supervised.py``): under trio the links' tasks run in a
trio nursery of their own (:func:`_host_links`), their connect timeouts are
kept by one timer task
(:class:`linkstate.runtime._supervisor.ConnectDeadlines`), and members are
slotted objects, not closures.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.lowlevel
import sniffio
from anyio.abc import TaskGroup, TaskStatus

from linkstate._channel import Channel
from linkstate._errors import ArgumentError, LinkstateError
from linkstate._lifecycle import State, StopReason
from linkstate._machine import Link, LinkMachine, Observer, TransitionRecord
from linkstate._policy import Jitter, PolicyError, ReconnectPolicy, whole_number
from linkstate._verdicts import CLI_COMMANDS, OperatorCommands
from linkstate.runtime._heap import MASS_START_HOLD, MASS_START_LINKS, hold_collector
from linkstate.runtime._supervisor import (
    DEFAULT_CONNECT_TIMEOUT,
    ConnectDeadlines,
    Outcome,
    Supervisor,
    Transport,
    loop_clock,
)
from linkstate.store._journal import Journal
from linkstate.store._sqlite import StoreOwnedElsewhereError

__all__ = [
    "DEFAULT_FLEET_KEEP_RECORDS",
    "Fleet",
    "FleetError",
    "LinkStatus",
    "RestartPolicy",
    "open_fleet",
]

DEFAULT_FLEET_KEEP_RECORDS: Final = 20
"""Transitions each link of a fleet keeps in memory: a few kilobytes a link, however it flaps."""

_log: Final = logging.getLogger("linkstate.fleet")

# A crash is never restarted once the link waits for a person.
_WAITS_FOR_A_PERSON: Final = frozenset({State.needs_relink.value, State.failed.value})

# A link is still starting while its supervisor has not finished a first connect attempt.
_STARTING: Final = frozenset({State.idle.value, State.connecting.value})

# How often a mass start looks whether its links are up: a scan of the starting
# links (a few ms for 100k), seldom enough to cost nothing, soon enough that
# the collector is back within a fraction of a second.
_SETTLE_EVERY: Final = 0.1


class FleetError(LinkstateError, LookupError):
    """A link id is unknown to the fleet, or already running in it."""


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How often, and how soon, a crashed supervisor is restarted.

    Attributes:
        max_restarts: Restarts allowed per :meth:`Fleet.start`; 0 never restarts.
        backoff: The schedule of delays before restart n (its ``base_delay``).

    """

    max_restarts: int = 3
    backoff: ReconnectPolicy = field(
        default_factory=lambda: ReconnectPolicy(
            initial=1.0, factor=2.0, cap=60.0, jitter=Jitter.none
        )
    )

    def __post_init__(self) -> None:
        problems = []
        if not whole_number(self.max_restarts, 0):
            problems.append(f"max_restarts={self.max_restarts!r} must be a whole number >= 0")
        if not isinstance(self.backoff, ReconnectPolicy):
            problems.append(
                f"backoff={self.backoff!r} must be a ReconnectPolicy, such as "
                "ReconnectPolicy(initial=1.0, jitter=Jitter.none)"
            )
        if problems:
            raise PolicyError("invalid restart policy: " + "; ".join(problems))

    def delay(self, restart: int) -> float:
        """Seconds to wait before restart number ``restart`` (1-based)."""
        return self.backoff.base_delay(restart)


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """A snapshot of one link of a fleet; times are on the fleet's clock.

    Attributes:
        link_id: The link's id.
        channel: The channel's name.
        state: The lifecycle state.
        since: When the link entered ``state``.
        status: The status of the last close, or None.
        verdict: The verdict of the last close (as the guards saw it), or None.
        attempts: The reconnect-attempt counter.
        connected_for: Seconds the current connection has been open; None
            when the link is not open.
        running: True while a supervisor (or a restart delay) is under way.
        restarts: Crash restarts since the link was last started.
        message: The operator message of a terminal state.
        error: The latest crash, as ``Type: message``, or None.

    """

    link_id: str
    channel: str
    state: str
    since: float
    status: int | None
    verdict: str | None
    attempts: int
    connected_for: float | None
    running: bool
    restarts: int
    message: str | None
    error: str | None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict of every field."""
        return {
            "link": self.link_id,
            "channel": self.channel,
            "state": self.state,
            "since": self.since,
            "status": self.status,
            "verdict": self.verdict,
            "attempts": self.attempts,
            "connected_for": self.connected_for,
            "running": self.running,
            "restarts": self.restarts,
            "message": self.message,
            "error": self.error,
        }


class _Member:
    """One link of the fleet: what its supervisors are built from, and how it is doing.

    Plain slots rather than a closure over :meth:`Fleet.start`'s arguments:
    a fleet holds one per link, so every field and object counts
    (``benchmarks/supervised.py``).
    """

    __slots__ = (
        "channel",
        "connect_timeout",
        "error",
        "finished",
        "link",
        "link_id",
        "machine",
        "outcome",
        "restarts",
        "started",
        "stopping",
        "supervisor",
        "transport",
        "wait_scope",
        "waiters",
        "watchdog",
    )

    def __init__(
        self,
        link_id: str,
        channel: Channel,
        transport: Transport,
        machine: LinkMachine,
        *,
        started: float,
        connect_timeout: float | None,
        watchdog: float | None,
    ) -> None:
        self.link_id = link_id
        self.channel = channel
        self.transport = transport
        self.machine = machine
        self.started = started
        self.connect_timeout = connect_timeout
        self.watchdog = watchdog
        self.link: Link | None = None
        self.supervisor: Supervisor | None = None
        self.outcome: Outcome | None = None
        self.error: str | None = None
        self.restarts = 0
        self.stopping = False
        self.finished = False
        # Made for each restart wait (stop() cancels it): anyio makes a cancel
        # scope only inside a running loop, and most links never wait.
        self.wait_scope: anyio.CancelScope | None = None
        # Made by the first Fleet.wait: most links are never waited for one by one.
        self.waiters: anyio.Event | None = None

    def finish(self) -> None:
        """The link's task has ended: wake whoever waits for it."""
        self.finished = True
        if self.waiters is not None:
            self.waiters.set()


class Fleet:
    """Many links in one trio or asyncio process; make one with :func:`open_fleet`.

    Args:
        tasks: The anyio task group the links' tasks run in.
        journal: Persist every link (see :class:`linkstate.runtime.Supervisor`).
        restarts: How crashed supervisors are restarted.
        rng: The random source of every shared machine's jitter.
        clock: The clock for supervisors and snapshots; defaults to ``anyio.current_time``.
        keep_records: Transitions each link's supervisor keeps in memory for
            its outcome (:data:`DEFAULT_FLEET_KEEP_RECORDS` by default, at most
            twice that between trims). Small on purpose: a fleet of a thousand
            flapping links must not hold a million records; the durable
            history is the store's (``linkstate history``).
        commands: The operator commands the links' stop messages name.

    """

    def __init__(
        self,
        tasks: TaskGroup,
        *,
        journal: Journal | None = None,
        restarts: RestartPolicy | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
        keep_records: int = DEFAULT_FLEET_KEEP_RECORDS,
        commands: OperatorCommands = CLI_COMMANDS,
    ) -> None:
        self.keep_records = _checked_keep(keep_records)
        self.tasks = tasks
        self.journal = journal
        self.restarts = restarts or RestartPolicy()
        self.rng = rng or random.Random()
        self.clock = clock or anyio.current_time
        self.commands = commands
        self._members: dict[str, _Member] = {}
        self._machines: dict[tuple[str, ReconnectPolicy], LinkMachine] = {}
        # The machine of the latest start: a mass start asks for the same one
        # 100k times, and hashing a policy costs more than comparing identities.
        self._last_machine: LinkMachine | None = None
        # Where the links' tasks start: the task group, or a trio nursery of
        # their own that open_fleet sets up (see _host_links).
        self._spawn: Callable[..., object] = tasks.start_soon
        # Bound once: every supervisor subscribes the same observer.
        self._notify_each: Observer = self._notify
        # The links' connect timeouts, kept by one task of open_fleet's; without
        # it (a Fleet made by hand) each connect has a deadline of its own.
        self._deadlines: ConnectDeadlines | None = None
        # Links started since the last look that may still be starting (module header).
        self._starting: list[_Member] = []
        self._holding = False
        self._observers: list[Observer] = []

    # -- observing -------------------------------------------------------------

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer`` with every transition of every link; returns an unsubscribe function.

        It sees the links already running as well as those started later, and
        every supervisor a crash restart builds. Like
        :meth:`linkstate.runtime.Supervisor.subscribe`, observers run
        synchronously inside the supervisor, and one that raises is logged and
        ignored: a metrics bug cannot change a link's fate.
        """
        self._observers.append(observer)

        def unsubscribe() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return unsubscribe

    def channel_of(self, link_id: str) -> Channel:
        """The channel ``link_id`` was started with.

        Raises:
            FleetError: the link is unknown to the fleet.

        """
        return self._member(link_id).channel

    def _notify(self, record: TransitionRecord) -> None:
        # Subscribed once per supervisor; reads the list at call time, so an
        # observer subscribed later sees the links that are already running.
        for observer in tuple(self._observers):
            try:
                observer(record)
            except Exception:
                _log.exception("fleet transition observer %r failed", observer)

    # -- starting and stopping -------------------------------------------------

    def start(
        self,
        link_id: str,
        channel: Channel,
        transport: Transport,
        *,
        policy: ReconnectPolicy | None = None,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        watchdog: float | None = None,
    ) -> None:
        """Start supervising ``link_id``; returns at once.

        A link started before resumes where it ended: ``stopped`` resumes,
        ``needs_relink`` and ``failed`` end again at once without connecting.

        Raises:
            FleetError: the link is already running in this fleet.

        """
        previous = self._members.get(link_id)
        if previous is not None and not previous.finished:
            raise FleetError(
                f"link {link_id!r} is already running in this fleet; stop it first "
                "(fleet.stop) or use another id"
            )
        member = _Member(
            link_id,
            channel,
            transport,
            self._machine(channel, policy or channel.policy),
            started=self.clock(),
            connect_timeout=connect_timeout,
            watchdog=watchdog,
        )
        if previous is not None and self.journal is None:
            member.link = _last_link(previous)
        self._members[link_id] = member
        self._spawn(self._keep, member, name=f"linkstate link {link_id}")
        self._starting.append(member)
        if not self._holding and len(self._starting) >= MASS_START_LINKS:
            # Forget the links that are up already: the list stays short between
            # mass starts, and only links really starting together count.
            self._starting = [m for m in self._starting if _still_starting(m)]
            if len(self._starting) >= MASS_START_LINKS:
                # Held from here, not from when the task first runs: the starts
                # still to come in this same turn of the loop allocate the most.
                hold = ExitStack()
                hold.enter_context(hold_collector(collect=False))
                self._holding = True
                self.tasks.start_soon(self._mass_start, hold, name="linkstate fleet mass start")

    def stop(self, link_id: str, reason: StopReason = StopReason.aborted) -> None:
        """Stop ``link_id`` (it ends in ``stopped``, with ``reason``); returns at once.

        See :meth:`wait`.
        """
        member = self._member(link_id)
        member.stopping = True
        if member.wait_scope is not None:
            member.wait_scope.cancel()
        if member.supervisor is not None:
            member.supervisor.abort(reason)

    def stop_all(self) -> None:
        """Stop every link."""
        for link_id in self._members:
            self.stop(link_id)

    async def wait(self, link_id: str) -> Outcome | None:
        """Wait until ``link_id`` has ended; its outcome, or None if it crashed for good."""
        member = self._member(link_id)
        if member.finished:
            await anyio.lowlevel.checkpoint()
        else:
            if member.waiters is None:
                member.waiters = anyio.Event()
            await member.waiters.wait()
        return member.outcome

    # -- looking ---------------------------------------------------------------

    def __contains__(self, link_id: object) -> bool:
        return link_id in self._members

    def __len__(self) -> int:
        return len(self._members)

    def status(self, link_id: str) -> LinkStatus:
        """A snapshot of ``link_id`` now."""
        member = self._member(link_id)
        link = _last_link(member) or Link(link_id, State.idle, member.started)
        event = link.last_event
        opened_at = link.opened_at if link.state == State.open.value else None
        return LinkStatus(
            link_id=link.link_id,
            channel=member.channel.name,
            state=link.state,
            since=link.since,
            status=None if event is None else event.status,
            verdict=None if link.verdict is None else link.verdict.value,
            attempts=link.attempt,
            connected_for=None if opened_at is None else self.clock() - opened_at,
            running=not member.finished,
            restarts=member.restarts,
            message=link.message if link.terminal else None,
            error=member.error,
        )

    def statuses(self) -> list[LinkStatus]:
        """A snapshot of every link, by id."""
        return [self.status(link_id) for link_id in sorted(self._members)]

    # -- internals -------------------------------------------------------------

    def _member(self, link_id: str) -> _Member:
        try:
            return self._members[link_id]
        except KeyError:
            raise FleetError(
                f"no link {link_id!r} in this fleet; start it first (fleet.start)"
            ) from None

    def _machine(self, channel: Channel, policy: ReconnectPolicy) -> LinkMachine:
        last = self._last_machine
        if last is not None and last.channel is channel and last.policy is policy:
            return last
        self._last_machine = self._machine_for(channel, policy)
        return self._last_machine

    def _machine_for(self, channel: Channel, policy: ReconnectPolicy) -> LinkMachine:
        key = (channel.name, policy)
        machine = self._machines.get(key)
        if machine is None or machine.channel is not channel:
            machine = self._machines[key] = LinkMachine(
                channel, policy, rng=self.rng, commands=self.commands
            )
        return machine

    async def _mass_start(self, hold: ExitStack) -> None:
        """Keep ``hold`` until the starting links are up (module header), then let go."""
        try:
            with hold, anyio.move_on_after(MASS_START_HOLD):
                while self._starting:
                    await anyio.sleep(_SETTLE_EVERY)
                    self._starting = [m for m in self._starting if _still_starting(m)]
        finally:
            self._holding = False
            self._starting.clear()

    async def _keep(self, member: _Member) -> None:
        """Run supervisors for one link until it ends; see the module header."""
        try:
            while not member.stopping:
                supervisor = member.supervisor = self._build(member)
                try:
                    member.outcome = await supervisor.run()
                    return
                except StoreOwnedElsewhereError as exc:
                    # Another host drives the link now (its claim was refused): an
                    # ending, never restarted here.
                    member.outcome = supervisor.outcome
                    member.error = f"{type(exc).__name__}: {exc}"
                    _log.warning("link %s: %s", supervisor.link.link_id, exc)
                    return
                except Exception as exc:
                    delay = self._crashed(member, supervisor.link, exc)
                if delay is None:
                    return
                # A fresh scope per wait, so that stop() can cut this one short.
                member.wait_scope = anyio.CancelScope()
                with member.wait_scope:
                    await anyio.sleep(delay)
        finally:
            member.finish()

    def _build(self, member: _Member) -> Supervisor:
        supervisor = Supervisor(
            member.channel,
            member.transport,
            link_id=member.link_id,
            link=member.link,
            machine=member.machine,
            connect_timeout=member.connect_timeout,
            watchdog=member.watchdog,
            clock=self.clock,
            journal=self.journal,
            keep_records=self.keep_records,
        )
        supervisor.subscribe(self._notify_each)
        supervisor._deadlines = self._deadlines
        return supervisor

    def _crashed(self, member: _Member, link: Link, exc: Exception) -> float | None:
        """Record a crash; the delay before the restart, or None for no restart."""
        member.error = f"{type(exc).__name__}: {exc}"
        # With a journal the store is the truth; without one, the link object is.
        member.link = None if self.journal is not None else link
        extra = {"link": link.link_id, "state": link.state}
        if not self._may_restart(member, link):
            why = _why_not(member, link, self.restarts)
            _log.error(
                "link %s: supervisor crashed; not restarting: %s",
                link.link_id,
                why,
                exc_info=exc,
                extra=extra,
            )
            return None
        member.restarts += 1
        delay = self.restarts.delay(member.restarts)
        _log.error(
            "link %s: supervisor crashed; restart %d of %d in %.2f s",
            link.link_id,
            member.restarts,
            self.restarts.max_restarts,
            delay,
            exc_info=exc,
            extra=extra,
        )
        return delay

    def _may_restart(self, member: _Member, link: Link) -> bool:
        return (
            not member.stopping
            and link.state not in _WAITS_FOR_A_PERSON
            and member.restarts < self.restarts.max_restarts
        )


def _still_starting(member: _Member) -> bool:
    """True until the member's first supervisor has finished a connect attempt (or ended)."""
    if member.finished:
        return False
    supervisor = member.supervisor
    return supervisor is None or supervisor.link.state in _STARTING


def _last_link(member: _Member) -> Link | None:
    """The member's link as its latest supervisor left it (or as it was handed over)."""
    return member.supervisor.link if member.supervisor is not None else member.link


def _why_not(member: _Member, link: Link, restarts: RestartPolicy) -> str:
    if member.stopping:
        return "the link was being stopped"
    if link.state in _WAITS_FOR_A_PERSON:
        return f"the link is {link.state} and waits for a person"
    return f"{restarts.max_restarts} restarts used up"


@asynccontextmanager
async def open_fleet(
    *,
    journal: Journal | None = None,
    restarts: RestartPolicy | None = None,
    rng: random.Random | None = None,
    clock: Callable[[], float] | None = None,
    keep_records: int = DEFAULT_FLEET_KEEP_RECORDS,
    commands: OperatorCommands = CLI_COMMANDS,
) -> AsyncIterator[Fleet]:
    """Run a :class:`Fleet` for the body of the ``async with``; stop every link on the way out."""
    _checked_keep(keep_records)  # before the task group: one error, not a group of one
    async with anyio.create_task_group() as tasks:
        fleet = Fleet(
            tasks,
            journal=journal,
            restarts=restarts,
            rng=rng,
            clock=clock,
            keep_records=keep_records,
            commands=commands,
        )
        closing = anyio.Event()
        if clock is None:
            fleet.clock = loop_clock()
        deadlines = fleet._deadlines = ConnectDeadlines()
        tasks.start_soon(deadlines.run, name="linkstate fleet connect timeouts")
        if sniffio.current_async_library() == "trio":
            await tasks.start(_host_links, fleet, closing)
        try:
            yield fleet
        finally:
            fleet.stop_all()
            closing.set()
            # Every link is being stopped, which cancels its handshake: a link
            # started from here on keeps a deadline of its own.
            fleet._deadlines = None
            deadlines.close()


async def _host_links(fleet: Fleet, closing: anyio.Event, *, task_status: TaskStatus[None]) -> None:
    """On trio, run the fleet's links in a nursery of their own until the fleet closes.

    anyio's task group wraps every task it starts in a cancel scope and an
    event of its own (~15 µs and ~1 KB a link); a trio nursery starts a task
    for a quarter of that. The nursery is a task of the fleet's task group, so
    the group's cancellation reaches every link as before.
    """
    import trio  # only under trio: an asyncio program never loads it

    async with trio.open_nursery() as nursery:
        fleet._spawn = nursery.start_soon
        try:
            task_status.started()
            await closing.wait()
        finally:
            # Before the nursery can close: a link started from here on (while
            # the fleet shuts down) goes to the task group, which is still open.
            fleet._spawn = fleet.tasks.start_soon


def _checked_keep(keep_records: int) -> int:
    if isinstance(keep_records, bool) or not isinstance(keep_records, int) or keep_records < 1:
        raise ArgumentError(
            f"keep_records={keep_records!r} must be a whole number of transitions, 1 or "
            f"more (default {DEFAULT_FLEET_KEEP_RECORDS})"
        )
    return keep_records
