"""One owner per link: claims, fenced writes, and a supervisor that loses its link quietly.

The scenario of issue 13, item 1: an overlapping restart. The new process
claims the link and carries on; the old one must learn it on its next write
(or renewal) and stop without recording anything, above all not a 440 that
the new process's connection caused.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
import trio
import trio.testing

from linkstate._lifecycle import Trigger
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.cli._store import store_errors
from linkstate.cli.common import CommandError
from linkstate.runtime._fleet import open_fleet
from linkstate.runtime._scripted import Close, ScriptedTransport
from linkstate.runtime._supervisor import OWNED_ELSEWHERE, Supervisor
from linkstate.store._journal import open_journal
from linkstate.store._sqlite import (
    Claim,
    Entry,
    LinkRow,
    SQLiteStore,
    StoreConflictError,
    StoreError,
    StoreOwnedElsewhereError,
    StoreRequestError,
    operator_reset,
)


def fenced(claim: Claim, link: Link, record: TransitionRecord, seq: int) -> list[Entry]:
    """The write a claim's owner makes: the row carries its token and the seq it expects."""
    row = LinkRow.from_link(link, channel="whatsapp", now=record.t, wall=record.t)
    return [(record, replace(row, owner=claim.owner, token=claim.token, seq=seq))]


def test_the_newest_claim_wins_and_a_stale_writer_changes_nothing(tmp_path: Path) -> None:
    machine = LinkMachine(WHATSAPP)
    with SQLiteStore(tmp_path / "x.db") as store:
        old = store.claim("acct1", "old")
        assert (old.token, old.row, old.previous) == (1, None, None)
        link = machine.new_link("acct1")
        store.write(fenced(old, link, machine.fire(link, Trigger.start, 0.0), 1))
        store.write(fenced(old, link, machine.fire(link, Trigger.opened, 1.0), 2))

        new = store.claim("acct1", "new")
        assert (new.token, new.previous) == (2, "old")
        assert new.row is not None and (new.row.state, new.row.seq) == ("open", 2)
        assert store.renew([old, new]) == [old]

        # The 440 the new process's connection caused reaches the old one.
        stale = store.load("acct1")
        with pytest.raises(StoreOwnedElsewhereError, match="new took it over") as info:
            store.write(fenced(old, link, machine.close(link, 440, 2.0), 3))
        assert info.value.owner == "new" and info.value.link_id == "acct1"
        assert store.load("acct1") == stale  # nothing written
        assert [t.record.trigger for t in store.history("acct1")] == ["start", "opened"]


def test_a_write_that_missed_one_is_refused_even_with_the_right_token(tmp_path: Path) -> None:
    machine = LinkMachine(WHATSAPP)
    with SQLiteStore(tmp_path / "x.db") as store:
        claim = store.claim("acct1", "me")
        link = machine.new_link("acct1")
        store.write(fenced(claim, link, machine.fire(link, Trigger.start, 0.0), 1))
        with pytest.raises(StoreOwnedElsewhereError, match="another writer changed it"):
            # This writer expects #3: it does not know what wrote #2.
            store.write(fenced(claim, link, machine.fire(link, Trigger.opened, 1.0), 3))


def test_a_terminal_write_releases_the_claim_and_an_unclaimed_write_waits_for_it(
    tmp_path: Path,
) -> None:
    machine = LinkMachine(WHATSAPP)
    with SQLiteStore(tmp_path / "x.db") as store:
        claim = store.claim("acct1", "me")
        link = machine.new_link("acct1")
        store.write(fenced(claim, link, machine.fire(link, Trigger.start, 0.0), 1))
        # An operator (no token) may not write a link a live process owns.
        intruder = machine.new_link("acct1")
        record = machine.fire(intruder, Trigger.start, 0.0)
        unclaimed = LinkRow.from_link(intruder, channel="whatsapp", now=0.0, wall=0.0)
        with pytest.raises(StoreOwnedElsewhereError, match="is run by me"):
            store.write([(record, unclaimed)])
        store.write(fenced(claim, link, machine.fire(link, Trigger.opened, 1.0), 2))
        store.write(fenced(claim, link, machine.close(link, 440, 2.0), 3))
        row = store.load("acct1")
        assert row is not None and (row.state, row.owner, row.token) == ("needs_relink", None, 1)
        # Released in the terminal write itself: the operator's relink goes through.
        assert operator_reset(store, "acct1", WHATSAPP, note="relinked").dst == "idle"


def test_an_operator_write_expects_the_seq_it_read(tmp_path: Path) -> None:
    machine = LinkMachine(WHATSAPP)
    with SQLiteStore(tmp_path / "x.db") as store:
        link = machine.new_link("acct1")
        record = machine.fire(link, Trigger.start, 0.0)
        row = LinkRow.from_link(link, channel="whatsapp", now=0.0, wall=0.0)
        with pytest.raises(StoreConflictError, match="expected #4"):
            store.write([(record, replace(row, seq=5))])


async def test_an_old_supervisor_never_records_the_440_the_new_one_caused(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "x.db"
    seen_by_old: list[str] = []
    with SQLiteStore(path) as old_store, SQLiteStore(path) as new_store:
        async with (
            open_journal(old_store) as old_journal,
            open_journal(new_store) as new_journal,
            open_fleet(journal=old_journal) as fleet,
        ):
            # The old process: open since t=0; at t=10 the platform kicks it
            # with 440, because the new process connected at t=5.
            fleet.start("acct1", WHATSAPP, ScriptedTransport([Close(440, after=10.0)]))
            await trio.sleep(5.0)
            old = fleet._members["acct1"].supervisor
            assert old is not None
            old.subscribe(lambda record: seen_by_old.append(record.dst))
            new = Supervisor(
                WHATSAPP,
                ScriptedTransport([Close(1012, after=100.0)]),
                link_id="acct1",
                journal=new_journal,
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(new.run)
                outcome = await fleet.wait("acct1")
                status = fleet.status("acct1")
                new.abort()
    assert outcome is not None
    assert (outcome.state, outcome.stop_reason) == ("stopped", OWNED_ELSEWHERE)
    assert "owned elsewhere" in (outcome.message or "")
    assert (status.restarts, status.error, status.state) == (0, None, "stopped")
    assert "needs_relink" not in seen_by_old  # never reported, because never committed
    with SQLiteStore(path, create=False) as store:
        assert store.check() == []
        statuses = [t.record.status for t in store.history("acct1")]
        assert 440 not in statuses
        row = store.load("acct1")
        assert row is not None and (row.state, row.stop_reason) == ("stopped", "aborted")


async def test_a_quiet_old_supervisor_lets_go_at_the_next_renewal(tmp_path: Path) -> None:
    # A real clock: renewals run only there. The old link's connection stays
    # open and quiet for 60 s; without a renewal it would keep it all that time.
    path = tmp_path / "x.db"
    with SQLiteStore(path) as old_store, SQLiteStore(path) as new_store:
        async with (
            open_journal(old_store, renew_every=0.05) as old_journal,
            open_journal(new_store) as new_journal,
        ):
            old = Supervisor(
                WHATSAPP,
                ScriptedTransport([Close(1000, after=60.0)]),
                link_id="acct1",
                journal=old_journal,
            )
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(old.run)
                    while old.link.state != "open":
                        await trio.sleep(0.01)
                    await new_journal.claim("acct1", on_lost=lambda exc: None)
                    started = trio.current_time()
            waited = trio.current_time() - started
    assert old.outcome.stop_reason == OWNED_ELSEWHERE
    assert waited < 5.0


def test_a_version_1_file_is_migrated_and_keeps_its_links(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    machine = LinkMachine(WHATSAPP)
    with SQLiteStore(path) as store:
        link = machine.new_link("acct1")
        record = machine.fire(link, Trigger.start, 0.0)
        store.write([(record, LinkRow.from_link(link, channel="whatsapp", now=0.0, wall=0.0))])
    # What linkstate 0.1 with schema version 1 left: no claims, no boot clock.
    old = sqlite3.connect(path, isolation_level=None)
    for statement in (
        "DROP TABLE claims",
        "ALTER TABLE links DROP COLUMN boot",
        "ALTER TABLE links DROP COLUMN mono",
        "PRAGMA user_version=1",
    ):
        old.execute(statement)
    old.close()
    with SQLiteStore(path) as store:
        assert store.check() == []
        claim = store.claim("acct1", "me")
        assert claim.row is not None and (claim.row.state, claim.token) == ("connecting", 1)
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == 2


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (StoreRequestError("no link 'x'"), 2),
        (StoreError("locked"), 3),
        (StoreConflictError("changed meanwhile"), 4),
        (StoreOwnedElsewhereError("taken over", link_id="x"), 4),
    ],
)
def test_each_kind_of_store_error_has_its_exit_status(error: StoreError, status: int) -> None:
    # One line at the command line, from start-up or from the middle of a run.
    with pytest.raises(CommandError) as info, store_errors():
        raise BaseExceptionGroup("from a task group", [error])
    assert (info.value.exit_status, str(info.value)) == (status, str(error))
