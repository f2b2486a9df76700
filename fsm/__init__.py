"""linkstate: an explicit finite-state machine for the lifecycle of messaging connections.

The lifecycle is declared once (:data:`LIFECYCLE`); a channel's close-code
table (:class:`CloseTable`) turns each disconnect into a :class:`Verdict`;
guarded edges on that verdict choose between ``reconnecting`` and the
terminal ``needs_relink``, ``failed`` and ``stopped``.

This namespace holds what three kinds of users need: the states, triggers,
verdicts and stop reasons a diagram shows; the :class:`Channel` a plugin
builds (its reading helpers are in :mod:`linkstate.plugin`); and the
definition, machine and records a model-based test drives. Every error
linkstate raises derives from :class:`LinkstateError`. The sub-packages hold
the rest: :mod:`linkstate.runtime` supervises live connections,
:mod:`linkstate.store` keeps verdicts across restarts, :mod:`linkstate.check`
proves a definition and a table, :mod:`linkstate.testing` is the conformance
kit, and :mod:`linkstate.diagrams` draws the lifecycle.
"""

import logging

from linkstate._channel import Channel, ChannelError, available_channels, load_channel
from linkstate._errors import ArgumentError, LinkstateError
from linkstate._events import CloseEvent, Initiator, Phase, normalise
from linkstate._lifecycle import (
    LIFECYCLE,
    Decision,
    Definition,
    DefinitionError,
    Edge,
    LifecycleError,
    State,
    StopReason,
    Trigger,
)
from linkstate._machine import Link, LinkMachine, TransitionRecord
from linkstate._policy import GRPC, OPENCLAW, PRESETS, Budget, Jitter, PolicyError, ReconnectPolicy
from linkstate._verdicts import CloseTable, Rule, TableError, Verdict

__all__ = [
    "GRPC",
    "LIFECYCLE",
    "OPENCLAW",
    "PRESETS",
    "ArgumentError",
    "Budget",
    "Channel",
    "ChannelError",
    "CloseEvent",
    "CloseTable",
    "Decision",
    "Definition",
    "DefinitionError",
    "Edge",
    "Initiator",
    "Jitter",
    "LifecycleError",
    "Link",
    "LinkMachine",
    "LinkstateError",
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
]

# A library adds no handler but this one: without it, an application that never
# configured logging would see operator messages twice (Python's last-resort
# handler prints them to stderr); with it, the application decides.
logging.getLogger("linkstate").addHandler(logging.NullHandler())
