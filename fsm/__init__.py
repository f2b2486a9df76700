"""linkstate: an explicit finite-state machine for the lifecycle of messaging connections.

The lifecycle is declared once (:data:`LIFECYCLE`); a channel's close-code
table (:class:`CloseTable`) turns each disconnect into a :class:`Verdict`;
guarded edges on that verdict choose between ``reconnecting`` and the
terminal ``needs_relink``, ``failed`` and ``stopped``.
"""

import logging

from linkstate._channel import (
    ENTRY_POINT_GROUP,
    Channel,
    ChannelError,
    available_channels,
    load_channel,
)
from linkstate._events import CloseEvent, Initiator, Phase, normalise, parse_status, sanitise_reason
from linkstate._lifecycle import (
    CLOSE_ROUTES,
    DECISIONS,
    LIFECYCLE,
    TERMINAL_STATES,
    Decision,
    Definition,
    Edge,
    LifecycleError,
    State,
    StopReason,
    Trigger,
)
from linkstate._machine import Link, LinkMachine, Observer, TransitionRecord
from linkstate._policy import GRPC, OPENCLAW, Jitter, PolicyError, ReconnectPolicy
from linkstate._verdicts import Classifier, CloseTable, Rule, TableError, Verdict

__all__ = [
    "CLOSE_ROUTES",
    "DECISIONS",
    "ENTRY_POINT_GROUP",
    "GRPC",
    "LIFECYCLE",
    "OPENCLAW",
    "TERMINAL_STATES",
    "Channel",
    "ChannelError",
    "Classifier",
    "CloseEvent",
    "CloseTable",
    "Decision",
    "Definition",
    "Edge",
    "Initiator",
    "Jitter",
    "LifecycleError",
    "Link",
    "LinkMachine",
    "Observer",
    "Phase",
    "PolicyError",
    "ReconnectPolicy",
    "Rule",
    "State",
    "StopReason",
    "TableError",
    "TransitionRecord",
    "Trigger",
    "Verdict",
    "available_channels",
    "load_channel",
    "normalise",
    "parse_status",
    "sanitise_reason",
]

# A library adds no handler but this one: without it, an application that never
# configured logging would see operator messages twice (Python's last-resort
# handler prints them to stderr); with it, the application decides.
logging.getLogger("linkstate").addHandler(logging.NullHandler())
