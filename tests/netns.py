"""A network namespace joined to the root one by a veth pair, and a partition to cut in it.

Used by ``tests/test_partition.py``. Each run picks its own names (from the
process id and a random suffix) and its own /29 in 10.213.0.0/16 that no
interface on the machine uses yet, and touches no existing interface. The
root end of the pair carries two addresses: ``root_address`` (the platform
server) and ``db_address`` (PostgreSQL); the namespace end carries
``inside_address``.

:meth:`Netns.cut` makes PostgreSQL unreachable from inside the namespace only:
a permanent neighbour entry sends every frame for ``db_address`` to a MAC
address nobody has, so the root end drops them silently. That is what a real
partition looks like to a client (no reset, no error: calls just hang), and it
needs only ``ip``, which every machine with iproute2 has (no nftables or
iptables needed), while the platform stays reachable on the same link.

Creating namespaces needs root: without it the tests skip locally with a
message, and fail under ``CI``, where they must run.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
from types import TracebackType
from typing import Final

import pytest

__all__ = ["Netns", "require_netns"]

_NOBODY_MAC: Final = "02:00:00:00:00:01"  # locally administered; no interface has it


def require_netns() -> None:
    """Skip (locally) or fail (in CI) unless namespaces can be made: root and ``ip``."""
    problem = None
    if os.geteuid() != 0:
        problem = "network namespaces need root; run the suite as root to include this test"
    elif shutil.which("ip") is None:
        problem = "the ip command is missing; install iproute2 (Debian: apt-get install iproute2)"
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(problem + " (CI runs as root and must run this test, not skip it)")
    pytest.skip(problem)


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=10)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _free_network() -> ipaddress.IPv4Network:
    """A /29 in 10.213.0.0/16 that overlaps no address on this machine."""
    used = [
        ipaddress.IPv4Interface(word).network
        for line in _ip("-o", "-4", "addr", "show").splitlines()
        for word in line.split()[3:4]
    ]
    blocks = list(ipaddress.IPv4Network("10.213.0.0/16").subnets(new_prefix=29))
    for block in random.sample(blocks, 50):
        if not any(block.overlaps(other) for other in used):
            return block
    raise RuntimeError("no free /29 in 10.213.0.0/16 for the partition test")


class Netns:
    """The namespace and its veth pair, for a ``with`` block; removed on the way out."""

    def __init__(self) -> None:
        token = f"{os.getpid() % 10000:04}{random.randrange(16**3):03x}"
        self.name = f"linkstate-{token}"
        self.root_end = f"lsr{token}"  # at most 15 characters: an interface name's limit
        self.inside_end = f"lsn{token}"
        self.network = _free_network()
        hosts = list(self.network.hosts())
        self.root_address, self.inside_address, self.db_address = (
            str(hosts[0]),
            str(hosts[1]),
            str(hosts[2]),
        )
        self.cuts = 0

    @property
    def exec_prefix(self) -> list[str]:
        """The command prefix that runs a program inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def __enter__(self) -> Netns:
        prefix = self.network.prefixlen
        try:
            _ip("netns", "add", self.name)
            _ip("link", "add", self.root_end, "type", "veth", "peer", "name", self.inside_end,
                "netns", self.name)  # fmt: skip
            for address in (self.root_address, self.db_address):
                _ip("addr", "add", f"{address}/{prefix}", "dev", self.root_end)
            _ip("link", "set", self.root_end, "up")
            _ip("-n", self.name, "addr", "add", f"{self.inside_address}/{prefix}",
                "dev", self.inside_end)  # fmt: skip
            _ip("-n", self.name, "link", "set", self.inside_end, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self._remove()
            raise
        return self

    def cut(self) -> None:
        """Make ``db_address`` unreachable from inside the namespace, silently."""
        _ip("-n", self.name, "neigh", "replace", self.db_address, "lladdr", _NOBODY_MAC,
            "dev", self.inside_end, "nud", "permanent")  # fmt: skip
        self.cuts += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._remove()

    def _remove(self) -> None:
        # Deleting the namespace destroys its end of the pair, and with it the
        # root end; delete that too in case the namespace never got it.
        _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.root_end, check=False)
