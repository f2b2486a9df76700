"""``linkstate demo``: a real WebSocket server on loopback plays a story; a real link lives it.

The server (:func:`serve_story`) accepts one connection per scene of
:data:`STORY` and ends it the way the scene says:

1. open a while, then drop the TCP connection without a close frame (the
   client library reports 1006, abnormal closure): ``retry`` with backoff;
2. close with 1012, service restart: ``retry_now``, a short jittered delay;
3. close with 4401, the token was revoked: ``relink``, stop, tell the operator.

Why 4401: RFC 6455 leaves 4000-4999 to the application, and a chat service
built on WebSocket defines its own codes there (4401 mirrors HTTP 401, as
graphql-ws does). The generic ``websocket`` table cannot know them, so the
demo's channel is the ``websocket`` channel (found through the registry, like
any plugin) plus one row for 4401: exactly what a channel plugin for a real
service does. 1008 would also work if mapped, but the RFC table keeps 1008
``fatal``, and the demo does not bend the reference table.

The demo uses a quick policy so that the whole story takes a few seconds.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

import trio
from trio_websocket import ConnectionClosed, wrap_server_stream

from linkstate._channel import Channel
from linkstate._policy import Jitter, ReconnectPolicy
from linkstate._verdicts import CloseTable, Rule, Verdict
from linkstate.cli._render import Printer
from linkstate.cli._supervise import (
    add_run_options,
    policy_from_args,
    printer_from_args,
    seconds,
    supervise,
    supervisor_from_args,
)
from linkstate.cli.common import channel_or_exit
from linkstate.runtime._supervisor import Outcome, transport_factory

__all__ = ["ORDER", "STORY", "Scene", "demo_channel", "register", "run", "serve_story"]

ORDER: Final = 5


@dataclass(frozen=True, slots=True)
class Scene:
    """How the server treats one connection.

    Attributes:
        hold: Seconds the connection stays open.
        close: The close code to send; None drops TCP without a close frame.
        reason: The close reason text.
        says: What the server tells the audience (printed in text output).

    """

    hold: float
    close: int | None
    reason: str = ""
    says: str = ""


STORY: Final = (
    Scene(0.8, None, says="server: dropping the TCP connection (the client sees 1006)"),
    Scene(0.8, 1012, "restarting for an upgrade", says="server: restarting (close 1012)"),
    Scene(0.8, 4401, "token revoked", says="server: token revoked (close 4401)"),
)
"""Open; drop with 1006; restart with 1012; then 4401, which the demo table maps to relink."""

# Connections after the story (there should be none: 4401 stops the link).
_ENCORE: Final = Scene(0.0, 1001, "the story is over")

DEMO_POLICY: Final = ReconnectPolicy(
    initial=0.5, factor=2.0, cap=2.0, jitter=Jitter.equal, retry_now_max=0.3
)
"""Quick enough for a demo; real deployments keep the channel's RFC 6455 schedule."""

_REVOKED: Final = Rule(
    Verdict.relink,
    "tokenRevoked",
    "the service revoked this client's token",
    status=4401,
    message=(
        "Demo chat service closed link {link} with {status} ({reason}): its access token was "
        "revoked. Issue a new token for this client, then relink with "
        "`{relink_command}`. Monitoring of this link has stopped and will not "
        "reconnect on its own."
    ),
)


def demo_channel(base: Channel) -> Channel:
    """``base`` (the websocket channel) plus the demo service's own 4401 row."""
    table = CloseTable(
        channel="demo",
        rules=(_REVOKED, *base.table.rules),
        unknown=base.table.unknown,
        no_status=base.table.no_status,
    )
    return replace(base, name="demo", title="Demo chat service", table=table, policy=DEMO_POLICY)


async def serve_story(
    story: tuple[Scene, ...],
    *,
    announce: Callable[[str], None] = lambda text: None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket on a free 127.0.0.1 port, one scene per connection; reports the port."""
    numbers = itertools.count()

    async def handle(stream: trio.SocketStream) -> None:
        scene = next(itertools.islice(iter(story), next(numbers), None), _ENCORE)
        try:
            async with trio.open_nursery() as nursery:
                request = await wrap_server_stream(nursery, stream)
                ws = await request.accept()
                await ws.send_message("hello")
                await trio.sleep(scene.hold)
                if scene.says:
                    announce(scene.says)
                if scene.close is None:
                    await stream.aclose()
                else:
                    await ws.aclose(scene.close, scene.reason)
                nursery.cancel_scope.cancel()
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away first; the story goes on with the next connection

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="watch a link live through a scripted WebSocket server on loopback",
        description=(
            "Start a real WebSocket server on a free 127.0.0.1 port that drops the first "
            "connection (1006), restarts on the second (1012) and revokes the token on the "
            "third (4401), and supervise a link against it. Prints the lifecycle as it "
            "happens and ends with the operator message. Takes a few seconds."
        ),
    )
    parser.add_argument(
        "--hold",
        type=seconds,
        default=STORY[0].hold,
        metavar="S",
        help=f"seconds the server keeps each connection open (default {STORY[0].hold:g})",
    )
    add_run_options(parser)
    # The story needs a few seconds; the limit only guards against a hung demo.
    parser.set_defaults(
        run=run, format="text", link="demo", watchdog=10.0, connect_timeout=5.0, max_time=60.0
    )


async def demo(args: argparse.Namespace) -> Outcome:
    """Run the story against a real server; returns the link's outcome."""
    channel = demo_channel(channel_or_exit("websocket"))
    printer = printer_from_args(args)
    async with trio.open_nursery() as nursery:
        story = tuple(replace(scene, hold=args.hold) for scene in STORY)
        port: int = await nursery.start(_serve, story, printer)
        url = f"ws://127.0.0.1:{port}/"
        printer.note(
            f"a real WebSocket server on {url} will drop, restart, then revoke the token; "
            f"linkstate supervises link {args.link!r} and decides after every close"
        )
        supervisor = supervisor_from_args(args, channel, transport_factory(channel)(url))
        outcome = await supervise(args, supervisor, printer)
        nursery.cancel_scope.cancel()
    return outcome


async def _serve(
    story: tuple[Scene, ...],
    printer: Printer,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve_story(story, announce=printer.note, task_status=task_status)


def run(args: argparse.Namespace) -> int:
    """Run ``linkstate demo``."""
    channel = demo_channel(channel_or_exit("websocket"))
    policy_from_args(args, channel.policy)  # report a bad policy before starting
    outcome = trio.run(demo, args)
    return 0 if outcome.state == "needs_relink" else 1
