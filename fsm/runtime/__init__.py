"""Supervise live connections: the machine decides, the supervisor executes.

:class:`Supervisor` runs one link against a :class:`Transport`;
:class:`Fleet` runs many, restarting crashed supervisors but never a terminal
link; :class:`ScriptedTransport` replays scripted closes for simulations and
tests.
"""

from linkstate.runtime._fleet import Fleet, FleetError, LinkStatus, RestartPolicy, open_fleet
from linkstate.runtime._heap import freeze_survivors, mass_start
from linkstate.runtime._scripted import (
    Close,
    Hang,
    Reject,
    ScriptedConnection,
    ScriptedTransport,
    Silent,
    Step,
)
from linkstate.runtime._supervisor import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEP_RECORDS,
    ConnectFailed,
    Connection,
    Outcome,
    Supervisor,
    Transport,
    transport_factory,
)

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_KEEP_RECORDS",
    "Close",
    "ConnectFailed",
    "Connection",
    "Fleet",
    "FleetError",
    "Hang",
    "LinkStatus",
    "Outcome",
    "Reject",
    "RestartPolicy",
    "ScriptedConnection",
    "ScriptedTransport",
    "Silent",
    "Step",
    "Supervisor",
    "Transport",
    "freeze_survivors",
    "mass_start",
    "open_fleet",
    "transport_factory",
]
