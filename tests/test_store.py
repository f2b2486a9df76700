"""The state stores and the journal: SQLite files in tmp_path, PostgreSQL on a real server.

Every test that states a promise of the ``StateStore`` interface runs against
both back ends (the ``store_at`` fixture); the SQLite file's own concerns (WAL,
a damaged page, a lock) and PostgreSQL's own (leases, the fence) have tests of
their own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest
import trio
import trio.testing

from linkstate._lifecycle import LifecycleError, State, Trigger
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate.channels.slack import CHANNEL as SLACK
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.runtime._scripted import Close, Reject, ScriptedTransport
from linkstate.runtime._supervisor import RESUMED, Supervisor
from linkstate.store._journal import Journal, open_journal
from linkstate.store._sqlite import (
    LinkRow,
    SQLiteStore,
    StateStore,
    StoreConflictError,
    StoreError,
    operator_reset,
)

WALL = 1_700_000_000.0


class ContractStore(StateStore, Protocol):
    """What the contract tests use of a store: the interface, ``check`` and ``with``."""

    def check(self) -> list[str]: ...
    def __enter__(self) -> ContractStore: ...
    def __exit__(self, *exc_info: object) -> None: ...


StoreAt = Callable[..., ContractStore]
"""Opens the test's one store (keyword arguments as SQLiteStore's); each call opens it again."""


@pytest.fixture(params=["sqlite", "postgres"])
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> StoreAt:
    if request.param == "sqlite":
        path = tmp_path / "x.db"
        return lambda **options: SQLiteStore(path, **options)
    from linkstate.store._postgres import PostgresStore

    url: str = request.getfixturevalue("pg_url")
    return lambda **options: PostgresStore(url, **options)


def wall_clock() -> float:
    return WALL


def entry(
    machine: LinkMachine, link: Link, record: TransitionRecord
) -> tuple[TransitionRecord, LinkRow]:
    return record, LinkRow.from_link(link, channel="whatsapp", now=record.t, wall=WALL + record.t)


def drive_to_relink(store: StateStore, link_id: str = "acct1") -> Link:
    """idle -> connecting -> open -> needs_relink (440), one transaction per transition."""
    machine = LinkMachine(WHATSAPP)
    link = machine.new_link(link_id)
    store.write([entry(machine, link, machine.fire(link, Trigger.start, 1.0))])
    store.write([entry(machine, link, machine.fire(link, Trigger.opened, 2.0))])
    store.write([entry(machine, link, machine.close(link, 440, 3.0))])
    return link


# -- rows and clocks ---------------------------------------------------------------


def test_row_round_trip_shifts_times_to_the_new_clock() -> None:
    machine = LinkMachine(WHATSAPP)
    link = machine.new_link("acct1", now=0.0)
    machine.fire(link, Trigger.start, 1.0)
    machine.fire(link, Trigger.opened, 2.0)
    machine.close(link, 428, 5.0)
    # Written at caller time 10 = wall 1000; read back 20 wall seconds later on a
    # clock that now reads 50: the close was 5 + 20 = 25 s ago.
    row = LinkRow.from_link(link, channel="whatsapp", now=10.0, wall=1000.0)
    assert row.since == 995.0 and row.recent_closes == (995.0,)
    back = row.to_link(now=50.0, wall=1020.0, channel=WHATSAPP)
    assert back.since == pytest.approx(25.0)
    assert back.recent_closes == pytest.approx((25.0,))
    assert (back.state, back.attempt, back.delay) == (link.state, link.attempt, link.delay)
    assert back.repeats == link.repeats == 1  # escalation counts survive a restart too
    assert back.last_rule is link.last_rule
    assert back.last_event is not None and back.last_event.status == 428


def test_rule_is_none_without_the_channel() -> None:
    row = LinkRow("a", "whatsapp", "needs_relink", 0.0, status=440, rule="440 connectionReplaced")
    link = row.to_link(now=0.0, wall=0.0)
    assert link.last_rule is None and link.last_event is not None


# -- SQLiteStore -------------------------------------------------------------------


def test_file_is_wal_fsynced_and_consistent(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with SQLiteStore(path) as store:
        drive_to_relink(store)
        assert store.check() == []
        row = store.load("acct1")
    assert row is not None
    assert (row.state, row.status, row.verdict, row.stop_reason) == (
        "needs_relink",
        440,
        "relink",
        "relink",
    )
    assert row.message is not None and "session conflict" in row.message
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()
    with SQLiteStore(path, create=False) as again:
        assert again._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert [h.record.dst for h in again.history("acct1")] == [
            "connecting",
            "open",
            "needs_relink",
        ]
        assert [r.link_id for r in again.links()] == ["acct1"]


def test_history_is_bounded_per_link(store_at: StoreAt) -> None:
    machine = LinkMachine(WHATSAPP)
    with store_at(keep=4) as store:
        link = machine.new_link("a")
        other = drive_to_relink(store, "b")
        store.write([entry(machine, link, machine.fire(link, Trigger.start, 0.0))])
        for i in range(10):
            store.write(
                [entry(machine, link, machine.close(link, 428, i, trigger=Trigger.connect_failed))]
            )
            store.write(
                [entry(machine, link, machine.fire(link, Trigger.backoff_elapsed, i + 0.5))]
            )
        history = store.history("a")
        assert len(history) == 4
        assert [h.record.t for h in history] == [8.0, 8.5, 9.0, 9.5]
        assert store.history("a", limit=2) == history[-2:]
        assert len(store.history("b")) == 3 and other.state == "needs_relink"
        row = store.load("a")
        assert row is not None and row.seq == 21 and row.attempt == 10
        assert store.check() == []


def test_a_transition_from_another_state_is_refused_and_changes_nothing(store_at: StoreAt) -> None:
    with store_at() as store:
        drive_to_relink(store)
        machine = LinkMachine(WHATSAPP)
        stale = machine.new_link("acct1")  # a second process that thinks the link is idle
        other = machine.new_link("other")
        batch = [
            entry(machine, other, machine.fire(other, Trigger.start, 0.0)),
            entry(machine, stale, machine.fire(stale, Trigger.start, 0.0)),
        ]
        with pytest.raises(StoreConflictError, match=r"'acct1' is stored in state 'needs_relink'"):
            store.write(batch)
        # All or nothing: the first entry of the batch was rolled back too.
        assert store.load("other") is None
        row = store.load("acct1")
        assert row is not None and row.state == "needs_relink" and row.seq == 3
        assert store.check() == []


def test_verdict_column_keeps_the_last_close_verdict(store_at: StoreAt) -> None:
    with store_at() as store:
        drive_to_relink(store)
        record = operator_reset(store, "acct1", WHATSAPP, note="relinked", wall=lambda: 5.0)
        assert (record.src, record.dst, record.trigger, record.reason) == (
            "needs_relink",
            "idle",
            "reset",
            "relinked",
        )
        row = store.load("acct1")
        assert row is not None
        assert (row.state, row.verdict, row.status, row.message) == ("idle", "relink", 440, None)
        assert store.history("acct1")[-1].record == record


def test_operator_reset_refuses_live_and_unknown_links(store_at: StoreAt) -> None:
    machine = LinkMachine(WHATSAPP)
    with store_at() as store:
        link = machine.new_link("live")
        store.write([entry(machine, link, machine.fire(link, Trigger.start, 0.0))])
        with pytest.raises(StoreError, match=r"'live' is in state 'connecting'.*'reset'"):
            operator_reset(store, "live", WHATSAPP, note="x")
        with pytest.raises(StoreError, match=r"no link 'nope'.*links: live"):
            operator_reset(store, "nope", WHATSAPP, note="x")
        failed = machine.new_link("bad")
        store.write([entry(machine, failed, machine.fire(failed, Trigger.start, 0.0))])
        store.write(
            [
                entry(
                    machine, failed, machine.close(failed, 405, 1.0, trigger=Trigger.connect_failed)
                )
            ]
        )
        with pytest.raises(StoreError, match=r"'bad' is in state 'failed'.*cause fixed"):
            operator_reset(store, "bad", WHATSAPP, note="x", only=frozenset({State.needs_relink}))
        assert store.load("bad") is not None
        assert operator_reset(store, "bad", WHATSAPP, note="upgraded").dst == "idle"


def test_resume_keeps_the_budget_an_operator_reset_clears(store_at: StoreAt) -> None:
    machine = LinkMachine(WHATSAPP)
    link = machine.new_link("a")
    machine.fire(link, Trigger.start, 0.0)
    machine.close(link, 428, 1.0, trigger=Trigger.connect_failed)
    machine.fire(link, Trigger.abort, 2.0)
    assert (link.state, link.attempt, link.repeats) == ("stopped", 1, 1)
    record = machine.fire(link, Trigger.resume, 3.0)
    assert (record.src, record.dst, record.trigger, record.attempt) == (
        "stopped",
        "idle",
        "resume",
        1,
    )
    assert (link.attempt, link.repeats, link.stop_reason) == (1, 1, None)
    with pytest.raises(LifecycleError, match="'resume' is not valid in state 'idle'"):
        machine.fire(link, Trigger.resume, 4.0)
    machine.fire(link, Trigger.abort, 5.0)
    machine.fire(link, Trigger.reset, 6.0)
    assert (link.state, link.attempt, link.repeats) == ("idle", 0, 0)


# -- files that cannot be used -----------------------------------------------------


def test_a_corrupted_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(b"this is not a database, it is a grocery list\n" * 200)
    with pytest.raises(StoreError) as caught:
        SQLiteStore(path)
    message = str(caught.value)
    assert str(path) in message and "corrupted" in message and "mv " in message


def test_a_damaged_page_is_reported_not_crashed_on(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with SQLiteStore(path) as store:
        for i in range(30):
            drive_to_relink(store, f"link{i:02}")
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page : 2 * page + 600] = b"\xff" * 600  # scribble over a b-tree page
    path.write_bytes(bytes(data))
    with (
        pytest.raises(StoreError, match=r"corrupted or not a SQLite file.*mv "),
        SQLiteStore(path) as store,
    ):
        store.links()
        store.history("link07")
        problems = store.check()
        raise AssertionError(f"damage went unnoticed: {problems}")


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE recipes (name TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="another application"):
        SQLiteStore(path)


def test_a_locked_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    SQLiteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with SQLiteStore(path, timeout=0) as store:
            assert store.links() == []  # WAL: reading still works
            with pytest.raises(StoreError, match=r"locked by another process.*own --db") as caught:
                drive_to_relink(store)
            assert str(path) in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_missing_file_is_not_created_by_readers(tmp_path: Path) -> None:
    path = tmp_path / "nothing.db"
    with pytest.raises(StoreError, match=r"no state database at .*nothing.db.*--db"):
        SQLiteStore(path, create=False)
    assert not path.exists()


# -- the journal -------------------------------------------------------------------


async def test_many_links_write_concurrently_with_group_commit(store_at: StoreAt) -> None:
    machine = LinkMachine(WHATSAPP, ReconnectPolicy(flap_closes=0))
    links = 200

    async def drive(journal: Journal, link: Link) -> None:
        for _ in range(5):
            first = Trigger.start if link.state == "idle" else Trigger.backoff_elapsed
            for trigger in (first, Trigger.opened):
                await journal.append(
                    machine.fire(link, trigger, trio.current_time()), link, channel="whatsapp"
                )
            record = machine.close(link, 428, trio.current_time())
            await journal.append(record, link, channel="whatsapp")

    with store_at() as store:
        async with open_journal(store) as journal:
            assert journal.inline is False  # real clock: the disk work runs in a thread
            async with trio.open_nursery() as nursery:
                for i in range(links):
                    nursery.start_soon(drive, journal, machine.new_link(f"l{i:03}"))
            stats = journal.statistics()
        assert stats.submitted == stats.committed == links * 15
        assert stats.failed == stats.pending == 0
        # Group commit: far fewer transactions than transitions.
        assert stats.commits < stats.committed / 4
        assert stats.largest_batch > 1
    with store_at(create=False) as store:
        assert store.check() == []
        rows = store.links()
        assert len(rows) == links
        assert {(r.state, r.seq, r.attempt) for r in rows} == {("reconnecting", 15, 5)}


async def test_one_refused_transition_does_not_fail_its_batch(store_at: StoreAt) -> None:
    machine = LinkMachine(WHATSAPP)
    with store_at() as store:
        drive_to_relink(store, "taken")
        async with open_journal(store) as journal:
            stale, fresh = machine.new_link("taken"), machine.new_link("fresh")
            bad = journal.submit(machine.fire(stale, Trigger.start, 0.0), stale, channel="whatsapp")
            good = journal.submit(
                machine.fire(fresh, Trigger.start, 0.0), fresh, channel="whatsapp"
            )
            assert bad.batch is good.batch
            with pytest.raises(StoreConflictError):
                await journal.wait(bad)
            await journal.wait(good)
            stats = journal.statistics()
            assert (stats.committed, stats.failed) == (1, 1)
        row = store.load("fresh")
        assert row is not None and row.state == "connecting"


async def test_submit_needs_a_running_journal(store_at: StoreAt) -> None:
    machine = LinkMachine(WHATSAPP)
    link = machine.new_link("a")
    with store_at() as store, pytest.raises(RuntimeError, match="open_journal"):
        Journal(store).submit(machine.fire(link, Trigger.start, 0.0), link, channel="whatsapp")


async def test_virtual_clock_runs_the_store_inline(
    store_at: StoreAt, autojump_clock: trio.testing.MockClock
) -> None:
    with store_at() as store:
        async with open_journal(store) as journal:
            assert journal.inline is True
            assert await journal.load("nobody") is None
        assert trio.current_time() == 0.0  # no virtual time passed while the disk worked


# -- the supervisor with a journal -------------------------------------------------


async def run_once(
    store_at: StoreAt, *steps: Close, link_id: str = "acct1", abort_when_open: bool = False
) -> tuple[Supervisor, ScriptedTransport]:
    transport = ScriptedTransport(steps)
    with store_at(wall=wall_clock) as store:
        async with open_journal(store) as journal:
            sup = Supervisor(WHATSAPP, transport, link_id=link_id, journal=journal)
            if abort_when_open:
                sup.subscribe(
                    lambda r: sup.abort() if r.dst == "open" and transport.exhausted else None
                )
            await sup.run()
    return sup, transport


async def test_needs_relink_sticks_across_a_restart(
    store_at: StoreAt, autojump_clock: trio.testing.MockClock
) -> None:
    first, _ = await run_once(store_at, Close(440, after=1.0))
    assert first.outcome.state == "needs_relink"
    second, transport = await run_once(store_at, Close(428, after=1.0))
    outcome = second.outcome
    assert (outcome.state, outcome.connects, transport.connects) == ("needs_relink", 0, 0)
    assert (outcome.verdict, outcome.status) == ("relink", 440)
    assert outcome.message == first.outcome.message
    with store_at(create=False) as store:
        operator_reset(store, "acct1", WHATSAPP, note="relinked")
    third, transport = await run_once(store_at, Close(428, after=1.0), abort_when_open=True)
    assert third.outcome.connects == 2 and transport.connects == 2
    assert third.outcome.state == "stopped"


async def test_every_reported_transition_is_stored(
    store_at: StoreAt, autojump_clock: trio.testing.MockClock
) -> None:
    sup, _ = await run_once(store_at, Close(428, after=1.0), Close(503, after=2.0), Close(440))
    with store_at(create=False) as store:
        assert [h.record for h in store.history("acct1")] == list(sup.outcome.records)
        assert store.check() == []


async def test_a_stopped_link_resumes_keeping_its_attempts(
    store_at: StoreAt, autojump_clock: trio.testing.MockClock
) -> None:
    first, _ = await run_once(store_at, Close(428, after=1.0), abort_when_open=True)
    assert (first.outcome.state, first.outcome.attempts) == ("stopped", 1)
    second, transport = await run_once(store_at, Close(440))
    records = second.outcome.records
    assert (records[0].src, records[0].trigger, records[0].dst) == ("stopped", "resume", "idle")
    assert records[0].reason == RESUMED and records[0].attempt == 1
    assert (second.outcome.state, transport.connects) == ("needs_relink", 1)
    with store_at(create=False) as store:
        assert [h.record.trigger for h in store.history("acct1")][-4:] == [
            "resume",
            "start",
            "opened",
            "closed",
        ]


async def test_an_escalation_count_survives_a_stop_a_restart_and_the_resume(
    store_at: StoreAt, autojump_clock: trio.testing.MockClock
) -> None:
    # Slack's too_many_websockets is fatal on the third in a row: two before
    # the stop and one after the restart must still add up to three.
    busy = "too_many_websockets"

    async def run(steps: list[Reject], stop_after: int) -> Supervisor:
        with store_at(wall=wall_clock) as store:
            async with open_journal(store) as journal:
                sup = Supervisor(SLACK, ScriptedTransport(steps), link_id="app", journal=journal)
                refused: list[TransitionRecord] = []

                def stop_when_due(record: TransitionRecord) -> None:
                    if record.trigger == "connect_failed":
                        refused.append(record)
                    if len(refused) == stop_after or record.dst == "open":
                        sup.abort()

                sup.subscribe(stop_when_due)
                await sup.run()
        return sup

    first = await run([Reject(busy), Reject(busy)], stop_after=2)
    assert (first.outcome.state, first.link.repeats) == ("stopped", 2)
    second = await run([Reject(busy)], stop_after=1)
    assert [r.trigger for r in second.outcome.records[:2]] == ["resume", "start"]
    outcome = second.outcome
    assert (outcome.state, outcome.verdict, outcome.stop_reason) == ("failed", "fatal", "fatal")
    with store_at(create=False) as store:
        row = store.load("app")
        assert row is not None and (row.state, row.verdict, row.repeats) == ("failed", "fatal", 3)


async def test_a_link_killed_while_reconnecting_sleeps_only_the_rest(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # What a process killed during a backoff leaves behind: a row in reconnecting.
    # SQLite's own: its boot clock is what is stepped here.
    path = tmp_path / "x.db"
    machine = LinkMachine(WHATSAPP)
    link = machine.new_link("acct1")
    clock = {"wall": WALL, "boot": 100.0}
    with SQLiteStore(path, wall=lambda: clock["wall"], boot=lambda: clock["boot"]) as store:
        start = machine.fire(link, Trigger.start, 0.0)
        store.write([(start, LinkRow.from_link(link, channel="whatsapp", now=0.0, wall=WALL))])
        close = machine.close(link, 428, 0.0, trigger=Trigger.connect_failed)
        link.delay = 30.0
        store.write([(close, LinkRow.from_link(link, channel="whatsapp", now=0.0, wall=WALL))])
    clock["wall"] = WALL + 10.0  # the new process starts 10 s later, by both clocks
    clock["boot"] += 10.0
    transport = ScriptedTransport([Close(440)])
    with SQLiteStore(path, wall=lambda: clock["wall"], boot=lambda: clock["boot"]) as store:
        async with open_journal(store) as journal:
            journal.wall = lambda: clock["wall"]
            outcome = await Supervisor(WHATSAPP, transport, link_id="acct1", journal=journal).run()
    assert outcome.slept == pytest.approx(20.0)
    assert (outcome.state, outcome.connects, outcome.attempts) == ("needs_relink", 1, 1)


async def test_a_link_stored_for_another_channel_is_refused(
    store_at: StoreAt, autojump_clock: trio.testing.MockClock
) -> None:
    with store_at() as store:
        machine = LinkMachine(WHATSAPP)
        link = machine.new_link("acct1")
        record = machine.fire(link, Trigger.start, 0.0)
        store.write([(record, LinkRow.from_link(link, channel="discord", now=0.0, wall=WALL))])
        async with open_journal(store) as journal:
            sup = Supervisor(WHATSAPP, ScriptedTransport([]), link_id="acct1", journal=journal)
            with pytest.raises(StoreError, match="stored for channel 'discord', not 'whatsapp'"):
                await sup.run()
        assert json.loads(json.dumps(store.load("acct1").to_json()))["state"] == "connecting"  # type: ignore[union-attr]
