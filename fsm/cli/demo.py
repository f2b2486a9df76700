"""``linkstate demo``: a real WebSocket server on loopback plays a story; a real link lives it.

The server (:func:`serve_story`) accepts one connection per scene of
:data:`STORY` and ends it the way the scene says:

1. open a while, then drop the TCP connection without a close frame (the
   client library reports 1006, abnormal closure): ``retry`` with backoff;
2. close with 1001, going away (a restart for an upgrade): ``retry``;
3. close with 4440, a session conflict (another client took the session, as
   WhatsApp Web's status 440 says): ``relink``, stop at once with no retry and
   no backoff sleep, and tell the operator.

Why 4440: a WebSocket close code must lie in 1000-4999, and RFC 6455 leaves
4000-4999 to the application, where a chat service built on WebSocket defines
its own codes (4440 carries WhatsApp's 440 there). The generic ``websocket``
table cannot know them, so the demo's channel is the ``websocket`` channel
(found through the registry, like any plugin) plus one row for 4440: exactly
what a channel plugin for a real service does.

Beside the story, a second link (``<link>-websocket``) runs the plain
``websocket`` channel, unchanged, against a second server that closes its
first connection with 3000, Unauthorized (the token was revoked):
``relink``. Why 3000 and not 4401: RFC 6455 section 7.4.2 leaves 4000-4999
to private agreement, and the same number means different things to
different services (graphql-ws's 4401 is "subscribed before the connection
was acknowledged", which a fresh connection clears), so the generic table
retries them; 3000 is the code the IANA registry assigns to exactly this
meaning, the one every server means alike. So ``/metrics`` shows
``linkstate_links{channel="websocket",state="needs_relink"} 1`` next to
the demo channel's own count.

``--listen HOST:PORT`` (loopback only; the ``serve`` extra) serves the
status page, ``/status`` and ``/metrics`` of the demo's database from the
demo's own event loop, with ``linkstate serve``'s app, while the story
plays and after it, until Ctrl-C or SIGTERM, or for ``--linger S``.

The demo keeps the link in a real state database (a new file in a temporary
directory unless ``--db`` names one), so it ends by printing the operator
commands to try next on that file, and they work as printed. It uses a quick
policy so that the whole story takes a few seconds.
"""

from __future__ import annotations

import argparse
import itertools
import math
import shlex
import signal
import sys
import tempfile
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from linkstate._channel import Channel
from linkstate._policy import Jitter, ReconnectPolicy
from linkstate._verdicts import CloseTable, Rule, Verdict
from linkstate.cli._options import add_run_options, policy_from_args, seconds
from linkstate.cli._render import Printer, default_format
from linkstate.cli.common import CommandError, ExitStatus, channel_or_exit, db_word
from linkstate.cli.serve import is_loopback, parse_listen

if TYPE_CHECKING:
    import trio

    from linkstate.runtime._supervisor import Outcome

__all__ = [
    "DEMO_CHANNEL",
    "ORDER",
    "PLAIN_SCENE",
    "STORY",
    "Scene",
    "demo_channel",
    "next_commands",
    "register",
    "run",
    "serve_story",
]

ORDER: Final = 5

DEMO_CHANNEL: Final = "demo"
"""The demo channel's name: not registered, so the operator commands ask this module for it."""


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
    Scene(0.8, 1001, "restarting for an upgrade", says="server: restarting (close 1001)"),
    Scene(
        0.8,
        4440,
        "conflict",
        says="server: another client took the session (close 4440, WhatsApp's 440)",
    ),
)
"""Open; drop with 1006; restart with 1001 (going away); then 4440, which the demo relinks."""

PLAIN_SCENE: Final = Scene(
    0.8,
    3000,
    "token revoked",
    says="server: the token was revoked (close 3000, Unauthorized in IANA's registry)",
)
"""The plain ``websocket`` link's one connection: closed with 3000, which its table relinks."""

# Connections after a story (there should be none: its last close stops the link).
_ENCORE: Final = Scene(0.0, 1001, "the story is over")

DEMO_POLICY: Final = ReconnectPolicy(
    initial=0.5, factor=2.0, cap=2.0, jitter=Jitter.equal, retry_now_max=0.3
)
"""Quick enough for a demo; real deployments keep the channel's RFC 6455 schedule."""

_CONFLICT: Final = Rule(
    Verdict.relink,
    "sessionConflict",
    "another client took the session (WhatsApp Web's 440)",
    status=4440,
    message=(
        "Demo chat service closed link {link} with {status} ({reason}): another client took "
        "over this session. Reconnecting would kick it off and be kicked back, forever, so "
        "linkstate stopped at once. Log out the other session, then relink with "
        "`{relink_command}`. Monitoring of this link has stopped and will not "
        "reconnect on its own."
    ),
)


def demo_channel(base: Channel) -> Channel:
    """``base`` (the websocket channel) plus the demo service's own 4440 row."""
    table = CloseTable(
        channel=DEMO_CHANNEL,
        rules=(_CONFLICT, *base.table.rules),
        unknown=base.table.unknown,
        no_status=base.table.no_status,
    )
    return replace(
        base, name=DEMO_CHANNEL, title="Demo chat service", table=table, policy=DEMO_POLICY
    )


async def serve_story(
    story: tuple[Scene, ...],
    *,
    announce: Callable[[str], None] = lambda text: None,
    task_status: trio.TaskStatus[int],
) -> None:
    """Serve WebSocket on a free 127.0.0.1 port, one scene per connection; reports the port.

    Run it with ``nursery.start``, which gives ``task_status`` and returns the port.
    """
    # Here, not at the top: trio and trio-websocket are half of `linkstate --help`.
    import trio
    from trio_websocket import ConnectionClosed, wrap_server_stream

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
            "Start a real WebSocket server on a free 127.0.0.1 port that closes the first "
            "connection of a plain websocket link with 3000 (Unauthorized), and one that drops "
            "the story's first connection (1006), restarts on the second (1001) and gives the "
            "session to another client on the third (4440, WhatsApp's 440); supervise both "
            "links, kept in a state database (--db, default: a new temporary file). Prints the "
            "lifecycle as it happens, the operator messages, and the commands to try next. "
            "--listen also serves their status page and /metrics while it runs. Exit status 0 "
            "when both links end as scripted, in needs_relink; 1 otherwise. Takes a few seconds."
        ),
    )
    parser.add_argument(
        "--hold",
        type=seconds,
        default=STORY[0].hold,
        metavar="S",
        help=f"seconds the server keeps each connection open (default {STORY[0].hold:g})",
    )
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=None,
        metavar="HOST:PORT",
        help="also serve the status page, /status and /metrics of the demo's database on this "
        "loopback address (port 0 picks a free one) while the story plays, and after it until "
        "Ctrl-C or SIGTERM; needs pip install 'linkstate[serve]'",
    )
    parser.add_argument(
        "--linger",
        type=seconds,
        default=None,
        metavar="S",
        help="with --listen: keep serving only S seconds after the story (default: until Ctrl-C)",
    )
    add_run_options(parser)
    # The story needs a few seconds; the limit only guards against a hung demo.
    parser.set_defaults(
        run=run, format="text", link="demo", watchdog=10.0, connect_timeout=5.0, max_time=60.0
    )


async def demo(args: argparse.Namespace) -> list[Outcome]:
    """Run the plain link, then the story, against real servers; returns their outcomes."""
    # trio and the runtime are imported here, where the demo runs, not for its --help.
    import trio

    from linkstate.cli._supervise import printer_from_args

    printer = printer_from_args(args)
    async with AsyncExitStack() as stack:
        board = None
        if args.listen is not None:
            # Here, not above: the plain demo must not need the serve extra.
            from linkstate.cli.serve import open_board

            board = await stack.enter_async_context(open_board(args.db))
        nursery = await stack.enter_async_context(trio.open_nursery())
        if board is None:
            outcomes = await _play(args, printer, nursery)
        else:
            from linkstate.cli.serve import GRACEFUL_SECONDS, start_http

            stop_serving = trio.Event()
            url, served = await start_http(nursery, board, args.listen, None, stop_serving)
            _tell(f"serving the status page on {url}/ (and {url}/metrics, {url}/status)")
            outcomes = await _play(args, printer, nursery)
            if not getattr(args, "stopped_by_signal", False):
                await _linger(args.linger, url)
            stop_serving.set()
            with trio.move_on_after(GRACEFUL_SECONDS + 1.0):
                await served.wait()
        nursery.cancel_scope.cancel()
    return outcomes


async def _play(args: argparse.Namespace, printer: Printer, nursery: trio.Nursery) -> list[Outcome]:
    """The plain websocket link's 3000, then the story; stops early on Ctrl-C or SIGTERM."""
    from linkstate.cli._supervise import supervise, supervisor_from_args
    from linkstate.runtime._supervisor import transport_factory

    plain = channel_or_exit("websocket")
    plain_args = argparse.Namespace(**vars(args))
    plain_args.link = f"{args.link}-{plain.name}"
    port: int = await nursery.start(_serve, (replace(PLAIN_SCENE, hold=args.hold),), printer)
    url = f"ws://127.0.0.1:{port}/"
    printer.note(
        f"a plain WebSocket server on {url} will revoke the token; "
        f"linkstate supervises link {plain_args.link!r} with the unchanged websocket channel"
    )
    supervisor = supervisor_from_args(plain_args, plain, transport_factory(plain)(url))
    outcomes = [await supervise(plain_args, supervisor, printer)]
    if getattr(plain_args, "stopped_by_signal", False):
        args.stopped_by_signal = True
        return outcomes
    channel = demo_channel(plain)
    story = tuple(replace(scene, hold=args.hold) for scene in STORY)
    port = await nursery.start(_serve, story, printer)
    url = f"ws://127.0.0.1:{port}/"
    printer.note(
        f"a real WebSocket server on {url} will drop, restart, then give the session to "
        "another client; "
        f"linkstate supervises link {args.link!r} and decides after every close"
    )
    supervisor = supervisor_from_args(args, channel, transport_factory(channel)(url))
    outcomes.append(await supervise(args, supervisor, printer))
    return outcomes


def _tell(text: str) -> None:
    # On stderr: stdout stays the transitions (JSON lines with --format json).
    print(f"linkstate demo: {text}", file=sys.stderr, flush=True)


async def _linger(linger: float | None, url: str) -> None:
    """Keep serving after the story: for ``linger`` seconds, or until Ctrl-C or SIGTERM."""
    import trio

    until = "Ctrl-C" if linger is None else f"{linger:g} s, or Ctrl-C"
    _tell(f"the story is over; still serving {url}/ for {until}")
    with (
        trio.move_on_after(math.inf if linger is None else linger),
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
    ):
        async for _ in signals:
            return  # stopped by the operator: the demo still ends as its story did


async def _serve(
    story: tuple[Scene, ...],
    printer: Printer,
    *,
    task_status: trio.TaskStatus[int],
) -> None:
    await serve_story(story, announce=printer.note, task_status=task_status)


def next_commands(args: argparse.Namespace) -> list[str]:
    """The commands to try after the demo, on its own database; each works as printed."""
    where = f"--db {db_word(args.db)}"
    link = shlex.quote(args.link)
    return [
        f"linkstate status {where}",
        f"linkstate history {link} {where}",
        f"linkstate relink {link} {where}",
    ]


def run(args: argparse.Namespace) -> int:
    """Run ``linkstate demo``: 0 when both links end as scripted (``needs_relink``), else 1.

    The demo is the one command whose expected end is a terminal state: it
    plays a revoked token and a session conflict on purpose, so both links
    ending in ``needs_relink`` is its success, and anything else (a hung or
    broken story) exits 1, except a stop by Ctrl-C or SIGTERM, which is 0 as
    for every command.
    """
    channel = demo_channel(channel_or_exit("websocket"))
    policy_from_args(args, channel.policy)  # report a bad policy before starting
    if args.listen is not None:
        from linkstate.cli.serve import require_serve_extra

        require_serve_extra("demo --listen")
        host, port = args.listen
        if not is_loopback(host):
            raise CommandError(
                f"--listen {host}:{port} is not a loopback address; the demo serves on "
                "loopback only: use --listen 127.0.0.1:PORT (linkstate serve takes a token)"
            )
    elif args.linger is not None:
        raise CommandError("--linger S keeps the --listen server up; give --listen HOST:PORT too")
    if args.db is None:
        args.db = str(Path(tempfile.mkdtemp(prefix="linkstate-demo-")) / "demo.db")
    import trio

    outcomes = trio.run(demo, args)
    if (args.format or default_format(sys.stdout)) == "text":
        print("\ntry next (the demo kept the link in a real database):")
        for command in next_commands(args):
            print(f"  {command}")
    if getattr(args, "stopped_by_signal", False):
        return ExitStatus.ok  # Ctrl-C or SIGTERM: stopped by the operator
    scripted = len(outcomes) == 2 and all(o.state == "needs_relink" for o in outcomes)
    return ExitStatus.ok if scripted else ExitStatus.needs_person
