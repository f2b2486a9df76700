"""What the Prometheus collector costs: per transition observed, and per link scraped.

Run: ``.venv/bin/python benchmarks/metrics_cost.py [--size N]``

Both are measured against the same baseline, measured in the same run: one
``LinkMachine.close(link, 428)``, the whole work of one close (normalise,
classify, decide, fire, record).

* **Observing.** :class:`linkstate.runtime.FleetMetrics` runs inside the
  supervisor on every transition (``Fleet.subscribe``), so its ``observe``
  must cost a small part of the transition it counts: target at most 0.5x.
* **Scraping.** ``generate_latest`` over a fleet of N links reads every
  link's state at scrape time (that is the point: no missed terminal link),
  so a scrape grows with the fleet. It is shown per link, as a multiple of
  one close, and in absolute time for the whole fleet.
"""

from __future__ import annotations

import time

from harness import Table, best_of, fmt_ratio, fmt_time, parser, print_lines, target
from prometheus_client import CollectorRegistry, generate_latest

from linkstate import LinkMachine, State, load_channel
from linkstate.runtime import FleetMetrics

ROUNDS = 7


def close_cost(size: int) -> float:
    """Seconds per ``LinkMachine.close`` on open links (the baseline)."""
    machine = LinkMachine(load_channel("whatsapp"))
    links = [machine.new_link(f"l{i}") for i in range(size)]

    def run() -> float:
        for link in links:
            link.state = State.open.value
            link.attempt = 0
            link.recent_closes = ()
        start = time.perf_counter()
        for link in links:
            machine.close(link, 428, 0.0)
        return (time.perf_counter() - start) / size

    return best_of(ROUNDS, run)


def observe_cost(size: int) -> float:
    """Seconds per ``FleetMetrics.observe`` of the records those closes made."""
    machine = LinkMachine(load_channel("whatsapp"))
    records = []
    for i in range(size):
        link = machine.new_link(f"l{i}")
        link.state = State.open.value
        records.append(machine.close(link, 428, 0.0))
    metrics = FleetMetrics(links=list)

    def run() -> float:
        start = time.perf_counter()
        for record in records:
            metrics.observe(record, "whatsapp")
        return (time.perf_counter() - start) / size

    return best_of(ROUNDS, run)


def scrape_cost(links: int) -> float:
    """Seconds for one full scrape (``generate_latest``) of ``links`` links."""
    states = [s.value for s in State]
    pairs = [("whatsapp" if i % 2 else "websocket", states[i % len(states)]) for i in range(links)]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetMetrics(links=lambda: pairs))

    def run() -> float:
        start = time.perf_counter()
        generate_latest(registry)
        return time.perf_counter() - start

    return best_of(ROUNDS, run)


def main() -> None:
    args = parser(__doc__.splitlines()[0], size=20_000, size_help="links and records").parse_args()
    size = args.size
    close = close_cost(size)
    observe = observe_cost(size)
    scrape = scrape_cost(size)
    table = Table(f"per event, {size} links", ("what", "time", "x one close"))
    table.add("baseline: LinkMachine.close(link, 428)", fmt_time(close), "1x")
    table.add("FleetMetrics.observe(record)", fmt_time(observe), fmt_ratio(observe / close))
    table.add(
        f"scrape of {size} links, per link",
        fmt_time(scrape / size),
        fmt_ratio(scrape / size / close),
    )
    table.print()
    print(f"one scrape of {size} links: {fmt_time(scrape)}\n")
    ratio = observe / close
    print_lines(
        [target("observe / close", fmt_ratio(ratio), "<= 0.5x", ratio <= 0.5)],
    )


if __name__ == "__main__":
    main()
