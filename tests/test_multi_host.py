"""The fight, reproduced and won: gateway processes over the same accounts on one PostgreSQL.

Three real gateway processes (``tests/fight_gateway.py``), each a leased
fleet over every account, connect to a loopback platform that allows one
live session per account and closes the older one with 4440 (WhatsApp's
440). Faults are thrown at them: ``kill -9`` of a host, ``SIGSTOP`` for
longer than the TTL then ``SIGCONT``, a restart of PostgreSQL, and a rolling
restart of every host. Our own hosts must never overlap a session (the
platform counts), no account may end in ``needs_relink``, and every account
must be served again within ``ttl + grace`` (plus one renewal round) of a
host's death.

This test runs on real time: leases expire on the database server's clock,
and the processes are real. Every wait is for a condition, with a limit.
``LINKSTATE_FIGHT_ACCOUNTS`` sets the number of accounts (60 by default, to
keep CI quick; the long run uses 200).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import trio
from pgcluster import Cluster
from platform_server import Platform

from linkstate.store._postgres import PostgresStore

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = int(os.environ.get("LINKSTATE_FIGHT_ACCOUNTS", "60"))
TTL, RENEW, MARGIN, GRACE = 3.0, 0.5, 1.0, 2.0
# The platform drops a session that has not answered pings for IDLE seconds;
# GRACE must cover it, or a frozen host's socket could still be live.
IDLE = 1.0
RECOVERY = TTL + GRACE + RENEW + 2.0  # the promise, plus a round and a loaded machine's slack


class Host:
    """One gateway process."""

    def __init__(self, name: str, args: list[str], log: Path, prefix: Sequence[str] = ()) -> None:
        self.name = name
        self.args = args
        self.prefix = prefix  # e.g. ``ip netns exec NAME``: the partition test's host
        self.log = log
        self.process: trio.Process | None = None
        self.owner = ""
        self._buffer = b""

    async def start(self) -> None:
        with self.log.open("ab") as err:
            self.process = await trio.lowlevel.open_process(
                [
                    *self.prefix,
                    sys.executable,
                    "-P",
                    str(ROOT / "tests" / "fight_gateway.py"),
                    *self.args,
                ],
                stdout=-1,
                stderr=err,
            )
        line = await self._line(30)
        assert line.startswith("ready "), line
        self.owner = line.removeprefix("ready ")

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    async def terminate(self, *, then_kill: bool = False) -> dict[str, Any]:
        """SIGTERM: a clean shutdown; its counters. ``then_kill``: kill -9 once they are in."""
        self.signal(signal.SIGTERM)
        line = await self._line(30)
        assert self.process is not None
        if then_kill:
            self.kill()
            await self.reap()
            return dict(json.loads(line))
        with trio.fail_after(30):
            code = await self.process.wait()
        assert code == 0, (code, self.log.read_text()[-3000:])
        counters: dict[str, Any] = json.loads(line)
        return counters

    def kill(self) -> None:
        """kill -9, if it still runs: for a test's teardown, so no host outlives it."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    async def reap(self) -> None:
        assert self.process is not None
        with trio.fail_after(10):
            await self.process.wait()

    async def _line(self, limit: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        with trio.fail_after(limit):
            while b"\n" not in self._buffer:
                chunk = await self.process.stdout.receive_some()
                if not chunk:
                    raise AssertionError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


async def outage(platform: Platform, url: str, host: Host, signal_number: int) -> float:
    """Signal ``host``; seconds until each account it held has a new session, from the signal."""
    accounts = held_by(url, host.owner)
    assert accounts, f"{host.name} holds nothing to lose"
    started = trio.current_time()
    host.signal(signal_number)

    def served_again() -> bool:
        return all(
            account in platform.live and platform.live[account].opened > started
            for account in accounts
        )

    await wait_for(served_again, RECOVERY, f"{host.name}'s {len(accounts)} accounts served again")
    return trio.current_time() - started


async def wait_for(condition: Callable[[], bool], limit: float, what: str) -> float:
    """Poll ``condition`` until it holds; how long it took. Fails after ``limit`` seconds."""
    started = trio.current_time()
    while not condition():
        if trio.current_time() - started > limit:
            raise AssertionError(f"not within {limit:g} s: {what}")
        await trio.sleep(0.05)
    return trio.current_time() - started


async def test_hosts_never_fight_over_a_session(
    pg_cluster: Cluster, pg_url: str, tmp_path: Path
) -> None:
    platform = Platform(idle=IDLE)
    faults: list[str] = []
    recoveries: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(platform.serve)
        args = [pg_url, platform.url(), str(ACCOUNTS), str(TTL), str(RENEW), str(MARGIN)]
        args.append(str(GRACE))
        serial = iter(range(100))

        def new_host() -> Host:
            name = f"host{next(serial)}"
            return Host(name, args, tmp_path / f"{name}.log")

        def served() -> bool:
            return len(platform.live) == ACCOUNTS

        hosts = [new_host() for _ in range(3)]
        async with trio.open_nursery() as starting:
            for host in hosts:
                starting.start_soon(host.start)
        await wait_for(served, 30, "every account served by the first three hosts")
        await wait_for(lambda: balanced(pg_url, 3), 30, "the accounts shared among three hosts")

        # 1. kill -9: its sessions die with it; its leases expire after the TTL.
        victim = hosts.pop(0)
        recoveries.append(await outage(platform, pg_url, victim, signal.SIGKILL))
        await victim.reap()
        faults.append("kill -9")
        hosts.append(new_host())
        await hosts[-1].start()  # a host joins: it gets its share over time

        # 2. SIGSTOP past the TTL, then SIGCONT: the frozen host must not fight back.
        await wait_for(lambda: balanced(pg_url, 3), 30, "the joining host's share")
        frozen = hosts[0]
        await wait_for(served, RECOVERY, "every account served before the freeze")
        recoveries.append(await outage(platform, pg_url, frozen, signal.SIGSTOP))
        faults.append("SIGSTOP")
        await trio.sleep(max(0.0, TTL + 1.0 - recoveries[-1]))  # frozen past its TTL for sure
        frozen.signal(signal.SIGCONT)
        faults.append("SIGCONT")
        await wait_for(lambda: balanced(pg_url, 3), 30, "the thawed host back in the share")

        # 3. PostgreSQL restarts under every host.
        await trio.to_thread.run_sync(pg_cluster.restart)
        faults.append("PostgreSQL restart")
        await wait_for(served, RECOVERY, "every account served after the restart")
        await wait_for(lambda: balanced(pg_url, 3), 30, "the share after the restart")

        # 4. A rolling restart: each host stops cleanly and a new one replaces it.
        counters = []
        for _ in range(len(hosts)):
            old = hosts.pop(0)
            counters.append(await old.terminate())
            faults.append("rolling restart")
            await wait_for(served, RECOVERY, "the released accounts served at once")
            hosts.append(new_host())
            await hosts[-1].start()
        await wait_for(lambda: balanced(pg_url, 3), 30, "the share after the rolling restart")
        await wait_for(served, RECOVERY, "every account served at the end")
        for host in hosts:
            counters.append(await host.terminate())
        nursery.cancel_scope.cancel()

    overlaps = sum(platform.overlaps.values())
    print(
        f"\nfight: {ACCOUNTS} accounts, {len(faults)} faults injected ({', '.join(faults)}), "
        f"{overlaps} overlapping sessions counted, {platform.opened} sessions opened, "
        f"{platform.dropped_idle} frozen sessions dropped by the platform, recoveries "
        + ", ".join(f"{seconds:.1f} s" for seconds in recoveries)
        + f" (limit {RECOVERY:g} s)"
    )
    assert overlaps == 0, platform.overlaps.most_common(5)
    assert all(c["needs_relink"] == c["failed"] == 0 for c in counters), counters
    # The thawed host lost every lease it held when it froze, and stopped those links.
    assert counters[0]["lost"] > 0, counters[0]
    with PostgresStore(pg_url, create=False) as store:
        states = {row.state for row in store.links()}
        leases = store.leases()
    assert states <= {"stopped", "idle"}, states
    assert not any(info.live for info in leases.values())  # every lease released at the end


def held_by(url: str, owner: str) -> dict[str, float]:
    """The accounts whose live lease ``owner`` holds: each one's expiry, seconds since the epoch."""
    with psycopg.connect(url, connect_timeout=2) as conn:
        rows = conn.execute(
            "SELECT link_id, extract(epoch FROM lease_expires)::float8 FROM links "
            "WHERE lease_owner = %s AND lease_expires > clock_timestamp()",
            (owner,),
        ).fetchall()
    return {link_id: float(expires) for link_id, expires in rows}


def balanced(url: str, hosts: int, accounts: int = ACCOUNTS) -> bool:
    """Each live host holds at most its share, ⌈accounts / hosts⌉, and every account is held."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            rows = conn.execute(
                "SELECT lease_owner, count(*) FROM links WHERE lease_owner IS NOT NULL "
                "AND lease_expires > clock_timestamp() GROUP BY lease_owner"
            ).fetchall()
    except psycopg.OperationalError:
        return False  # PostgreSQL is restarting
    owners: dict[str, int] = dict(rows)
    share = math.ceil(accounts / hosts)
    return (
        len(owners) == hosts and sum(owners.values()) == accounts and max(owners.values()) <= share
    )
