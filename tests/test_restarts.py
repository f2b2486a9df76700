"""A restart of the process never counts towards flap detection or the retry budget (issue 13, 3).

A clean restart is an ``abort`` (SIGTERM, Ctrl-C) and a ``resume``; a process
that died leaves its link ``open``, which the next one stops and resumes. In
neither case may the link lose the health it proved before the restart.
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from linkstate._lifecycle import Trigger
from linkstate._machine import LinkMachine
from linkstate._policy import ReconnectPolicy
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.runtime._scripted import Close, ScriptedTransport
from linkstate.runtime._supervisor import GONE, Supervisor
from linkstate.store._journal import open_journal
from linkstate.store._sqlite import SQLiteStore

POLICY = ReconnectPolicy(healthy_after=60.0, max_attempts=3, initial=1.0, cap=1.0)


def test_a_healthy_connection_stopped_locally_keeps_its_proof_of_health() -> None:
    machine = LinkMachine(WHATSAPP, POLICY)
    link = machine.new_link("acct1")
    machine.fire(link, Trigger.start, 0.0)
    for i in range(3):  # three failed connects: the budget (3) is spent but for the next one
        machine.close(link, 428, 1.0 + i, trigger=Trigger.connect_failed)
        machine.fire(link, Trigger.backoff_elapsed, 1.5 + i)
    machine.fire(link, Trigger.opened, 10.0)
    assert link.attempt == 3
    machine.fire(link, Trigger.abort, 10.0 + 3600.0)  # SIGTERM after an hour open
    machine.fire(link, Trigger.resume, 4000.0)
    machine.fire(link, Trigger.start, 4000.0)
    machine.fire(link, Trigger.opened, 4001.0)
    record = machine.close(link, 428, 4006.0)  # five seconds after the restart
    # Without the restart this close would find the budget refilled: so it must now.
    assert (record.dst, record.attempt) == ("reconnecting", 1)


async def test_a_link_left_open_by_a_dead_process_resumes_without_a_close(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "x.db"
    with SQLiteStore(path) as store:
        async with open_journal(store) as journal:
            first = Supervisor(
                WHATSAPP, ScriptedTransport([Close(1000, after=1e6)]), link_id="a", journal=journal
            )
            with trio.move_on_after(5.0):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(first.run)
    # What a kill -9 leaves: the row says open. (The cancelled run above wrote
    # its abort; put the row back as a dead process leaves it.)
    with SQLiteStore(path) as store:
        store._db.execute("UPDATE links SET state = 'open', stop_reason = NULL")
        store._db.execute("UPDATE claims SET owner = 'a dead process'")
        store._db.execute("DELETE FROM history WHERE seq > 3")
        store._db.execute("UPDATE links SET seq = 3")
        async with open_journal(store) as journal:
            again = Supervisor(
                WHATSAPP, ScriptedTransport([Close(1000, after=1.0)]), link_id="a", journal=journal
            )
            again.subscribe(lambda r: again.abort() if r.dst == "open" else None)
            outcome = await again.run()
        first_two = [(t.record.trigger, t.record.reason) for t in store.history("a")][3:5]
        row = store.load("a")
    assert first_two == [("abort", GONE), ("resume", first_two[1][1])]
    assert row is not None and (row.recent_closes, row.attempt) == ((), 0)
    assert outcome.attempts == 0
