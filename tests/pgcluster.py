"""A throwaway PostgreSQL cluster for the tests: ``initdb`` into a temporary directory.

The cluster listens on a Unix socket in its own directory only (no TCP port,
so parallel runs on one machine never collide). ``initdb`` refuses to run as
root, and CI runs as root: there every server command runs as the
unprivileged ``nobody`` through ``setpriv``, and the cluster directory belongs
to that user. Nothing else in the tests needs root.

Where PostgreSQL is missing the tests that need it skip with the package to
install, except under ``CI``, where a missing server is a failure: CI must
never pass by skipping them (``.ci/run`` installs the package).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import pytest

__all__ = ["Cluster", "find_bindir", "require_postgres"]

_PACKAGE: Final = "postgresql (Debian: apt-get install postgresql; PostgreSQL 15 or newer)"
_USER: Final = "linkstate"  # the cluster's superuser; trust authentication on its socket


def find_bindir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: Debian keeps them off PATH."""
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major, reverse=True)
    return Path(found[0]).parent if found else None


def _major(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def require_postgres() -> Path:
    """The server's bindir; skip (locally) or fail (in CI) without one."""
    bindir = find_bindir()
    if bindir is None:
        message = f"PostgreSQL's initdb and pg_ctl not found; install {_PACKAGE}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run these tests, not skip them)")
        pytest.skip(message)
    return bindir


class Cluster:
    """One running cluster; :meth:`database` makes a fresh, empty database for a test."""

    def __init__(
        self, bindir: Path, *, durable: bool = False, tcp: tuple[str, str] | None = None
    ) -> None:
        """``tcp=(address, network)`` also listens on ``address``:5432, trusting ``network``."""
        self.bindir = bindir
        self.tcp = tcp
        self.root = Path(tempfile.mkdtemp(prefix="linkstate-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log = self.root / "server.log"
        self._names = itertools.count(1)
        self._as_user: Sequence[str] = ()
        if os.geteuid() == 0:
            # initdb refuses root. Hand the directory to nobody and run as nobody.
            self._as_user = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "nobody", "nogroup")
        self._server("mkdir", "-p", str(self.socket_dir), tool=False)
        self._server(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            _USER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-instructions",
            "--no-sync",
        )
        listen = ""
        if tcp is not None:
            # The partition test's cluster: reachable over a veth pair from a
            # network namespace. The address is that test's own, so port 5432
            # cannot collide with another run.
            listen = tcp[0]
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all {_USER} {tcp[1]} trust\n")
        options = (
            # No TCP unless asked: the socket only. fsync off: a test cluster need not survive
            # a power cut, and it makes every commit of the suite cheap. The
            # benchmarks ask for a durable one: commits cost what they cost.
            f"-c listen_addresses='{listen}' -c unix_socket_directories='{self.socket_dir}' "
            "-c max_connections=200" + ("" if durable else " -c fsync=off -c full_page_writes=off")
        )
        self._options = options
        self.start()

    @property
    def admin_url(self) -> str:
        """The URL of the ``postgres`` database, as the superuser."""
        return self.url("postgres")

    def url(self, database: str) -> str:
        """The URL of ``database`` on this cluster's socket."""
        return f"postgresql://{_USER}@/{database}?host={self.socket_dir}"

    def tcp_url(self, socket_url: str) -> str:
        """``socket_url`` (from :meth:`database`) over TCP to the ``tcp`` address instead."""
        assert self.tcp is not None, "this cluster listens on its socket only"
        return socket_url.replace("@/", f"@{self.tcp[0]}:5432/", 1).replace(
            f"?host={self.socket_dir}&", "?", 1
        )

    def database(self) -> str:
        """A fresh, empty schema as the URL's search path: a database of its own, cheaply.

        ``CREATE DATABASE`` copies a template (about a second on a loaded
        machine); a schema takes milliseconds, and the store's unqualified
        table names land in it.
        """
        import psycopg

        name = f"t{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.admin_url}&options=-csearch_path%3D{name}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._server(
            "pg_ctl", "start", "--wait", "-D", str(self.data), "-l", str(self.log), "-o",
            self._options,
        )  # fmt: skip

    def stop(self, mode: str = "fast", *, wait: bool = True) -> None:
        """Stop the server (``fast`` disconnects clients, ``immediate`` is a crash)."""
        self._server(
            "pg_ctl", "stop", "--wait" if wait else "--no-wait", "-D", str(self.data), "-m", mode
        )

    def restart(self) -> None:
        """Stop and start again: every client connection is cut."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and delete the cluster."""
        try:
            self.stop("immediate", wait=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _server(self, name: str, *args: str, tool: bool = True) -> None:
        program = str(self.bindir / name) if tool else name
        done = subprocess.run(
            [*self._as_user, program, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{name} {' '.join(args)} failed:\n{done.stderr}\n{log[-2000:]}")
