"""Reconnect policy: how long to wait, how often to try, when to give up.

Theory of operation
-------------------
The n-th reconnect attempt (n >= 1) after a retryable close waits::

    base(n)  = min(cap, initial * factor ** (n - 1))
    delay(n) = max(floor, jitter(base(n)))

where ``floor`` is the largest of the rule's ``min_delay``, the server's
retry-after hint (itself capped by ``max_retry_after``) and :data:`MIN_DELAY`
(0.1 s), which no setting lowers: one link connects at most 10 times a second. A server hint may
therefore exceed ``cap``: the server knows best when it will take us back.

A ``retry_now`` verdict (the server asked for a restart) skips the
exponential schedule and waits ``uniform(0, retry_now_max)``: still jittered,
so a fleet told to restart at once does not stampede back in one instant.

Defaults, and why:

* ``initial=1 s, factor=2, cap=60 s``: quick first retry; a minute between
  tries bounds both the load we add to a struggling server and how long a
  recovered server waits for us.
* ``jitter=full``: ``uniform(0, base)``. AWS's measurements show full jitter
  does the least total work and spreads a herd best; our storm benchmark
  holds its peak under 1.5x the mean, where no jitter peaks at the size of
  the fleet.
* ``max_attempts=None``: a network outage of an hour must not need a person.
  Flap detection and the classifier catch the loops a budget would. A
  budget of N counts reconnects by default (N+1 connects, N sleeps);
  ``budget=Budget.connects`` counts every connect, the first included (N
  connects, N-1 sleeps), which is how OpenClaw counts its ``maxAttempts``.
* ``healthy_after=60 s``: the attempt counter resets only once a connection
  has stayed up this long. Resetting on every open lets a flapping link
  defeat any budget (a lesson from OpenClaw's and websockets' trackers).
* ``flap_closes=5 within flap_window=60 s``: five closes of open connections
  in a minute is a loop, not bad luck; the link fails with its own reason.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, cast

from linkstate._errors import LinkstateError
from linkstate._verdicts import Verdict

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "GRPC",
    "MIN_DELAY",
    "OPENCLAW",
    "PRESETS",
    "Budget",
    "Jitter",
    "PolicyError",
    "ReconnectPolicy",
    "whole_number",
]


class Jitter(StrEnum):
    """How a backoff delay is randomised."""

    none = "none"
    """Exactly the exponential schedule; clients that dropped together retry together."""
    full = "full"
    """``uniform(0, base)``; the default."""
    equal = "equal"
    """``base/2 + uniform(0, base/2)``."""
    decorrelated = "decorrelated"
    """``min(cap, uniform(initial, 3 * previous))``; ignores the attempt number."""
    proportional = "proportional"
    """``base * (1 + uniform(0, jitter_ratio))``: OpenClaw's one-sided jitter."""
    symmetric = "symmetric"
    """``base * (1 + uniform(-jitter_ratio, jitter_ratio))``: gRPC's +-20 %."""


class Budget(StrEnum):
    """What ``max_attempts`` counts."""

    reconnects = "reconnects"
    """Reconnects after the first connect: N allows N+1 connects and N sleeps (the default)."""
    connects = "connects"
    """Every connect, the first included: N allows N connects and N-1 sleeps (OpenClaw's)."""


class PolicyError(LinkstateError, ValueError):
    """A reconnect policy was built with settings that cannot work."""


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Backoff schedule, retry budget and flap detection; see the module header.

    Attributes:
        initial: The base delay before the first reconnect, in seconds.
        factor: How much the base grows per attempt (>= 1).
        cap: The largest base delay, in seconds.
        jitter: How the delay is randomised.
        jitter_ratio: The spread for ``proportional`` and ``symmetric`` (0..1).
        retry_now_max: Upper bound of the short delay after ``retry_now``.
        max_attempts: Attempts allowed before ``failed``; None for no limit.
        budget: What ``max_attempts`` counts: reconnects (the default) or
            every connect (:attr:`Budget.connects`, OpenClaw's count).
        healthy_after: Seconds a connection must stay open to reset attempts.
        flap_closes: Closes of open connections within ``flap_window`` that mean
            the link is flapping; 0 turns flap detection off.
        flap_window: The flap detection window, in seconds.
        max_retry_after: The largest server retry-after hint we honour, in seconds.
        refuse_after: Consecutive refusals by the same row after which the link
            fails; None never stops a refusal. A refusal is a connect failure
            that carries a server status or code, classified by a retryable row
            that is neither ``transient`` nor has its own ``escalate_after``.
            Network failures (no status: timeouts, DNS) are never refusals.

    """

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    jitter: Jitter = Jitter.full
    jitter_ratio: float = 0.2
    retry_now_max: float = 1.0
    max_attempts: int | None = None
    budget: Budget = Budget.reconnects
    healthy_after: float = 60.0
    flap_closes: int = 5
    flap_window: float = 60.0
    max_retry_after: float = 3600.0
    # Five: a refusal that repeats unchanged five times at connect time is not
    # going away by itself (issue 12: a bad token or missing intent must not
    # retry forever), yet one or two odd answers during a deploy still pass.
    refuse_after: int | None = 5
    # From which attempt the schedule sits at the cap; computed once, because
    # base_delay runs on every retryable close.
    _capped_after: float = field(init=False, repr=False, compare=False)
    # What max_attempts allows, by the budget's count; read on every close.
    _reconnects_allowed: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, kind in _ENUM_SETTINGS:
            value = getattr(self, name)
            if type(value) is str and value in kind._value2member_map_:
                object.__setattr__(self, name, kind(value))  # "none" is Jitter.none
        problems = [
            f"{name}={getattr(self, name)!r} must be {rule}"
            for name, rule, holds in _SETTING_RULES
            if not holds(getattr(self, name), self)
        ]
        if problems:
            raise PolicyError("invalid reconnect policy: " + "; ".join(problems))
        capped_after = math.inf
        if self.factor > 1.0 and self.initial > 0.0:
            # Compare exponents, not powers: factor ** attempt overflows a float
            # long before attempt counts stop being plausible.
            capped_after = math.log(self.cap / self.initial) / math.log(self.factor)
        object.__setattr__(self, "_capped_after", capped_after)
        allowed = self.max_attempts
        if allowed is not None and self.budget is Budget.connects:
            allowed -= 1  # OpenClaw counts the first connect too: 12 attempts are 12 connects
        object.__setattr__(self, "_reconnects_allowed", allowed)

    @property
    def reconnects_allowed(self) -> int | None:
        """How many reconnects ``max_attempts`` allows before ``failed``; None for no limit."""
        return self._reconnects_allowed

    def base_delay(self, attempt: int) -> float:
        """The un-jittered delay before attempt ``attempt`` (1-based)."""
        if attempt <= 1 or self.factor == 1.0 or self.initial == 0.0:
            return min(self.cap, self.initial)
        if attempt - 1 >= self._capped_after:
            return self.cap
        return min(self.cap, self.initial * self.factor ** (attempt - 1))

    def backoff_delay(
        self,
        attempt: int,
        verdict: Verdict,
        *,
        floor: float = 0.0,
        previous: float | None = None,
        rng: random.Random,
        window: tuple[float, float] | None = None,
    ) -> float:
        """The delay before reconnect attempt ``attempt`` after a close with ``verdict``.

        Args:
            attempt: The 1-based number of this reconnect attempt.
            verdict: ``retry`` or ``retry_now``.
            floor: The rule's minimum delay or the server's hint, whichever is larger.
            previous: The previous delay, used by decorrelated jitter.
            rng: The random source; pass a seeded one for reproducible schedules.
            window: A rule's own ``(min_delay, max_delay)``: the delay is drawn
                uniformly from it instead of from the schedule.

        """
        if window is not None:
            delay = rng.uniform(*window)
        elif verdict is _RETRY_NOW:
            delay = rng.uniform(0.0, self.retry_now_max)
        else:
            delay = self._jittered(attempt, previous, rng)
        return max(delay, min(floor, self.max_retry_after), MIN_DELAY)

    def _jittered(self, attempt: int, previous: float | None, rng: random.Random) -> float:
        base = self.base_delay(attempt)
        match self.jitter:  # the default first: each case reads an enum member
            case Jitter.full:
                # rng.uniform(0.0, base), the same draw and the same float, less a call.
                return base * rng.random()
            case Jitter.none:
                return base
            case Jitter.equal:
                return base / 2 + rng.uniform(0.0, base / 2)
            case Jitter.decorrelated:
                last = self.initial if previous is None else max(previous, self.initial)
                return min(self.cap, rng.uniform(self.initial, 3 * last))
            case Jitter.proportional:
                return min(self.cap, base * (1 + rng.uniform(0.0, self.jitter_ratio)))
            case Jitter.symmetric:
                spread = rng.uniform(-self.jitter_ratio, self.jitter_ratio)
                return min(self.cap, base * (1 + spread))
        raise AssertionError(self.jitter)  # pragma: no cover - exhaustive match

    @property
    def longest_delay(self) -> float:
        """The largest delay the schedule can produce without a server hint."""
        return max(self.cap, self.retry_now_max, MIN_DELAY)

    def is_flapping(self, recent_closes: tuple[float, ...]) -> bool:
        """True when ``recent_closes`` (close times, oldest first) show a flapping link."""
        if self.flap_closes == 0 or len(recent_closes) < self.flap_closes:
            return False
        return recent_closes[-1] - recent_closes[-self.flap_closes] <= self.flap_window

    def remember_close(self, recent_closes: tuple[float, ...], now: float) -> tuple[float, ...]:
        """Append ``now`` and keep only what flap detection still needs."""
        keep = max(self.flap_closes, 1)
        return (*recent_closes, now)[-keep:]


_RETRY_NOW: Final = Verdict.retry_now  # a module constant reads faster than the enum member

DEFAULT_CONNECT_TIMEOUT: Final = 20.0
"""Seconds one connect may take before it counts as failed (``Supervisor(connect_timeout=)``).

gRPC's minimum connect timeout: long enough for a slow TLS handshake over a
poor network, short enough that a black-holed connect does not stall a link.
Here, beside the backoff, because the command line shows it in ``--help``
without importing the runtime."""

MIN_DELAY: Final = 0.1
"""Seconds: no reconnect waits less, whatever the policy says, so one link connects at
most 10 times a second. ``initial=0`` or a full-jitter draw near 0 would otherwise let
a server that refuses at once (an HTTP 503) be hammered in a tight loop."""


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# A check of one setting's value; the policy is there for a rule against another setting.
_Check = Callable[[object, "ReconnectPolicy"], bool]


def _at_least(low: float) -> _Check:
    return lambda value, _: _finite(value) and cast("float", value) >= low


def _above(low: float) -> _Check:
    return lambda value, _: _finite(value) and cast("float", value) > low


def _between(low: float, high: float) -> _Check:
    return lambda value, _: _finite(value) and low <= cast("float", value) <= high


def whole_number(value: object, low: int) -> bool:
    """True for an ``int`` (not a bool, not a float) of at least ``low``: a count setting."""
    return type(value) is int and value >= low


def _count(low: int, *, optional: bool) -> _Check:
    return lambda value, _: optional if value is None else whole_number(value, low)


def _one_of(kind: type[StrEnum]) -> _Check:
    return lambda value, _: isinstance(value, kind)


def _cap_holds(cap: object, policy: ReconnectPolicy) -> bool:
    # Against initial only when initial itself is valid: its own problem is reported.
    if not _finite(cap):
        return False
    return not _finite(policy.initial) or cast("float", cap) >= policy.initial


# Settings whose value may also be given as its enum value's text.
_ENUM_SETTINGS: Final[tuple[tuple[str, type[StrEnum]], ...]] = (
    ("jitter", Jitter),
    ("budget", Budget),
)

# What each setting of ReconnectPolicy must be, as data: the setting, what it
# must be (as the error says it), and the check of its value. Rules:
#
# - A duration, a factor or a ratio is a finite int or float: never a bool,
#   a str ("1") or nan. A count is an exact int (never 2.5, True or "3"), or
#   None where the setting allows it.
# - An enum setting takes its member or its value's text ("none" is
#   Jitter.none), turned into the member before these checks (_ENUM_SETTINGS):
#   a policy read from TOML or a command line is the policy written in Python.
# - Every problem is reported at once, in this order, each naming the setting,
#   the value it got and what it must be. No check raises: a str is never
#   compared with a number.
_SETTING_RULES: Final[tuple[tuple[str, str, _Check], ...]] = (
    ("initial", "a number >= 0", _at_least(0)),
    ("factor", "a number >= 1", _at_least(1)),
    ("cap", "a number >= initial", _cap_holds),
    ("jitter_ratio", "a number between 0 and 1", _between(0, 1)),
    ("retry_now_max", "a number >= 0", _at_least(0)),
    ("max_attempts", "None or a whole number >= 1", _count(1, optional=True)),
    ("healthy_after", "a number >= 0", _at_least(0)),
    ("flap_closes", "a whole number >= 0 (0 turns it off)", _count(0, optional=False)),
    ("flap_window", "a number > 0", _above(0)),
    ("max_retry_after", "a number >= 0", _at_least(0)),
    ("refuse_after", "None or a whole number >= 1", _count(1, optional=True)),
    *((name, f"one of {', '.join(kind)}", _one_of(kind)) for name, kind in _ENUM_SETTINGS),
)


# grpc-go's backoff.DefaultConfig (BaseDelay 1 s, Multiplier 1.6, Jitter 0.2,
# MaxDelay 120 s), the values of grpc/grpc doc/connection-backoff.md.
GRPC: Final = ReconnectPolicy(
    initial=1.0, factor=1.6, cap=120.0, jitter=Jitter.symmetric, jitter_ratio=0.2
)
"""gRPC connection backoff: 1 s, x1.6, +-20 % jitter, cap 120 s, no attempt limit."""

# OpenClaw's DEFAULT_RECONNECT_POLICY (openclaw/openclaw src/web/reconnect.ts:
# initialMs 2000, maxMs 30000, factor 1.8, jitter 0.25, maxAttempts 12), its
# computeBackoff (src/infra/backoff.ts: initialMs * factor ** (attempt - 1),
# plus base * jitter * random(), capped after the jitter) and its loop
# (monitorWebChannel in extensions/whatsapp/src/auto-reply/monitor.ts:
# reconnectAttempts += 1, stop when >= maxAttempts, else sleep), which makes
# maxAttempts N mean N connects and N-1 sleeps.
OPENCLAW: Final = ReconnectPolicy(
    initial=2.0,
    factor=1.8,
    cap=30.0,
    jitter=Jitter.proportional,
    jitter_ratio=0.25,
    max_attempts=12,
    budget=Budget.connects,
    healthy_after=60.0,
)
"""OpenClaw's WhatsApp monitor: 2 s, x1.8, +0-25 % one-sided jitter, cap 30 s; 12 connects
and 11 sleeps, then ``failed``.

Counted as OpenClaw counts: every connect, the first included
(:attr:`Budget.connects`). What differs, and why: OpenClaw refills the budget
after a connection stayed up *more* than 60 s, linkstate at 60 s or more (a
tie on a virtual clock only); OpenClaw has no flap detection and no refusal
limit, which linkstate keeps (five closes of open connections within 60 s, or
the same refusal five times at connect time, stop earlier than OpenClaw would),
because those loops are what this framework exists to stop."""

PRESETS: Final[dict[str, ReconnectPolicy]] = {
    "default": ReconnectPolicy(),
    "openclaw": OPENCLAW,
    "grpc": GRPC,
}
"""The named policies ``--preset`` offers: linkstate's defaults, OpenClaw's and gRPC's."""
