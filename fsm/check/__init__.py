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
    Cover,
    Path,
    Step,
    coverage,
    edge_cover,
    realised_cover,
    shortest_paths,
)

__all__ = [
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
    "promised_route",
    "realised_cover",
    "shortest_paths",
]
