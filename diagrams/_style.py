"""Colours shared by the DOT and Mermaid writers, as data.

Rules this table keeps:

1. Terminal states are the only filled, double-bordered nodes, and their
   colour says who must act: amber when a person must relink, red when
   configuration or code must change (``fatal``, a spent budget, flapping),
   grey when the link was stopped locally.
2. Live states share one calm colour; the node a trace ended in gets a
   heavier border in ``EMPHASIS``, whatever its kind.
3. Every stop reason has a tone, so a new terminal route cannot be drawn
   uncoloured by accident (the tests check the table covers ``StopReason``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from linkstate._lifecycle import StopReason

__all__ = [
    "EMPHASIS",
    "FONT",
    "LIVE",
    "MUTED",
    "TONES",
    "Tone",
    "tone",
]


@dataclass(frozen=True, slots=True)
class Tone:
    """A fill and a border colour."""

    fill: str
    stroke: str


LIVE: Final = Tone(fill="#e8f0fe", stroke="#3d6db5")
"""Live states: idle, connecting, open, reconnecting."""

_RELINK: Final = Tone(fill="#fde5bd", stroke="#b36b00")
_FAILED: Final = Tone(fill="#f9d4cf", stroke="#b3261e")
_STOPPED: Final = Tone(fill="#e4e4e4", stroke="#5f5f5f")

TONES: Final[dict[str, Tone]] = {
    StopReason.relink.value: _RELINK,
    StopReason.fatal.value: _FAILED,
    StopReason.budget_spent.value: _FAILED,
    StopReason.flapping.value: _FAILED,
    StopReason.aborted.value: _STOPPED,
    StopReason.lease_lost.value: _STOPPED,
}
"""Terminal colours, keyed by the first stop reason that enters the state."""

EMPHASIS: Final = "#1a56c4"
"""The border of the state a trace ended in."""

MUTED: Final = "#666666"
"""Secondary text: codes on arrows, stop reasons, absorbed triggers."""

FONT: Final = "Helvetica"
"""One sans-serif face for every label."""


def tone(name: str) -> Tone:
    """The tone for a terminal node's stop reason; unknown names fall back to grey."""
    return TONES.get(name, _STOPPED)
