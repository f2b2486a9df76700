"""The conformance kit never hangs a plugin author's CI, and needs none of our test setup.

Every wait of the kit's loops is bounded in real time: a task that never
blocks, a call that blocks the loop's thread, or a deadlock fails with
:class:`~linkstate.testing.KitTimeoutError` instead of hanging. And a plugin's
test file runs in a directory of its own, with no conftest of ours, under the
strictest hypothesis profile an author may have.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import trio

from linkstate.testing import AsyncioLoop, KitTimeoutError, TrioLoop, VirtualTimeLoop

# Real seconds: what is under test is a bound on real time, so it takes some.
BOUND = 0.3


async def spin() -> None:
    while True:  # checkpoints, but never blocks: wait_all_tasks_blocked never returns
        await trio.lowlevel.checkpoint()


def test_a_trio_task_that_never_blocks_fails_the_step_in_bounded_time() -> None:
    loop = TrioLoop(timeout=BOUND)
    started = time.monotonic()
    with pytest.raises(KitTimeoutError, match=r"did not settle after a step within 0\.3 s"):
        loop.run(lambda: loop.nursery.start_soon(spin))
    assert time.monotonic() - started < 30
    assert loop.stuck is not None and "loops without ever blocking" in loop.stuck
    loop.close()  # the spinning task is cancelled at its next checkpoint


def test_a_call_that_blocks_the_loop_thread_fails_and_the_close_does_not_hang() -> None:
    release = threading.Event()
    loop = TrioLoop(timeout=BOUND)
    try:
        with pytest.raises(KitTimeoutError, match="blocks the loop's thread"):
            loop.run(release.wait)
        loop.close()  # the thread is still blocked: close gives up after the bound, quietly
        assert loop.stuck is not None
    finally:
        release.set()  # let the loop's thread end


def test_an_asyncio_task_that_never_blocks_fails_the_step_in_bounded_time() -> None:
    async def busy() -> None:
        while True:
            await asyncio.sleep(0)

    loop = AsyncioLoop(timeout=BOUND)
    with pytest.raises(KitTimeoutError, match="did not settle after a step"):
        loop.run(lambda: loop.nursery.start_soon(busy))
    loop.close()


def test_a_virtual_time_loop_with_nothing_left_to_wait_for_ends_the_run() -> None:
    loop = VirtualTimeLoop(autojump=True, stall_timeout=BOUND)
    try:
        with pytest.raises(KitTimeoutError, match="every task waits"):
            loop.run_until_complete(asyncio.Event().wait())  # an event nobody sets
    finally:
        loop.close()


# -- a plugin author's own test files, run by pytest in a directory of their own ----------


AUTHOR_PROFILE = """
from datetime import timedelta

from hypothesis import settings

# The author's own profile: no health check suppressed, a deadline no example
# meets. The kit must run the same under it as under ours.
settings.register_profile(
    "author", deadline=timedelta(microseconds=1), suppress_health_check=[], max_examples=3
)
settings.load_profile("author")
"""

CONFORMING = """
from hypothesis import settings

from linkstate import Verdict
from linkstate.channels.websocket import CHANNEL
from linkstate.testing import ConformanceMachine, RuntimeMachine, assert_conformance


def test_the_channel_conforms() -> None:
    assert_conformance(CHANNEL, expected=[(1008, Verdict.fatal)], max_examples=3)


@settings(max_examples=3, stateful_step_count=8)
class TestCore(ConformanceMachine):
    channel = CHANNEL


@settings(max_examples=3, stateful_step_count=8)
class TestRuntime(RuntimeMachine):
    channel = CHANNEL


TestCoreCase = TestCore.TestCase
TestRuntimeCase = TestRuntime.TestCase
"""

STUCK = """
import trio
from hypothesis import settings
from hypothesis.stateful import rule

from linkstate.channels.websocket import CHANNEL
from linkstate.testing import RuntimeMachine


@settings(max_examples=50, stateful_step_count=10)
class TestStuck(RuntimeMachine):
    channel = CHANNEL
    settle_timeout = 0.5

    @rule()
    def start_a_keepalive(self) -> None:
        async def keepalive() -> None:
            while True:  # the plugin's bug: it checkpoints, but never blocks
                await trio.lowlevel.checkpoint()

        self.loop.run(lambda: self.loop.nursery.start_soon(keepalive))


TestStuckCase = TestStuck.TestCase
"""


def run_plugin_tests(directory: Path, body: str) -> subprocess.CompletedProcess[str]:
    """pytest on one test file in ``directory``: no conftest, no config, no cache of ours."""
    (directory / "test_plugin.py").write_text(textwrap.dedent(AUTHOR_PROFILE + body))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPOTHESIS")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a guard against a hang, which is what this test is about
        check=False,
    )


def test_a_plugin_authors_tests_pass_outside_this_repository(tmp_path: Path) -> None:
    assert not (tmp_path / "conftest.py").exists()
    done = run_plugin_tests(tmp_path, CONFORMING)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def test_a_stuck_plugin_fails_with_a_clear_error_instead_of_hanging(tmp_path: Path) -> None:
    started = time.monotonic()
    done = run_plugin_tests(tmp_path, STUCK)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "KitTimeoutError" in done.stdout and "within 0.5 s of real time" in done.stdout
    assert "loops without ever blocking" in done.stdout
    assert "1 failed" in done.stdout
    # One bounded wait, then every shrinking example fails at once: not 50 waits.
    assert time.monotonic() - started < 120
