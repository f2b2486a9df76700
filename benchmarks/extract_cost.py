"""The cost of reading a platform's native close: our channel extractors against plain normalise.

Run: ``.venv/bin/python benchmarks/extract_cost.py [--size N]``

For each channel and each shape a close arrives in (a bare code, the
platform's JSON body, the same as raw frame text, a client library's real
exception), it times ``channel.classify(raw)``: the channel's extractor (its
duck-typed readers, then ``normalise``) and the table lookup. The baseline,
measured in the same run, is ``table.classify(normalise(raw))``: the generic
reading alone, which is what classification cost before the native readers
(and which gets several of these shapes wrong: it cannot see Slack's error
code, Matrix's soft_logout or discord.py's ``ConnectionClosed.code``).
Each figure is the best of five batches of N calls, per call.

A second table prices the shapes a channel trusts (``Channel.shapes``, issue
12: OpenClaw's ``isLoggedOut``, node-slack-sdk's ``data.error``, Slack's error
text): ``channel.classify(raw)`` against the same channel with no shapes,
measured in the same run. A bare status skips them.

A third table prices ``normalise`` alone on the common shape of every bundled
channel (a flat ``{status, reason}`` dict, Baileys' nested error, each client
library's exception) against its floor, ``normalise(440)``, in interleaved
rounds: every round times each shape once, the floor among them, so a noisy
moment hits them alike; each figure is the best of the rounds. Beside it, the
general reader (the table-major reading ``normalise`` used before its fast
reader, kept as the definition the fast one is tested against) on the same
shapes, in the same rounds. Issue 19's target: a Baileys close at most 5x
the floor, and every other common shape as close to that as it gets. A
real close is a fresh dict every time, so one row reads a Baileys close
from a pool of distinct deep copies, in turn: nothing normalise keeps may
hang on the identity of the benchmark's one dict.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import sys
import time
from collections.abc import Callable
from functools import partial

import telegram.error
from discord.errors import ConnectionClosed
from harness import BAILEYS_CLOSE, Table, best_of, fmt_ratio, fmt_time, parser, print_lines, target
from nio.responses import SyncError
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from linkstate._channel import Channel, load_channel
from linkstate._events import CloseEvent, Shapes, _read_general, normalise

TELEGRAM_409_TEXT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
TELEGRAM_409 = {"ok": False, "error_code": 409, "description": TELEGRAM_409_TEXT}


def slack_error() -> SlackApiError:
    """A ``SlackApiError`` as slack_sdk raises it for ``invalid_auth``."""
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/apps.connections.open",
        req_args={},
        data={"ok": False, "error": "invalid_auth"},
        headers={},
        status_code=200,
    )
    return SlackApiError("The request to the Slack API failed.", response)  # type: ignore[no-untyped-call]


CASES: list[tuple[str, str, object]] = [
    ("discord", "bare code", 4004),
    ("discord", "op 9 payload", {"op": 9, "d": False}),
    ("discord", "discord.py ConnectionClosed", ConnectionClosed(None, shard_id=0, code=4004)),  # type: ignore[arg-type]
    ("slack", "disconnect frame", {"type": "disconnect", "reason": "refresh_requested"}),
    ("slack", "frame as text", '{"type":"disconnect","reason":"refresh_requested"}'),
    ("slack", "slack_sdk SlackApiError", slack_error()),
    ("telegram", "error response", TELEGRAM_409),
    ("telegram", "python-telegram-bot Conflict", telegram.error.Conflict(TELEGRAM_409_TEXT)),
    ("matrix", "error body", {"errcode": "M_UNKNOWN_TOKEN", "error": "x", "soft_logout": True}),
    (
        "matrix",
        "matrix-nio SyncError",
        SyncError.from_dict({"errcode": "M_UNKNOWN_TOKEN", "error": "x"}),
    ),
]


SHAPE_CASES: list[tuple[str, str, object]] = [
    ("whatsapp", "bare status", 440),
    ("whatsapp", "Baileys Boom", {"error": {"output": {"statusCode": 428}}}),
    ("whatsapp", "OpenClaw isLoggedOut", {"status": None, "isLoggedOut": True, "error": "x"}),
    ("slack", "disconnect frame", {"type": "disconnect", "reason": "warning"}),
    (
        "slack",
        "node platform error",
        {"code": "slack_webapi_platform_error", "data": {"ok": False, "error": "invalid_auth"}},
    ),
    ("slack", "error text", "An API error occurred: account_inactive"),
]


NORMALISE_FLOOR = "bare status 440 (floor)"
BAILEYS_NAME = "Baileys close"
NORMALISE_CASES: list[tuple[str, object]] = [
    (NORMALISE_FLOOR, 440),
    ("flat {status, reason}", {"status": 1008, "reason": "policy violation"}),
    (BAILEYS_NAME, BAILEYS_CLOSE),
    ("Baileys Boom alone", {"error": {"output": {"statusCode": 428}}}),
    ("Telegram error response", TELEGRAM_409),
    ("Matrix error body", {"errcode": "M_UNKNOWN_TOKEN", "error": "x", "soft_logout": True}),
    ("Slack disconnect frame", {"type": "disconnect", "reason": "refresh_requested"}),
    ("discord.py ConnectionClosed", ConnectionClosed(None, shard_id=0, code=4004)),  # type: ignore[arg-type]
    ("slack_sdk SlackApiError", slack_error()),
    ("python-telegram-bot Conflict", telegram.error.Conflict(TELEGRAM_409_TEXT)),
]
FRESH_NAME = "Baileys close, a fresh copy each call"
FRESH_COPIES = 1_000
NORMALISE_ROUNDS = 9
NORMALISE_TARGET = 5.0


def general_reader(raw: object) -> CloseEvent:
    """The table-major reading normalise's fast reader must agree with: the cost before it."""
    return _read_general(raw) if isinstance(raw, (dict, BaseException)) else normalise(raw)


def normalise_costs(size: int) -> dict[str, tuple[float, float]]:
    """Seconds per call of ``normalise`` and of the general reader on each shape.

    Best of interleaved rounds: every round times each shape once, both ways,
    the floor among them, so a noisy moment hits them alike.
    """
    copies = [copy.deepcopy(BAILEYS_CLOSE) for _ in range(FRESH_COPIES)]
    fast = dict.fromkeys([*(name for name, _ in NORMALISE_CASES), FRESH_NAME], float("inf"))
    general = dict(fast)
    for _ in range(NORMALISE_ROUNDS):
        for name, raw in [*NORMALISE_CASES, (FRESH_NAME, None)]:
            pool = copies if name == FRESH_NAME else [raw]
            for best, read in ((fast, normalise), (general, general_reader)):
                best[name] = min(best[name], per_call(size, *(partial(read, c) for c in pool)))
    return {name: (fast[name], general[name]) for name in fast}


def normalise_report(size: int) -> list[str]:
    """Print the normalise table; return its target lines, one per shape."""
    costs = normalise_costs(size)
    floor = costs[NORMALISE_FLOOR][0]
    table = Table(
        f"normalise alone ({size:,} calls a batch, best of {NORMALISE_ROUNDS} interleaved "
        "rounds; ÷ floor = against normalise(440) in the same rounds; the general reader "
        "is the table-major reading normalise used before, kept as its reference)",
        ["shape", "normalise", "÷ floor", "general reader", "÷ floor "],
    )
    for name, (cost, general) in costs.items():
        table.add(
            name,
            fmt_time(cost),
            fmt_ratio(cost / floor),
            fmt_time(general),
            fmt_ratio(general / floor),
        )
    table.print()
    lines = []
    for name, (cost, _) in costs.items():
        if name == NORMALISE_FLOOR:
            continue
        ratio = cost / floor
        baileys = name == BAILEYS_NAME
        lines.append(
            target(
                f"normalise({name}) / normalise(440)",
                fmt_ratio(ratio),
                f"<= {NORMALISE_TARGET:g}x" if baileys else f"close to {NORMALISE_TARGET:g}x",
                ratio <= NORMALISE_TARGET,
            )
        )
    return lines


def per_call(size: int, *works: Callable[[], object]) -> float:
    """Seconds per call of ``works``, called in turn, timed over one batch of ``size`` calls."""
    start = time.perf_counter()
    for work in itertools.islice(itertools.cycle(works), size):
        work()
    return (time.perf_counter() - start) / size


def measure(channel: Channel, raw: object, size: int) -> tuple[float, float, str, str]:
    """(ours, baseline) seconds per call, and the row each reading reaches."""

    def ours() -> float:
        return per_call(size, lambda: channel.classify(raw))

    def generic() -> float:
        return per_call(size, lambda: channel.table.classify(normalise(raw)))

    row = channel.classify(raw)[1]
    generic_row = channel.table.classify(normalise(raw))
    return (
        best_of(5, ours),
        best_of(5, generic),
        f"{row.label}: {row.verdict.value}",
        f"{generic_row.label}: {generic_row.verdict.value}",
    )


def measure_shapes(channel: Channel, raw: object, size: int) -> tuple[float, float, str]:
    """(with its shapes, with none) seconds per call, and the row the channel reaches."""
    bare = dataclasses.replace(channel, shapes=Shapes())

    def ours() -> float:
        return per_call(size, lambda: channel.classify(raw))

    def baseline() -> float:
        return per_call(size, lambda: bare.classify(raw))

    found = channel.classify(raw)[1]
    return best_of(5, ours), best_of(5, baseline), f"{found.label}: {found.verdict.value}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    cli = parser(__doc__.splitlines()[0], size=20_000, size_help="calls per batch")
    args = cli.parse_args(argv)
    table = Table(
        f"classify one native close ({args.size:,} calls a batch, best of 5)",
        [
            "channel",
            "shape",
            "channel.classify",
            "normalise + table",
            "ratio",
            "row reached",
            "row by normalise alone",
        ],
    )
    for name, shape, raw in CASES:
        ours, generic, row, generic_row = measure(load_channel(name), raw, args.size)
        same = "same" if row == generic_row else generic_row
        ratio = fmt_ratio(ours / generic)
        table.add(name, shape, fmt_time(ours), fmt_time(generic), ratio, row, same)
    table.print()
    shapes = Table(
        f"the shapes a channel trusts ({args.size:,} calls a batch, best of 5)",
        ["channel", "shape", "with its shapes", "without (baseline)", "ratio", "row reached"],
    )
    for name, shape, raw in SHAPE_CASES:
        channel = load_channel(name)
        ours, base, reached = measure_shapes(channel, raw, args.size)
        shapes.add(name, shape, fmt_time(ours), fmt_time(base), fmt_ratio(ours / base), reached)
    shapes.print()
    print_lines(normalise_report(args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
