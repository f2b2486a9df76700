"""The cost of one lifecycle event: ours against transitions, python-statemachine and a dict.

Run: ``.venv/bin/python benchmarks/event_cost.py [--size N]``

Every variant drives N links round the reconnect cycle many times::

    open --closed--> reconnecting --backoff_elapsed--> connecting --opened--> open

Ours does the whole job on each event: ``LinkMachine.close`` normalises the raw
close, classifies it with the WhatsApp table, decides budget and flapping,
fires the guarded transition and records a ``TransitionRecord``; the two
reconnect events are ``LinkMachine.fire`` and are recorded too. The baselines
only change state:

* transitions, bare: the same states, one unguarded edge per trigger, fired
  the fastest way transitions has (``machine.events[name].trigger(model)`` on
  an unregistered model, as we do);
* transitions with one guard: the bare machine, but the close edge keeps its
  guard (``may_retry``), which passes: the floor for a guarded transition
  that transitions applies, and the baseline of the 1.2x target;
* transitions with the lifecycle's guards: the close carries a ready-made
  ``Decision`` and transitions tries the guarded edges in order;
* python-statemachine: ``sm.send(name, decision=...)`` on an instance
  generated from the same edges and guards;
* a hand-written dict FSM: ``state = TABLE[state, trigger]``.

Each figure is the best of several rounds, and the variants take turns within
a round. Time moves on by 100 s a round, so no link looks like flapping and
every open proves healthy (the attempt counter resets), the same every round.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from harness import (
    DICT_FSM,
    Table,
    fmt_ratio,
    fmt_time,
    parser,
    print_lines,
    psm_class,
    target,
    transitions_machine,
)

from linkstate import Decision, Link, LinkMachine, Trigger, Verdict, load_channel

ROUNDS = 9
# python-statemachine instances cost about a millisecond each to create, so it
# cycles a smaller pool of instances through more rounds.
PSM_POOL = 1_000

# A close as Baileys reports it: connection.update's lastDisconnect, a Boom error.
BAILEYS_CLOSE: dict[str, Any] = {
    "connection": "close",
    "lastDisconnect": {
        "error": {
            "message": "Connection Closed",
            "output": {"statusCode": 428, "payload": {"statusCode": 428, "error": "Precondition"}},
        },
        "date": "2026-01-01T00:00:00Z",
    },
}
RETRY: Decision = Decision(Verdict.retry)

Step = Callable[[float], float]
"""Runs one batch of events at time ``now``; returns the seconds the batch took."""


class Slotted:
    """A model with only a ``state``: the lightest object transitions can drive."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


def _clock(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


class Ours:
    """Our machine: close (normalise, classify, decide, transition, record), then reconnect."""

    def __init__(self, n: int, raw: object) -> None:
        self.machine = LinkMachine(load_channel("whatsapp"), rng=random.Random(1))
        self.links = [self.machine.new_link(f"link-{i}") for i in range(n)]
        self.raw = raw
        for link in self.links:
            self.machine.fire(link, Trigger.start, 0.0)
            self.machine.fire(link, Trigger.opened, 0.0)

    def close(self, now: float) -> float:
        """Close every link."""
        close, raw, links = self.machine.close, self.raw, self.links

        def run() -> None:
            for link in links:
                close(link, raw, now)

        return _clock(run)

    def reconnect(self, now: float) -> float:
        """Fire ``backoff_elapsed`` then ``opened`` on every link."""
        return self._fire(Trigger.backoff_elapsed, now) + self._fire(Trigger.opened, now)

    def _fire(self, trigger: Trigger, now: float) -> float:
        fire, links = self.machine.fire, self.links

        def run() -> None:
            for link in links:
                fire(link, trigger, now)

        return _clock(run)

    def check(self) -> Link:
        """A link after the rounds: must be open again."""
        return self.links[-1]


class Transitions:
    """transitions, fired on unregistered slotted models."""

    def __init__(self, n: int, *, guards: bool, common_only: bool = False) -> None:
        machine = transitions_machine(guards=guards, common_only=common_only)
        self.events = {
            name: machine.events[name] for name in ("closed", "backoff_elapsed", "opened")
        }
        self.models = [Slotted("open") for _ in range(n)]
        self.kwargs: dict[str, Any] = {"decision": RETRY} if guards else {}

    def close(self, now: float) -> float:
        """Fire ``closed`` on every model."""
        trigger, models, kwargs = self.events["closed"].trigger, self.models, self.kwargs

        def run() -> None:
            for model in models:
                trigger(model, **kwargs)

        return _clock(run)

    def reconnect(self, now: float) -> float:
        """Fire ``backoff_elapsed`` then ``opened`` on every model."""
        return self._fire("backoff_elapsed") + self._fire("opened")

    def _fire(self, name: str) -> float:
        trigger, models = self.events[name].trigger, self.models

        def run() -> None:
            for model in models:
                trigger(model)

        return _clock(run)

    def check(self) -> object:
        """A model after the rounds."""
        return self.models[-1].state


class Psm:
    """python-statemachine instances generated from the lifecycle."""

    def __init__(self, n: int) -> None:
        cls = psm_class()
        self.machines = [cls() for _ in range(n)]
        for sm in self.machines:
            sm.send("start")
            sm.send("opened")

    def close(self, now: float) -> float:
        """Send ``closed`` to every instance."""
        machines = self.machines

        def run() -> None:
            for sm in machines:
                sm.send("closed", decision=RETRY)

        return _clock(run)

    def reconnect(self, now: float) -> float:
        """Send ``backoff_elapsed`` then ``opened`` to every instance."""
        machines = self.machines

        def run() -> None:
            for sm in machines:
                sm.send("backoff_elapsed")
            for sm in machines:
                sm.send("opened")

        return _clock(run)

    def check(self) -> object:
        """An instance's state after the rounds."""
        return self.machines[-1].current_state_value


class DictFsm:
    """The floor: one dict lookup per event."""

    def __init__(self, n: int) -> None:
        self.models = [Slotted("open") for _ in range(n)]

    def close(self, now: float) -> float:
        """Move every model on ``closed``."""
        return self._fire("closed")

    def reconnect(self, now: float) -> float:
        """Move every model on ``backoff_elapsed`` then ``opened``."""
        return self._fire("backoff_elapsed") + self._fire("opened")

    def _fire(self, name: str) -> float:
        models, table = self.models, DICT_FSM

        def run() -> None:
            for model in models:
                model.state = table[model.state, name]

        return _clock(run)

    def check(self) -> object:
        """A model's state after the rounds."""
        return self.models[-1].state


Variant = Ours | Transitions | Psm | DictFsm


def run(size: int) -> dict[str, tuple[float, float]]:
    """Measure every variant; name -> best (close, reconnect path) seconds per event.

    The variants take turns within each round, so a noisy moment on the
    machine hits them all alike and the best of the rounds compares like
    with like.
    """
    pool = min(size, PSM_POOL)
    variants: list[tuple[str, Variant, int]] = [
        ("ours: LinkMachine.close(link, 428)", Ours(size, 428), size),
        ("ours: LinkMachine.close(link, Baileys dict)", Ours(size, BAILEYS_CLOSE), size),
        ("transitions, bare trigger", Transitions(size, guards=False), size),
        ("transitions, one guard", Transitions(size, guards=True, common_only=True), size),
        ("transitions, lifecycle guards", Transitions(size, guards=True), size),
        ("python-statemachine send()", Psm(pool), pool),
        ("hand-written dict FSM", DictFsm(size), size),
    ]
    best = {name: (math.inf, math.inf) for name, _, _ in variants}
    for round_ in range(ROUNDS):
        now = 100.0 * (round_ + 1)
        for name, variant, n in variants:
            close = variant.close(now) / n
            reconnect = variant.reconnect(now) / (2 * n)
            best[name] = (min(best[name][0], close), min(best[name][1], reconnect))
    for name, variant, _ in variants:
        state = variant.check()
        assert getattr(state, "state", state) == "open", f"{name} ended in {state}"
    return best


def report(results: dict[str, tuple[float, float]], size: int) -> list[str]:
    """Print the table and the targets; return the target lines."""
    names = list(results)
    ours_close = results[names[0]][0]
    bare_close, bare_reconnect = results["transitions, bare trigger"]
    table = Table(
        f"Cost of one event ({size:,} links, best of {ROUNDS} interleaved rounds; "
        "÷ bare = against a bare transitions trigger measured in the same rounds)",
        ["variant", "close", "÷ bare", "reconnect path", "÷ bare", "ours close ÷ this"],
    )
    for name, (close, reconnect) in results.items():
        table.add(
            name,
            fmt_time(close),
            fmt_ratio(close / bare_close),
            fmt_time(reconnect),
            fmt_ratio(reconnect / bare_reconnect),
            fmt_ratio(ours_close / close),
        )
    table.print()
    psm_close = results["python-statemachine send()"][0]
    over_bare = ours_close / bare_close
    over_guarded = ours_close / results["transitions, one guard"][0]
    under_psm = psm_close / ours_close
    lines = [
        target(
            "ours close / bare transitions trigger", fmt_ratio(over_bare), "<= 2x", over_bare <= 2
        ),
        target(
            "ours close / transitions trigger with one guard",
            fmt_ratio(over_guarded),
            "<= 1.2x",
            over_guarded <= 1.2,
        ),
        target(
            "python-statemachine event / ours close", fmt_ratio(under_psm), ">= 5x", under_psm >= 5
        ),
    ]
    print_lines(lines)
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    cli = parser(__doc__.splitlines()[0], size=10_000, size_help="links per batch")
    args = cli.parse_args(argv)
    report(run(args.size), args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
