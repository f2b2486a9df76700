"""The conformance kit's state machine on the Discord, Slack, Telegram and Matrix channels.

``fsm.testing.conformance_machine`` drives the real core with each channel's
closes in every form, plus the native examples of ``test_channel_tables``
(gateway payloads, API bodies, disconnect frames), and compares every
transition with the kit's reference model, escalation included.
"""

from __future__ import annotations

from hypothesis import settings
from test_channel_tables import EXPECTED

from fsm.channel import load_channel
from fsm.testing import conformance_machine


def machine_for(name: str) -> type:
    examples = [(raw, verdict) for raw, _, verdict in EXPECTED[name]]
    case = conformance_machine(load_channel(name), expected=examples).TestCase
    case.settings = settings(case.settings, max_examples=60, stateful_step_count=30)
    return case


TestDiscordConformance = machine_for("discord")
TestSlackConformance = machine_for("slack")
TestTelegramConformance = machine_for("telegram")
TestMatrixConformance = machine_for("matrix")
