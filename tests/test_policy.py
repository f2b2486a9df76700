"""Reconnect policy: schedules, jitter bounds, floors, presets and validation."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkstate import LinkMachine, Trigger, load_channel
from linkstate._policy import (
    GRPC,
    MIN_DELAY,
    OPENCLAW,
    Budget,
    Jitter,
    PolicyError,
    ReconnectPolicy,
)
from linkstate._verdicts import Verdict


def test_base_delay_grows_exponentially_to_the_cap() -> None:
    policy = ReconnectPolicy(initial=1, factor=2, cap=10, jitter=Jitter.none)
    assert [policy.base_delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert ReconnectPolicy().base_delay(10**9) == 60.0


def test_no_jitter_is_exact() -> None:
    policy = ReconnectPolicy(jitter=Jitter.none)
    assert policy.backoff_delay(3, Verdict.retry, rng=random.Random(1)) == 4.0


def test_retry_now_is_short_and_jittered() -> None:
    policy = ReconnectPolicy(retry_now_max=0.5)
    rng = random.Random(7)
    delays = {policy.backoff_delay(9, Verdict.retry_now, rng=rng) for _ in range(50)}
    assert all(0 <= d <= 0.5 for d in delays)
    assert len(delays) > 1


def test_server_hint_is_a_floor_even_above_the_cap() -> None:
    policy = ReconnectPolicy(cap=10)
    assert policy.backoff_delay(1, Verdict.retry, floor=120, rng=random.Random(0)) == 120


def test_server_hint_is_bounded_by_max_retry_after() -> None:
    policy = ReconnectPolicy(max_retry_after=300)
    assert policy.backoff_delay(1, Verdict.retry, floor=86_400, rng=random.Random(0)) == 300


@pytest.mark.parametrize("header", ["604800", "604801", "9" * 40])
def test_a_long_retry_after_waits_the_cap_however_long(header: str) -> None:
    # A week, a week and a second, and longer: all capped alike, never dropped
    # (dropping the larger one retried it within the first 5 s).
    machine = LinkMachine(load_channel("websocket"), rng=random.Random(0))
    link = machine.new_link("l")
    machine.fire(link, Trigger.start, 0.0)
    close = {"status": 429, "headers": {"Retry-After": header}, "phase": "handshake"}
    record = machine.close(link, close, 0.0, trigger=Trigger.connect_failed)
    assert record.delay == ReconnectPolicy().max_retry_after == 3600.0


@given(
    jitter=st.sampled_from(Jitter),
    attempt=st.integers(1, 200),
    floor=st.floats(0, 7200),
    previous=st.none() | st.floats(0, 120),
    seed=st.integers(0, 2**32),
)
def test_every_delay_lies_within_floor_and_cap(
    jitter: Jitter, attempt: int, floor: float, previous: float | None, seed: int
) -> None:
    policy = ReconnectPolicy(jitter=jitter)
    for verdict in (Verdict.retry, Verdict.retry_now):
        delay = policy.backoff_delay(
            attempt, verdict, floor=floor, previous=previous, rng=random.Random(seed)
        )
        assert min(floor, policy.max_retry_after) <= delay
        assert delay <= max(policy.longest_delay, min(floor, policy.max_retry_after))


def test_presets_match_their_sources() -> None:
    assert (GRPC.initial, GRPC.factor, GRPC.cap, GRPC.jitter, GRPC.jitter_ratio) == (
        1.0,
        1.6,
        120.0,
        Jitter.symmetric,
        0.2,
    )
    assert (OPENCLAW.initial, OPENCLAW.factor, OPENCLAW.cap, OPENCLAW.max_attempts) == (
        2.0,
        1.8,
        30.0,
        12,
    )
    assert OPENCLAW.jitter is Jitter.proportional and OPENCLAW.jitter_ratio == 0.25


def test_openclaw_jitter_is_one_sided() -> None:
    rng = random.Random(3)
    for attempt in range(1, 6):
        base = OPENCLAW.base_delay(attempt)
        delay = OPENCLAW.backoff_delay(attempt, Verdict.retry, rng=rng)
        assert base <= delay <= min(OPENCLAW.cap, base * 1.25)


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"initial": -1}, "initial=-1 must be a number >= 0"),
        ({"factor": 0.5}, "factor=0.5 must be a number >= 1"),
        ({"cap": 0.5}, "cap=0.5 must be a number >= initial"),
        ({"jitter_ratio": 1.5}, "jitter_ratio=1.5 must be a number between 0 and 1"),
        ({"max_attempts": 0}, "max_attempts=0 must be None or a whole number >= 1"),
        ({"flap_window": 0}, "flap_window=0 must be a number > 0"),
        ({"initial": float("nan")}, "initial=nan must be a number >= 0"),
        # What a config file or a typo hands over: named, never a TypeError.
        ({"initial": "1"}, "initial='1' must be a number >= 0"),
        ({"cap": "60", "initial": "x"}, "initial='x' must be a number >= 0; cap='60' must be"),
        ({"max_attempts": "3"}, "max_attempts='3' must be None or a whole number >= 1"),
        ({"max_attempts": 2.5}, "max_attempts=2.5 must be None or a whole number >= 1"),
        ({"flap_closes": None}, "flap_closes=None must be a whole number >= 0"),
        ({"flap_closes": True}, "flap_closes=True must be a whole number >= 0"),
        ({"refuse_after": 0.5}, "refuse_after=0.5 must be None or a whole number >= 1"),
        ({"healthy_after": True}, "healthy_after=True must be a number >= 0"),
        ({"jitter": "wobbly"}, "jitter='wobbly' must be one of none, full"),
    ],
)
def test_invalid_settings_raise_one_clear_error(
    settings: dict[str, object], complaint: str
) -> None:
    with pytest.raises(PolicyError, match="invalid reconnect policy") as caught:
        ReconnectPolicy(**settings)  # type: ignore[arg-type]
    assert complaint in str(caught.value)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"jitter": "none"}, {"jitter": Jitter.none}),
        ({"jitter": "symmetric"}, {"jitter": Jitter.symmetric}),
        ({"budget": "connects"}, {"budget": Budget.connects}),
    ],
)
def test_an_enum_setting_takes_its_value_as_text(
    settings: dict[str, object], expected: dict[str, object]
) -> None:
    # A policy read from TOML or a command line is the policy written in Python.
    policy = ReconnectPolicy(**settings)  # type: ignore[arg-type]
    assert policy == ReconnectPolicy(**expected)  # type: ignore[arg-type]
    for name, member in expected.items():
        assert getattr(policy, name) is member


@given(
    name=st.sampled_from([f.name for f in dataclasses.fields(ReconnectPolicy) if f.init]),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.text(max_size=8),
        st.binary(max_size=4),
        st.lists(st.integers(), max_size=2),
    ),
)
def test_any_bad_setting_is_a_policy_error_naming_it(name: str, value: object) -> None:
    try:
        ReconnectPolicy(**{name: value})  # type: ignore[arg-type]
    except PolicyError as error:
        named = f"{name}={value!r} must be " in str(error)
        # A valid initial above the default cap is the cap's problem.
        capped = name == "initial" and "cap=60.0 must be a number >= initial" in str(error)
        assert named or capped


def test_flap_detection_window() -> None:
    policy = ReconnectPolicy(flap_closes=3, flap_window=10)
    assert not policy.is_flapping((0.0, 5.0))
    assert policy.is_flapping((0.0, 5.0, 10.0))
    assert not policy.is_flapping((0.0, 5.0, 10.5))
    assert not ReconnectPolicy(flap_closes=0).is_flapping((0.0,) * 10)
    assert policy.remember_close((1.0, 2.0, 3.0), 4.0) == (2.0, 3.0, 4.0)


# -- no setting switches the backoff off (issue 13, item 6) ---------------------------


@given(
    attempt=st.integers(min_value=1, max_value=50),
    verdict=st.sampled_from([Verdict.retry, Verdict.retry_now]),
    jitter=st.sampled_from(list(Jitter)),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_zero_policy_still_waits_the_floor_so_connects_are_rate_bounded(
    attempt: int, verdict: Verdict, jitter: Jitter, seed: int
) -> None:
    zero = ReconnectPolicy(initial=0, cap=0, retry_now_max=0, jitter=jitter)
    delay = zero.backoff_delay(attempt, verdict, rng=random.Random(seed))
    assert delay == MIN_DELAY == 0.1
    assert zero.longest_delay >= MIN_DELAY


def test_a_restart_policy_names_each_bad_setting() -> None:
    from linkstate.runtime import RestartPolicy

    with pytest.raises(PolicyError, match="invalid restart policy") as caught:
        RestartPolicy(max_restarts="3", backoff=None)  # type: ignore[arg-type]
    assert "max_restarts='3' must be a whole number >= 0" in str(caught.value)
    assert "backoff=None must be a ReconnectPolicy" in str(caught.value)
    assert RestartPolicy(max_restarts=0).max_restarts == 0
