"""``linkstate serve --db DB``: supervise a store's links as a fleet; serve their status over HTTP.

One trio loop runs both: the fleet that supervises the links given with
``--link ID=CHANNEL:URL`` (resuming each from the store), and hypercorn
serving :func:`linkstate.cli._web.build_app`: ``/healthz``, ``/status``
(JSON), ``/metrics`` (Prometheus) and the status page ``/``. Links stored in
the database without a ``--link`` are shown from the store, not supervised:
a link another process is running, or one that waits for a person.

A link that an operator brings back with ``linkstate relink`` or ``reset``
(from another shell, on the same database) is started again here within a
few seconds: the store is the truth, and this process looks at it.

Signals. The first SIGTERM or SIGINT stops every link cleanly (each ends in
``stopped``, committed to the store), stops serving, and exits 0; a second
one cuts that short with exit status 130. Under systemd (``Type=notify``) it
sends ``READY=1`` once it serves, ``STATUS=`` with the count of links per
state as they change, and ``STOPPING=1`` when it begins to stop.

Safe by default: it listens on 127.0.0.1 unless ``--listen`` says otherwise,
and on any other address it refuses to start without a token.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from linkstate._channel import Channel
from linkstate._lifecycle import State
from linkstate._verdicts import OperatorCommands
from linkstate.cli.common import CommandError, ExitStatus, db_word

if TYPE_CHECKING:
    import trio
    from hypercorn.config import Config
    from hypercorn.typing import Framework
    from starlette.applications import Starlette

    from linkstate.cli._web import Board
    from linkstate.runtime._supervisor import Transport
    from linkstate.store._journal import Writer

__all__ = [
    "DEFAULT_LISTEN",
    "MIN_TOKEN_LENGTH",
    "ORDER",
    "Endpoint",
    "is_loopback",
    "open_board",
    "parse_link",
    "parse_listen",
    "register",
    "require_serve_extra",
    "run",
    "start_http",
]

ORDER: Final = 75

DEFAULT_LISTEN: Final = "127.0.0.1:9473"
"""Loopback, so that nothing outside this machine can read the page by default."""

MIN_TOKEN_LENGTH: Final = 16
"""A token shorter than this is refused: it would be guessable."""

TOKEN_VARIABLE: Final = "LINKSTATE_TOKEN"
"""The environment variable a token may come from, instead of ``--token-file``."""

# How often the store is read for links an operator brought back, and how
# often systemd's STATUS= line is refreshed when the counts changed.
_LOOK_SECONDS: Final = 2.0

_log: Final = logging.getLogger("linkstate.serve")

GRACEFUL_SECONDS: Final = 2.0
"""How long open HTTP requests (the page's event stream) get to finish at a stop."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A link to supervise: its id, its channel, and the URL its transport connects to."""

    link: str
    channel: str
    url: str


def parse_link(text: str) -> Endpoint:
    """Argparse type for ``--link ID=CHANNEL:URL``."""
    link, sep, rest = text.partition("=")
    channel, colon, url = rest.partition(":")
    if not (sep and colon and link and channel and url):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not ID=CHANNEL:URL; write it like acct1=websocket:ws://127.0.0.1:8765/"
        )
    return Endpoint(link, channel, url)


def parse_listen(text: str) -> tuple[str, int]:
    """Argparse type for ``--listen HOST:PORT`` (``[::1]:PORT`` for IPv6)."""
    host, sep, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not sep or not host or not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT with a port from 0 to 65535; write it like {DEFAULT_LISTEN}"
        )
    return host, port


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="supervise a store's links and serve their status page, /status and /metrics",
        description=(
            "Supervise the links given with --link (resumed from the state database) in one "
            "fleet, and serve over HTTP from the same process: /healthz, /status (JSON), "
            "/metrics (Prometheus) and a live status page at /, with every link of the "
            "database, 'needs a person' first. Read-only: operator actions stay in the "
            "command line. SIGTERM or Ctrl-C stops every link as stopped and exits 0. "
            "Needs the extra: pip install 'linkstate[serve]'."
        ),
    )
    parser.add_argument(
        "--db", metavar="PATH", required=True, help="the SQLite state database (created if new)"
    )
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=parse_listen(DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"where to serve HTTP (default {DEFAULT_LISTEN}); port 0 picks a free one. "
        "Any address but loopback needs a token",
    )
    parser.add_argument(
        "--link",
        dest="links",
        type=parse_link,
        action="append",
        default=[],
        metavar="ID=CHANNEL:URL",
        help="supervise link ID with CHANNEL's transport on URL (repeat for more links)",
    )
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        default=None,
        help=f"a file holding the token every request must carry (or set ${TOKEN_VARIABLE}); "
        "required to listen on anything but loopback",
    )
    parser.add_argument(
        "--writer",
        choices=("thread", "process"),
        default="thread",
        help="where the journal writes the database: a worker thread (default), or a child "
        "process with its own interpreter lock, for many links changing state at once "
        "(SQLite only)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every transition to stderr"
    )
    parser.set_defaults(run=run)


Planned = tuple[Endpoint, Channel, "Transport"]
"""A link to supervise: where, with which channel, and its transport."""


def _token(args: argparse.Namespace) -> str | None:
    """The token from ``--token-file`` or the environment; a bad one is a CommandError."""
    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(
                f"cannot read the token file {args.token_file}: {exc}; "
                "give a readable file holding the token"
            ) from exc
        where = f"the token file {args.token_file}"
    else:
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
        where = f"${TOKEN_VARIABLE}"
        if not token:
            return None
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise CommandError(
            f"{where} holds a token of {len(token)} characters or with spaces; use at least "
            f"{MIN_TOKEN_LENGTH} characters without spaces, such as the output of "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(24))'`"
        )
    return token


def _prepare(args: argparse.Namespace) -> tuple[str | None, list[Planned]]:
    """Check everything typed before anything starts: the extra, the token, the links."""
    require_serve_extra("serve")
    from linkstate.cli._store import stored_channel
    from linkstate.cli.watch import transport_from_args

    host, port = args.listen
    token = _token(args)
    if token is None and not is_loopback(host):
        raise CommandError(
            f"--listen {host}:{port} is not a loopback address, and anyone who reaches it would "
            f"read every link; give a token with --token-file PATH (or ${TOKEN_VARIABLE}), "
            "or listen on 127.0.0.1"
        )
    seen: set[str] = set()
    links = []
    for endpoint in args.links:
        if endpoint.link in seen:
            raise CommandError(f"--link {endpoint.link}=... is given twice; give each link id once")
        seen.add(endpoint.link)
        channel = stored_channel(endpoint.channel)  # `demo` too, for the demo's database
        links.append((endpoint, channel, transport_from_args(channel, endpoint.url)))
    return token, links


def require_serve_extra(command: str) -> None:
    """Refuse, in one line naming the fix, when the ``serve`` extra is not installed."""
    try:
        import hypercorn  # noqa: F401
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        raise CommandError(
            f"linkstate {command} needs {exc.name}, which is not installed; "
            "pip install 'linkstate[serve]'"
        ) from exc


async def start_http(
    nursery: trio.Nursery,
    board: Board,
    listen: tuple[str, int],
    token: str | None,
    stop_serving: trio.Event,
) -> tuple[str, trio.Event]:
    """Serve :func:`~linkstate.cli._web.build_app` for ``board`` in ``nursery``.

    It serves until ``stop_serving`` is set. Returns the URL it listens on
    (port 0 becomes the port picked) and an event set once it has stopped. A
    port it cannot bind is a CommandError naming the address.
    """
    import trio
    from hypercorn.trio import serve

    host, port = listen
    served = trio.Event()

    async def serve_http(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(
                # Both follow the ASGI spec; their type declarations differ.
                cast("Framework", _app(board, host, token)),
                _config(host, port),
                shutdown_trigger=stop_serving.wait,
                task_status=task_status,
            )
        finally:
            served.set()

    try:
        binds: list[str] = await nursery.start(serve_http)
    except (OSError, BaseExceptionGroup) as exc:
        # hypercorn binds inside its own nurseries: the OSError comes wrapped.
        refused = _os_error(exc)
        if refused is None:
            raise
        raise CommandError(
            f"cannot listen on {host}:{port}: {refused.strerror or refused}; "
            "choose another --listen HOST:PORT"
        ) from exc
    return binds[0], served


def _config(host: str, port: int) -> Config:
    from hypercorn.config import Config

    config = Config()
    bind_host = f"[{host}]" if ":" in host else host
    config.bind = [f"{bind_host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("linkstate.http")
    config.include_server_header = False
    config.graceful_timeout = GRACEFUL_SECONDS
    return config


def _app(board: Board, host: str, token: str | None) -> Starlette:
    from linkstate.cli._assets import STATIC
    from linkstate.cli._web import Access, build_app, diagram_renderer

    access = Access(token, loopback=is_loopback(host))
    return build_app(board, access, diagram_renderer(_channel_named), static=STATIC)


@asynccontextmanager
async def open_board(db: str, writer: Writer = "thread") -> AsyncIterator[Board]:
    """The store ``db`` (created if new), its journal and a fleet, as the board the app shows.

    Store errors inside become CommandErrors with their exit status.
    """
    from linkstate.cli._store import open_store, store_errors
    from linkstate.cli._web import Board
    from linkstate.runtime._fleet import open_fleet
    from linkstate.store._journal import open_journal
    from linkstate.store._sqlite import SQLiteStore

    where = shlex.quote(db)
    commands = OperatorCommands(
        reset=f"linkstate reset {{link}} --db {where}",
        relink=f"linkstate relink {{link}} --db {where}",
    )
    with store_errors(), open_store(db, create=True) as store:
        if writer == "process" and not isinstance(store, SQLiteStore):
            raise CommandError(
                f"--writer process writes a SQLite database, and --db {db_word(db)} is not "
                "one; drop --writer process (PostgreSQL is written from this process)",
                ExitStatus.usage,
            )
        async with (
            open_journal(store, writer=writer) as journal,
            open_fleet(journal=journal, commands=commands) as fleet,
        ):
            yield Board(journal, db, fleet)


def run(args: argparse.Namespace) -> int:
    """Run ``linkstate serve``: 0 after a clean stop, 130 when a second signal cut it short."""
    import trio

    from linkstate.cli._supervise import configure_logging

    token, links = _prepare(args)
    configure_logging(verbose=args.verbose)
    return trio.run(_Service(args, token, links).run)


class _Service:
    """One run of ``serve``: the store, the fleet, the HTTP server and the signals, in one loop."""

    def __init__(self, args: argparse.Namespace, token: str | None, links: list[Planned]) -> None:
        from linkstate.cli._systemd import Notifier

        self.args = args
        self.token = token
        self.links = links
        self.notifier = Notifier()
        self.cut_short = False
        self.nursery: trio.Nursery | None = None

    async def run(self) -> int:
        import trio

        async with (
            open_board(self.args.db, self.args.writer) as board,
            trio.open_nursery() as nursery,
        ):
            self.nursery = nursery
            for endpoint, channel, transport in self.links:
                board.fleet.start(endpoint.link, channel, transport)
            await self._serve(nursery, board)
            nursery.cancel_scope.cancel()
        if self.cut_short:
            raise CommandError(
                "a second interrupt cut the clean stop short; links still live may not be "
                "recorded as stopped (they resume where they were on the next start)",
                ExitStatus.interrupted,
            )
        return ExitStatus.ok

    def _cut_short(self) -> None:
        self.cut_short = True
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()

    async def _serve(self, nursery: trio.Nursery, board: Board) -> None:
        """Serve until the first signal; then stop every link, then stop serving."""
        import trio

        from linkstate.cli._supervise import stop_on_signals
        from linkstate.cli._systemd import status_line

        stopping, stop_serving = trio.Event(), trio.Event()
        url, served = await start_http(nursery, board, self.args.listen, self.token, stop_serving)
        await board.refresh()
        print(f"linkstate serve: {url}/ ({len(self.links)} supervised)", flush=True)
        self.notifier.ready(status_line(board.counts()))
        await nursery.start(stop_on_signals, stopping.set, stopping.is_set, self._cut_short)
        nursery.start_soon(self._look, board, stopping)
        await stopping.wait()
        self.notifier.stopping("stopping every link")
        board.fleet.stop_all()
        for endpoint, _, _ in self.links:
            await board.fleet.wait(endpoint.link)
        stop_serving.set()
        with trio.move_on_after(GRACEFUL_SECONDS + 1.0):
            await served.wait()
        await board.refresh()
        final = f"stopped; {status_line(board.counts())}"
        self.notifier.status(final)
        print(f"linkstate serve: {final}", flush=True)

    async def _look(self, board: Board, stopping: trio.Event) -> None:
        """Restart links an operator brought back; keep systemd's STATUS= line current."""
        import trio

        from linkstate.cli._systemd import status_line

        last = ""
        while True:
            await trio.sleep(_LOOK_SECONDS)
            if stopping.is_set():
                return
            await self._restart_brought_back(board)
            line = status_line(board.counts())
            if line != last:
                self.notifier.status(line)
                last = line

    async def _restart_brought_back(self, board: Board) -> None:
        """Start again each supervised link that ended here and an operator reset to ``idle``."""
        from linkstate.cli._supervise import outcome_status

        await board.refresh()  # also the snapshot the STATUS= line counts
        for endpoint, channel, transport in self.links:
            if board.fleet.status(endpoint.link).running:
                continue
            # Only a link that ended here waiting for a person: never one that
            # another owner took over (taking it back is how two hosts fight
            # over one session), nor one stopped or crashed for good.
            outcome = await board.fleet.wait(endpoint.link)
            if outcome is None or outcome_status(outcome) is not ExitStatus.needs_person:
                continue
            row = await board.journal.load(endpoint.link)
            if row is not None and row.state == State.idle:
                _log.info("link %s: brought back by an operator; starting it", endpoint.link)
                board.fleet.start(endpoint.link, channel, transport)


def _os_error(exc: BaseException) -> OSError | None:
    """``exc`` if it is an OSError, else the first OSError in its groups, else None."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        return next((e for e in map(_os_error, exc.exceptions) if e is not None), None)
    return None


def _channel_named(name: str) -> Channel | None:
    from linkstate._channel import ChannelError
    from linkstate.cli._store import stored_channel

    try:
        return stored_channel(name)
    except (ChannelError, CommandError):
        return None
