"""Garbage-collector settings for a process that supervises very many links.

Theory of operation
-------------------
CPython frees most objects by reference counting; its cyclic collector exists
for reference cycles, and every so often it walks *every* tracked object of
the oldest generation to find them. A supervised link is a few dozen tracked
objects (its task, coroutine frames, cancel scopes, the supervisor and link),
so 100k links are millions of objects, and one full collection pauses the
event loop for seconds: every timer, watchdog and heartbeat of every link is
late by that much. While links start, the heap grows fast, the collector
decides again and again that the old generation needs a look, and it spends
about half of the start-up time walking objects that are all still alive.
``benchmarks/supervised.py`` measures both effects.

Two remedies, both built on :func:`gc.freeze`, which moves every object the
collector tracks into a permanent generation that it never walks again:

* :func:`freeze_survivors` after a large batch of links is up: one
  collection, then freeze. Later full collections only walk what was created
  since, so they take milliseconds instead of seconds.
* :func:`mass_start` around starting the batch: the collector is held off
  while the links start (they are all alive anyway, there is nothing for it
  to find), then :func:`freeze_survivors` runs once.

A :class:`linkstate.runtime.Fleet` does the second itself: once
:data:`MASS_START_LINKS` of its links are starting at the same time it holds
the collector off until every one of them has finished its first connect
attempt (or :data:`MASS_START_HOLD` seconds passed), then freezes, so a
gateway that starts 100k links needs no wrapper of its own. The fleet
freezes *without* collecting first: that one collection would walk every
object the start made (about 5 s with 100k links, as long as the whole
start should take), to find nothing: a start's garbage is freed by
reference counting, and a collection after 100k links started (unfrozen)
finds no unreachable object. Holds nest (:func:`hold_collector`): the
collector comes back when the last one ends.

The cost: a frozen object that later becomes part of garbage *cycle* is not
freed until :func:`gc.unfreeze` (objects freed by reference counting, the
vast majority, are freed as usual). Freeze after a mass start, not on a
timer; a process that starts and stops many links for days can call
``gc.unfreeze()`` followed by :func:`freeze_survivors` in a quiet moment.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = [
    "MASS_START_HOLD",
    "MASS_START_LINKS",
    "freeze_survivors",
    "hold_collector",
    "mass_start",
]

MASS_START_LINKS: Final = 1000
"""Links starting at once from which a fleet holds the collector off (module header).

Below it a start-up makes too few objects for the collector to matter, and
freezing would only keep the odd garbage cycle alive for longer.
"""

MASS_START_HOLD: Final = 60.0
"""Seconds a fleet holds the collector off at most, even if some links are still connecting."""

# Holds under way, process-wide: the collector is off while any is, and comes
# back (if it was on before the first) when the last one ends.
_holds: list[bool] = []


def freeze_survivors() -> int:
    """Collect once, then exclude every surviving object from later collections.

    Returns:
        How many objects are now frozen (:func:`gc.get_freeze_count`).

    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@contextmanager
def mass_start() -> Iterator[None]:
    """Hold the cyclic collector off while many links start; then collect once and freeze.

    Wrap the code that starts the links *and waits until they are up*::

        async with anyio.create_task_group() as tasks:
            with mass_start():
                for supervisor in supervisors:
                    tasks.start_soon(supervisor.run)
                await all_open.wait()

    The collector is re-enabled on the way out (if it was enabled before),
    also when the block raises.
    """
    with hold_collector():
        yield


@contextmanager
def hold_collector(*, collect: bool = True) -> Iterator[None]:
    """Hold the cyclic collector off for the block, then collect once (unless not) and freeze.

    What :func:`mass_start` and a fleet's mass start share; the fleet passes
    ``collect=False`` (module header). Holds nest: the collector is
    re-enabled (if it was enabled when the first hold began) when the last
    one ends, also when the block raises.
    """
    _holds.append(gc.isenabled() if not _holds else _holds[0])
    gc.disable()
    try:
        yield
    finally:
        was_enabled = _holds[0]
        _holds.pop()
        try:
            if collect:
                freeze_survivors()
            else:
                gc.freeze()
        finally:
            if was_enabled and not _holds:
                gc.enable()
