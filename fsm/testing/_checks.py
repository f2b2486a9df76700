"""Ready checks: one call each, and :func:`assert_conformance` to run them all."""

from __future__ import annotations

import random
from collections.abc import Iterable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from linkstate._channel import Channel
from linkstate._events import CloseEvent, Phase
from linkstate._lifecycle import CLOSE_TRIGGERS, LIFECYCLE, Decision, Trigger
from linkstate._machine import Link, LinkMachine
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import Rule
from linkstate.check._checker import check, promised_route
from linkstate.testing._channel_machine import MachineFactory, machine_settings, real_machine
from linkstate.testing._core_machine import ConformanceMachine
from linkstate.testing._reference import Expectation
from linkstate.testing._strategies import broken, close_forms, junk, row_forms


def kit_settings(
    max_examples: int, *, suppress: Iterable[HealthCheck] = (HealthCheck.too_slow,)
) -> settings:
    """The active hypothesis profile, adjusted for the kit's properties and state machines.

    No deadline: one example runs a whole channel (or a state machine), so its
    time depends on the machine it runs on, not on a bug. ``too_slow`` is
    suppressed because the nested forms and junk are large by design. No
    example database: the kit is run on many channels and mutants, whose
    failures must not replay on one another. Everything else (``derandomize``,
    ``print_blob`` and the like) comes from the caller's profile.
    """
    profile = settings()
    return settings(
        profile,
        max_examples=max_examples,
        database=None,
        deadline=None,
        suppress_health_check=[*profile.suppress_health_check, *suppress],
    )


def assert_check_clean(channel: Channel) -> None:
    """``linkstate check CHANNEL`` passes: the table and the lifecycle agree."""
    report = check(LIFECYCLE, channel)
    assert report.ok, report.render()


def _rule_name(rule: Rule) -> str:
    return f"{rule.label!r} ({rule.verdict.value})"


def assert_rows_classify(channel: Channel, *, max_examples: int = 100) -> None:
    """Every row, in every form (fixed and generated), is classified by that row."""
    for row in channel.table.rows():
        for form in row_forms(channel, row):
            _, got = channel.classify(form)
            assert got is row, (
                f"channel {channel.name!r}: {form!r} should be classified by row "
                f"{_rule_name(row)} but got {_rule_name(got)}"
            )

    @kit_settings(max_examples)
    @given(st.data())
    def generated(data: st.DataObject) -> None:
        row = data.draw(st.sampled_from(channel.table.rows()), label="row")
        form = data.draw(close_forms(channel, row), label="form")
        _, got = channel.classify(form)
        assert got is row, (
            f"channel {channel.name!r}: {form!r} should be classified by row "
            f"{_rule_name(row)} but got {_rule_name(got)}"
        )

    generated()


def _forms_of(channel: Channel, raw: object) -> list[object]:
    """``raw`` and, for a bare status or code, every form of the row it names."""
    _, rule = channel.classify(raw)
    keyed = rule is not channel.table.unknown and rule is not channel.table.no_status
    if keyed and not rule.narrowed and isinstance(raw, (int, str)):
        return [raw, *row_forms(channel, rule)]
    return [raw]


def assert_expected(channel: Channel, expected: Iterable[Expectation]) -> None:
    """Each golden example gets its expected verdict, in every form of the row it names."""
    for raw, verdict in expected:
        for form in _forms_of(channel, raw):
            _, rule = channel.classify(form)
            assert rule.verdict is verdict, (
                f"channel {channel.name!r}: {raw!r} (as {form!r}) is classified "
                f"{rule.verdict.value!r} by row {rule.label!r}, but it must be "
                f"{verdict.value!r}; fix the table row"
            )


def assert_junk_safe(channel: Channel, *, max_examples: int = 200) -> None:
    """The channel's extractor never raises on broken junk; its classifier not even on hostile.

    ``extract`` is fed :func:`broken` values; ``classify`` also :func:`hostile`
    objects, which the framework's own guard (``Channel.event``) must absorb
    whatever the plugin's extractor does with them.
    """
    rows = channel.table.rows()

    # Junk is hostile on purpose (huge, nested, cyclic): no health check applies to it.
    @kit_settings(max_examples, suppress=HealthCheck)
    @given(junk(), broken())
    def safe(raw: object, plain: object) -> None:
        extracted = channel.extract(plain)
        assert isinstance(extracted, CloseEvent), (
            f"channel {channel.name!r}: extract({plain!r}) returned {extracted!r}, not a CloseEvent"
        )
        for phase in (Phase.handshake, Phase.established):
            event, rule = channel.classify(raw, phase=phase)
            assert rule in rows, f"channel {channel.name!r}: {raw!r} classified by a foreign row"
            assert event.phase is phase

    safe()


def _opened_link(machine: LinkMachine) -> Link:
    link = machine.new_link("conformance")
    machine.fire(link, Trigger.start, 0.0)
    machine.fire(link, Trigger.opened, 0.0)
    return link


def assert_terminal_rows_stop(
    channel: Channel,
    policy: ReconnectPolicy | None = None,
    *,
    machine_factory: MachineFactory | None = None,
) -> None:
    """A ``relink`` or ``fatal`` row stops the link at once, in every form and phase.

    Checked from ``open`` (``closed``, ``watchdog_expired``) and from
    ``connecting`` (``connect_failed``): the link lands in the terminal state
    its verdict names, with no backoff delay, an operator message, and no
    further connect (``backoff_elapsed`` is refused, ``start`` absorbed).
    """
    factory = machine_factory or real_machine
    machine = factory(channel, policy or channel.policy, random.Random(0))
    for row in channel.table.rows():
        if not row.verdict.terminal:
            continue
        for form in row_forms(channel, row):
            for trigger in CLOSE_TRIGGERS:
                if trigger is Trigger.connect_failed:
                    link = machine.new_link("conformance")
                    machine.fire(link, Trigger.start, 0.0)
                else:
                    link = _opened_link(machine)
                record = machine.close(link, form, 1.0, trigger=trigger)
                want, _ = promised_route(Decision(row.verdict))
                where = f"channel {channel.name!r}: row {_rule_name(row)} as {form!r} on {trigger}"
                assert record.dst == want, f"{where} led to {record.dst!r}, not {want.value!r}"
                assert record.delay is None and link.delay is None, f"{where} scheduled a delay"
                assert link.message, f"{where} stopped without an operator message"
                late = machine.fire(link, Trigger.start, 2.0)
                assert late.dst == want, f"{where}: a late start left {want.value!r}"


def assert_conformance(
    channel: Channel,
    *,
    expected: Iterable[Expectation] = (),
    policy: ReconnectPolicy | None = None,
    max_examples: int = 100,
) -> None:
    """Run every check of this kit on ``channel``; see :mod:`linkstate.testing`.

    Args:
        channel: The plugin's channel.
        expected: Golden examples from the platform's documentation: each raw
            close and the verdict it must get.
        policy: The policy for the stateful run; defaults to one that makes
            the budget and flap detection reachable in a few steps.
        max_examples: Hypothesis examples per property and for the state machine.

    """
    examples = tuple(expected)
    assert_check_clean(channel)
    assert_rows_classify(channel, max_examples=max_examples)
    assert_expected(channel, examples)
    assert_junk_safe(channel, max_examples=max_examples)
    assert_terminal_rows_stop(channel, policy)

    class Conformance(ConformanceMachine):
        """The core state machine on the channel under check."""

    Conformance.channel = channel
    Conformance.expected = examples
    if policy is not None:
        Conformance.policy = policy
    Conformance.__name__ = Conformance.__qualname__ = f"{channel.name.title()}Conformance"
    run_state_machine_as_test(Conformance, settings=machine_settings(kit_settings(max_examples)))
