"""``linkstate watch CHANNEL URL``: supervise a live endpoint and print its lifecycle.

Prints the same lines as ``simulate``. Ends on a terminal state; ``--max-time``,
Ctrl-C and SIGTERM stop the link cleanly (state ``stopped``, the connection
closed with a normal close frame). Exit status (``ExitStatus``): 0 when
stopped by ``--max-time``, Ctrl-C or SIGTERM; 1 when the link ended in
``needs_relink`` or ``failed`` (so a script or a service manager can alert on
it); 3 when the state database failed; 4 when another process took the link
over; 130 when a second Ctrl-C cut the clean stop short.

``--backend`` picks the event loop the supervisor runs on: trio (the default)
or asyncio; the runtime is the same code on both (anyio), so the lines printed
and the exit status are the same.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import anyio

from linkstate._channel import Channel
from linkstate.cli._options import add_run_options, policy_from_args
from linkstate.cli.common import CommandError, channel_or_exit

if TYPE_CHECKING:
    from linkstate.runtime._supervisor import Outcome, Transport

__all__ = ["DEFAULT_WATCHDOG", "ORDER", "register", "run", "watch"]

ORDER: Final = 30

# Three missed pings of the WebSocket transport's default 20 s interval.
DEFAULT_WATCHDOG: Final = 60.0

# trio first: it is the default, and the back end the test suite drives on a
# virtual clock. Both run the same supervisor through anyio.
BACKENDS: Final = ("trio", "asyncio")


def register(subparsers: Any) -> None:
    """Add the ``watch`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "watch",
        help="supervise a live endpoint and print its lifecycle",
        description=(
            "Connect to URL with the channel's transport and supervise the link: reconnect "
            "or stop exactly as the channel's table and the policy decide, printing each "
            "transition. Ends on a terminal state, at --max-time, or on Ctrl-C or SIGTERM (state "
            "stopped). Exit status: 0 stopped (--max-time, Ctrl-C, SIGTERM), 1 needs_relink or "
            "failed, 3 the state database failed, 4 the link is owned by another process, 130 "
            "a second Ctrl-C cut the stop short."
        ),
    )
    parser.add_argument("channel", metavar="CHANNEL", help="a channel with a transport: websocket")
    parser.add_argument("url", metavar="URL", help="the endpoint, such as ws://127.0.0.1:8765/")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=BACKENDS[0],
        help="the event loop to supervise on (default: %(default)s)",
    )
    parser.add_argument(
        "--max-message-size",
        type=message_size,
        default=None,
        metavar="BYTES",
        help="the largest message the transport accepts; a peer that sends more is cut off "
        "(a local close, retried) (default: the transport's own limit)",
    )
    add_run_options(parser)
    parser.set_defaults(run=run, watchdog=DEFAULT_WATCHDOG)
    parser.epilog = f"The watchdog defaults to {DEFAULT_WATCHDOG:g} s for watch."


def message_size(text: str) -> int:
    """Argparse type: a whole number of bytes, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of bytes; write it like 1048576"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 byte or more")
    return value


def transport_from_args(
    channel: Channel, url: str, *, max_message_size: int | None = None
) -> Transport:
    """The channel's transport for ``url``; no transport or a bad URL is a CommandError."""
    # The runtime is imported where a command runs, never for its --help.
    from linkstate.runtime._supervisor import transport_factory

    try:
        factory = transport_factory(channel)
        if max_message_size is None:
            return factory(url)
        if "max_message_size" not in _parameters(factory):
            raise CommandError(
                f"channel {channel.name!r}: its transport has no message size limit to set; "
                "drop --max-message-size"
            )
        build: Callable[..., Transport] = factory
        return build(url, max_message_size=max_message_size)
    except (LookupError, ValueError) as exc:
        raise CommandError(str(exc)) from exc


def _parameters(factory: Callable[..., object]) -> Mapping[str, inspect.Parameter]:
    try:
        return inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read
        return {}


async def watch(args: argparse.Namespace, channel: Channel, transport: Transport) -> Outcome:
    """Supervise until terminal, ``--max-time``, SIGINT or SIGTERM."""
    from linkstate.cli._supervise import printer_from_args, supervise, supervisor_from_args

    supervisor = supervisor_from_args(args, channel, transport)
    return await supervise(args, supervisor, printer_from_args(args))


def run(args: argparse.Namespace) -> int:
    """Run ``linkstate watch``."""
    from linkstate.cli._supervise import outcome_status

    channel = channel_or_exit(args.channel)
    transport = transport_from_args(channel, args.url, max_message_size=args.max_message_size)
    policy_from_args(args, channel.policy)  # report a bad policy before connecting
    outcome = anyio.run(watch, args, channel, transport, backend=args.backend)
    return outcome_status(outcome)
