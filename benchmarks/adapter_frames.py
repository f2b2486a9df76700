"""What the adapters add to each frame the client library reads, against the library's own parse.

Run: ``.venv/bin/python benchmarks/adapter_frames.py [--size N]``

Both adapters look at every frame on its way into the library: the activity
stamp for the watchdog, and a check for the frames that end or open a
session (discord.py's opcode 7 and 9; Slack's ``hello`` and ``disconnect``).
For each kind of frame a live connection mostly carries, this times that
look, per frame, against the baseline measured in the same run: decoding
the same frame's JSON, which the library does for every frame anyway
(discord.py's ``utils._from_json``, slack_sdk's ``json.loads``). Each figure
is the best of five batches of N frames, per frame, on asyncio.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any, Final, cast

from aiohttp import WSMessage, WSMsgType
from discord import utils
from harness import Table, best_of, fmt_ratio, fmt_time, parser, print_lines, target

from linkstate.adapters._connection import AdapterConnection
from linkstate.adapters._discord import _GatewaySocket
from linkstate.adapters._slack import _saw

AUTHOR: Final = {"id": "400", "username": "someone", "discriminator": "0", "avatar": None}
MESSAGE: Final = json.dumps(
    {
        "op": 0,
        "s": 42,
        "t": "MESSAGE_CREATE",
        "d": {"id": "1", "channel_id": "2", "content": "x" * 600, "author": AUTHOR},
    }
)
EVENT: Final = json.dumps(
    {
        "type": "events_api",
        "envelope_id": "e1",
        "payload": {"type": "event_callback", "event": {"type": "message", "text": "x" * 600}},
    }
)
# The frames a live connection carries all day, then the ones it sees once per
# connection (which the adapter parses a second time, on purpose).
DISCORD_FRAMES: Final = [
    ("heartbeat ACK", '{"op": 11}'),
    ("MESSAGE_CREATE, 0.7 KB", MESSAGE),
    ("opcode 7 (once)", '{"op": 7, "d": null}'),
]
SLACK_FRAMES: Final = [
    ("events_api envelope, 0.7 KB", EVENT),
    ("hello (once)", '{"type": "hello", "num_connections": 1}'),
    ("disconnect (once)", '{"type": "disconnect", "reason": "refresh_requested"}'),
]
WORST_RATIO: Final = 1.0
"""On the everyday frames, the look may cost at most what decoding the frame costs."""


def per_frame(size: int, work: Callable[[], object]) -> float:
    """Seconds per call of ``work``, timed over one batch of ``size`` calls."""
    start = time.perf_counter()
    for _ in range(size):
        work()
    return (time.perf_counter() - start) / size


def discord_look(connection: AdapterConnection, data: str) -> Callable[[], object]:
    """What ``_GatewaySocket`` does per frame: the activity stamp, then the opcode check."""
    socket = cast(Any, SimpleNamespace(control=None))

    def look() -> None:
        connection.touch()
        _GatewaySocket._note(socket, data)

    return look


def slack_look(connection: AdapterConnection, data: str) -> Callable[[], object]:
    """What the Slack adapter's receive hook does per frame."""
    message = WSMessage(WSMsgType.TEXT, data, None)
    session = cast(Any, SimpleNamespace(close_code=None))

    def look() -> None:
        _saw(message, session, connection)
        connection._ended = _NEVER  # a disconnect frame must not end the benchmark

    return look


class _Never:
    """An event that is never set, for looking at disconnect frames over and over."""

    def is_set(self) -> bool:
        return False

    def set(self) -> None:
        """Ignore: the benchmark's connection never ends."""


_NEVER: Final = cast(Any, _Never())


async def measure(size: int) -> list[tuple[str, str, float, float]]:
    """(library, frame, adapter seconds, baseline seconds) per frame kind."""

    async def closer() -> None:
        """Nothing to close: no socket."""

    connection = AdapterConnection(closer)
    connection._ended = _NEVER
    rows = []
    for library, frames, look, decode in (
        ("discord.py", DISCORD_FRAMES, discord_look, utils._from_json),
        ("slack_sdk", SLACK_FRAMES, slack_look, json.loads),
    ):
        for name, data in frames:
            ours = best_of(5, partial(per_frame, size, look(connection, data)))
            baseline = best_of(5, partial(per_frame, size, partial(decode, data)))
            rows.append((library, name, ours, baseline))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    cli = parser(__doc__.splitlines()[0], size=20_000, size_help="frames per batch")
    args = cli.parse_args(argv)
    rows = asyncio.run(measure(args.size))
    table = Table(
        f"the adapters' look at one frame ({args.size:,} frames a batch, best of 5)",
        ["library", "frame", "adapter's look", "library's JSON decode", "ratio"],
    )
    worst = 0.0
    for library, name, ours, baseline in rows:
        if "(once)" not in name:
            worst = max(worst, ours / baseline)
        table.add(library, name, fmt_time(ours), fmt_time(baseline), fmt_ratio(ours / baseline))
    table.print()
    print_lines(
        [
            target(
                "worst adapter look / library decode, everyday frames",
                fmt_ratio(worst),
                f"<= {fmt_ratio(WORST_RATIO)}",
                worst <= WORST_RATIO,
            )
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
