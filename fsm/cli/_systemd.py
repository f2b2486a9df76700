"""systemd's readiness protocol (``Type=notify``), written with the standard library.

systemd passes the path of a datagram socket in ``NOTIFY_SOCKET``; a service
sends newline-separated ``KEY=VALUE`` assignments to it: ``READY=1`` once it
serves, ``STATUS=...`` for ``systemctl status``, ``STOPPING=1`` when it begins
to shut down. A path that starts with ``@`` names a socket in Linux's
abstract namespace. Without ``NOTIFY_SOCKET`` (not under systemd) every call
does nothing. A failed send is logged and ignored: a service must not die
because its supervisor stopped listening.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Final

__all__ = ["Notifier", "status_line"]

_log: Final = logging.getLogger("linkstate.systemd")


class Notifier:
    """Sends notifications to systemd's notify socket, when there is one.

    Args:
        address: The socket's path; defaults to ``$NOTIFY_SOCKET``.

    """

    def __init__(self, address: str | None = None) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET") if address is None else address

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return bool(self.address)

    def send(self, **fields: str) -> bool:
        """Send ``KEY=VALUE`` lines (``send(READY="1")``); True when the datagram went out."""
        if not self.address:
            return False
        # A value must be one line: STATUS= from link counts never has a newline,
        # but nothing may smuggle a second assignment in.
        lines = [f"{key}={' '.join(value.splitlines())}" for key, value in fields.items()]
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(lines).encode(), target)
        except OSError as exc:
            _log.warning("cannot notify systemd at %s: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        """``READY=1`` with a ``STATUS=`` line."""
        return self.send(READY="1", STATUS=status)

    def status(self, status: str) -> bool:
        """A new ``STATUS=`` line."""
        return self.send(STATUS=status)

    def stopping(self, status: str) -> bool:
        """``STOPPING=1`` with a ``STATUS=`` line."""
        return self.send(STOPPING="1", STATUS=status)


def status_line(counts: Mapping[str, int]) -> str:
    """``3 links: 1 open, 1 needs_relink, 1 failed``: the states that have links, in order."""
    total = sum(counts.values())
    parts = [f"{count} {state}" for state, count in counts.items() if count]
    noun = "link" if total == 1 else "links"
    return f"{total} {noun}: {', '.join(parts)}" if parts else "0 links"
