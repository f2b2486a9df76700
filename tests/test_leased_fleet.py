"""A leased fleet in one process, and the operator commands on ``--db postgresql://...``.

Real PostgreSQL, a real loopback platform server, real time with short
leases (a lease expires on the database server's clock, which no virtual
clock can move). Every wait is for a condition, with a limit.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import psycopg
import pytest
import trio
from platform_server import Platform
from trio_websocket import open_websocket_url

from linkstate import load_channel
from linkstate.channels.websocket import WebSocketTransport
from linkstate.cli import main
from linkstate.cli.common import db_word
from linkstate.cli.demo import demo_channel
from linkstate.runtime import LeasedLink, LeaseKeeper, LeasePolicy, open_leased_fleet
from linkstate.store import PostgresStore

POLICY = LeasePolicy(ttl=2.0, renew_every=0.3, margin=0.6, grace=0.3)


async def wait_for(condition: Callable[[], bool], limit: float, what: str) -> None:
    with trio.fail_after(limit):
        while not condition():
            await trio.sleep(0.02)


def stored_state(url: str, link_id: str) -> str | None:
    """The state the database holds for ``link_id`` now."""
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute("SELECT state FROM links WHERE link_id = %s", (link_id,)).fetchone()
    return None if found is None else str(found[0])


@asynccontextmanager
async def one_host(
    url: str, owner: str, accounts: int = 1
) -> AsyncIterator[tuple[Platform, LeaseKeeper]]:
    platform = Platform(idle=5.0)
    channel = demo_channel(load_channel("websocket"))
    async with trio.open_nursery() as nursery:
        await nursery.start(platform.serve)
        links = {
            f"acct{i}": LeasedLink(
                channel, WebSocketTransport(f"{platform.url()}/acct{i}", ping_interval=None)
            )
            for i in range(accounts)
        }
        store = PostgresStore(url, owner=owner)
        try:
            async with open_leased_fleet(store, links, policy=POLICY) as keeper:
                yield platform, keeper
        finally:
            store.close()
            nursery.cancel_scope.cancel()


async def test_a_fleet_notices_an_operators_relink(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with one_host(pg_url, "host-a") as (platform, keeper):
        await wait_for(lambda: "acct0" in platform.live, 10, "acct0 served")
        # Another device takes the session: a real 440, so the link needs a person.
        async with open_websocket_url(f"{platform.url()}/acct0"):
            await wait_for(
                lambda: keeper.fleet.status("acct0").state == "needs_relink", 10, "needs_relink"
            )
        first = platform.opened
        code = await trio.to_thread.run_sync(main, ["relink", "acct0", "--db", pg_url])
        assert code == 0 and "needs_relink -> idle" in capsys.readouterr().out
        # No restart of the host: its keeper sees the reset and starts the link again.
        await wait_for(
            lambda: keeper.fleet.status("acct0").state == "open" and platform.opened > first,
            10,
            "the relinked account served again",
        )
        assert keeper.held() == ["acct0"]


async def test_a_lost_lease_stops_the_link_and_it_is_not_restarted(pg_url: str) -> None:
    async with one_host(pg_url, "host-a") as (platform, keeper):
        await wait_for(lambda: "acct0" in platform.live, 10, "acct0 served")
        # Taken over once the link is quiet: its `opened` committed, so that the
        # keeper's renewal finds the loss, not that write's fence (owned_elsewhere).
        await wait_for(lambda: stored_state(pg_url, "acct0") == "open", 10, "acct0 stored open")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            # Another host took the lease over (it had lapsed, as far as the server knew).
            conn.execute(
                "UPDATE links SET lease_owner = 'host-b', lease_token = lease_token + 1, "
                "lease_expires = clock_timestamp() + interval '1 minute'"
            )
        outcome = await keeper.fleet.wait("acct0")
        assert outcome is not None
        assert (outcome.state, outcome.stop_reason) == ("stopped", "lease_lost")
        assert keeper.held() == [] and keeper.lost == 1
        await wait_for(lambda: "acct0" not in platform.live, 5, "the session closed")
        await trio.sleep(3 * POLICY.renew_every)  # rounds pass; nothing restarts it
        assert not keeper.fleet.status("acct0").running and "acct0" not in platform.live


async def test_a_clean_stop_releases_and_another_host_starts_at_once(pg_url: str) -> None:
    async with one_host(pg_url, "host-a", accounts=3) as (platform, _):
        await wait_for(lambda: len(platform.live) == 3, 10, "three accounts served")
    with PostgresStore(pg_url, create=False) as store:
        leases = store.leases()
        assert {info.owner for info in leases.values()} == {None}  # released
        assert {row.state for row in store.links()} == {"stopped"}
        assert store.hosts() == []  # and left the hosts table
    started = trio.current_time()
    async with one_host(pg_url, "host-b", accounts=3) as (platform, keeper):
        await wait_for(lambda: len(platform.live) == 3, 10, "taken over")
        # A released lease needs no grace: the first round after the join takes it.
        assert trio.current_time() - started < POLICY.renew_every + 2.0
        assert keeper.held() == ["acct0", "acct1", "acct2"]


async def test_status_lists_owners_tokens_and_expiry(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with one_host(pg_url, "host-a", accounts=2) as (platform, _):
        await wait_for(lambda: len(platform.live) == 2, 10, "two accounts served")
        code = await trio.to_thread.run_sync(main, ["status", "--db", pg_url])
        out = capsys.readouterr().out
        assert code == 0
        header, *rows = out.splitlines()
        assert header.split()[-3:] == ["OWNER", "TOKEN", "LEASE"]
        assert len(rows) == 2 and all("host-a  1" in row and " in " in row for row in rows)
        code = await trio.to_thread.run_sync(main, ["status", "--db", pg_url, "--json"])
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert code == 0 and {line["owner"] for line in lines} == {"host-a"}
        assert all(line["lease_live"] and line["lease_token"] == 1 for line in lines)
        assert all(isinstance(line["lease_expires"], float) for line in lines)


def test_the_operator_commands_work_on_postgres(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "whatsapp", "--close", "440", "--db", pg_url, "--link", "acct1"]
    assert main([*argv, "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["final"] == "needs_relink"
    assert main(["status", "--db", pg_url]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert row.split()[:3] == ["acct1", "whatsapp", "needs_relink"]
    assert row.split()[-3:] == ["-", "1", "released"]  # simulate claimed it, then let go
    assert main(["history", "acct1", "--db", pg_url]) == 0
    assert "needs_relink" in capsys.readouterr().out
    assert main(["reset", "acct1", "--db", pg_url]) == 0
    assert "needs_relink -> idle" in capsys.readouterr().out


def test_operator_messages_never_show_the_database_password(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The test server trusts its socket, so the password is ignored, as one
    # that libpq read from ~/.pgpass would be used: the command still works.
    scheme, rest = pg_url.split("://", 1)
    user, rest = rest.split("@", 1)
    with_password = f"{scheme}://{user}:s3cret-pw@{rest}&password=also-s3cret"
    argv = ["simulate", "whatsapp", "--close", "440", "--link", "acct9", "--format", "json"]
    assert main([*argv, "--db", with_password]) == 1
    out = capsys.readouterr().out
    final = json.loads(out.splitlines()[-1])
    assert final["final"] == "needs_relink" and "s3cret" not in out
    command = f"linkstate relink acct9 --db {shlex.quote(pg_url)}"
    assert command in final["message"]
    assert main(shlex.split(command)[1:]) == 0  # as pasted, with the password left out


@pytest.mark.parametrize(
    ("db", "shown"),
    [
        ("postgresql://gw:pw@db1:5432/ls", "postgresql://gw@db1:5432/ls"),
        (
            "postgres://gw:p%40ss@h1,h2/ls?sslmode=require",
            "'postgres://gw@h1,h2/ls?sslmode=require'",
        ),
        (
            "postgresql:///ls?host=/run/pg&password=x&user=gw",
            "'postgresql:///ls?host=/run/pg&user=gw'",
        ),
        ("postgresql://gw@db1/ls", "postgresql://gw@db1/ls"),
        ("postgresql://gw@db1/ls?password=x", "postgresql://gw@db1/ls"),
        ("state dir/links.db", "'state dir/links.db'"),
    ],
)
def test_db_word_drops_only_the_password(db: str, shown: str) -> None:
    assert db_word(db) == shown


def test_a_missing_database_is_one_line(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["status", "--db", f"postgresql://nobody@/x?host={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "cannot reach PostgreSQL" in err[0]
