"""Run a test body on both back ends, each on a virtual clock.

The runtime is written once, against anyio; these helpers prove it on trio
(``MockClock(autojump_threshold=0)``, as pytest-trio's ``autojump_clock``)
and on asyncio (:class:`linkstate.testing.VirtualTimeLoop` with autojump).
:func:`on_both_backends` turns an ``async def`` test into a plain test
parametrised by back end, so neither pytest-trio's ``trio_mode`` nor any
other plugin runs it: the test picks its loop itself.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final

import pytest
import sniffio
import trio
import trio.testing

from linkstate.testing import VirtualTimeLoop

BACKENDS: Final = ("trio", "asyncio")


def run_on(backend: str, body: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``body()`` to completion on ``backend``, on a virtual clock; fail if a task is left."""
    if backend == "trio":

        async def main() -> Any:
            return await body()

        return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    loop = VirtualTimeLoop(autojump=True)
    try:

        async def checked() -> Any:
            result = await body()
            left = asyncio.all_tasks() - {asyncio.current_task()}
            assert not left, f"tasks outlived the test body: {left}"
            return result

        return loop.run_until_complete(checked())
    finally:
        loop.close()


def live_tasks() -> int:
    """How many tasks the running loop has now (trio or asyncio)."""
    if sniffio.current_async_library() == "asyncio":
        return len(asyncio.all_tasks())
    root = trio.lowlevel.current_root_task()
    assert root is not None
    stack = [root]
    count = 0
    while stack:
        task = stack.pop()
        count += 1
        stack.extend(t for n in task.child_nurseries for t in n.child_tasks)
    return count


def on_both_backends(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Make ``async def test_x(fixtures...)`` a test run once on trio and once on asyncio."""

    @pytest.mark.parametrize("backend", BACKENDS)
    @functools.wraps(fn)
    def test(backend: str, **fixtures: Any) -> None:
        run_on(backend, functools.partial(fn, **fixtures))

    params = [
        inspect.Parameter("backend", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        *inspect.signature(fn).parameters.values(),
    ]
    # pytest reads the signature for fixtures: ``backend`` plus the body's own
    # (without __wrapped__, which would make it read the async body's alone).
    test.__dict__["__signature__"] = inspect.Signature(params)
    del test.__dict__["__wrapped__"]
    result: Callable[..., None] = test
    return result
