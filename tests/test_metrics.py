"""The Prometheus collector: a real fleet on the virtual clock, a real SQLite file, and
prometheus_client's own registry, exposition and parser."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry, generate_latest
from serving import labels, metric_samples

from linkstate._machine import TransitionRecord
from linkstate._policy import Jitter, ReconnectPolicy
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.runtime import BACKOFF_BUCKETS, METRICS, FleetMetrics, MetricsError, open_fleet
from linkstate.runtime._scripted import Close, ScriptedTransport
from linkstate.store._journal import open_journal
from linkstate.store._sqlite import SQLiteStore

DOCS = Path(__file__).resolve().parent.parent / "docs"
POLICY = ReconnectPolicy(initial=1.0, factor=2.0, cap=8.0, jitter=Jitter.none, flap_closes=0)


def scrape(collector: FleetMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return metric_samples(generate_latest(registry).decode())


async def test_links_are_read_at_scrape_time_and_transitions_counted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    db = tmp_path / "x.db"
    # A link stopped in needs_relink by an earlier process: it never transitions
    # in the next one, and must be counted all the same.
    with SQLiteStore(db) as store:
        async with open_journal(store) as journal, open_fleet(journal=journal) as fleet:
            fleet.start("old", WHATSAPP, ScriptedTransport([Close(440)]))
            await fleet.wait("old")
    with SQLiteStore(db) as store:
        async with (
            open_journal(store) as journal,
            open_fleet(journal=journal, rng=random.Random(1)) as fleet,
        ):
            metrics = FleetMetrics(fleet)
            fleet.start("old", WHATSAPP, ScriptedTransport([]))
            flaky = [Close(428, after=1.0)] * 3
            fleet.start("flaky", WHATSAPP, ScriptedTransport(flaky), policy=POLICY)
            fleet.start("kicked", WHATSAPP, ScriptedTransport([Close(401, after=1.0)]))
            await trio.sleep(0.5)
            early = scrape(metrics)
            await trio.sleep(100.0)
            late = scrape(metrics)
    gauge = "linkstate_links"
    assert early[gauge, labels(channel="whatsapp", state="needs_relink")] == 1  # "old"
    assert early[gauge, labels(channel="whatsapp", state="open")] == 2
    assert late[gauge, labels(channel="whatsapp", state="needs_relink")] == 2
    assert late[gauge, labels(channel="whatsapp", state="open")] == 1
    assert late[gauge, labels(channel="whatsapp", state="failed")] == 0  # zeros are series too
    counter = "linkstate_transitions_total"
    closes = labels(channel="whatsapp", trigger="closed", dst="reconnecting", verdict="retry")
    assert late[counter, closes] == 3
    relinks = labels(channel="whatsapp", trigger="closed", dst="needs_relink", verdict="relink")
    assert late[counter, relinks] == 1  # "old" stopped in an earlier process
    assert late[counter, labels(channel="whatsapp", trigger="start", dst="connecting", verdict="")]
    # The three backoffs of 1, 2 and 4 s, in cumulative buckets.
    histogram = "linkstate_backoff_delay_seconds"
    assert late[histogram + "_count", labels(channel="whatsapp")] == 3
    assert late[histogram + "_sum", labels(channel="whatsapp")] == pytest.approx(7.0)
    assert late[histogram + "_bucket", labels(channel="whatsapp", le="1.0")] == 1
    assert late[histogram + "_bucket", labels(channel="whatsapp", le="2.5")] == 2
    assert late[histogram + "_bucket", labels(channel="whatsapp", le="5.0")] == 3
    assert late[histogram + "_bucket", labels(channel="whatsapp", le="+Inf")] == 3
    # Bounded cardinality: no label names a link.
    assert {name for _, key in late for name, _ in key} <= {
        "channel",
        "state",
        "trigger",
        "dst",
        "verdict",
        "le",
    }


def test_a_collector_fed_by_hand_and_its_errors() -> None:
    links = [("demo", "needs_relink"), ("demo", "a_state_from_the_future")]
    metrics = FleetMetrics(links=lambda: links, buckets=(1.0, 10.0))
    record = TransitionRecord(0.0, "a", "open", "reconnecting", "closed", delay=30.0)
    metrics.observe(record, "demo")
    samples = scrape(metrics)
    assert samples["linkstate_links", labels(channel="demo", state="needs_relink")] == 1
    # A state this version does not know is still counted, not dropped.
    assert samples["linkstate_links", labels(channel="demo", state="a_state_from_the_future")] == 1
    assert samples["linkstate_backoff_delay_seconds_bucket", labels(channel="demo", le="10.0")] == 0
    assert samples["linkstate_backoff_delay_seconds_bucket", labels(channel="demo", le="+Inf")] == 1
    with pytest.raises(MetricsError, match="needs a fleet or a links= callable"):
        FleetMetrics()
    with pytest.raises(MetricsError, match="distinct and ascending"):
        FleetMetrics(links=list, buckets=(2.0, 1.0))
    assert list(BACKOFF_BUCKETS) == sorted(BACKOFF_BUCKETS)


def test_the_docs_list_every_metric() -> None:
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    for spec in METRICS:
        exported = f"{spec.name}_total" if spec.kind == "counter" else spec.name
        row = re.search(rf"^\| `{exported}` \| {spec.kind} \| (.+?) \|", text, re.M)
        assert row is not None, f"docs/operations.md has no row for {exported}"
        for label in spec.labels:
            assert f"`{label}`" in row.group(1)
