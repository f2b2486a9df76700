"""What the kit's state machines share: one channel under test, chosen by class attributes."""

from __future__ import annotations

import functools
import random
import unittest
from collections.abc import Callable, Sequence
from typing import ClassVar

import hypothesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from linkstate._channel import Channel
from linkstate._errors import LinkstateError
from linkstate._machine import LinkMachine
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import Verdict
from linkstate.testing._reference import Expectation, example_key, terminal_examples
from linkstate.testing._strategies import close_events

MachineFactory = Callable[[Channel, ReconnectPolicy, random.Random], LinkMachine]
"""Builds the machine under test; a test may pass a deliberately broken one."""


def real_machine(channel: Channel, policy: ReconnectPolicy, rng: random.Random) -> LinkMachine:
    """The machine under test by default: the real :class:`~linkstate.LinkMachine`."""
    return LinkMachine(channel, policy, rng=rng)


class KitSetupError(LinkstateError, TypeError):
    """A kit state machine was subclassed without what it needs; the message names the fix."""


def machine_settings(base: hypothesis.settings | None = None) -> hypothesis.settings:
    """The settings a kit state machine runs with: ``base`` (default: the active profile).

    Whatever the base, there is no deadline and no health check: one example
    drives a whole link through dozens of steps (and, for the runtime, a loop
    in a thread), so its time depends on the machine it runs on, and the
    junk it draws is large by design. A plugin author's CI has no conftest of
    ours to suppress ``too_slow``; these settings do not need one. The rest
    (``max_examples``, ``stateful_step_count``, ``derandomize``...) is the base's.
    """
    return hypothesis.settings(
        base if base is not None else hypothesis.settings(),
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


class _KitCase(unittest.TestCase):
    """What every kit machine's ``TestCase`` is: hypothesis's, with :func:`machine_settings`.

    An author may still assign ``TestCase.settings`` or decorate the machine
    with ``@settings(max_examples=...)``; the kit's settings go on top of those.
    """

    __test__ = False  # this base is no test; each machine's own subclass is
    machine: ClassVar[type[ChannelMachine]]
    settings: ClassVar[hypothesis.settings]

    def runTest(self) -> None:  # noqa: N802 - unittest's name
        """Run the machine, as hypothesis's own ``TestCase`` does."""
        run_state_machine_as_test(self.machine, settings=machine_settings(self.settings))


class _TestCaseOf:
    """The ``TestCase`` attribute of a kit machine class: one :class:`_KitCase` per class."""

    def __get__(self, obj: object, owner: type[ChannelMachine]) -> type[_KitCase]:
        return _test_case(owner)


@functools.cache
def _test_case(machine: type[ChannelMachine]) -> type[_KitCase]:
    case = type(
        f"{machine.__name__}.TestCase",
        (_KitCase,),
        {"__test__": True, "machine": machine, "settings": machine_settings()},
    )
    case.__qualname__ = f"{machine.__qualname__}.TestCase"
    case.__module__ = machine.__module__
    return case


class ChannelMachine(RuleBasedStateMachine):
    """A hypothesis state machine about one channel, set up by the class attributes below.

    Subclass :class:`~linkstate.testing.ConformanceMachine` or
    :class:`~linkstate.testing.RuntimeMachine`, not this class.

    Attributes:
        channel: Required: the channel under test.
        policy: The reconnect policy of the run; each machine has a default
            that brings the retry budget and flap detection within a short run.
        expected: Golden examples, ``(raw close, verdict)``: drawn alongside
            the generated closes, and one with a terminal verdict must stop
            the link.
        machine_factory: Builds the machine under test from the channel, the
            policy and a seeded random source (see :data:`MachineFactory`).

    """

    # A plugin author names the machine Test...; its TestCase is the test, and
    # pytest must not try (and warn about) collecting the machine class itself.
    __test__ = False

    TestCase = _TestCaseOf()  # type: ignore[assignment]
    channel: ClassVar[Channel]
    policy: ClassVar[ReconnectPolicy]
    expected: ClassVar[Sequence[Expectation]] = ()
    machine_factory: ClassVar[MachineFactory] = real_machine

    def __init__(self) -> None:
        super().__init__()
        cls = type(self)
        channel: object = getattr(cls, "channel", None)
        if channel is None:
            raise KitSetupError(
                f"{cls.__name__} has no class attribute 'channel': set it in the class "
                f"body to the channel under test, e.g. `channel = CHANNEL` (your plugin's "
                f"linkstate.Channel)"
            )
        if not isinstance(channel, Channel):
            raise KitSetupError(
                f"{cls.__name__}.channel is a {type(channel).__name__}, not a "
                f"linkstate.Channel: set it to the Channel object itself, e.g. "
                f"`channel = load_channel('whatsapp')`"
            )

    @classmethod
    @functools.cache
    def close_strategy(cls) -> st.SearchStrategy[object]:
        """What the rules draw as a close: any close of the channel, or a golden example.

        Built once per class: the channel's strategies are costly to build
        and identical for every example.
        """
        closes = close_events(cls.channel)
        if not cls.expected:
            return closes
        return st.one_of(closes, st.sampled_from([raw for raw, _ in cls.expected]))

    @classmethod
    @functools.cache
    def _terminal_examples(cls) -> dict[object, Verdict]:
        return terminal_examples(cls.expected)

    def terminal_example(self, raw: object) -> Verdict | None:
        """The terminal verdict a golden example demands for ``raw``, if it is one."""
        return self._terminal_examples().get(example_key(raw))

    def new_machine(self) -> LinkMachine:
        """The machine under test, from :attr:`machine_factory` (seeded, so runs repeat)."""
        # Read through the class: a function stored on the class would be bound to self.
        return type(self).machine_factory(self.channel, self.policy, random.Random(0))


def _closes_of(machine: object) -> st.SearchStrategy[object]:
    assert isinstance(machine, ChannelMachine), f"{machine!r} is not a kit state machine"
    return machine.close_strategy()


# Rule arguments are fixed when the base class is defined, but the closes depend
# on the subclass's channel: hypothesis's runner is the machine being run, so
# the strategy is looked up on it at draw time.
CHANNEL_CLOSES: st.SearchStrategy[object] = st.runner().flatmap(_closes_of)
"""A rule argument: a close of the running machine's channel (its ``close_strategy()``)."""
