"""PostgreSQL unreachable from one host only: that host stops before its leases can expire.

Two real gateway processes (``tests/fight_gateway.py``) serve the same
accounts on one PostgreSQL against the loopback platform of the fight test
(one live session per account, the newest wins, overlaps counted). One host
runs in a network namespace of its own (``tests/netns.py``) and reaches
PostgreSQL and the platform over a veth pair; the other runs in the root
namespace. Then PostgreSQL is cut off from the namespaced host only: its
frames to the database are dropped silently, so its calls hang, as in a real
partition, while the platform stays reachable.

The test asserts that the cut-off host closes every session it held before
the lease rows' expiry (``sent_at + ttl`` as the server recorded it), that
the other host takes the accounts only after that expiry plus ``grace``, that
no session ever overlaps and no account ends in ``needs_relink``. It needs
root (namespaces): it skips locally without it, and fails under ``CI``.

Real time, as in the fight: leases expire on the server's clock. Every wait
has a limit, the whole test one more, and every host process is killed in
the teardown whatever happens.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import trio
from netns import Netns, require_netns
from pgcluster import Cluster, require_postgres
from platform_server import Platform
from test_multi_host import GRACE, IDLE, MARGIN, RENEW, TTL, Host, balanced, held_by, wait_for

ACCOUNTS = 20
# Not what this test is about (the fight measures it): a loaded machine's slack.
RECOVERY = TTL + GRACE + RENEW + 8.0


async def test_a_host_cut_off_from_postgres_stops_before_its_leases_expire(
    tmp_path: Path,
) -> None:
    require_netns()
    bindir = require_postgres()
    with Netns() as ns:
        cluster = Cluster(bindir, tcp=(ns.db_address, str(ns.network)))
        try:
            with trio.fail_after(45):  # never hang, whatever goes wrong below
                await _partition(cluster, ns, tmp_path)
        finally:
            cluster.close()


async def _partition(cluster: Cluster, ns: Netns, tmp_path: Path) -> None:
    url = cluster.database()  # the root namespace's host and the test: the Unix socket
    platform = Platform(idle=IDLE, host=ns.root_address)
    async with trio.open_nursery() as nursery:
        await nursery.start(platform.serve)
        timings = [str(TTL), str(RENEW), str(MARGIN), str(GRACE)]
        common = [platform.url(), str(ACCOUNTS), *timings]
        cut_off = Host("cut-off", [cluster.tcp_url(url), *common], tmp_path / "cut-off.log",
                       prefix=ns.exec_prefix)  # fmt: skip
        other = Host("other", [url, *common], tmp_path / "other.log")
        try:
            async with trio.open_nursery() as starting:
                starting.start_soon(cut_off.start)
                starting.start_soon(other.start)
            await wait_for(lambda: len(platform.live) == ACCOUNTS, 20, "every account served")
            await wait_for(lambda: balanced(url, 2, ACCOUNTS), 20, "the accounts shared")
            accounts = set(held_by(url, cut_off.owner))
            assert accounts, "the namespaced host holds nothing to lose"

            cut_wall, cut_clock = time.time(), trio.current_time()
            ns.cut()
            # The last renewal that reached the server may be in flight: read
            # the expiries once it has landed. Nothing from the host arrives later.
            await trio.sleep(0.3)
            expiries = held_by(url, cut_off.owner)
            assert set(expiries) == accounts, (sorted(expiries), sorted(accounts))

            def taken_over() -> bool:
                return all(
                    a in platform.live and platform.live[a].opened > cut_clock for a in accounts
                )

            try:
                await wait_for(taken_over, RECOVERY, "the cut-off host's accounts served again")
            except AssertionError as exc:
                missing = sorted(a for a in accounts if a not in platform.live)
                raise AssertionError(
                    f"{exc}; not served: {missing}; leases: {_leases(url)}; other host's log:\n"
                    + other.log.read_text()[-3000:]
                ) from None
            opened = {a: platform.live[a].opened for a in accounts}
            lost = await cut_off.terminate(then_kill=True)  # it cannot release: killed
            kept = await other.terminate()
        finally:
            cut_off.kill()
            other.kill()
        nursery.cancel_scope.cancel()

    # When each account's session on the cut-off host closed, and when the
    # other host's opened, on the wall clock (the lease rows' clock).
    offset = cut_wall - cut_clock
    closed: dict[str, float] = {}
    for account, ended in platform.ended:  # the first end after the cut: the cut-off host's
        if account in accounts and ended > cut_wall:
            closed.setdefault(account, ended)
    reopened = {a: opened[a] + offset for a in accounts}
    early = {a: expiries[a] - closed[a] for a in accounts if a in closed}
    late = {a: reopened[a] - expiries[a] for a in accounts}
    overlaps = sum(platform.overlaps.values())
    timeline = {  # per account, seconds after the cut: for a failure's message
        a: (round(expiries[a] - cut_wall, 2), round(closed.get(a, 0) - cut_wall, 2),
            round(reopened[a] - cut_wall, 2))
        for a in sorted(accounts)
    }  # fmt: skip
    print(
        f"\npartition: {ACCOUNTS} accounts, {ns.cuts} fault injected (PostgreSQL cut off from "
        f"one host, {len(accounts)} accounts on it), {overlaps} overlapping sessions counted; "
        f"its sessions closed {min(early.values(), default=0):.2f}-"
        f"{max(early.values(), default=0):.2f} s before their leases expired "
        f"(ttl {TTL:g} s, margin {MARGIN:g} s); taken over "
        f"{min(late.values()):.2f}-{max(late.values()):.2f} s after expiry (grace {GRACE:g} s)"
    )
    assert overlaps == 0, platform.overlaps.most_common(5)
    # The host closed its sessions itself; the platform dropped none as silent.
    assert platform.dropped_idle == 0, platform.dropped_idle
    # The timeline reads (lease expiry, session closed, served again) per account.
    assert set(closed) == accounts, timeline
    # Closed before expiry, and by about the margin: the keeper aborts at the
    # local deadline itself, not whenever a hung store call lets it look.
    assert all(seconds > MARGIN / 2 for seconds in early.values()), timeline
    assert all(seconds >= GRACE for seconds in late.values()), timeline  # after expiry + grace
    assert lost["lost"] == len(accounts), lost
    assert lost["needs_relink"] == lost["failed"] == 0, lost
    assert kept["needs_relink"] == kept["failed"] == 0, kept
    with psycopg.connect(url, connect_timeout=2) as conn:
        states: dict[str, int] = dict(
            conn.execute("SELECT state, count(*) FROM links GROUP BY state").fetchall()
        )
    assert "needs_relink" not in states and "failed" not in states, states


def _leases(url: str) -> list[tuple[str, str | None, float | None]]:
    """Every link's lease owner and expiry (seconds from now): a failure's message."""
    with psycopg.connect(url, connect_timeout=2) as conn:
        return conn.execute(
            "SELECT link_id, lease_owner, extract(epoch FROM lease_expires - clock_timestamp())"
            "::float8 FROM links ORDER BY link_id"
        ).fetchall()
