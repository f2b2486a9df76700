"""A fleet's connect timeouts: one shared timer task, the same timing as a deadline per connect."""

from __future__ import annotations

import math
import random

import anyio
from anyio.abc import TaskGroup
from backends import on_both_backends

from linkstate._policy import Jitter, ReconnectPolicy
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.runtime._fleet import Fleet, open_fleet
from linkstate.runtime._scripted import ScriptedConnection
from linkstate.runtime._supervisor import Connection

# A long first backoff: only the first attempt happens within the tests' time.
SLOW_RETRY = ReconnectPolicy(initial=1000.0, cap=1000.0, jitter=Jitter.none)


class Handshake:
    """Completes each handshake after ``seconds`` (never, for None, and once they run out)."""

    def __init__(self, *seconds: float | None) -> None:
        self.seconds = list(seconds)
        self.opened: list[float] = []

    async def connect(self, tasks: TaskGroup) -> Connection:
        seconds = self.seconds.pop(0) if self.seconds else None
        if seconds is None:
            await anyio.sleep_forever()
        await anyio.sleep(seconds or 0.0)
        self.opened.append(anyio.current_time())
        return ScriptedConnection(None, close_at=math.inf, silent_at=math.inf)


def failed_at(fleet: Fleet, link_id: str) -> tuple[str, float, str | None]:
    """The link's state, and when and why its first connect failed."""
    supervisor = fleet._members[link_id].supervisor
    assert supervisor is not None
    record = next(r for r in supervisor.outcome.records if r.trigger == "connect_failed")
    return fleet.status(link_id).state, record.t, record.reason


@on_both_backends
async def test_each_hanging_handshake_times_out_at_its_own_deadline() -> None:
    # Started in this order, the later deadlines come first: each one that is
    # earlier than the timer's next wakes it.
    async with open_fleet(rng=random.Random(1)) as fleet:
        for link_id, timeout in (("slow", 9.0), ("mid", 5.0), ("quick", 2.0)):
            fleet.start(
                link_id, WHATSAPP, Handshake(None), policy=SLOW_RETRY, connect_timeout=timeout
            )
        await anyio.sleep(1.0)
        fleet.start("late", WHATSAPP, Handshake(None), policy=SLOW_RETRY, connect_timeout=1.5)
        await anyio.sleep(20.0)
        assert failed_at(fleet, "quick") == ("reconnecting", 2.0, "connect timed out after 2 s")
        assert failed_at(fleet, "late") == ("reconnecting", 2.5, "connect timed out after 1.5 s")
        assert failed_at(fleet, "mid") == ("reconnecting", 5.0, "connect timed out after 5 s")
        assert failed_at(fleet, "slow") == ("reconnecting", 9.0, "connect timed out after 9 s")


@on_both_backends
async def test_a_handshake_in_time_stays_open_after_its_deadline_lapses() -> None:
    async with open_fleet(rng=random.Random(1)) as fleet:
        transport = Handshake(4.0)
        fleet.start("acct1", WHATSAPP, transport, policy=SLOW_RETRY, connect_timeout=5.0)
        await anyio.sleep(60.0)
        assert transport.opened == [4.0]
        status = fleet.status("acct1")
        assert (status.state, status.connected_for) == ("open", 56.0)


@on_both_backends
async def test_a_retry_has_a_deadline_of_its_own() -> None:
    # The first attempt's deadline (t=3) passes while the second one connects:
    # it must not end the second attempt, which has its own.
    retry = ReconnectPolicy(initial=0.5, jitter=Jitter.none, flap_closes=0)
    async with open_fleet(rng=random.Random(1)) as fleet:
        transport = Handshake(None, 2.9)
        fleet.start("acct1", WHATSAPP, transport, policy=retry, connect_timeout=3.0)
        await anyio.sleep(30.0)
        assert transport.opened == [3.0 + 0.5 + 2.9]
        assert fleet.status("acct1").state == "open"


@on_both_backends
async def test_links_started_as_the_fleet_closes_still_stop() -> None:
    async with open_fleet(rng=random.Random(1)) as fleet:
        for i in range(5):
            fleet.start(f"l{i}", WHATSAPP, Handshake(None), connect_timeout=5.0)
        await anyio.sleep(1.0)
    assert {s.state for s in fleet.statuses()} == {"stopped"}
