"""Supervise live connections: the machine decides, the supervisor executes.

:class:`Supervisor` runs one link against a :class:`Transport`;
:class:`Fleet` runs many, restarting crashed supervisors but never a terminal
link; :class:`ScriptedTransport` replays scripted closes for simulations and
tests; :class:`FleetMetrics` is a Prometheus collector of a fleet (extra
``linkstate[prometheus]``). :func:`open_leased_fleet` runs one host's share
of links that several hosts serve, under fenced leases (``docs/multi-host.md``).
"""

from linkstate.runtime._fleet import Fleet, FleetError, LinkStatus, RestartPolicy, open_fleet
from linkstate.runtime._heap import freeze_survivors, mass_start
from linkstate.runtime._leases import LeasedLink, LeaseKeeper, LeasePolicy, open_leased_fleet
from linkstate.runtime._metrics import (
    BACKOFF_BUCKETS,
    METRICS,
    FleetMetrics,
    MetricsError,
    MetricSpec,
)
from linkstate.runtime._scripted import Close, Hang, Reject, ScriptedTransport, Silent, Step
from linkstate.runtime._supervisor import (
    ConnectFailed,
    Connection,
    Outcome,
    Supervisor,
    SupervisorError,
    Transport,
    transport_factory,
)

__all__ = [
    "BACKOFF_BUCKETS",
    "METRICS",
    "Close",
    "ConnectFailed",
    "Connection",
    "Fleet",
    "FleetError",
    "FleetMetrics",
    "Hang",
    "LeaseKeeper",
    "LeasePolicy",
    "LeasedLink",
    "LinkStatus",
    "MetricSpec",
    "MetricsError",
    "Outcome",
    "Reject",
    "RestartPolicy",
    "ScriptedTransport",
    "Silent",
    "Step",
    "Supervisor",
    "SupervisorError",
    "Transport",
    "freeze_survivors",
    "mass_start",
    "open_fleet",
    "open_leased_fleet",
    "transport_factory",
]
