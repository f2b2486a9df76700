"""The conformance kit's implementation; the public names are in :mod:`linkstate.testing`."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from linkstate._channel import Channel
from linkstate._events import CloseEvent, Initiator, Phase
from linkstate._lifecycle import (
    CLOSE_TRIGGERS,
    EXIT_TRIGGERS,
    LIFECYCLE,
    Decision,
    State,
    StopReason,
    Trigger,
)
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import Rule, Verdict
from linkstate.check._checker import check, promised_route
from linkstate.check._paths import WATCHDOG_CLOSE, row_event, unlisted_status
from linkstate.runtime._supervisor import ConnectFailed, Supervisor

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

Expectation = tuple[object, Verdict]
"""A golden example: a raw close as the platform sends it, and the verdict it must get."""

T = TypeVar("T")

MachineFactory = Callable[[Channel, ReconnectPolicy, random.Random], LinkMachine]
"""Builds the machine under test; a test may pass a deliberately broken one."""

# Where client libraries put a status, as (outer keys..., status key) paths the
# generic normaliser reads; each row is tried in every one of them.
_STATUS_HOLDERS: Final[tuple[tuple[str, ...], ...]] = (
    ("status",),
    ("statusCode",),
    ("status_code",),
    ("error_code",),
    ("output", "statusCode"),
    ("output", "payload", "statusCode"),
)
_CODE_HOLDERS: Final[tuple[tuple[str, ...], ...]] = (("code",), ("errcode",))

# The wrappers client libraries put around an error (Baileys' lastDisconnect,
# a library's error.error); forms nest a row's payload in up to two of them.
_WRAPPERS: Final[tuple[tuple[str, ...], ...]] = (
    ("error",),
    ("lastDisconnect", "error"),
    ("lastDisconnect",),
)


class CloseError(Exception):
    """An exception carrying a close the way many client libraries raise one.

    Attributes:
        status: The numeric status, or None.
        code: The symbolic code, or None.
        reason: The human-readable text.
        flags: Extra boolean facts (``soft_logout``).

    """

    def __init__(
        self,
        status: int | None = None,
        code: str | None = None,
        reason: str = "",
        flags: Sequence[str] = (),
    ) -> None:
        super().__init__(reason or f"closed with {status if status is not None else code}")
        self.status = status
        self.code = code
        self.reason = reason
        self.flags = list(flags)


# -- forms of one row ---------------------------------------------------------------


def _nest(path: tuple[str, ...], value: object) -> dict[str, object]:
    nested: object = value
    for key in reversed(path):
        nested = {key: nested}
    assert isinstance(nested, dict)
    return nested


def _payloads(rule: Rule) -> list[dict[str, object]]:
    """The dict shapes of a keyed row: its status (and code) under every holder."""
    if rule.flag is not None:
        # How a flag sits in a platform's dict is the channel's own business
        # (Matrix: ``soft_logout: true``); such rows are tried as events and
        # exceptions only, and through the author's ``expected`` examples.
        return []
    extra: dict[str, object] = {}
    if rule.reason_contains is not None:
        extra["reason"] = rule.reason_contains
    payloads = []
    if rule.status is not None:
        for holder in _STATUS_HOLDERS:
            for status in (rule.status, str(rule.status)):
                payload = _nest(holder, status)
                if rule.code is not None:
                    payload["errcode"] = rule.code
                payloads.append({**payload, **extra})
    else:
        assert rule.code is not None
        payloads.extend({**_nest(holder, rule.code), **extra} for holder in _CODE_HOLDERS)
    return payloads


def _wrapped(payload: dict[str, object], wrapper: tuple[str, ...]) -> dict[str, object]:
    return _nest(wrapper, payload)


def _default_forms(channel: Channel, rule: Rule) -> list[object]:
    if rule is channel.table.no_status:
        return [None, CloseEvent(), {"reason": "socket closed"}, OSError("connection reset")]
    status = unlisted_status(channel)
    return [status, str(status), {"status": status}, CloseEvent(status=status)]


def row_forms(channel: Channel, rule: Rule) -> tuple[object, ...]:
    """Every form of ``rule`` this kit knows, each of which must classify to ``rule``.

    For a keyed row: the canonical event, an exception with attributes, the
    status under every holder (as int and as text), each nested in every
    wrapper; for an un-narrowed status row also the bare int, ``"440"`` and
    ``" 440 "``; for an un-narrowed code row the bare code. For the table's
    defaults: events with an unlisted status, or with none at all.
    """
    if rule is channel.table.unknown or rule is channel.table.no_status:
        return tuple(_default_forms(channel, rule))
    forms: list[object] = [row_event(rule)]
    event = row_event(rule)
    forms.append(CloseError(rule.status, rule.code, event.reason, sorted(event.flags)))
    if not rule.narrowed:
        if rule.status is not None and rule.code is None:
            forms.extend([rule.status, str(rule.status), f" {rule.status} "])
        elif rule.status is None:
            forms.append(rule.code)
    payloads = _payloads(rule)
    forms.extend(payloads)
    forms.extend(_wrapped(payload, wrapper) for payload in payloads for wrapper in _WRAPPERS)
    return tuple(forms)


def _noise(channel: Channel, rule: Rule) -> st.SearchStrategy[str]:
    """Reason text that cannot narrow the event onto another row of the same key."""
    narrowers = [
        other.reason_contains.lower()
        for other in channel.table.rules
        if other.reason_contains is not None and other is not rule
    ]
    return st.text(max_size=40).filter(lambda text: not any(n in text.lower() for n in narrowers))


def close_forms(channel: Channel, rule: Rule) -> st.SearchStrategy[object]:
    """Forms of ``rule``: :func:`row_forms`, plus nested dict forms with random reason text.

    Every value drawn must classify to ``rule`` (for un-narrowed rows the
    random text only adds a reason; for narrowed rows it surrounds the
    narrowing text).
    """
    fixed = st.sampled_from(row_forms(channel, rule))
    if rule is channel.table.unknown or rule is channel.table.no_status or not _payloads(rule):
        return fixed

    @st.composite
    def noisy(draw: st.DrawFn) -> object:
        payload = dict(draw(st.sampled_from(_payloads(rule))))
        before, after = draw(_noise(channel, rule)), draw(_noise(channel, rule))
        if rule.reason_contains is not None:
            payload["reason"] = f"{before} {rule.reason_contains} {after}"
        else:
            payload["reason"] = before
        wrappers = draw(st.lists(st.sampled_from(_WRAPPERS), max_size=1))
        for wrapper in wrappers:
            payload = _wrapped(payload, wrapper)
        return payload

    return st.one_of(fixed, noisy())


class _Hostile:
    """An object whose every attribute read raises, like a broken proxy."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"hostile attribute {name}")

    def __repr__(self) -> str:
        return "<hostile>"


class _UnprintableError(Exception):
    """An exception whose ``str()`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("cannot print")


def _cycle() -> dict[str, object]:
    loop: dict[str, object] = {"status": "oops"}
    loop["error"] = loop
    loop["lastDisconnect"] = {"error": loop}
    return loop


_JUNK_KEYS: Final = (
    "status",
    "statusCode",
    "code",
    "error",
    "output",
    "payload",
    "lastDisconnect",
    "reason",
    "data",
    "tag",
    "attrs",
    "flags",
    "retry_after",
    "parameters",
)


def junk() -> st.SearchStrategy[object]:
    """Anything a broken or hostile peer or library might hand over instead of a close."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=300),
        st.binary(max_size=64),
        st.sampled_from(["440", " 4e2 ", "-1", "1e308", "NaN", "\x00\u202e440", "٤٤٠"]),
    )
    nested = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(_JUNK_KEYS) | st.text(max_size=8), inner, max_size=5),
        ),
        max_leaves=20,
    )
    makers: list[Callable[[], object]] = [_Hostile, _UnprintableError, _cycle, object, ValueError]
    hostile = st.sampled_from(makers).map(lambda make: make())
    return st.one_of(nested, hostile)


def close_events(channel: Channel, *, junk_weight: int = 1) -> st.SearchStrategy[object]:
    """Any close the channel may see: a row of its table in any form, or junk."""
    rows = channel.table.rows()
    forms = st.sampled_from(rows).flatmap(lambda rule: close_forms(channel, rule))
    return st.one_of(forms, *([junk()] * junk_weight))


# -- the reference model ------------------------------------------------------------


def delay_bound(policy: ReconnectPolicy, rule: Rule, event: CloseEvent) -> float:
    """The longest delay the policy may schedule after ``event`` classified by ``rule``."""
    hint = min(event.retry_after or 0.0, policy.max_retry_after)
    return max(policy.longest_delay, rule.min_delay, hint)


@dataclass
class ReferenceLink:
    """A deliberately simple model of the lifecycle rules, to compare the real machine with.

    It keeps only what the rules talk about: the state, the attempt counter
    (refilled only after a healthy connection or a reset), the recent closes
    for flap detection, and the consecutive closes by one row for escalation.
    Routing comes from :func:`linkstate.check._checker.promised_route`, the same promises
    ``linkstate check`` holds a definition to.
    """

    policy: ReconnectPolicy
    state: State = State.idle
    attempt: int = 0
    recent: tuple[float, ...] = ()
    opened_at: float | None = None
    last_rule: Rule | None = None
    repeats: int = 0
    history: list[str] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        """True in a terminal state."""
        return self.state in LIFECYCLE.terminal

    def plain(self, trigger: Trigger, now: float) -> tuple[State, StopReason | None]:
        """Apply a trigger that carries no close: (new state, stop reason)."""
        self.history.append(trigger.value)
        if self.terminal:
            if trigger is Trigger.reset:
                self.state, self.attempt, self.recent = State.idle, 0, ()
                self.opened_at, self.last_rule, self.repeats = None, None, 0
            elif trigger is Trigger.resume and self.state is State.stopped:
                self.state = State.idle  # budget, flap history and escalation count kept
            return self.state, None
        match trigger:
            case Trigger.abort:
                self.state, self.opened_at = State.stopped, None
                return self.state, StopReason.aborted
            case Trigger.start | Trigger.backoff_elapsed:
                self.state = State.connecting
            case Trigger.opened:
                self.state, self.opened_at = State.open, now
            case _:
                raise AssertionError(f"{trigger} is not a plain trigger in {self.state}")
        return self.state, None

    def close(
        self, trigger: Trigger, rule: Rule, now: float
    ) -> tuple[State, StopReason | None, Verdict | None]:
        """Apply a close-like trigger classified by ``rule``: (state, stop reason, verdict)."""
        self.history.append(f"{trigger.value}({rule.label})")
        if self.terminal:
            return self.state, None, None
        if trigger is not Trigger.connect_failed:
            if self.opened_at is not None and now - self.opened_at >= self.policy.healthy_after:
                self.attempt, self.repeats = 0, 0
            self.recent = self.policy.remember_close(self.recent, now)
        self.repeats = self.repeats + 1 if self.repeats and rule == self.last_rule else 1
        self.last_rule = rule
        budget = self.policy.max_attempts
        decision = Decision(
            verdict=rule.verdict_after(self.repeats),
            budget_spent=budget is not None and self.attempt >= budget,
            flapping=self.policy.is_flapping(self.recent),
        )
        self.state, reason = promised_route(decision)
        self.opened_at = None
        if self.state is State.reconnecting:
            self.attempt += 1
        return self.state, reason, decision.verdict


# -- the ready checks ---------------------------------------------------------------


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

    @settings(max_examples=max_examples, database=None)
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
    """The channel's extractor and classifier never raise on junk, and stay total."""
    rows = channel.table.rows()

    @settings(max_examples=max_examples, database=None, suppress_health_check=list(HealthCheck))
    @given(junk())
    def safe(raw: object) -> None:
        extracted = channel.extract(raw)
        assert isinstance(extracted, CloseEvent), (
            f"channel {channel.name!r}: extract({raw!r}) returned {extracted!r}, not a CloseEvent"
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
    """Run every check of this kit on ``channel``; see the module docstring.

    Args:
        channel: The plugin's channel.
        expected: Golden examples from the platform's documentation: each raw
            close and the verdict it must get.
        policy: The policy for the stateful run; defaults to one that makes
            the budget and flap detection reachable in a few steps.
        max_examples: Hypothesis examples per property and for the state machine.

    """
    examples = list(expected)
    assert_check_clean(channel)
    assert_rows_classify(channel, max_examples=max_examples)
    assert_expected(channel, examples)
    assert_junk_safe(channel, max_examples=max_examples)
    assert_terminal_rows_stop(channel, policy)
    machine = conformance_machine(channel, policy=policy, expected=examples)
    run_state_machine_as_test(
        machine, settings=settings(max_examples=max_examples, database=None, deadline=None)
    )


# -- the stateful conformance machine -----------------------------------------------

# A policy that reaches the budget and flap detection within a few steps, so a
# short random run exercises every close route.
KIT_POLICY: Final = ReconnectPolicy(
    initial=1.0, cap=8.0, max_attempts=4, healthy_after=30.0, flap_closes=3, flap_window=60.0
)


def real_machine(channel: Channel, policy: ReconnectPolicy, rng: random.Random) -> LinkMachine:
    """The machine under test by default: the real :class:`~linkstate._machine.LinkMachine`."""
    return LinkMachine(channel, policy, rng=rng)


def conformance_machine(
    channel: Channel,
    *,
    policy: ReconnectPolicy | None = None,
    expected: Iterable[Expectation] = (),
    machine_factory: MachineFactory = real_machine,
) -> type[RuleBasedStateMachine]:
    """A hypothesis state machine proving ``channel`` on the real core against the model.

    Rules are the lifecycle's triggers (closes drawn from :func:`close_events`,
    plus the ``expected`` examples) and clock advances. After every step the
    real link must agree with :class:`ReferenceLink` on the state, the stop
    reason, the verdict and the attempt counter; every delay must stay within
    :func:`delay_bound`; a terminal state must absorb everything but ``reset``;
    and an expected terminal example must stop the link with no delay.

    Use it as ``TestMine = conformance_machine(CHANNEL).TestCase``.
    """
    chosen = policy if policy is not None else KIT_POLICY
    examples = list(expected)
    raws: st.SearchStrategy[object] = close_events(channel)
    if examples:
        raws = st.one_of(raws, st.sampled_from([raw for raw, _ in examples]))
    must = {_key(raw): verdict for raw, verdict in examples}

    class ChannelConformance(RuleBasedStateMachine):
        """The channel's closes driving the real core, checked against the reference model."""

        def __init__(self) -> None:
            super().__init__()
            self.now = 0.0
            self.model = ReferenceLink(chosen)
            self.machine = machine_factory(channel, chosen, random.Random(0))
            self.link = self.machine.new_link("conformance")
            self.record: TransitionRecord | None = None
            self.live = 0  # transitions since the link was last idle

        @initialize(seed=st.integers(0, 2**32 - 1))
        def seed_jitter(self, seed: int) -> None:
            self.machine.rng.seed(seed)

        def _check(self, record: TransitionRecord, state: State, reason: StopReason | None) -> None:
            self.record = record
            self.live = 0 if record.dst == State.idle else self.live + 1
            trail = " -> ".join(self.model.history)
            assert record.dst == state.value, (
                f"after {trail}: machine went to {record.dst!r}, the model says {state.value!r}"
            )
            want_reason = None if reason is None else reason.value
            if record.src != record.dst:
                assert record.stop_reason == want_reason, (
                    f"after {trail}: stop reason {record.stop_reason!r}, the model says "
                    f"{want_reason!r}"
                )
            assert self.link.attempt == self.model.attempt, (
                f"after {trail}: attempt counter {self.link.attempt}, the model says "
                f"{self.model.attempt} (it may refill only after "
                f"{chosen.healthy_after:g} s open, or a reset)"
            )

        def _plain(self, trigger: Trigger) -> None:
            record = self.machine.fire(self.link, trigger, self.now)
            self._check(record, *self.model.plain(trigger, self.now))

        def _close(self, trigger: Trigger, raw: object) -> None:
            phase = Phase.handshake if trigger is Trigger.connect_failed else None
            event, row = channel.classify(raw, phase=phase)
            was_terminal = self.model.terminal
            record = self.machine.close(self.link, raw, self.now, trigger=trigger)
            state, reason, verdict = self.model.close(trigger, row, self.now)
            self._check(record, state, reason)
            if was_terminal:
                return
            assert record.verdict == (None if verdict is None else verdict.value)
            if record.delay is not None:
                bound = delay_bound(chosen, row, event)
                assert 0.0 <= record.delay <= bound, (
                    f"{row.label}: delay {record.delay} outside [0, {bound}]"
                )
            want = must.get(_key(raw))
            if want is not None and want.terminal:
                assert record.dst == promised_route(Decision(want))[0].value, (
                    f"{raw!r} must stop the link ({want.value}) but led to {record.dst!r}"
                )
                assert record.delay is None

        @rule(seconds=st.sampled_from([0.5, 1.0, 5.0, 29.0, 31.0, 61.0]) | st.floats(0, 200))
        def advance(self, seconds: float) -> None:
            self.now += seconds

        @precondition(lambda self: self.model.state is State.idle)
        @rule()
        def start(self) -> None:
            self._plain(Trigger.start)

        @precondition(lambda self: self.model.state is State.connecting)
        @rule()
        def opened(self) -> None:
            self._plain(Trigger.opened)

        @precondition(lambda self: self.model.state is State.connecting)
        @rule(raw=raws)
        def connect_failed(self, raw: object) -> None:
            self._close(Trigger.connect_failed, raw)

        @precondition(lambda self: self.model.state is State.open)
        @rule(raw=raws)
        def closed(self, raw: object) -> None:
            self._close(Trigger.closed, raw)

        @precondition(lambda self: self.model.state is State.open)
        @rule()
        def watchdog_expired(self) -> None:
            self._close(
                Trigger.watchdog_expired,
                CloseEvent(reason="watchdog: transport silent", initiator=Initiator.local),
            )

        @precondition(lambda self: self.model.state is State.reconnecting)
        @rule()
        def backoff_elapsed(self) -> None:
            self._plain(Trigger.backoff_elapsed)

        # Aborting a link that has barely started explores little; let it live a while.
        @precondition(lambda self: not self.model.terminal and self.live >= 3)
        @rule()
        def abort(self) -> None:
            self._plain(Trigger.abort)

        # A late event is one a terminal state must absorb; its ways out
        # (reset, resume) have rules of their own.
        @precondition(lambda self: self.model.terminal)
        @rule(trigger=st.sampled_from([t for t in Trigger if t not in EXIT_TRIGGERS]), raw=raws)
        def late_event(self, trigger: Trigger, raw: object) -> None:
            if trigger in CLOSE_TRIGGERS:
                self._close(trigger, raw)
            else:
                self._plain(trigger)
            assert self.record is not None and self.record.absorbed

        @precondition(lambda self: self.model.terminal)
        @rule()
        def reset(self) -> None:
            self._plain(Trigger.reset)

        @precondition(lambda self: self.model.terminal)
        @rule()
        def resume(self) -> None:
            was = self.model.state
            self._plain(Trigger.resume)
            assert self.record is not None
            assert self.record.absorbed is (was is not State.stopped)

        @invariant()
        def terminal_states_tell_the_operator(self) -> None:
            if self.link.state in (State.needs_relink.value, State.failed.value):
                assert self.link.message, f"{self.link.state} without an operator message"

    ChannelConformance.__name__ = f"{channel.name.title()}Conformance"
    return ChannelConformance


def _key(raw: object) -> object:
    """A hashable stand-in for an expected raw close (dicts are compared by repr)."""
    try:
        hash(raw)
    except TypeError:
        return repr(raw)
    return raw


# -- the runtime: a trio loop in a thread, and a transport the test drives -------------


class TrioLoop:
    """A trio run in a thread of its own, on a :class:`trio.testing.MockClock` jumped by hand.

    Hypothesis rules are synchronous; this is how they drive async code. Each
    :meth:`run` executes a function inside the loop and then lets every task
    run until all are blocked, so when it returns the runtime has reacted
    fully. Time moves only through :meth:`jump`. :meth:`close` ends the run.
    """

    def __init__(self) -> None:
        self.clock = trio.testing.MockClock()
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._nursery: trio.Nursery | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._host, name="linkstate-trio", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _host(self) -> None:
        try:
            trio.run(self._main, clock=self.clock)
        except BaseException as exc:  # reported by close()
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    @property
    def nursery(self) -> trio.Nursery:
        """The loop's nursery: tasks started here live until :meth:`close`."""
        assert self._nursery is not None
        return self._nursery

    @property
    def now(self) -> float:
        """The virtual time."""
        return float(self.clock.current_time())

    def run(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` inside the loop, then wait until every task is blocked; return its result."""

        async def settled() -> T:
            result = fn()
            await trio.testing.wait_all_tasks_blocked()
            return result

        return trio.from_thread.run(settled, trio_token=self._token)

    def jump(self, seconds: float) -> None:
        """Move the virtual clock forward and let every task react."""
        self.run(lambda: self.clock.jump(seconds))

    def close(self) -> None:
        """Cancel everything still running and end the loop's thread."""
        if self._token is not None and self._stop is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(timeout=30)
        if self._error is not None:
            raise self._error


class ControlledConnection:
    """A connection of :class:`ControlledTransport`: closes and goes silent when told to."""

    def __init__(self, transport: ControlledTransport) -> None:
        self.transport = transport
        self.silent_at = math.inf
        self.closed_locally = False
        self._raw: object = None
        self._closed = trio.Event()

    @property
    def last_activity(self) -> float:
        """Now while the connection is alive; the moment it went silent, after that."""
        return min(trio.current_time(), self.silent_at)

    async def wait_closed(self) -> object:
        """Wait for the test's close; return its raw close info."""
        await self._closed.wait()
        return self._raw

    async def aclose(self) -> None:
        """Our side closes: the transport forgets the connection."""
        self.closed_locally = True
        if self.transport.connection is self:
            self.transport.connection = None

    async def reader(self) -> None:
        """A background task that lives exactly as long as the connection (counted)."""
        self.transport.live_tasks += 1
        try:
            await trio.sleep_forever()
        finally:
            self.transport.live_tasks -= 1


_OPEN: Final = object()


@dataclass
class _PendingConnect:
    outcome: object = None
    decided: trio.Event = field(default_factory=trio.Event)


class ControlledTransport:
    """A transport whose every move the test makes (call its methods inside the loop).

    ``connect`` waits until the test calls :meth:`open` or :meth:`reject`; an
    open connection ends when the test calls :meth:`close`, or goes silent
    (for the watchdog) on :meth:`silence`. Each connection runs one counted
    background task in the supervisor's per-connection nursery, so a leak
    shows in :attr:`live_tasks`.

    Attributes:
        connects: How many times ``connect`` was called.
        pending: The connect attempt waiting for the test, if any.
        connection: The open connection, if any.
        live_tasks: Background tasks of connections still running.
        opened: Every connection handed out, in order.

    """

    def __init__(self) -> None:
        self.connects = 0
        self.pending: _PendingConnect | None = None
        self.connection: ControlledConnection | None = None
        self.live_tasks = 0
        self.opened: list[ControlledConnection] = []

    async def connect(self, nursery: trio.Nursery) -> ControlledConnection:
        """Wait for the test to open or reject this attempt."""
        self.connects += 1
        attempt = self.pending = _PendingConnect()
        try:
            await attempt.decided.wait()
        finally:
            if self.pending is attempt:
                self.pending = None
        if attempt.outcome is not _OPEN:
            raise ConnectFailed(attempt.outcome)
        connection = ControlledConnection(self)
        nursery.start_soon(connection.reader)
        self.connection = connection
        self.opened.append(connection)
        return connection

    def open(self) -> None:
        """Complete the pending handshake."""
        self._decide(_OPEN)

    def reject(self, raw: object) -> None:
        """Fail the pending handshake with ``raw``."""
        self._decide(raw)

    def _decide(self, outcome: object) -> None:
        assert self.pending is not None, "no connect is waiting"
        self.pending.outcome = outcome
        self.pending.decided.set()

    def close(self, raw: object) -> None:
        """The peer closes the open connection with ``raw``."""
        connection = self.connection
        assert connection is not None, "no connection is open"
        connection._raw = raw
        connection._closed.set()

    def silence(self) -> None:
        """The open connection stops showing any sign of life."""
        assert self.connection is not None, "no connection is open"
        self.connection.silent_at = min(self.connection.silent_at, trio.current_time())


# -- the stateful runtime test -------------------------------------------------------

RUNTIME_POLICY: Final = ReconnectPolicy(
    initial=1.0,
    cap=8.0,
    retry_now_max=1.0,
    max_attempts=4,
    healthy_after=30.0,
    flap_closes=2,
    flap_window=60.0,
)
"""Budget and flap detection within reach of a short run; a minute of virtual time matters."""


@dataclass
class _Timers:
    """When the runtime's own clocks fire, as the model computes them."""

    wake_at: float | None = None
    connect_started: float | None = None
    silent_at: float | None = None
    opened_at: float | None = None


# Two instants closer than this are "the same" for the model: the supervisor
# adds and subtracts floats, so an exact tie may fall either way.
_TIE: Final = 1e-6


def runtime_machine(
    channel: Channel,
    *,
    policy: ReconnectPolicy | None = None,
    expected: Iterable[Expectation] = (),
    machine_factory: MachineFactory = real_machine,
    watchdog: float = 10.0,
    connect_timeout: float = 15.0,
) -> type[RuleBasedStateMachine]:
    """A hypothesis state machine driving the REAL trio supervisor against the reference model.

    A persistent trio loop (:class:`TrioLoop`) runs one
    :class:`~linkstate.runtime._supervisor.Supervisor` over a :class:`ControlledTransport`.
    Rules are transport events (open, reject, close with a row in any form
    or junk, silence), ``abort``, operator actions, and clock jumps. After
    every rule the runtime's transitions must match :class:`ReferenceLink`,
    including those its own timers cause (backoff, connect timeout,
    watchdog); and:

    * no connect and no sleep ever follows a terminal verdict (until an
      operator reset), nor an ``expected`` example whose verdict is terminal;
    * every delay is within ``[0, max(policy.longest_delay, floor)]``;
    * once the run ends (abort or terminal), no task is left: not the
      supervisor, not a connect, not a connection's background task.
    """
    chosen = policy if policy is not None else RUNTIME_POLICY
    examples = list(expected)
    raws: st.SearchStrategy[object] = close_events(channel)
    if examples:
        raws = st.one_of(raws, st.sampled_from([raw for raw, _ in examples]))
    stops = {_key(raw) for raw, verdict in examples if verdict.terminal}
    _, watchdog_row = channel.classify(WATCHDOG_CLOSE)
    _, timeout_row = channel.classify(WATCHDOG_CLOSE, phase=Phase.handshake)

    class RuntimeConformance(RuleBasedStateMachine):
        """The real supervisor, driven event by event, checked against the reference model."""

        def __init__(self) -> None:
            super().__init__()
            self.loop = TrioLoop()
            self.transport = ControlledTransport()
            self.machine = machine_factory(channel, chosen, random.Random(0))
            self.link = self.machine.new_link("runtime")
            self.model = ReferenceLink(chosen)
            self.timers = _Timers()
            self.records: list[TransitionRecord] = []
            self.consumed = 0
            self.supervisor: Supervisor | None = None
            self.running = False
            self.crash: BaseException | None = None
            self.connects = 0
            self.sleeps = 0
            self.frozen: str | None = None  # why no connect or sleep may follow
            self.frozen_at = (0, 0)
            self.earlier_sleeps = 0  # sleeps of supervisors that already returned
            self.launched_at = 0  # records consumed when the latest supervisor started
            self._launch()

        def teardown(self) -> None:
            self.loop.close()

        # -- running the supervisor ------------------------------------------------

        def _launch(self) -> None:
            if self.supervisor is not None:
                self.earlier_sleeps += self.supervisor.outcome.sleeps
            supervisor = Supervisor(
                channel,
                self.transport,
                link=self.link,
                machine=self.machine,
                watchdog=watchdog,
                connect_timeout=connect_timeout,
            )
            supervisor.subscribe(self.records.append)
            self.supervisor = supervisor
            self.running = True

            async def run() -> None:
                try:
                    await supervisor.run()
                except BaseException as exc:  # reported by an invariant
                    self.crash = exc
                finally:
                    self.running = False

            self.loop.run(lambda: self.loop.nursery.start_soon(run))
            self.launched_at = self.consumed
            self._expect_launch()

        def _expect_launch(self) -> None:
            if self.model.state is State.stopped:
                self._plain(Trigger.resume)
            if self.model.state is State.idle:
                self._expect(Trigger.start, State.connecting, None)
                self.model.state = State.connecting
                self._enter_connecting()
            self._catch_up()

        # -- the model's side ------------------------------------------------------

        def _next(self, trigger: Trigger) -> TransitionRecord:
            trail = " -> ".join(self.model.history) or "(start)"
            assert self.consumed < len(self.records), (
                f"after {trail}: the runtime did not fire {trigger.value!r}"
            )
            record = self.records[self.consumed]
            assert record.trigger == trigger.value, (
                f"after {trail}: the runtime fired {record.trigger!r} ({record.src} -> "
                f"{record.dst}), the model expects {trigger.value!r}"
            )
            self.consumed += 1
            return record

        def _expect(
            self, trigger: Trigger, state: State, reason: StopReason | None
        ) -> TransitionRecord:
            record = self._next(trigger)
            trail = " -> ".join(self.model.history)
            assert record.dst == state.value, (
                f"after {trail}: the runtime went to {record.dst!r}, the model says {state.value!r}"
            )
            if reason is not None:
                assert record.stop_reason == reason.value, (
                    f"after {trail}: stop reason {record.stop_reason!r}, model {reason.value!r}"
                )
            assert record.attempt == self.model.attempt, (
                f"after {trail}: attempt counter {record.attempt}, the model says "
                f"{self.model.attempt} (it may refill only after {chosen.healthy_after:g} s open)"
            )
            return record

        def _enter_connecting(self) -> None:
            self.connects += 1
            self.timers.connect_started = self.loop.now

        def _plain(self, trigger: Trigger) -> None:
            state, reason = self.model.plain(trigger, self.loop.now)
            self._expect(trigger, state, reason)
            if state is State.connecting:
                self._enter_connecting()
            elif state is State.open:
                self.timers.opened_at, self.timers.silent_at = self.loop.now, None

        def _close(self, trigger: Trigger, raw: object, row: Rule, event: CloseEvent) -> None:
            now = self.loop.now
            state, reason, verdict = self.model.close(trigger, row, now)
            record = self._expect(trigger, state, reason)
            assert record.verdict == (None if verdict is None else verdict.value)
            if state is State.reconnecting:
                delay = record.delay
                bound = delay_bound(chosen, row, event)
                assert delay is not None and 0.0 <= delay <= bound, (
                    f"{row.label}: delay {delay} outside [0, {bound}]"
                )
                self.timers.wake_at = record.t + delay
                self.sleeps += 1
            elif verdict is not None and verdict.terminal:
                self.frozen = f"the terminal verdict {verdict.value} ({row.label})"
            if _key(raw) in stops:
                self.frozen = f"the close {raw!r}, which must stop the link"
                assert state in LIFECYCLE.terminal, f"{raw!r} led to {state.value}"

        def _due(self, at: float | None) -> bool | None:
            """True when a timer at ``at`` must have fired, None on a tie."""
            if at is None:
                return False
            if abs(self.loop.now - at) <= _TIE:
                return None
            return self.loop.now > at

        def _fired(self, due: bool | None, trigger: Trigger) -> bool:
            if due is None:
                nxt = self.records[self.consumed] if self.consumed < len(self.records) else None
                return nxt is not None and nxt.trigger == trigger.value
            return due

        def _catch_up(self) -> None:
            """Consume the transitions the runtime's own timers caused, then expect no more."""
            while not self.model.terminal:
                state = self.model.state
                if state is State.reconnecting and self._fired(
                    self._due(self.timers.wake_at), Trigger.backoff_elapsed
                ):
                    self.timers.wake_at = None
                    self._plain(Trigger.backoff_elapsed)
                elif state is State.connecting and self._fired(
                    self._due((self.timers.connect_started or 0.0) + connect_timeout),
                    Trigger.connect_failed,
                ):
                    self._close(Trigger.connect_failed, None, timeout_row, WATCHDOG_CLOSE)
                elif (
                    state is State.open
                    and self.timers.silent_at is not None
                    and self._fired(
                        self._due(
                            max(self.timers.silent_at, self.timers.opened_at or 0.0) + watchdog
                        ),
                        Trigger.watchdog_expired,
                    )
                ):
                    self._close(Trigger.watchdog_expired, None, watchdog_row, WATCHDOG_CLOSE)
                else:
                    break
            extra = self.records[self.consumed :]
            assert not extra, (
                f"after {' -> '.join(self.model.history)}: unexpected transitions "
                f"{[(r.trigger, r.dst) for r in extra]}"
            )

        # -- rules -----------------------------------------------------------------

        @precondition(lambda self: self.transport.pending is not None)
        @rule()
        def open(self) -> None:
            self.loop.run(self.transport.open)
            self._plain(Trigger.opened)
            self._catch_up()

        @precondition(lambda self: self.transport.pending is not None)
        @rule(raw=raws)
        def reject(self, raw: object) -> None:
            event, row = channel.classify(raw, phase=Phase.handshake)
            self.loop.run(lambda: self.transport.reject(raw))
            self._close(Trigger.connect_failed, raw, row, event)
            self._catch_up()

        @precondition(lambda self: self.transport.connection is not None)
        @rule(raw=raws)
        def close(self, raw: object) -> None:
            event, row = channel.classify(raw)
            self.loop.run(lambda: self.transport.close(raw))
            self._close(Trigger.closed, raw, row, event)
            self._catch_up()

        @precondition(
            lambda self: self.transport.connection is not None and self.timers.silent_at is None
        )
        @rule()
        def silence(self) -> None:
            self.loop.run(self.transport.silence)
            self.timers.silent_at = self.loop.now
            self._catch_up()

        @rule(seconds=st.sampled_from([0.25, 1.0, 5.0, 10.0, 16.0, 31.0, 61.0]) | st.floats(0, 90))
        def advance(self, seconds: float) -> None:
            self.loop.jump(seconds)
            self._catch_up()

        # Aborting a link that has barely started explores little; let it live a while.
        @precondition(lambda self: self.running and self.consumed - self.launched_at >= 3)
        @rule()
        def abort(self) -> None:
            supervisor = self.supervisor
            assert supervisor is not None
            self.loop.run(supervisor.abort)
            self._plain(Trigger.abort)
            self._catch_up()
            assert not self.running, "abort() did not end the run"

        @precondition(
            lambda self: (
                not self.running
                and self.model.state is not State.needs_relink
                and self.model.state is not State.failed
            )
        )
        @rule()
        def restart(self) -> None:
            """A new supervisor for the same link: a local stop resumes."""
            self._launch()

        @precondition(lambda self: not self.running and self.model.terminal)
        @rule()
        def operator_reset(self) -> None:
            """A person acted: ``reset`` on the core, then a new supervisor."""
            self.records.append(self.machine.fire(self.link, Trigger.reset, self.loop.now))
            self._plain(Trigger.reset)
            self.frozen = None
            self._launch()

        # -- invariants ------------------------------------------------------------

        @invariant()
        def the_runtime_never_crashes(self) -> None:
            assert self.crash is None, f"the supervisor raised {self.crash!r}"

        @invariant()
        def the_runtime_connects_and_sleeps_as_the_model_says(self) -> None:
            assert self.transport.connects == self.connects, (
                f"{self.transport.connects} connects, the model says {self.connects}"
            )
            assert self._sleeps_so_far() == self.sleeps, (
                f"{self._sleeps_so_far()} backoff sleeps, the model says {self.sleeps}"
            )

        def _sleeps_so_far(self) -> int:
            # Each Supervisor counts its own sleeps; the model counts them all.
            assert self.supervisor is not None
            return self.earlier_sleeps + self.supervisor.outcome.sleeps

        @invariant()
        def nothing_follows_a_terminal_verdict(self) -> None:
            now = (self.transport.connects, self._sleeps_so_far())
            if self.frozen is None:
                self.frozen_at = now
                return
            assert now == self.frozen_at, (
                f"a connect or a sleep followed {self.frozen}: (connects, sleeps) went from "
                f"{self.frozen_at} to {now}"
            )

        @invariant()
        def no_task_outlives_the_run(self) -> None:
            if self.running:
                return
            assert self.transport.live_tasks == 0, "a connection's task outlived the run"
            assert self.transport.pending is None, "a connect outlived the run"
            assert all(c.closed_locally or c._closed.is_set() for c in self.transport.opened)
            assert not self.loop.nursery.child_tasks, (
                f"tasks left after the run: {self.loop.nursery.child_tasks}"
            )

    RuntimeConformance.__name__ = f"{channel.name.title()}RuntimeConformance"
    return RuntimeConformance
