"""A scripted in-memory transport: the supervisor's stand-in for a real peer.

``linkstate simulate`` and the tests drive the real :class:`linkstate.runtime.Supervisor`
with it, usually on trio's virtual clock (it runs on asyncio too). Each
``connect`` plays the next step of the script:

===================  ==========================================================
step                 what the connection does
===================  ==========================================================
:class:`Close`       opens, stays open ``after`` seconds, closes with ``raw``
:class:`Reject`      fails the handshake with ``raw`` after ``after`` seconds
:class:`Hang`        the handshake never completes (the connect timeout fires)
:class:`Silent`      opens, shows activity for ``after`` seconds, then goes
                     silent without closing (the watchdog fires)
===================  ==========================================================

Once the script runs out, every further connection opens and stays open and
alive; :attr:`ScriptedTransport.exhausted` is then True, which is how
``simulate`` knows to abort.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import anyio
from anyio.abc import TaskGroup

from linkstate.runtime._supervisor import ConnectFailed

__all__ = ["Close", "Hang", "Reject", "ScriptedConnection", "ScriptedTransport", "Silent", "Step"]


@dataclass(frozen=True, slots=True)
class Close:
    """Open, then close with ``raw`` after ``after`` seconds."""

    raw: object
    after: float = 0.0


@dataclass(frozen=True, slots=True)
class Reject:
    """Fail the handshake with ``raw`` after ``after`` seconds."""

    raw: object
    after: float = 0.0


@dataclass(frozen=True, slots=True)
class Hang:
    """Never complete the handshake."""


@dataclass(frozen=True, slots=True)
class Silent:
    """Open, stay alive for ``after`` seconds, then go silent without closing."""

    after: float = 0.0


Step = Close | Reject | Hang | Silent
"""One scripted connection attempt: what the next ``connect`` does."""

_FOREVER: Final = math.inf


class ScriptedConnection:
    """One scripted connection: closes at ``close_at``, stops showing activity at ``silent_at``."""

    def __init__(self, raw: object, *, close_at: float, silent_at: float) -> None:
        self.raw = raw
        self.close_at = close_at
        self.silent_at = silent_at
        self.closed_locally = False

    @property
    def last_activity(self) -> float:
        """Now, while the connection is alive; the moment it went silent, after that."""
        return min(anyio.current_time(), self.silent_at)

    async def wait_closed(self) -> object:
        """Sleep until the scripted close; return its raw close info."""
        await anyio.sleep_until(self.close_at)
        return self.raw

    async def aclose(self) -> None:
        """Record that our side closed the connection."""
        self.closed_locally = True


class ScriptedTransport:
    """Plays one script step per connect; see the module header.

    Attributes:
        connects: How many times ``connect`` was called.
        connections: Every connection handed out, in order.

    """

    def __init__(self, steps: Iterable[Step]) -> None:
        self.steps: tuple[Step, ...] = tuple(steps)
        self.connects = 0
        self.connections: list[ScriptedConnection] = []

    @property
    def exhausted(self) -> bool:
        """True once the script ran out: the latest connection is an unscripted, open one."""
        return self.connects > len(self.steps)

    async def connect(self, tasks: TaskGroup) -> ScriptedConnection:
        """Play the next step (the task group is unused: scripted connections need no tasks)."""
        step = self.steps[self.connects] if self.connects < len(self.steps) else None
        self.connects += 1
        now = anyio.current_time()
        connection: ScriptedConnection
        match step:
            case None:
                connection = ScriptedConnection(None, close_at=_FOREVER, silent_at=_FOREVER)
            case Close(raw, after):
                connection = ScriptedConnection(raw, close_at=now + after, silent_at=_FOREVER)
            case Reject(raw, after):
                await anyio.sleep(after)
                raise ConnectFailed(raw)
            case Hang():
                await anyio.sleep_forever()
                raise AssertionError("unreachable")  # pragma: no cover
            case Silent(after):
                connection = ScriptedConnection(None, close_at=_FOREVER, silent_at=now + after)
        self.connections.append(connection)
        return connection
