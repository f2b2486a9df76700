"""A hypothesis stateful test of the RUNTIME: the real trio supervisor against a reference model.

The machine comes from the conformance kit (``linkstate.testing.RuntimeMachine``):
a trio loop in a thread with a hand-jumped ``MockClock``, a transport whose
every event the rules choose, and invariants from the reference model. This
file runs it for WhatsApp with at least 200 examples (in CI and locally), and
adds the one promise the whole project exists for, spelled out: a 440 is
never followed by a sleep or a connect.
"""

from __future__ import annotations

from expectations import EXPECTED
from hypothesis import settings
from hypothesis.stateful import invariant

from linkstate._channel import load_channel
from linkstate._lifecycle import CLOSE_TRIGGERS, State, Trigger
from linkstate.testing import AsyncioLoop, RuntimeMachine

WHATSAPP = load_channel("whatsapp")
CLOSES = frozenset(trigger.value for trigger in CLOSE_TRIGGERS)


class WhatsAppRuntime(RuntimeMachine):
    """The generic runtime machine, plus: a 440 is never followed by a sleep or a connect."""

    channel = WHATSAPP
    expected = EXPECTED["whatsapp"]

    def __init__(self) -> None:
        super().__init__()
        self.after_440: tuple[int, tuple[int, int]] | None = None

    @invariant()
    def a_440_is_never_followed_by_a_sleep_or_a_connect(self) -> None:
        closes = [
            index
            for index, record in enumerate(self.records)
            if record.trigger in CLOSES and record.src != record.dst
        ]
        if not closes or self.records[closes[-1]].status != 440:
            self.after_440 = None
            return
        since = closes[-1]
        if any(r.trigger == Trigger.reset for r in self.records[since:]):
            self.after_440 = None  # an operator acted: the promise is kept
            return
        assert self.link.state == State.needs_relink, f"a 440 led to {self.link.state}"
        counters = (self.transport.connects, self.sleeps_so_far)
        if self.after_440 is None or self.after_440[0] != since:
            self.after_440 = (since, counters)
        assert counters == self.after_440[1], (
            f"after a 440, (connects, sleeps) went from {self.after_440[1]} to {counters}"
        )


WhatsAppRuntime.TestCase.settings = settings(
    WhatsAppRuntime.TestCase.settings, max_examples=200, stateful_step_count=40
)
TestWhatsAppRuntime = WhatsAppRuntime.TestCase


class WhatsAppRuntimeOnAsyncio(WhatsAppRuntime):
    """The same machine and promise, with the supervisor on asyncio (a virtual-time loop)."""

    loop_type = AsyncioLoop


WhatsAppRuntimeOnAsyncio.TestCase.settings = settings(
    WhatsAppRuntimeOnAsyncio.TestCase.settings, max_examples=100, stateful_step_count=40
)
TestWhatsAppRuntimeOnAsyncio = WhatsAppRuntimeOnAsyncio.TestCase
