"""Path coverage: every edge is covered, and every realised path runs through the real supervisor.

The generated cases take each realised path of each installed channel, turn
it into a script for the scripted transport, run the real trio supervisor on
the virtual clock, and assert that the runtime takes exactly the path's
steps and ends where the core (``LinkMachine``, ``Definition.resolve``) says.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
import trio

from linkstate._channel import Channel, available_channels, load_channel
from linkstate._lifecycle import CLOSE_TRIGGERS, LIFECYCLE, Decision, Edge, State, Trigger
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._verdicts import Verdict
from linkstate.check._paths import (
    COVERAGE_POLICIES,
    Path,
    Step,
    coverage,
    edge_cover,
    realised_cover,
    shortest_paths,
)
from linkstate.runtime._scripted import Close, Hang, Reject, ScriptedTransport, Silent
from linkstate.runtime._scripted import Step as ScriptStep
from linkstate.runtime._supervisor import Supervisor

WATCHDOG = 5.0

# Edges no run from a fresh link can fire; fsm/check/_paths.py explains why.
RUNTIME_DEAD = frozenset(
    {
        ("connecting", "connect_failed", "is_flapping"),
        ("open", "watchdog_expired", "is_relink"),
        ("open", "watchdog_expired", "is_fatal"),
    }
)


def key(edge: Edge) -> tuple[str, str, str | None]:
    return (edge.source.value, edge.trigger.value, edge.guard_name)


# -- abstract paths -------------------------------------------------------------------


def test_shortest_paths_reach_every_state_in_the_fewest_steps() -> None:
    paths = shortest_paths()
    assert set(paths) == set(LIFECYCLE.states)
    lengths = {state: len(path.steps) for state, path in paths.items()}
    assert lengths == {
        State.idle: 0,
        State.connecting: 1,
        State.stopped: 1,
        State.open: 2,
        State.reconnecting: 2,
        State.needs_relink: 2,
        State.failed: 2,
    }
    assert paths[State.needs_relink].describe() == "start, connect_failed(relink) -> needs_relink"


def test_the_edge_cover_covers_100_percent_of_the_lifecycle() -> None:
    cover = edge_cover()
    assert cover.uncovered == ()
    assert coverage(cover.paths) == 1.0
    # No path is a prefix of another, and each replays on the definition.
    for path in cover.paths:
        state = LIFECYCLE.initial
        for step in path.steps:
            assert LIFECYCLE.resolve(state, step.trigger, step.decision) == step.edge
            state = step.target
        assert state is path.target


def test_coverage_exposes_an_edge_shadowed_by_an_overlapping_guard() -> None:
    def retryable(decision: Decision) -> bool:
        return decision.verdict.retryable

    shadowing = Edge(State.open, Trigger.closed, State.reconnecting, retryable)
    edges = list(LIFECYCLE.edges)
    edges.insert(edges.index(LIFECYCLE.edges_from(State.open, Trigger.closed)[0]), shadowing)
    definition = replace(LIFECYCLE, edges=tuple(edges))
    cover = edge_cover(definition)
    assert {key(e) for e in cover.uncovered} == {
        ("open", "closed", "retry_budget_spent"),
        ("open", "closed", "is_flapping"),
        ("open", "closed", "may_retry"),
    }
    assert coverage(cover.paths, definition) < 1.0


def test_coverage_exposes_an_unreachable_state() -> None:
    definition = replace(
        LIFECYCLE, edges=tuple(e for e in LIFECYCLE.edges if e.dest is not State.open)
    )
    cover = edge_cover(definition)
    assert {e.source for e in cover.uncovered} == {State.open}


# -- realised paths -----------------------------------------------------------------------


@pytest.mark.parametrize("name", available_channels())
def test_realised_paths_cover_every_edge_the_runtime_can_reach(name: str) -> None:
    cover = realised_cover(load_channel(name))
    assert {key(e) for e in cover.uncovered} == RUNTIME_DEAD
    covered = {e for path in cover.paths for e in path.edges}
    assert covered | set(cover.uncovered) == set(LIFECYCLE.edges)
    assert {path.policy for path in cover.paths} == set(COVERAGE_POLICIES)


def script_for(steps: list[Step]) -> list[ScriptStep]:
    """What each connect attempt in ``steps`` must do."""
    script: list[ScriptStep] = []
    for index, step in enumerate(steps):
        if step.target is not State.connecting:
            continue
        after = steps[index + 1 : index + 3]
        match [s.trigger for s in after]:
            case [Trigger.connect_failed, *_]:
                script.append(Reject(after[0].raw))
            case [Trigger.opened, Trigger.closed]:
                script.append(Close(after[1].raw))
            case [Trigger.opened, Trigger.watchdog_expired]:
                script.append(Silent())
            case [Trigger.opened, *_]:
                script.append(Close(None, after=math.inf))  # open until aborted
            case _:
                script.append(Hang())  # connecting until aborted
    return script


def segment_end(steps: list[Step], start: int) -> int:
    """The index after the step that makes the link terminal, or the end of the path."""
    for index in range(start, len(steps)):
        if steps[index].target in LIFECYCLE.terminal:
            return index + 1
    return len(steps)


def assert_step(record: TransitionRecord, step: Step, where: str) -> None:
    source = step.edge.source.value
    assert (record.src, record.trigger, record.dst) == (source, step.trigger, step.target), where
    if step.decision is not None:
        assert record.verdict == step.decision.verdict, where
    if step.edge.dest is not None and step.edge.dest is not step.edge.source:
        want = None if step.edge.stop_reason is None else step.edge.stop_reason.value
        assert record.stop_reason == want, where


async def supervise(
    channel: Channel, machine: LinkMachine, link: Link, steps: list[Step], where: str
) -> str:
    """Run the supervisor over ``steps`` (which it produces on its own) and compare.

    Returns the state the runtime was in after the last of ``steps``; a path
    that ends in a live state is then aborted, so the supervisor returns.
    """
    ends_live = steps[-1].target not in LIFECYCLE.terminal
    abort_index = next((i for i, s in enumerate(steps) if s.trigger is Trigger.abort), None)
    abort_after = len(steps) if ends_live else abort_index
    supervisor = Supervisor(
        channel, ScriptedTransport(script_for(steps)), link=link, machine=machine, watchdog=WATCHDOG
    )
    seen: list[TransitionRecord] = []

    def observe(record: TransitionRecord) -> None:
        seen.append(record)
        if len(seen) == abort_after:
            supervisor.abort()

    supervisor.subscribe(observe)
    if abort_after == 0:
        supervisor.abort()
    outcome = await supervisor.run()
    assert len(seen) == len(steps) + ends_live, f"{where}: {[r.trigger for r in seen]}"
    for record, step in zip(seen, steps, strict=False):
        assert_step(record, step, where)
    if ends_live:
        assert (seen[-1].trigger, outcome.state) == ("abort", "stopped"), where
    else:
        assert outcome.state == steps[-1].target, where
    return seen[len(steps) - 1].dst


async def run_path(channel: Channel, path: Path) -> str:
    """Run ``path`` through the real supervisor; return where the runtime ended.

    Operator steps (``reset``) and late events in a terminal state go to the
    core directly, as they do in production.
    """
    machine = LinkMachine(channel, path.policy, rng=random.Random(7))
    link = machine.new_link("path")
    steps = list(path.steps)
    index = 0
    reached = link.state
    while index < len(steps):
        step = steps[index]
        where = f"{channel.name}: {path.describe()}, step {index} ({step.describe()})"
        if not link.terminal:
            end = segment_end(steps, index)
            reached = await supervise(channel, machine, link, steps[index:end], where)
            index = end
            continue
        now = trio.current_time()
        if step.trigger in CLOSE_TRIGGERS:
            record = machine.close(link, step.raw, now, trigger=step.trigger)
        else:
            record = machine.fire(link, step.trigger, now)
        assert_step(record, step, where)
        reached = record.dst
        if link.state in (State.needs_relink, State.failed):
            # A supervisor given a link that awaits a person must not connect at
            # all. (A `stopped` link is a local stop: a new run resumes it.)
            transport = ScriptedTransport(())
            outcome = await Supervisor(channel, transport, link=link, machine=machine).run()
            assert (outcome.connects, outcome.records, transport.connects) == (0, (), 0), where
        index += 1
    return reached


CASES: list[tuple[str, Path]] = [
    (name, path)
    for name in available_channels()
    for path in realised_cover(load_channel(name)).paths
]


@pytest.mark.parametrize(
    ("name", "path"), CASES, ids=[f"{name}: {path.describe()}" for name, path in CASES]
)
async def test_each_path_runs_through_the_real_supervisor(
    autojump_clock: trio.testing.MockClock, name: str, path: Path
) -> None:
    # The core (LinkMachine, in realised_cover) says where the path ends.
    assert await run_path(load_channel(name), path) == path.target


async def test_the_runner_catches_a_runtime_that_disagrees(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A path whose expected verdict is wrong must fail: the runner can fail.
    channel = load_channel("whatsapp")
    path = next(p for p in realised_cover(channel).paths if p.target is State.needs_relink)
    steps = list(path.steps)
    last = steps[-1]
    assert last.decision is not None
    steps[-1] = replace(last, decision=replace(last.decision, verdict=Verdict.fatal))
    with pytest.raises(AssertionError):
        await run_path(channel, replace(path, steps=tuple(steps)))
