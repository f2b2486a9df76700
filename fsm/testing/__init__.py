"""A conformance kit for channel plugin authors: strategies, a reference model, ready checks.

A channel plugin is data (a close-code table, an extractor, a policy), and
this module proves that data against the shared lifecycle. A plugin's test
file needs three lines::

    from linkstate.testing import assert_conformance, conformance_machine
    from my_plugin import CHANNEL

    def test_my_channel_conforms() -> None:
        assert_conformance(CHANNEL, expected=[(4004, Verdict.relink), (1006, Verdict.retry)])

    TestMyChannelLifecycle = conformance_machine(CHANNEL).TestCase

What :func:`assert_conformance` proves (each is also a function of its own):

* :func:`assert_check_clean`: ``linkstate check`` passes for the channel.
* :func:`assert_rows_classify`: every row of the table, in every form a client
  library may report it (a bare int, ``"440"``, nested dicts, an exception,
  a :class:`~linkstate._events.CloseEvent`), is classified by that very row.
* :func:`assert_expected`: golden examples the author states (from the
  platform's docs) get the verdict the author expects, in every form.
* :func:`assert_junk_safe`: extraction and classification never raise on
  junk: huge numbers, NaN, bytes, cycles, objects whose attributes raise.
* :func:`assert_terminal_rows_stop`: a ``relink`` or ``fatal`` row never
  leads to ``reconnecting``, from ``open`` or during the handshake.
* :func:`conformance_machine`: a hypothesis state machine that drives the
  real :class:`~linkstate._machine.LinkMachine` with the channel's closes (rows in
  every form, and junk) and the clock, and compares every transition with
  :class:`ReferenceLink`, a deliberately simple model of the lifecycle rules.

The strategies (:func:`close_forms`, :func:`close_events`, :func:`junk`) are
public so a plugin author can write more properties of their own.
"""

from linkstate.testing._kit import (
    CloseError,
    ControlledConnection,
    ControlledTransport,
    Expectation,
    MachineFactory,
    ReferenceLink,
    TrioLoop,
    assert_check_clean,
    assert_conformance,
    assert_expected,
    assert_junk_safe,
    assert_rows_classify,
    assert_terminal_rows_stop,
    close_events,
    close_forms,
    conformance_machine,
    delay_bound,
    junk,
    real_machine,
    row_event,
    row_forms,
    runtime_machine,
)

__all__ = [
    "CloseError",
    "ControlledConnection",
    "ControlledTransport",
    "Expectation",
    "MachineFactory",
    "ReferenceLink",
    "TrioLoop",
    "assert_check_clean",
    "assert_conformance",
    "assert_expected",
    "assert_junk_safe",
    "assert_rows_classify",
    "assert_terminal_rows_stop",
    "close_events",
    "close_forms",
    "conformance_machine",
    "delay_bound",
    "junk",
    "real_machine",
    "row_event",
    "row_forms",
    "runtime_machine",
]
