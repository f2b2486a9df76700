"""Fleets: many links in one trio process, on the virtual clock, with real SQLite files."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import trio
import trio.testing

from linkstate._policy import ReconnectPolicy
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.runtime._fleet import FleetError, RestartPolicy, open_fleet
from linkstate.runtime._scripted import Close, ScriptedTransport
from linkstate.runtime._supervisor import RESUMED
from linkstate.store._journal import open_journal
from linkstate.store._sqlite import Entry, SQLiteStore, StoreError

POLICY = ReconnectPolicy(flap_closes=0)


class FailingStore(SQLiteStore):
    """A real SQLite store whose writes fail while ``failing(entries)`` says so."""

    def __init__(self, path: Path, failing: Callable[[Sequence[Entry]], bool]) -> None:
        super().__init__(path)
        self.failing = failing
        self.refused = 0

    def write(self, entries: Sequence[Entry]) -> None:
        if self.failing(entries):
            self.refused += 1
            raise StoreError(f"state database {self.path}: the disk said no (test)")
        super().write(entries)


async def test_many_links_in_one_process(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    transports: dict[str, ScriptedTransport] = {}
    with SQLiteStore(tmp_path / "x.db") as store:
        async with (
            open_journal(store) as journal,
            open_fleet(journal=journal, rng=random.Random(1)) as fleet,
        ):
            for i in range(60):
                steps = [Close(428, after=1.0)]
                if i % 3 == 0:
                    steps.append(Close(440, after=2.0))
                transports[f"l{i:02}"] = transport = ScriptedTransport(steps)
                fleet.start(f"l{i:02}", WHATSAPP, transport, policy=POLICY)
            assert len(fleet) == 60 and "l07" in fleet
            await trio.sleep(100.0)
            statuses = {s.link_id: s for s in fleet.statuses()}
            for link_id, status in statuses.items():
                if int(link_id[1:]) % 3 == 0:
                    assert (status.state, status.running) == ("needs_relink", False)
                    assert (status.status, status.verdict) == (440, "relink")
                    assert status.message is not None and link_id in status.message
                    assert status.connected_for is None
                else:
                    assert (status.state, status.running, status.attempts) == ("open", True, 1)
                    assert (status.status, status.verdict) == (428, "retry")
                    # Opened after the 1 s connection and a backoff of at most 1 s.
                    assert status.connected_for is not None
                    assert 98.0 <= status.connected_for <= 99.0
                    assert status.since == pytest.approx(100.0 - status.connected_for)
                    assert status.message is None and status.error is None
        rows = {row.link_id: row for row in store.links()}
        assert store.check() == []
    # Leaving the fleet stopped every live link; the others stay where they were.
    assert {row.state for row in rows.values()} == {"needs_relink", "stopped"}
    assert sum(row.state == "needs_relink" for row in rows.values()) == 20
    assert {t.connects for t in transports.values()} == {2}


async def test_stop_and_start_by_id(autojump_clock: trio.testing.MockClock) -> None:
    transport = ScriptedTransport([Close(428, after=1.0)])
    async with open_fleet(rng=random.Random(1)) as fleet:
        fleet.start("a", WHATSAPP, transport)
        with pytest.raises(FleetError, match="'a' is already running"):
            fleet.start("a", WHATSAPP, transport)
        await trio.sleep(10.0)
        assert fleet.status("a").state == "open"
        fleet.stop("a")
        outcome = await fleet.wait("a")
        assert outcome is not None and outcome.state == "stopped" and outcome.attempts == 1
        assert fleet.status("a").running is False
        await trio.sleep(10.0)
        assert transport.connects == 2  # a stopped link is not restarted by the fleet
        fleet.start("a", WHATSAPP, transport)
        await trio.sleep(1.0)
        status = fleet.status("a")
        assert (status.state, status.attempts, status.running) == ("open", 1, True)
        assert transport.connects == 3
    with pytest.raises(FleetError, match="no link 'b' in this fleet"):
        fleet.status("b")


async def test_a_terminal_link_is_never_restarted(autojump_clock: trio.testing.MockClock) -> None:
    transport = ScriptedTransport([Close(440)])
    async with open_fleet() as fleet:
        fleet.start("a", WHATSAPP, transport)
        outcome = await fleet.wait("a")
        assert outcome is not None and (outcome.state, outcome.connects) == ("needs_relink", 1)
        fleet.start("a", WHATSAPP, transport)  # started again: the verdict sticks
        again = await fleet.wait("a")
        assert again is not None and (again.state, again.connects) == ("needs_relink", 0)
        assert again.message == outcome.message
        assert transport.connects == 1 and fleet.status("a").restarts == 0


async def test_a_crashed_supervisor_is_restarted_with_backoff(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # The store refuses the first two writes of `start`: the supervisor crashes twice,
    # each time before it connects, because a decision is on disk before it is acted on.
    def failing(entries: Sequence[Entry]) -> bool:
        return any(record.trigger == "start" for record, _ in entries) and store.refused < 2

    store = FailingStore(tmp_path / "x.db", failing)
    transport = ScriptedTransport([Close(440, after=5.0)])
    restarts = RestartPolicy(max_restarts=3, backoff=ReconnectPolicy(initial=10.0, factor=3.0))
    with store:
        async with (
            open_journal(store) as journal,
            open_fleet(journal=journal, restarts=restarts) as fleet,
        ):
            fleet.start("a", WHATSAPP, transport)
            outcome = await fleet.wait("a")
            status = fleet.status("a")
        assert outcome is not None and outcome.state == "needs_relink"
        assert status.restarts == 2 and status.error is not None and "disk said no" in status.error
        # Two restart delays (10 s, then 30 s) and the connection's 5 s.
        assert trio.current_time() == pytest.approx(10.0 + 30.0 + 5.0)
        assert transport.connects == 1
        assert store.check() == []
        # The refused transitions never reached the disk; the third start did.
        assert [h.record.trigger for h in store.history("a")] == ["start", "opened", "closed"]


async def test_a_locked_store_is_not_a_crash_loop(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "x.db"
    SQLiteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    transport = ScriptedTransport([])
    try:
        with SQLiteStore(path, timeout=0) as store:
            async with open_journal(store) as journal, open_fleet(journal=journal) as fleet:
                fleet.start("a", WHATSAPP, transport)
                assert await fleet.wait("a") is None
                status = fleet.status("a")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert status.running is False and status.restarts == 3
    assert status.error is not None and "locked by another process" in status.error
    assert str(path) in status.error
    assert trio.current_time() == pytest.approx(1.0 + 2.0 + 4.0)
    assert transport.connects == 0  # nothing connects before its decision is on disk


async def test_a_crash_after_a_terminal_verdict_is_not_restarted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    store = FailingStore(
        tmp_path / "x.db", lambda entries: any(r.dst == "needs_relink" for r, _ in entries)
    )
    transport = ScriptedTransport([Close(440)])
    with store:
        async with open_journal(store) as journal, open_fleet(journal=journal) as fleet:
            fleet.start("a", WHATSAPP, transport)
            assert await fleet.wait("a") is None
            status = fleet.status("a")
    assert (status.state, status.restarts, transport.connects) == ("needs_relink", 0, 1)


async def test_without_a_store_a_crash_resumes_the_same_link(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from linkstate import runtime

    crashes: list[int] = []
    original = runtime.Supervisor._backoff

    async def crash_once(self: runtime.Supervisor) -> None:
        if not crashes:
            crashes.append(self.link.attempt)
            raise RuntimeError("a bug in the backoff")
        await original(self)

    monkeypatch.setattr(runtime.Supervisor, "_backoff", crash_once)
    transport = ScriptedTransport([Close(428), Close(440)])
    async with open_fleet() as fleet:
        fleet.start("a", WHATSAPP, transport, policy=POLICY)
        outcome = await fleet.wait("a")
    assert outcome is not None and outcome.state == "needs_relink"
    assert crashes == [1]
    first = outcome.records[0]
    assert (first.src, first.trigger, first.reason, first.attempt) == (
        "stopped",
        "resume",
        RESUMED,
        1,
    )
    assert fleet.status("a").restarts == 1


async def test_one_fleet_observer_sees_every_link_and_every_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    seen: list[tuple[str, str, str]] = []
    late: list[str] = []

    def broken(record: object) -> None:
        raise ValueError("a metrics bug")

    # The first write of the crashing link fails once: its supervisor is rebuilt,
    # and the new one must report to the same observers.
    refusals: list[int] = []

    def refuse_once(entries: Sequence[Entry]) -> bool:
        # Group commit may batch "c" with the others; a refused batch is retried
        # entry by entry, so the refusal that counts is the one of "c" alone.
        links = {record.link for record, _ in entries}
        if refusals or "c" not in links:
            return False
        if links == {"c"}:
            refusals.append(1)
        return True

    with FailingStore(tmp_path / "x.db", refuse_once) as store:
        async with open_journal(store) as journal, open_fleet(journal=journal) as fleet:
            fleet.subscribe(broken)  # logged and ignored: the other observers still run
            unsubscribe = fleet.subscribe(lambda r: seen.append((r.link, r.trigger, r.dst)))
            fleet.start("a", WHATSAPP, ScriptedTransport([Close(440, after=1.0)]))
            fleet.start("b", WHATSAPP, ScriptedTransport([Close(428, after=1.0)]), policy=POLICY)
            fleet.start("c", WHATSAPP, ScriptedTransport([Close(401, after=1.0)]))
            await trio.sleep(0.5)
            # Subscribed while the links run: it sees what happens from now on.
            fleet.subscribe(lambda r: late.append(f"{r.link}:{r.dst}"))
            await trio.sleep(30.0)
            assert fleet.channel_of("b") is WHATSAPP
            unsubscribe()
            unsubscribe()  # twice is harmless
            fleet.stop("b")
            await fleet.wait("b")
    assert ("a", "closed", "needs_relink") in seen
    assert ("b", "backoff_elapsed", "connecting") in seen
    # "c" crashed on its first write and was restarted: the new supervisor reported too.
    assert fleet.status("c").restarts == 1
    assert ("c", "closed", "needs_relink") in seen
    assert "a:needs_relink" in late and "c:needs_relink" in late
    assert ("b", "abort", "stopped") not in seen  # after the unsubscribe
    assert "b:stopped" in late
    with pytest.raises(FleetError, match="no link 'z'"):
        fleet.channel_of("z")
