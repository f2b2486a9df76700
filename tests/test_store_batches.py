"""SQLiteStore's batched writes: one statement per table, the same outcome as one by one.

The store writes a batch with one statement per table, its rows padded to a
few sizes and split where SQLite's limit on parameters demands it
(``_BATCH_SQL`` in ``fsm/store/_sqlite.py``). These tests write the same
transitions as one batch and one by one, on real files, and compare every
table; and they hold the fast JSON writers equal to ``json.dumps``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkstate._lifecycle import Trigger
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate.channels.whatsapp import CHANNEL
from linkstate.store import _sqlite
from linkstate.store._sqlite import (
    Claim,
    Entry,
    LinkRow,
    SQLiteStore,
    StoreError,
    StoreOwnedElsewhereError,
    _times_json,
    record_json,
)

WALL = 1_700_000_000.0
MACHINE = LinkMachine(CHANNEL, ReconnectPolicy(flap_closes=0, max_attempts=4))


def walk(link: Link, steps: int, claim: Claim | None, seq: int) -> list[Entry]:
    """``steps`` transitions of ``link`` through reconnects into a terminal state, as entries."""
    entries: list[Entry] = []
    for i in range(steps):
        t = float(seq + i)
        if link.state in ("needs_relink", "failed", "stopped"):
            break
        if link.state == "idle":
            record = MACHINE.fire(link, Trigger.start, t)
        elif link.state == "reconnecting":
            record = MACHINE.fire(link, Trigger.backoff_elapsed, t)
        elif link.state == "connecting" and i % 3 == 1:
            record = MACHINE.fire(link, Trigger.opened, t)
        elif link.state == "connecting":
            record = MACHINE.close(link, 428, t, trigger=Trigger.connect_failed)
        else:
            # Some links end in needs_relink (440), which releases their claim.
            late = i >= 4 and link.link_id.endswith(("0", "3", "6"))
            record = MACHINE.close(link, 440 if late else 428, t)
        row = LinkRow.from_link(
            link, channel="whatsapp", now=t, wall=WALL + t, claim=claim, seq=seq + i + 1
        )
        entries.append((record, row))
    return entries


def tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows, in key order, without the times a write reads at commit."""
    db = sqlite3.connect(path)
    try:
        return {
            "links": db.execute(
                "SELECT link_id, channel, state, since, attempt, repeats, recent_closes, "
                "opened_at, delay, status, code, reason, rule, verdict, stop_reason, message, "
                "seq FROM links ORDER BY link_id"
            ).fetchall(),
            "history": db.execute(
                "SELECT link_id, seq, record FROM history ORDER BY link_id, seq"
            ).fetchall(),
            "claims": db.execute(
                "SELECT link_id, owner, token FROM claims ORDER BY link_id"
            ).fetchall(),
        }
    finally:
        db.close()


def interleaved(links: int, steps: int, keep: int, path: Path) -> list[Entry]:
    """Transitions of ``links`` claimed links, taking turns, as one journal batch holds them."""
    per_link = []
    with SQLiteStore(path, keep=keep, wall=lambda: WALL) as store:
        for i in range(links):
            link = MACHINE.new_link(f"l{i:03}")
            per_link.append(walk(link, steps, store.claim(link.link_id, "me"), 0))
    return [entry for turn in zip(*per_link, strict=False) for entry in turn] + [
        entry for entries in per_link for entry in entries[min(map(len, per_link)) :]
    ]


@pytest.mark.parametrize(
    ("links", "steps", "limit"),
    [(1, 9, None), (5, 9, None), (37, 6, None), (37, 6, 999), (300, 2, 999), (3, 12, 60)],
)
def test_a_batch_stores_what_the_same_writes_one_by_one_store(
    tmp_path: Path, links: int, steps: int, limit: int | None
) -> None:
    # keep=4 trims inside the batch; the links that end in needs_relink release
    # their claims in the batch's transaction.
    keep = 4
    batch = interleaved(links, steps, keep, tmp_path / "one.db")
    interleaved(links, steps, keep, tmp_path / "each.db")
    with SQLiteStore(tmp_path / "one.db", keep=keep, wall=lambda: WALL) as store:
        if limit is not None:  # as an SQLite older than 3.32 allows: several statements
            store._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
        store.write(batch)
        assert store.check() == []
    with SQLiteStore(tmp_path / "each.db", keep=keep, wall=lambda: WALL) as store:
        for single in batch:
            store.write([single])
    one, each = tables(tmp_path / "one.db"), tables(tmp_path / "each.db")
    assert one == each
    assert len(one["links"]) == links
    assert any(row[1] is None for row in one["claims"]) == any(
        record.dst == "needs_relink" for record, _ in batch
    )
    assert max(len([h for h in one["history"] if h[0] == row[0]]) for row in one["links"]) == min(
        keep, steps
    )


def test_a_refused_entry_leaves_the_whole_batch_unwritten(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    batch = interleaved(40, 3, 200, path)
    before = tables(path)
    with SQLiteStore(path) as store:
        stale = batch[70]
        store.claim(stale[1].link_id, "someone else")  # a newer claim: this writer's is stale
        after_claim = tables(path)
        with pytest.raises(StoreOwnedElsewhereError, match=stale[1].link_id):
            store.write(batch)
    assert tables(path) == after_claim
    assert before["history"] == after_claim["history"] == []


def test_from_link_builds_the_row_the_dataclass_would(tmp_path: Path) -> None:
    link = MACHINE.new_link("a")
    with SQLiteStore(tmp_path / "x.db") as store:
        claim = store.claim("a", "me")
    entries = walk(link, 3, claim, 0)
    row = entries[-1][1]
    again = LinkRow(**{f.name: getattr(row, f.name) for f in dataclasses.fields(LinkRow)})
    assert row == again
    assert (row.owner, row.token, row.updated) == ("me", claim.token, WALL + 2.0)
    assert row.rule == "428 connectionClosed" and row.recent_closes == (WALL + 2.0,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.state = "open"  # type: ignore[misc]


texts = st.none() | st.text(max_size=30)
numbers = st.none() | st.integers(-(2**70), 2**70) | st.floats() | st.booleans()


@given(
    t=st.floats() | st.integers(),
    names=st.lists(st.text(max_size=20), min_size=4, max_size=4),
    optional=st.lists(texts, min_size=6, max_size=6),
    status=numbers,
    attempt=st.integers(0, 10**6) | st.booleans(),
    delay=numbers,
)
def test_the_fast_record_json_is_json_dumps(
    t: float,
    names: list[str],
    optional: list[str | None],
    status: int | None,
    attempt: int,
    delay: float | None,
) -> None:
    record = TransitionRecord(
        t,
        link=names[0],
        src=names[1],
        dst=names[2],
        trigger=names[3],
        status=status,
        code=optional[0],
        rule=optional[1],
        verdict=optional[2],
        attempt=attempt,
        delay=delay,
        stop_reason=optional[3],
        message=optional[4],
        reason=optional[5],
    )
    assert record_json(record) == json.dumps(record.to_json())


@given(st.lists(st.floats() | st.integers(), max_size=5))
def test_the_fast_times_json_is_json_dumps(times: list[float]) -> None:
    assert _times_json(tuple(times)) == json.dumps(times)
    if all(isinstance(t, float) and math.isfinite(t) for t in times):
        assert json.loads(_times_json(tuple(times))) == times


def test_an_sqlite_without_json_functions_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe as an SQLite without JSON1 answers it: no such function.
    monkeypatch.setattr(_sqlite, "_JSON_PROBE", "SELECT json_group_array_missing(1)")
    with pytest.raises(StoreError, match=r"no JSON functions, which writing .*x\.db needs"):
        SQLiteStore(tmp_path / "x.db")
