"""One gateway host of the multi-host fight test: a leased fleet over every account.

Run as its own process by ``tests/test_multi_host.py``::

    python tests/fight_gateway.py DB_URL PLATFORM_URL ACCOUNTS TTL RENEW MARGIN GRACE

It prints ``ready OWNER`` once its keeper runs, and on SIGTERM or SIGINT
prints one JSON line of counters, then shuts down cleanly (every link
stopped, its connection closed, its lease released) and exits 0.
"""

from __future__ import annotations

import json
import logging
import signal
import sys

import trio

from linkstate import load_channel
from linkstate.channels.websocket import WebSocketTransport
from linkstate.cli.demo import demo_channel
from linkstate.runtime import LeasedLink, LeasePolicy, open_leased_fleet
from linkstate.store import PostgresStore, new_owner


async def main(argv: list[str]) -> None:
    db, platform, accounts, ttl, renew, margin, grace = argv
    channel = demo_channel(load_channel("websocket"))
    links = {
        f"acct{i:03}": LeasedLink(
            channel, WebSocketTransport(f"{platform}/acct{i:03}", ping_interval=None)
        )
        for i in range(int(accounts))
    }
    policy = LeasePolicy(
        ttl=float(ttl), renew_every=float(renew), margin=float(margin), grace=float(grace)
    )
    store = PostgresStore(db, owner=new_owner(), connect_timeout=2)
    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with open_leased_fleet(store, links, policy=policy) as keeper:
                print("ready", keeper.owner, flush=True)
                async for _ in signals:
                    break
                states = [status.state for status in keeper.fleet.statuses()]
                counters = {
                    "owner": keeper.owner,
                    "held": len(keeper.held()),
                    "taken": keeper.taken,
                    "lost": keeper.lost,
                    "shed": keeper.shed,
                    "needs_relink": states.count("needs_relink"),
                    "failed": states.count("failed"),
                }
                # Before the shutdown: a host cut off from PostgreSQL cannot
                # release its leases, and the partition test kills it then.
                print(json.dumps(counters), flush=True)
    finally:
        store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    trio.run(main, sys.argv[1:])
