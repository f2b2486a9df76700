"""Several gateway hosts over one set of links: leases, renewal, balancing (``docs/multi-host.md``).

Theory of operation
-------------------
Every host runs the same :func:`open_leased_fleet` over the same links on one
shared :class:`linkstate.store.LeaseStore` (PostgreSQL). A host drives a link
only while it holds the link's lease, and the store refuses any write whose
lease token is no longer current. One keeper task per host does the rest,
once per ``renew_every``:

==================  ===========================================================
step                what and why
==================  ===========================================================
renew               one statement for every lease held. The request's send time
                    on this host's monotonic clock starts each renewed lease's
                    local deadline, ``sent_at + ttl - margin``: the server's
                    expiry is later than that whatever the clocks' offsets.
abort the lost      a lease the renewal did not return, or whose local deadline
                    passed (the server could not be reached), is lost: the link
                    is aborted at once, stop reason ``lease_lost``, and is not
                    restarted. A task of its own watches the deadlines, since
                    a round's store calls may hang in a partition. Its
                    connection closes before the server-side lease can have
                    expired, so no taker can overlap it.
heartbeat           this host's row in the hosts table; the answer is how many
                    hosts are alive, which sets the share, ⌈links / hosts⌉.
take                below its share, the host acquires free or expired leases.
                    One taken from a holder that let it expire (a crash, a
                    pause) waits ``grace`` before its first connect, so that
                    the old holder's socket is really gone; a released one
                    starts at once.
shed                above its share (a host joined), the host gives up
                    ``shed_per_round`` links per round, so healthy links move
                    a few at a time, never all at once. Each is stopped, and
                    its lease released only once its connection is closed.
notice              a held link that ended needing a person (``needs_relink``,
                    ``failed``) and that an operator reset meanwhile (the
                    renewal returns each row's state) is started again: no
                    restart of the host needed.
==================  ===========================================================

A clean shutdown stops every link, waits until each connection is closed and
its last transition committed, releases every lease and leaves the hosts
table: a rolling deploy hands the links over at once, without waiting for
the ``ttl``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from linkstate._channel import Channel
from linkstate._errors import ArgumentError
from linkstate._lifecycle import State, StopReason
from linkstate._policy import ReconnectPolicy
from linkstate.runtime._fleet import Fleet, FleetError, RestartPolicy, open_fleet
from linkstate.runtime._supervisor import DEFAULT_CONNECT_TIMEOUT, Transport
from linkstate.store._journal import open_journal
from linkstate.store._lease import Lease, LeaseStore
from linkstate.store._sqlite import StoreError

__all__ = ["LeaseKeeper", "LeasePolicy", "LeasedLink", "open_leased_fleet"]

_log: Final = logging.getLogger("linkstate.leases")

R = TypeVar("R")

_WAITS_FOR_A_PERSON: Final = frozenset({State.needs_relink.value, State.failed.value})


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """The lease timings of every host; they must agree across hosts.

    Attributes:
        ttl: Seconds a lease lasts after each renewal, on the server's clock.
        renew_every: Seconds between renewal rounds.
        margin: The holder gives a link up this long before ``sent_at + ttl``.
        grace: A taker waits this long before its first connect, after taking
            a lease its holder let expire: at least the holder's close
            timeout, and at least the time the platform takes to notice a
            silent client.
        shed_per_round: Links a host above its share gives up per round.

    """

    ttl: float = 15.0
    renew_every: float = 5.0
    margin: float = 5.0
    grace: float = 5.0
    shed_per_round: int = 10

    def __post_init__(self) -> None:
        for name in ("ttl", "renew_every", "margin", "grace"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ArgumentError(f"lease policy: {name}={value!r} must be a finite number >= 0")
        if not 0 < self.renew_every < self.ttl - self.margin:
            raise ArgumentError(
                f"lease policy: renew_every={self.renew_every:g} must be above 0 and below "
                f"ttl - margin = {self.ttl - self.margin:g} s, or a lease lapses between two "
                "renewals; renew more often or raise ttl"
            )
        if self.shed_per_round < 1:
            raise ArgumentError(
                f"lease policy: shed_per_round={self.shed_per_round!r} must be at least 1"
            )


@dataclass(frozen=True, slots=True)
class LeasedLink:
    """One link every host may drive: what :meth:`linkstate.runtime.Fleet.start` needs for it."""

    channel: Channel
    transport: Transport
    policy: ReconnectPolicy | None = None
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT
    watchdog: float | None = None


class LeaseKeeper:
    """Keeps one host's leases and starts and stops its links; see the module header.

    Made and run by :func:`open_leased_fleet`.

    Args:
        fleet: The fleet that runs the links this host holds.
        store: The shared store (opened with this host's ``owner``).
        links: Every link, by id; the same on every host.
        policy: The lease timings.
        rng: Picks which links a host above its share sheds.

    """

    def __init__(
        self,
        fleet: Fleet,
        store: LeaseStore,
        links: Mapping[str, LeasedLink],
        policy: LeasePolicy,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if store.owner is None:
            raise ArgumentError(
                "open_leased_fleet needs a store opened with owner= (this host's name); pass "
                "owner=new_owner()"
            )
        self.fleet = fleet
        self.store = store
        self.links = dict(links)
        self.policy = policy
        self.rng = rng or random.Random()
        self._channels = {link_id: spec.channel.name for link_id, spec in self.links.items()}
        self._deadlines: dict[str, float] = {}  # held and driven: the local give-up time
        self._leaving: set[str] = set()  # stopped by us; released once their connection is gone
        self._live_hosts = 1
        self._deadline_added = anyio.Event()
        self.tasks: TaskGroup | None = None
        self.rounds = 0
        self.lost = 0
        self.taken = 0
        self.shed = 0

    # -- looking ---------------------------------------------------------------

    @property
    def owner(self) -> str:
        """The name of this host in the store."""
        assert self.store.owner is not None
        return self.store.owner

    def held(self) -> list[str]:
        """The links this host holds and drives, by id."""
        return sorted(self._deadlines)

    def share(self) -> int:
        """⌈links / live hosts⌉: how many links this host aims to hold."""
        return math.ceil(len(self.links) / max(1, self._live_hosts))

    # -- the keeper task -------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The keeper loop, one round per ``renew_every``, until cancelled.

        The first round only announces this host: hosts that start together
        then see each other before any takes a share, instead of the first
        one taking every link and shedding them again.
        """
        async with anyio.create_task_group() as tasks:
            self.tasks = tasks
            tasks.start_soon(self._enforce_deadlines)
            task_status.started()
            live = await self._store_call(lambda: self.store.heartbeat(self.policy.ttl), "joining")
            self._live_hosts = live or 1
            await anyio.sleep(self.policy.renew_every)
            await self._loop()

    async def _loop(self) -> None:
        while True:
            started = anyio.current_time()
            await self.round()
            # Local deadlines are not the round's business: _enforce_deadlines
            # keeps them while a round waits on a store call that hangs.
            wake = started + self.policy.renew_every
            await anyio.sleep_until(max(wake, anyio.current_time() + 0.01))

    async def _enforce_deadlines(self) -> None:
        """Abort every held link the moment its local deadline passes.

        A task of its own, not a step of the round: in a partition each store
        call of a round hangs until ``_store_call`` gives up on it, and a
        deadline checked only between calls was noticed up to two calls late,
        which is the whole ``margin`` at the defaults: the connection could
        then outlive the server-side lease. Deadlines only move later
        (renewals), except a new lease's (``_take`` wakes this task).
        """
        while True:
            now = anyio.current_time()
            self._abort_overdue(now)
            wake = min(self._deadlines.values(), default=now + self.policy.renew_every)
            with anyio.move_on_after(max(0.0, min(wake - now, self.policy.renew_every))):
                await self._deadline_added.wait()
            self._deadline_added = anyio.Event()

    def _abort_overdue(self, now: float) -> None:
        for link_id, due in list(self._deadlines.items()):
            if due <= now:
                self._lose(link_id, "no successful renewal in time (is PostgreSQL reachable?)")

    async def round(self) -> None:
        """One round: renew, abort the lost, heartbeat, take or shed, notice resets."""
        self.rounds += 1
        ttl = self.policy.ttl
        sent = anyio.current_time()
        states = await self._store_call(lambda: self.store.renew_held(ttl), "renewing leases")
        if states is not None:
            deadline = sent + ttl - self.policy.margin
            for link_id in list(self._deadlines):
                if link_id in states:
                    self._deadlines[link_id] = deadline
                else:
                    self._lose(link_id, "the renewal did not return it: another host took it")
        self._abort_overdue(anyio.current_time())
        live = await self._store_call(lambda: self.store.heartbeat(ttl), "heartbeating")
        if live is None:
            return  # without the store, take nothing and shed nothing
        self._live_hosts = live
        held = len(self._deadlines)
        share = self.share()
        if held < share:
            await self._take(share - held)
        elif held > share:
            self._shed(min(self.policy.shed_per_round, held - share))
        if states is not None:
            self._restart_reset(states)

    async def _take(self, count: int) -> None:
        candidates = {
            link_id: channel
            for link_id, channel in self._channels.items()
            if link_id not in self._deadlines and link_id not in self._leaving
        }
        if not candidates:
            return
        sent = anyio.current_time()
        ttl = self.policy.ttl
        leases = await self._store_call(
            lambda: self.store.acquire(candidates, ttl, limit=count), "acquiring leases"
        )
        for lease in leases or ():
            self.taken += 1
            self._deadlines[lease.link_id] = sent + ttl - self.policy.margin
            self._deadline_added.set()
            delay = self.policy.grace if lease.taken_over else 0.0
            # In the keeper's own task group: a shutdown cancels the wait.
            assert self.tasks is not None
            self.tasks.start_soon(self._start_after, lease, delay)

    async def _start_after(self, lease: Lease, delay: float) -> None:
        """Start the link once ``delay`` (the grace) has passed, if the lease is still ours."""
        await anyio.sleep(delay)
        if lease.link_id not in self._deadlines:
            return
        spec = self.links[lease.link_id]
        try:
            self.fleet.start(
                lease.link_id,
                spec.channel,
                spec.transport,
                policy=spec.policy,
                connect_timeout=spec.connect_timeout,
                watchdog=spec.watchdog,
            )
        except FleetError:
            _log.debug("link %s is already running on this host", lease.link_id)

    def _shed(self, count: int) -> None:
        for link_id in self.rng.sample(sorted(self._deadlines), count):
            self.shed += 1
            _log.info("link %s: handed over to balance the hosts", link_id)
            self._leave(link_id, StopReason.aborted)

    def _restart_reset(self, states: Mapping[str, str]) -> None:
        for link_id in self._deadlines:
            if link_id not in self.fleet or states.get(link_id) != State.idle.value:
                continue
            status = self.fleet.status(link_id)
            if not status.running and status.state in _WAITS_FOR_A_PERSON:
                _log.info("link %s: reset by an operator; starting it again", link_id)
                spec = self.links[link_id]
                self.fleet.start(
                    link_id,
                    spec.channel,
                    spec.transport,
                    policy=spec.policy,
                    connect_timeout=spec.connect_timeout,
                    watchdog=spec.watchdog,
                )

    def _lose(self, link_id: str, why: str) -> None:
        self.lost += 1
        _log.warning("link %s: lease lost (%s); stopping it on this host", link_id, why)
        self._leave(link_id, StopReason.lease_lost)

    def _leave(self, link_id: str, reason: StopReason) -> None:
        """Stop driving ``link_id``; release its lease once its connection is closed."""
        del self._deadlines[link_id]
        self._leaving.add(link_id)
        if link_id in self.fleet:
            self.fleet.stop(link_id, reason)
        self.fleet.tasks.start_soon(self._release_when_stopped, link_id)

    async def _release_when_stopped(self, link_id: str) -> None:
        try:
            if link_id in self.fleet:
                await self.fleet.wait(link_id)
            await self._store_call(lambda: self.store.release_held([link_id]), "releasing a lease")
        finally:
            self._leaving.discard(link_id)

    async def _store_call(self, fn: Callable[[], R], doing: str) -> R | None:
        """Call the store in a thread, giving up after ``renew_every``; None on failure.

        A call that hangs (a partition) is abandoned: the round must go on to
        check the deadlines, which is what stops the links in time.
        """
        with anyio.move_on_after(self.policy.renew_every):
            try:
                return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)
            except StoreError as exc:
                _log.warning("%s failed: %s", doing, exc)
                return None
        _log.warning("%s took longer than %g s; gave up", doing, self.policy.renew_every)
        return None

    # -- shutting down ---------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop every link, wait for their connections to close, release the leases, leave."""
        held = list(self._deadlines)
        self._deadlines.clear()
        for link_id in held:
            if link_id in self.fleet:
                self.fleet.stop(link_id)
        with anyio.move_on_after(self.policy.ttl):
            for link_id in held:
                if link_id in self.fleet:
                    await self.fleet.wait(link_id)
            if self.fleet.journal is not None:
                await self.fleet.journal.flush()
            await self._store_call(lambda: self.store.release_held(held), "releasing leases")
            await self._store_call(self.store.leave, "leaving the hosts table")


@asynccontextmanager
async def open_leased_fleet(
    store: LeaseStore,
    links: Mapping[str, LeasedLink],
    *,
    policy: LeasePolicy | None = None,
    restarts: RestartPolicy | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[LeaseKeeper]:
    """Run this host's share of ``links`` for the body of the ``async with``; see the module header.

    ``store`` is the shared store, opened with this host's ``owner``; the
    journal and the fleet are made here. On the way out every link is
    stopped, and its lease released once its connection is closed.
    """
    async with (
        open_journal(store, owner=store.owner) as journal,
        open_fleet(journal=journal, restarts=restarts, rng=rng) as fleet,
        anyio.create_task_group() as tasks,
    ):
        keeper = LeaseKeeper(fleet, store, links, policy or LeasePolicy(), rng=rng)
        await tasks.start(keeper.run)
        try:
            yield keeper
        finally:
            tasks.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await keeper.shutdown()
