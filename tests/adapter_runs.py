"""Helpers for the adapter tests: the real libraries, on asyncio, against loopback servers.

The libraries under test (discord.py, slack_sdk) are asyncio-only and talk to
real sockets on 127.0.0.1, so each test body runs in ``asyncio.run`` on the
real clock; the policies below keep every wait to a tenth of a second. No
task may outlive the body.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from linkstate import Channel, Jitter, ReconnectPolicy, TransitionRecord, Verdict
from linkstate.runtime import Outcome, Supervisor, Transport

T = TypeVar("T")

# No jitter, so every delay is known in advance: 0.2 s after a retry, the
# 0.1 s floor after a retry_now.
POLICY: Final = ReconnectPolicy(initial=0.2, cap=0.2, jitter=Jitter.none, retry_now_max=0.0)


def delay_after(verdict: Verdict, attempt: int = 1) -> float:
    """The delay POLICY gives before reconnect ``attempt`` after a close with ``verdict``."""
    return POLICY.backoff_delay(attempt, verdict, rng=random.Random(0))


def run_asyncio(body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body()`` in a fresh asyncio loop; fail if a task outlived it."""

    async def checked() -> T:
        result = await body()
        # Let tasks that were cancelled on the way out finish being cancelled.
        for _ in range(10):
            left = asyncio.all_tasks() - {asyncio.current_task()}
            if not left:
                break
            await asyncio.sleep(0)
        assert not left, f"tasks outlived the test body: {left}"
        return result

    return asyncio.run(checked())


async def supervised(
    channel: Channel,
    transport: Transport,
    link_id: str,
    *,
    watchdog: float | None,
    until: Callable[[], bool] | None = None,
) -> Outcome:
    """Supervise with POLICY to a terminal state, or abort (an operator's stop) at ``until()``."""
    supervisor = Supervisor(channel, transport, link_id=link_id, policy=POLICY, watchdog=watchdog)
    if until is None:
        return await supervisor.run()
    async with asyncio.TaskGroup() as tasks:
        running = tasks.create_task(supervisor.run())
        while not until():
            await asyncio.sleep(0.01)
        supervisor.abort()
    return running.result()


def backoffs(outcome: Outcome) -> list[tuple[str | None, float]]:
    """Each close that led to a reconnect: the rule that classified it, and the delay."""
    return [
        (r.rule, r.delay)
        for r in outcome.records
        if r.dst == "reconnecting" and r.delay is not None
    ]


def waits(outcome: Outcome) -> list[tuple[float, float]]:
    """(delay scheduled, time that really passed) from each close to its reconnect."""
    found = []
    records = outcome.records
    for close, after in itertools.pairwise(records):
        if close.dst == "reconnecting" and close.delay is not None:
            assert after.trigger == "backoff_elapsed", after
            found.append((close.delay, after.t - close.t))
    return found


def reconnected_after_each_delay(outcome: Outcome) -> bool:
    """Whether every reconnect came at least its scheduled delay after its close."""
    # The loop's timers fire up to its clock's resolution early (a nanosecond on Linux).
    return all(passed >= delay - 1e-6 for delay, passed in waits(outcome))


def ends(outcome: Outcome) -> list[TransitionRecord]:
    """The close-like transitions of a run, in order."""
    closes = ("closed", "connect_failed", "watchdog_expired")
    return [r for r in outcome.records if r.trigger in closes]
