"""What every benchmark script shares: arguments, measuring, the baselines, printing.

Theory of operation
-------------------
The machine the benchmarks run on is small and noisy (2 cores, other jobs), so
no figure means anything on its own. Every script therefore measures its
baselines in the same process, right next to ours, and reports *ratios*.

Timing uses :func:`time.perf_counter` around a whole batch (one call per
batch, never per item) and keeps the best of a few repeats, which is the
figure least disturbed by other processes. Memory uses :mod:`tracemalloc`:
the growth of traced memory while the objects are built and still alive, so
it counts every Python allocation a link needs and nothing the interpreter
already held. Tracing slows allocation down a lot, so time and memory are
always measured in separate runs.

The baselines are built from the same :data:`linkstate.LIFECYCLE` our machine
uses, so every variant has the same states, edges and guards:

* transitions, the way its documentation suggests (``add_model``, or one
  ``Machine`` per model), with the guards as conditions on a ``decision``
  keyword argument;
* python-statemachine, a ``StateMachine`` subclass generated from the same
  edges, with the guards as ``cond`` callables;
* a hand-written dict FSM: ``state = TABLE[state, trigger]``, the floor.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar, cast

from statemachine import State as PsmState
from statemachine import StateMachine
from statemachine.factory import StateMachineMetaclass
from transitions import EventData, Machine

from linkstate import LIFECYCLE, Decision, Edge, State

T = TypeVar("T")

__all__ = [
    "DICT_FSM",
    "Plain",
    "Table",
    "best_of",
    "fmt_bytes",
    "fmt_ratio",
    "fmt_time",
    "parser",
    "print_lines",
    "psm_class",
    "target",
    "traced",
    "transitions_machine",
    "transitions_spec",
]


def parser(description: str, *, size: int, size_help: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--size`` option every script has."""
    cli = argparse.ArgumentParser(description=description)
    cli.add_argument("--size", type=int, default=size, help=f"{size_help} (default {size})")
    return cli


# -- measuring ------------------------------------------------------------------


def best_of(repeat: int, run: Callable[[], float]) -> float:
    """The smallest of ``repeat`` results of ``run`` (each a duration it measured itself)."""
    return min(run() for _ in range(repeat))


def timed(build: Callable[[], T]) -> tuple[T, float]:
    """Call ``build`` once; return its result and the seconds it took.

    The cyclic collector is off meanwhile, as :mod:`timeit` has it: what a
    collection costs depends on everything else the process holds.
    """
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        result = build()
        return result, time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def traced(build: Callable[[], T]) -> tuple[T, int]:
    """Call ``build`` under tracemalloc; return its result and the bytes it still holds.

    The result is kept alive until the second reading, so what it references
    counts; garbage made on the way does not.
    """
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return result, after - before


# -- printing -------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    """A duration with a unit that keeps three significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_bytes(count: float) -> str:
    """A byte count in B, KB or MB (powers of 1024)."""
    for unit, scale in (("MB", 1024.0**2), ("KB", 1024.0)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:.0f} B"


def fmt_ratio(ratio: float) -> str:
    """A ratio such as ``12.3x``."""
    return f"{ratio:.3g}x" if ratio < 1000 else f"{ratio:,.0f}x"


def target(what: str, shown: str, want: str, met: bool) -> str:
    """One target line: ``target  WHAT = SHOWN (want WANT): met`` (or ``MISSED``)."""
    return f"target  {what} = {shown} (want {want}): {'met' if met else 'MISSED'}"


def print_lines(lines: Sequence[str]) -> None:
    """Print the target and summary lines that end a script's output."""
    print("\n".join(lines), flush=True)


class Table:
    """A plain-text table printed with aligned columns."""

    def __init__(self, title: str, header: Sequence[str]) -> None:
        self.title = title
        self.header = tuple(header)
        self.rows: list[tuple[str, ...]] = []

    def add(self, *cells: object) -> None:
        """Append one row; cells are shown with ``str``."""
        if len(cells) != len(self.header):
            raise ValueError(f"row has {len(cells)} cells, header has {len(self.header)}")
        self.rows.append(tuple(str(cell) for cell in cells))

    def render(self) -> str:
        """The table as text, the title on top."""
        widths = [
            max(len(row[i]) for row in (self.header, *self.rows)) for i in range(len(self.header))
        ]
        lines = [
            self.title,
            "  ".join(h.ljust(w) for h, w in zip(self.header, widths, strict=True)),
        ]
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in self.rows
        )
        return "\n".join(lines)

    def print(self) -> None:
        """Print the table followed by a blank line."""
        print(self.render(), end="\n\n", flush=True)


# -- baselines ------------------------------------------------------------------


class Plain:
    """A plain model object, the kind transitions and python-statemachine decorate."""

    def __init__(self, link_id: str) -> None:
        self.link_id = link_id


def _condition(edge: Edge) -> Callable[[EventData], bool]:
    guard = edge.guard
    assert guard is not None

    def condition(event_data: EventData) -> bool:
        decision: Decision = event_data.kwargs["decision"]
        return guard(decision)

    return condition


def transitions_spec() -> dict[str, Any]:
    """Keyword arguments for ``transitions.Machine``: the lifecycle with its guards."""
    transitions = [
        {
            "trigger": edge.trigger.value,
            "source": edge.source.value,
            "dest": None if edge.dest is None else edge.dest.value,
            "conditions": [] if edge.guard is None else [_condition(edge)],
        }
        for edge in LIFECYCLE.edges
    ]
    return {
        "states": [state.value for state in LIFECYCLE.states],
        "transitions": transitions,
        "initial": LIFECYCLE.initial.value,
        "auto_transitions": False,
        "send_event": True,
    }


def transitions_machine(
    model: object | None = None, *, guards: bool = True, common_only: bool = False
) -> Machine:
    """A transitions ``Machine`` for the lifecycle.

    With ``guards=False`` it is the bare machine: the same states, and of each
    group of guarded close edges only the one into ``reconnecting``, unguarded.
    With ``common_only=True`` it keeps that one edge's guard: a trigger with
    exactly one guard, which passes.
    """
    spec = transitions_spec()
    if not guards or common_only:
        spec["transitions"] = [
            {**item, "conditions": item["conditions"] if guards else []}
            for item, edge in zip(spec["transitions"], LIFECYCLE.edges, strict=True)
            if _common_case(edge)
        ]
    return Machine(model=model, **spec)


def _common_case(edge: Edge) -> bool:
    """True for the unguarded edges and the guarded one a retryable close takes."""
    return edge.guard is None or edge.dest is State.reconnecting


def psm_class() -> type[StateMachine]:
    """A python-statemachine class generated from the lifecycle's edges and guards."""
    states: dict[str, Any] = {
        state.value: PsmState(state.value, value=state.value, initial=state is LIFECYCLE.initial)
        for state in LIFECYCLE.states
    }
    events: dict[str, Any] = {}
    for edge in LIFECYCLE.edges:
        source = states[edge.source.value]
        options: dict[str, Any] = {}
        if edge.guard is not None:
            options["cond"] = _psm_guard(edge)
        if edge.dest is None:
            step = source.to.itself(internal=True, **options)
        else:
            step = source.to(states[edge.dest.value], **options)
        name = edge.trigger.value
        events[name] = events[name] | step if name in events else step
    cls = StateMachineMetaclass("LifecycleMachine", (StateMachine,), {**states, **events})
    return cast("type[StateMachine]", cls)


def _psm_guard(edge: Edge) -> Callable[[Decision], bool]:
    guard = edge.guard
    assert guard is not None

    # python-statemachine passes keyword arguments to a condition by name.
    def cond(decision: Decision) -> bool:
        return guard(decision)

    cond.__name__ = guard.__name__
    return cond


# The hand-written FSM: one dict lookup per event, no guards, nothing recorded.
# A close goes to ``reconnecting``, the common case, so it is the floor for it.
DICT_FSM: Final[dict[tuple[str, str], str]] = {
    (edge.source.value, edge.trigger.value): edge.dest.value
    for edge in LIFECYCLE.edges
    if edge.dest is not None and _common_case(edge)
}
