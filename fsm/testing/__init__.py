"""A conformance kit for channel plugin authors: strategies, a reference model, ready checks.

A channel plugin is data (a close-code table, an extractor, a policy), and
this package proves that data against the shared lifecycle. It needs
hypothesis, and nothing of this repository's own test setup (no conftest, no
profile). A plugin's test file::

    from linkstate import Verdict
    from linkstate.testing import ConformanceMachine, RuntimeMachine, assert_conformance
    from my_plugin import CHANNEL

    EXPECTED = [(4004, Verdict.relink), (1006, Verdict.retry)]

    def test_my_channel_conforms() -> None:
        assert_conformance(CHANNEL, expected=EXPECTED)

    class TestMyChannel(ConformanceMachine):
        channel = CHANNEL
        expected = EXPECTED

    class TestMyChannelRuntime(RuntimeMachine):
        channel = CHANNEL

    TestMyChannelCase = TestMyChannel.TestCase
    TestMyChannelRuntimeCase = TestMyChannelRuntime.TestCase

What :func:`assert_conformance` proves (each is also a function of its own):

* :func:`assert_check_clean`: ``linkstate check`` passes for the channel.
* :func:`assert_rows_classify`: every row of the table, in every form a client
  library may report it (a bare int, ``"440"``, nested dicts, an exception,
  a :class:`~linkstate.CloseEvent`), is classified by that very row.
* :func:`assert_expected`: golden examples the author states (from the
  platform's docs) get the verdict the author expects, in every form.
* :func:`assert_junk_safe`: extraction and classification never raise on
  junk: huge numbers, NaN, bytes, cycles, objects whose attributes raise,
  and :func:`hostile` objects (raising dunders, hostile builtin subclasses,
  JSON nested past the recursion limit, ten-million-character text).
* :func:`assert_terminal_rows_stop`: a ``relink`` or ``fatal`` row never
  leads to ``reconnecting``, from ``open`` or during the handshake.
* :class:`ConformanceMachine`: a hypothesis state machine that drives the
  real :class:`~linkstate.LinkMachine` with the channel's closes (rows in
  every form, and junk) and the clock, and compares every transition with
  :class:`ReferenceLink`, a deliberately simple model of the lifecycle rules.

:class:`RuntimeMachine` holds the real trio supervisor to the same model, over
a :class:`ControlledTransport` in a :class:`TrioLoop` (or an :class:`AsyncioLoop`)
on a virtual clock.
Both machines are configured by class attributes, as hypothesis's own
``RuleBasedStateMachine`` is used: ``channel`` (required), ``policy``,
``expected`` and ``machine_factory`` (a deliberately broken machine proves
that the kit catches it); the runtime machine also takes ``watchdog`` and
``connect_timeout``. A subclass may add rules and invariants of its own.

The kit's hypothesis settings are its own, so a plugin's CI needs no
conftest of ours: the checks use :func:`kit_settings` (no deadline,
``too_slow`` suppressed, on top of the active profile), and the machines'
``TestCase`` always runs with :func:`machine_settings` (no deadline, no health
checks), even over an author's ``@settings(max_examples=...)`` on the class.
No wait of the kit is unbounded: a loop that does not settle within
``RuntimeMachine.settle_timeout`` seconds of real time (60 by default; a
healthy step takes milliseconds) fails with :class:`KitTimeoutError`, which
says what is likely stuck, and every later example of that machine fails at
once instead of waiting again. The strategies (:func:`close_forms`, :func:`close_events`,
:func:`junk`, :func:`hostile`) are public so a plugin author can write more properties of
their own.
"""

from linkstate.check._paths import row_event
from linkstate.testing._bot_api import BotAPIServer
from linkstate.testing._channel_machine import (
    KitSetupError,
    MachineFactory,
    machine_settings,
    real_machine,
)
from linkstate.testing._checks import (
    assert_check_clean,
    assert_conformance,
    assert_expected,
    assert_junk_safe,
    assert_rows_classify,
    assert_terminal_rows_stop,
    kit_settings,
)
from linkstate.testing._core_machine import ConformanceMachine
from linkstate.testing._homeserver import MatrixHomeserver
from linkstate.testing._loop import (
    AsyncioLoop,
    ControlledConnection,
    ControlledTransport,
    KitTimeoutError,
    TrioLoop,
    VirtualTimeLoop,
)
from linkstate.testing._reference import Expectation, ReferenceLink, delay_bound
from linkstate.testing._runtime_machine import RuntimeMachine
from linkstate.testing._strategies import (
    CloseError,
    broken,
    close_events,
    close_forms,
    hostile,
    junk,
    row_forms,
)

__all__ = [
    "AsyncioLoop",
    "BotAPIServer",
    "CloseError",
    "ConformanceMachine",
    "ControlledConnection",
    "ControlledTransport",
    "Expectation",
    "KitSetupError",
    "KitTimeoutError",
    "MachineFactory",
    "MatrixHomeserver",
    "ReferenceLink",
    "RuntimeMachine",
    "TrioLoop",
    "VirtualTimeLoop",
    "assert_check_clean",
    "assert_conformance",
    "assert_expected",
    "assert_junk_safe",
    "assert_rows_classify",
    "assert_terminal_rows_stop",
    "broken",
    "close_events",
    "close_forms",
    "delay_bound",
    "hostile",
    "junk",
    "kit_settings",
    "machine_settings",
    "real_machine",
    "row_event",
    "row_forms",
]
