"""Prove a lifecycle definition and a channel's table: ``linkstate check``.

:func:`check` proves reachability, absorbing terminal states, exactly one
edge per case, the routing promises and the table rows;
:func:`shortest_paths` and :func:`edge_cover` turn the same definition into
test cases that exercise every edge.
"""

from linkstate.check._checker import (
    Finding,
    Kind,
    Report,
    check,
    check_definition,
    check_rows,
    promised_route,
)
from linkstate.check._paths import (
    COVERAGE_POLICIES,
    WATCHDOG_CLOSE,
    Cover,
    Path,
    Step,
    coverage,
    edge_cover,
    example_event,
    realised_cover,
    row_event,
    shortest_paths,
    unlisted_status,
)

__all__ = [
    "COVERAGE_POLICIES",
    "WATCHDOG_CLOSE",
    "Cover",
    "Finding",
    "Kind",
    "Path",
    "Report",
    "Step",
    "check",
    "check_definition",
    "check_rows",
    "coverage",
    "edge_cover",
    "example_event",
    "promised_route",
    "realised_cover",
    "row_event",
    "shortest_paths",
    "unlisted_status",
]
