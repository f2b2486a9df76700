"""Shared test configuration: hypothesis profiles, and the PostgreSQL cluster fixture.

``dev`` is the default; CI sets ``HYPOTHESIS_PROFILE=ci``. Both derandomize so
that a run is reproducible: the same examples every time, on every machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from pgcluster import Cluster, require_postgres

settings.register_profile(
    "dev",
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster for the whole run (see tests/pgcluster.py)."""
    cluster = Cluster(require_postgres())
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """A fresh, empty database on the session's cluster."""
    return pg_cluster.database()
