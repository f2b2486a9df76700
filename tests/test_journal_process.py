"""The journal's writer process (``writer="process"``): a real child, a real SQLite file.

Each test runs on trio's real clock (a child process cannot share a virtual
one) and waits only for the child's answers, bounded by ``fail_after``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import pytest
import trio
from test_commit_failures import assert_parked_unreported

from linkstate._errors import ArgumentError
from linkstate._lifecycle import Trigger
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.runtime._scripted import Close, ScriptedTransport
from linkstate.runtime._supervisor import Supervisor
from linkstate.store._journal import Journal, open_journal
from linkstate.store._sqlite import (
    SQLiteStore,
    StoreConflictError,
    StoreError,
    StoreOwnedElsewhereError,
)

MACHINE = LinkMachine(WHATSAPP, ReconnectPolicy(flap_closes=0))
LIMIT = 60  # seconds: a child that never answers fails the test instead of hanging it


async def cycle(journal: Journal, link: Link, rounds: int) -> None:
    """``rounds`` reconnect cycles, each transition waited for as a supervisor waits."""
    for _ in range(rounds):
        first = Trigger.start if link.state == "idle" else Trigger.backoff_elapsed
        for trigger in (first, Trigger.opened):
            await journal.append(MACHINE.fire(link, trigger, trio.current_time()), link,
                                 channel="whatsapp")  # fmt: skip
        await journal.append(MACHINE.close(link, 428, trio.current_time()), link,
                             channel="whatsapp")  # fmt: skip


async def test_many_links_commit_through_the_child_in_groups(tmp_path: Path) -> None:
    links = 300
    with trio.fail_after(LIMIT), SQLiteStore(tmp_path / "x.db") as store:
        async with open_journal(store, writer="process") as journal:
            assert journal.inline is False
            async with trio.open_nursery() as nursery:
                for i in range(links):
                    nursery.start_soon(cycle, journal, MACHINE.new_link(f"l{i:03}"), 4)
            stats = journal.statistics()
        assert stats.submitted == stats.committed == links * 12
        assert stats.failed == stats.pending == 0
        assert stats.commits < stats.committed / 4  # group commit, in the child too
        assert store.check() == []
        rows = store.links()
        assert {(r.state, r.seq, r.attempt) for r in rows} == {("reconnecting", 12, 4)}
        assert len(rows) == links
        # The history is in submission order: seq 1..12 with the triggers fired.
        history = [h.record.trigger for h in store.history("l007")]
        assert (
            history == ["start", "opened", "closed"] + ["backoff_elapsed", "opened", "closed"] * 3
        )


async def test_a_refusal_in_the_child_fails_only_its_entry_and_keeps_its_kind(
    tmp_path: Path,
) -> None:
    with trio.fail_after(LIMIT), SQLiteStore(tmp_path / "x.db") as store:
        taken = MACHINE.new_link("taken")
        async with open_journal(store, writer="process") as journal:
            await journal.append(MACHINE.fire(taken, Trigger.start, 0.0), taken, channel="w")
            stale, fresh = MACHINE.new_link("taken"), MACHINE.new_link("fresh")
            bad = journal.submit(MACHINE.fire(stale, Trigger.start, 0.0), stale, channel="w")
            good = journal.submit(MACHINE.fire(fresh, Trigger.start, 0.0), fresh, channel="w")
            assert bad.batch is good.batch
            with pytest.raises(StoreConflictError, match="'taken'"):
                await journal.wait(bad)
            await journal.wait(good)
            assert (journal.statistics().committed, journal.statistics().failed) == (2, 1)
        row = store.load("fresh")
        assert row is not None and row.state == "connecting"


async def test_a_lost_claim_comes_back_with_its_link_and_owner(tmp_path: Path) -> None:
    with trio.fail_after(LIMIT), SQLiteStore(tmp_path / "x.db") as store:
        async with open_journal(store, writer="process", renew_every=None) as journal:
            link = MACHINE.new_link("acct")
            claim = await journal.claim("acct", on_lost=lambda _: None)
            started = MACHINE.fire(link, Trigger.start, 0.0)
            await journal.wait(journal.submit(started, link, channel="w", claim=claim))
            store.claim("acct", "other host:pid 2")  # a newer owner, on the parent's connection
            receipt = journal.submit(MACHINE.fire(link, Trigger.opened, 1.0), link,
                                     channel="w", claim=claim)  # fmt: skip
            with pytest.raises(StoreOwnedElsewhereError) as raised:
                await journal.wait(receipt)
        assert raised.value.link_id == "acct"
        assert raised.value.owner == "other host:pid 2"
        row = store.load("acct")
        assert row is not None and row.state == "connecting"  # the refused write changed nothing


async def test_a_verdict_reported_by_the_supervisor_is_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with trio.fail_after(LIMIT), SQLiteStore(path) as store:
        async with open_journal(store, writer="process") as journal:
            sup = Supervisor(WHATSAPP, ScriptedTransport([Close(440)]), link_id="acct1",
                             journal=journal)  # fmt: skip
            await sup.run()
    assert sup.link.state == "needs_relink"
    with SQLiteStore(path, create=False) as store:
        row = store.load("acct1")
        assert row is not None and row.state == "needs_relink"
        assert row.rule == sup.link.last_rule.label if sup.link.last_rule else False


async def test_a_killed_child_fails_what_it_did_not_answer_and_everything_after(
    tmp_path: Path,
) -> None:
    with trio.fail_after(LIMIT), SQLiteStore(tmp_path / "x.db") as store:
        async with open_journal(store, writer="process") as journal:
            first = MACHINE.new_link("first")
            await journal.append(MACHINE.fire(first, Trigger.start, 0.0), first, channel="w")
            assert journal._child is not None
            os.kill(journal._child.process.pid, signal.SIGKILL)
            await journal._child.process.wait()
            later = MACHINE.new_link("later")
            receipt = journal.submit(MACHINE.fire(later, Trigger.start, 0.0), later, channel="w")
            with pytest.raises(StoreError, match=r"writer process .* exited with code -9"):
                await journal.wait(receipt)
            again = MACHINE.new_link("again")
            with pytest.raises(StoreError, match="may or may not be in the state database"):
                await journal.append(MACHINE.fire(again, Trigger.start, 0.0), again, channel="w")
        assert [r.link_id for r in store.links()] == ["first"]


async def test_stopping_with_batches_in_the_child_reports_each_as_it_is(tmp_path: Path) -> None:
    """Cancelled mid-flight: a transition said to be missing is missing, and the rest stored."""
    with trio.fail_after(LIMIT), SQLiteStore(tmp_path / "x.db") as store:
        journal = Journal(store, writer="process", max_batch=8)
        links = [MACHINE.new_link(f"l{i:02}") for i in range(40)]
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            receipts = []
            for _ in range(3):
                for link in links:
                    if link.state == "open":
                        record = MACHINE.close(link, 428, 0.0)
                    else:
                        first = Trigger.start if link.state == "idle" else Trigger.opened
                        record = MACHINE.fire(link, first, 0.0)
                    receipts.append((record, journal.submit(record, link, channel="w")))
                await trio.sleep(0)
            nursery.cancel_scope.cancel()
        stored = {
            (h.record.link, h.record.dst) for link in links for h in store.history(link.link_id)
        }
        outcomes = {"stored": 0, "missing": 0}
        for record, receipt in receipts:
            try:
                await journal.wait(receipt)
            except StoreError as exc:
                assert "not in the state database" in str(exc)
                assert (record.link, record.dst) not in stored
                outcomes["missing"] += 1
            else:
                assert (record.link, record.dst) in stored
                outcomes["stored"] += 1
        # Both kinds happened: the batches the child had, and those it never got.
        assert outcomes["stored"] > 0 and outcomes["missing"] > 0
        assert sum(outcomes.values()) == len(receipts)


class Recording(SQLiteStore):
    """A store with a method of its own: the child could not run it."""


@pytest.mark.parametrize(
    ("options", "subclass", "message"),
    [
        ({"wall": lambda: 0.0}, False, "cannot call the wall= or boot= clock"),
        ({}, True, "Recording cannot be copied there"),
    ],
)
def test_a_store_the_child_cannot_copy_is_refused_up_front(
    tmp_path: Path, options: dict[str, object], subclass: bool, message: str
) -> None:
    kind = Recording if subclass else SQLiteStore
    with kind(tmp_path / "x.db", **options) as store, pytest.raises(ArgumentError, match=message):  # type: ignore[arg-type]
        Journal(store, writer="process")


def test_an_unknown_writer_is_one_clear_error(tmp_path: Path) -> None:
    with (
        SQLiteStore(tmp_path / "x.db") as store,
        pytest.raises(ArgumentError, match="'thread' or 'process'"),
    ):
        Journal(store, writer="fork")  # type: ignore[arg-type]


async def test_under_a_virtual_clock_the_process_writer_writes_inline(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with SQLiteStore(tmp_path / "x.db") as store:
        async with open_journal(store, writer="process") as journal:
            link = MACHINE.new_link("a")
            await journal.append(MACHINE.fire(link, Trigger.start, 0.0), link, channel="w")
            assert journal.inline is True and journal._child is None
        assert trio.current_time() == 0.0


async def test_a_child_that_does_not_start_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from linkstate.store import _process

    monkeypatch.setattr(_process, "_CHILD", "import sys; sys.exit(3)")
    with (
        trio.fail_after(LIMIT),
        SQLiteStore(tmp_path / "x.db") as store,
        pytest.raises(StoreError, match=r"did not start \(exit code 3\).*writer='thread'"),
    ):
        async with open_journal(store, writer="process"):
            pass  # pragma: no cover - the journal never opens


def test_the_writer_process_serves_an_asyncio_program(tmp_path: Path) -> None:
    """The same journal on asyncio: anyio's processes and streams, no trio anywhere."""
    import anyio

    async def drive(journal: Journal, link: Link) -> None:
        for trigger in (Trigger.start, Trigger.opened):
            await journal.append(MACHINE.fire(link, trigger, 0.0), link, channel="w")
        await journal.append(MACHINE.close(link, 440, 1.0), link, channel="w")

    async def main() -> tuple[int, int]:
        with anyio.fail_after(LIMIT), SQLiteStore(tmp_path / "x.db") as store:
            async with open_journal(store, writer="process") as journal:
                assert journal._child is not None
                async with anyio.create_task_group() as tasks:
                    for i in range(50):
                        tasks.start_soon(drive, journal, MACHINE.new_link(f"a{i:02}"))
                stats = journal.statistics()
            assert {row.state for row in store.links()} == {"needs_relink"}
            return stats.committed, stats.commits

    committed, commits = anyio.run(main, backend="asyncio")
    assert committed == 150
    assert commits < committed  # grouped there too


async def test_the_signals_of_a_clean_stop_leave_the_child_writing(tmp_path: Path) -> None:
    """Ctrl-C and systemd's SIGTERM reach the child too; the parent's stop still writes."""
    with trio.fail_after(LIMIT), SQLiteStore(tmp_path / "x.db") as store:
        async with open_journal(store, writer="process") as journal:
            assert journal._child is not None
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                os.kill(journal._child.process.pid, signum)
            link = MACHINE.new_link("acct")
            await cycle(journal, link, 2)
            assert journal._child.process.returncode is None
        assert journal._child.process.returncode == 0  # it left when its stdin closed
        row = store.load("acct")
        assert row is not None and (row.state, row.seq) == ("reconnecting", 6)


async def test_a_verdict_the_child_cannot_commit_is_parked_and_stops_the_next_start(
    tmp_path: Path,
) -> None:
    """Rule 6 across the pipe: the child parks it, the parent's next claim commits it."""
    path = tmp_path / "x.db"
    blocker = sqlite3.connect(path, isolation_level=None)
    seen: list[str] = []

    def lock_once_open(record: TransitionRecord) -> None:
        seen.append(record.dst)
        if record.dst == "open":  # reported, so committed: now another process holds the lock
            blocker.execute("BEGIN IMMEDIATE")

    with trio.fail_after(LIMIT), SQLiteStore(path, timeout=0.05) as store:
        async with open_journal(store, writer="process") as journal:
            supervisor = Supervisor(WHATSAPP, ScriptedTransport([Close(440)]), link_id="acct1",
                                    journal=journal)  # fmt: skip
            supervisor.subscribe(lock_once_open)
            with pytest.raises(StoreError) as info:
                await supervisor.run()
    assert_parked_unreported(blocker, info.value, path, seen)

    with trio.fail_after(LIMIT), SQLiteStore(path) as store:
        async with open_journal(store, writer="process") as journal:
            again = Supervisor(WHATSAPP, ScriptedTransport([Close(1000)]), link_id="acct1",
                               journal=journal)  # fmt: skip
            outcome = await again.run()
        assert (outcome.state, outcome.status, outcome.connects) == ("needs_relink", 440, 0)
        assert [t.record.dst for t in store.history("acct1")][-1] == "needs_relink"
