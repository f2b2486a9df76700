"""Prometheus metrics of a fleet: a collector read at scrape time (extra ``linkstate[prometheus]``).

Theory of operation
-------------------
Two kinds of number, read two ways:

* **How many links are in each state** is read from the fleet *when scraped*
  (``fleet.statuses()``, or the ``links`` callable). Counting it from
  transition deltas would miss every link loaded from the store already in a
  terminal state: a ``needs_relink`` link that never transitions in this
  process is still a link that needs a person.
* **What happened** (transitions, backoff delays) can only be counted as it
  happens, so :class:`FleetMetrics` subscribes to the fleet
  (:meth:`linkstate.runtime.Fleet.subscribe`) and keeps the counts in plain
  dicts. Counters start at 0 with the process, as Prometheus expects.

No label carries a link id: a fleet of ten thousand accounts must not make
ten thousand series per metric. Labels are the channel, the state, the
trigger and the verdict, all from small closed sets (the channel names are
the installed channels).

``prometheus_client`` is imported only when a registry asks for the metrics,
so ``linkstate.runtime`` imports without the extra; a scrape without it is a
:class:`MetricsError` that names the install command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from linkstate._errors import LinkstateError
from linkstate._lifecycle import State
from linkstate._machine import TransitionRecord

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from linkstate.runtime._fleet import Fleet

__all__ = ["BACKOFF_BUCKETS", "METRICS", "FleetMetrics", "MetricSpec", "MetricsError"]


class MetricsError(LinkstateError, ImportError):
    """The Prometheus metrics need ``prometheus_client``, which is not installed."""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric as exported: its family name, type, labels and help text."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


# Every metric the collector exports. Rules: names follow Prometheus
# conventions (``linkstate_`` prefix, base units, a counter's family name
# without ``_total``, which the exposition adds); labels come from closed
# sets and never name a link; a gauge is read from the fleet at scrape time,
# a counter or histogram from the transitions observed since the process
# started. docs/operations.md lists this table; a test compares the two.
METRICS: Final = (
    MetricSpec(
        "linkstate_links",
        "gauge",
        ("channel", "state"),
        "Links in each lifecycle state, read from the fleet when scraped.",
    ),
    MetricSpec(
        "linkstate_transitions",
        "counter",
        ("channel", "trigger", "dst", "verdict"),
        "Transitions since the process started; verdict is empty for non-close triggers.",
    ),
    MetricSpec(
        "linkstate_backoff_delay_seconds",
        "histogram",
        ("channel",),
        "Backoff delays scheduled on entering reconnecting, in seconds.",
    ),
)
"""Every metric :class:`FleetMetrics` exports, in the order it exports them."""

BACKOFF_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Upper bounds of the delay histogram: from a ``retry_now`` jitter to the longest caps."""

_LINKS, _TRANSITIONS, _BACKOFF = METRICS


class _Histogram:
    """Bucket counts (not cumulative), the sum and the count of one channel's delays."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size
        self.count = 0
        self.total = 0.0


class FleetMetrics:
    """A Prometheus collector for a fleet: register it on a ``CollectorRegistry``.

    Args:
        fleet: The fleet to observe (its transitions) and count (its links), or
            None to feed :meth:`observe` and ``links`` yourself.
        links: What to count in ``linkstate_links``: ``(channel, state)`` per
            link, read at every scrape. Defaults to the fleet's statuses.
        buckets: Upper bounds of ``linkstate_backoff_delay_seconds``.

    Example::

        from prometheus_client import CollectorRegistry, generate_latest
        registry = CollectorRegistry()
        registry.register(FleetMetrics(fleet))
        text = generate_latest(registry)

    """

    def __init__(
        self,
        fleet: Fleet | None = None,
        *,
        links: Callable[[], Iterable[tuple[str, str]]] | None = None,
        buckets: tuple[float, ...] = BACKOFF_BUCKETS,
    ) -> None:
        if fleet is None and links is None:
            raise MetricsError(
                "FleetMetrics needs a fleet or a links= callable to count links; pass one"
            )
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise MetricsError(
                f"histogram buckets {buckets!r} must be distinct and ascending; sort them"
            )
        self.fleet = fleet
        self.buckets = buckets
        self._links = links or self._fleet_links
        self._transitions: dict[tuple[str, str, str, str], int] = {}
        self._delays: dict[str, _Histogram] = {}
        self._channels: set[str] = set()
        self.unsubscribe: Callable[[], None] | None = None
        if fleet is not None:
            self.unsubscribe = fleet.subscribe(self._observe_fleet)

    def observe(self, record: TransitionRecord, channel: str) -> None:
        """Count one transition of a link of ``channel`` (the fleet calls this for you)."""
        self._channels.add(channel)
        key = (channel, record.trigger, record.dst, record.verdict or "")
        self._transitions[key] = self._transitions.get(key, 0) + 1
        if record.dst == State.reconnecting and record.delay is not None:
            histogram = self._delays.get(channel)
            if histogram is None:
                histogram = self._delays[channel] = _Histogram(len(self.buckets) + 1)
            index = next(
                (i for i, bound in enumerate(self.buckets) if record.delay <= bound),
                len(self.buckets),
            )
            histogram.buckets[index] += 1
            histogram.count += 1
            histogram.total += record.delay

    def collect(self) -> Iterator[Metric]:
        """The metric families now; ``prometheus_client`` calls this at each scrape."""
        try:
            from prometheus_client.core import (
                CounterMetricFamily,
                GaugeMetricFamily,
                HistogramMetricFamily,
            )
        except ImportError as exc:
            raise MetricsError(
                "the Prometheus metrics need prometheus_client: pip install 'linkstate[prometheus]'"
            ) from exc
        counts: dict[tuple[str, str], int] = {}
        for channel, state in self._links():
            self._channels.add(channel)
            counts[channel, state] = counts.get((channel, state), 0) + 1
        links = GaugeMetricFamily(_LINKS.name, _LINKS.help, labels=_LINKS.labels)
        # Every state of every channel seen, zeros included: a series that
        # vanishes at 0 breaks alerts such as `linkstate_links{state="failed"} > 0`.
        for channel in sorted(self._channels):
            for state in State:
                links.add_metric([channel, state.value], counts.pop((channel, state.value), 0))
        for (channel, state), count in sorted(counts.items()):
            links.add_metric([channel, state], count)  # a state this version does not know
        yield links
        transitions = CounterMetricFamily(
            _TRANSITIONS.name, _TRANSITIONS.help, labels=_TRANSITIONS.labels
        )
        for labels, count in sorted(self._transitions.items()):
            transitions.add_metric(list(labels), count)
        yield transitions
        delays = HistogramMetricFamily(_BACKOFF.name, _BACKOFF.help, labels=_BACKOFF.labels)
        for channel, histogram in sorted(self._delays.items()):
            cumulative, running = [], 0
            for bound, count in zip((*self.buckets, float("inf")), histogram.buckets, strict=True):
                running += count
                cumulative.append((_bound(bound), float(running)))
            delays.add_metric([channel], cumulative, sum_value=histogram.total)
        yield delays

    def _observe_fleet(self, record: TransitionRecord) -> None:
        assert self.fleet is not None
        self.observe(record, self.fleet.channel_of(record.link).name)

    def _fleet_links(self) -> Iterator[tuple[str, str]]:
        assert self.fleet is not None
        for status in self.fleet.statuses():
            yield status.channel, status.state


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
