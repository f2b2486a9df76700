"""A terminal verdict is reported only once committed; one that fails to commit is parked.

Issue 13, items 2 and 7: the commit of a verdict fails (the database locked
by another process for longer than the store waits); nothing reports it, the
run raises a StoreError that says so, and the next start commits the parked
verdict instead of connecting. And the clocks: a step of the wall clock
between two runs neither invents recent closes nor ages them away.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
import trio.testing

from linkstate._lifecycle import Trigger
from linkstate._machine import LinkMachine, TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.runtime._scripted import Close, ScriptedTransport
from linkstate.runtime._supervisor import Supervisor
from linkstate.store._journal import open_journal
from linkstate.store._sqlite import LinkRow, SQLiteStore, StoreError

WALL = 1_700_000_000.0


def assert_parked_unreported(
    blocker: sqlite3.Connection, error: StoreError, path: Path, seen: list[str]
) -> None:
    """Lift ``blocker``'s lock; ``error`` says the verdict was parked, and it was never reported."""
    blocker.execute("ROLLBACK")
    blocker.close()
    message = str(error)
    assert "locked" in message and "NOT in the database" in message
    assert f"{path}-verdicts" in message
    assert seen == ["connecting", "open"]  # needs_relink was never reported


async def test_a_verdict_that_fails_to_commit_is_not_reported_and_stops_the_next_start(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "x.db"
    seen: list[str] = []
    blocker = sqlite3.connect(path, isolation_level=None)
    with SQLiteStore(path, timeout=0.05) as store:
        async with open_journal(store) as journal:
            supervisor = Supervisor(
                WHATSAPP,
                ScriptedTransport([Close(440, after=10.0)]),
                link_id="acct1",
                journal=journal,
            )
            supervisor.subscribe(lambda record: seen.append(record.dst))

            async def lock_the_database_while_open() -> None:
                await trio.sleep(5.0)
                blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock

            async with trio.open_nursery() as nursery:
                nursery.start_soon(lock_the_database_while_open)
                with pytest.raises(StoreError) as info:
                    await supervisor.run()
    assert_parked_unreported(blocker, info.value, path, seen)
    assert "will not connect" in str(info.value)

    with SQLiteStore(path, create=False) as store:
        row = store.load("acct1")
        assert row is not None and row.state == "open"  # the last commit that went through

    # The next start commits the parked verdict and does not connect.
    transport = ScriptedTransport([Close(1000)])
    with SQLiteStore(path) as store:
        async with open_journal(store) as journal:
            again = Supervisor(WHATSAPP, transport, link_id="acct1", journal=journal)
            outcome = await again.run()
        assert (outcome.state, outcome.status, outcome.connects) == ("needs_relink", 440, 0)
        assert outcome.message is not None and "session conflict" in outcome.message
        assert store.check() == []
        assert [t.record.dst for t in store.history("acct1")][-1] == "needs_relink"
    # Committed once: a third start finds nothing parked and the verdict stored.
    with SQLiteStore(path) as store:
        assert store.claim("acct1", "me").row.state == "needs_relink"  # type: ignore[union-attr]
        assert len(store.history("acct1")) == 3


async def test_a_parked_verdict_is_dropped_when_the_link_moved_on(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "x.db"
    blocker = sqlite3.connect(path, isolation_level=None)
    with SQLiteStore(path, timeout=0.05) as store:
        async with open_journal(store) as journal:
            supervisor = Supervisor(
                WHATSAPP, ScriptedTransport([Close(440, after=10.0)]), link_id="a", journal=journal
            )

            async def lock() -> None:
                await trio.sleep(5.0)
                blocker.execute("BEGIN IMMEDIATE")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(lock)
                with pytest.raises(StoreError):
                    await supervisor.run()
    blocker.execute("ROLLBACK")
    blocker.close()
    # Another owner took the link on meanwhile (its state is no longer "open").
    with SQLiteStore(path) as store:
        async with open_journal(store) as journal:
            claim = await journal.claim("a", on_lost=lambda exc: None)
    assert claim.row is not None and claim.row.state == "needs_relink"  # the parked one applied
    with SQLiteStore(path) as store:
        # ... and once applied, it is gone from the side file.
        assert store.claim("a", "me").row.seq == 3  # type: ignore[union-attr]


def store_closes(store: SQLiteStore, closes: int) -> None:
    """Write a link that closed ``closes`` times, 10 s apart, each row as of its transition."""
    machine = LinkMachine(WHATSAPP)
    link = machine.new_link("acct1")

    def write(record: TransitionRecord) -> None:
        row = LinkRow.from_link(link, channel="whatsapp", now=record.t, wall=WALL + record.t)
        store.write([(record, row)])

    write(machine.fire(link, Trigger.start, 0.0))
    for i in range(closes):
        write(machine.fire(link, Trigger.opened, 10.0 * i + 1))
        write(machine.close(link, 428, 10.0 * i + 2))
        write(machine.fire(link, Trigger.backoff_elapsed, 10.0 * i + 3))


@pytest.mark.parametrize("step", [-3600.0, +3600.0], ids=["back", "forward"])
def test_a_wall_clock_step_between_runs_does_not_move_the_closes(
    tmp_path: Path, step: float
) -> None:
    """Written at wall W and boot B; read 600 s later by the boot clock, the wall stepped."""
    clocks = {"wall": WALL, "boot": 500.0}
    with SQLiteStore(
        tmp_path / "x.db", wall=lambda: clocks["wall"], boot=lambda: clocks["boot"], boot_id="b1"
    ) as store:
        store_closes(store, 3)
        written = store.load("acct1")
        clocks["wall"] += 600.0 + step
        clocks["boot"] += 600.0
        later = store.load("acct1")
    assert written is not None and later is not None
    # Every time is where it was, relative to the wall clock of now: 600 s ago.
    moved = [b - a for a, b in zip(written.recent_closes, later.recent_closes, strict=True)]
    assert moved == pytest.approx([step] * len(moved))
    assert later.since - written.since == pytest.approx(step)


def test_across_a_reboot_the_wall_clock_decides_but_never_goes_back(tmp_path: Path) -> None:
    clocks = {"wall": WALL, "boot": 500.0}
    store = SQLiteStore(
        tmp_path / "x.db", wall=lambda: clocks["wall"], boot=lambda: clocks["boot"], boot_id="b1"
    )
    with store:
        store_closes(store, 2)
        before = store.load("acct1")
        # Rebooted (another boot id), and the wall clock is now an hour behind.
        store.boot_id = "b2"
        clocks["wall"] -= 3600.0
        clocks["boot"] = 5.0
        after = store.load("acct1")
    assert before is not None and after is not None
    # The row cannot be from the future: it reads as written just now.
    assert after.updated == pytest.approx(clocks["wall"])
    assert after.since - before.since == pytest.approx(-3600.0)


async def test_one_close_after_a_backwards_step_is_not_flapping(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The issue's run: closes, then the wall clock steps back 1 h; 10 min healthy; one close."""
    path = tmp_path / "x.db"
    policy = ReconnectPolicy(flap_closes=4, flap_window=120.0, initial=1.0, cap=1.0)
    clocks = {"wall": WALL, "boot": 500.0}

    def store() -> SQLiteStore:
        return SQLiteStore(path, wall=lambda: clocks["wall"], boot=lambda: clocks["boot"])

    with store() as first:
        async with open_journal(first) as journal:
            journal.wall = lambda: clocks["wall"]
            script = [Close(428, after=1.0)] * 3 + [Close(1000, after=1.0)]
            run = Supervisor(
                WHATSAPP, ScriptedTransport(script), link_id="a", policy=policy, journal=journal
            )
            run.subscribe(lambda r: run.abort() if r.dst == "open" and r.attempt == 3 else None)
            assert (await run.run()).state == "stopped"
    clocks["wall"] -= 3600.0  # NTP pulls the wall clock an hour back
    clocks["boot"] += 10.0
    with store() as second:
        async with open_journal(second) as journal:
            journal.wall = lambda: clocks["wall"]
            again = Supervisor(
                WHATSAPP,
                ScriptedTransport([Close(428, after=600.0), Close(1000, after=1e6)]),
                link_id="a",
                policy=policy,
                journal=journal,
            )
            # Stop at the open after the one close (the second open of this run).
            opens: list[float] = []
            again.subscribe(lambda r: opens.append(r.t) if r.dst == "open" else None)
            again.subscribe(lambda r: again.abort() if len(opens) == 2 else None)
            outcome = await again.run()
    # Without the boot clock, the three stored closes would read as an hour
    # in the future, inside every flap window: this one close would be the fourth.
    assert (outcome.state, outcome.stop_reason) == ("stopped", "aborted")
