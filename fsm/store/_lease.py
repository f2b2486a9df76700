"""Leases: which host may drive a link, fenced by a token (``docs/multi-host.md``).

A lease is a right to drive one link for a while. It lives on the link's own
row in the shared store: the holder (``owner``), a fencing ``token`` that grows
by one on every acquisition and is never reused, and an expiry on the
*database server's* clock. A store that is opened with an ``owner`` fences
every write with the token it holds, in the same statement as the state
compare-and-set; a write whose token is no longer current is refused with
:class:`LeaseLostError`, whatever the writer's own clock says.

This module holds the types only; :class:`linkstate.store.PostgresStore`
implements :class:`LeaseStore`, and :mod:`linkstate.runtime` keeps the leases
(acquire, renew, abort on loss, release).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from linkstate.store._sqlite import StateStore, StoreOwnedElsewhereError

__all__ = [
    "Lease",
    "LeaseInfo",
    "LeaseLostError",
    "LeaseStore",
    "is_postgres_url",
]


class LeaseLostError(StoreOwnedElsewhereError):
    """A write or claim was refused because this process no longer holds the link's lease.

    Another host took the link over (or the lease expired first): the
    multi-host form of :class:`StoreOwnedElsewhereError`, so the supervisor
    stops quietly and the fleet never restarts the link here.
    """


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease held by this process.

    Attributes:
        link_id: The link.
        owner: Who holds it (``host:pid NNN:suffix``).
        token: The fencing token of this acquisition.
        expires_at: When it lapsed as acquired, on the database server's clock
            (Unix seconds); renewals extend it on the server, and the keeper
            keeps its own deadline from their send times.
        taken_over: True when it was taken from another holder that let it
            expire rather than releasing it: that holder's socket may still be
            closing, so the taker waits ``grace`` before its first connect.

    """

    link_id: str
    owner: str
    token: int
    expires_at: float
    taken_over: bool = False


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """Who holds a link's lease, as ``linkstate status`` shows it.

    Attributes:
        link_id: The link.
        owner: The holder, or None when nobody holds it (never leased, or released).
        token: The latest fencing token (0 if never leased).
        expires_at: The expiry on the server's clock (Unix seconds), or None.
        live: True while the lease is held and not expired, on the server's clock.

    """

    link_id: str
    owner: str | None
    token: int
    expires_at: float | None
    live: bool

    def to_json(self) -> dict[str, object]:
        """The lease fields as they appear in ``linkstate status --json``."""
        return {
            "owner": self.owner,
            "lease_token": self.token,
            "lease_expires": self.expires_at,
            "lease_live": self.live,
        }


@runtime_checkable
class LeaseStore(StateStore, Protocol):
    """A :class:`StateStore` shared by several hosts, with leases and a hosts table.

    Every call is safe from any thread: the runtime renews leases on a thread
    of its own while the journal writes on another.
    """

    owner: str | None

    def acquire(
        self, links: Mapping[str, str], ttl: float, *, limit: int | None = None
    ) -> list[Lease]:
        """Take up to ``limit`` of ``links`` (id -> channel) that are free, expired or ours."""
        ...

    def renew_held(self, ttl: float) -> dict[str, str]:
        """Extend every lease held, in one statement; the renewed ones' link states by id.

        A lease missing from the answer is lost, and is forgotten: later
        writes for that link raise :class:`LeaseLostError`.
        """
        ...

    def release_held(self, link_ids: Sequence[str]) -> None:
        """Give up these leases now, so that another host may take them at once."""
        ...

    def held(self) -> dict[str, Lease]:
        """The leases this store holds, by link id."""
        ...

    def heartbeat(self, ttl: float) -> int:
        """Mark this host alive for ``ttl`` seconds; how many hosts are alive."""
        ...

    def leave(self) -> None:
        """Remove this host from the hosts table (a clean shutdown)."""
        ...

    def leases(self) -> dict[str, LeaseInfo]:
        """Every link's lease, by id."""
        ...


def is_postgres_url(value: str) -> bool:
    """True for ``postgresql://...`` and ``postgres://...``: a PostgreSQL store, not a path."""
    return value.startswith(("postgresql://", "postgres://"))
