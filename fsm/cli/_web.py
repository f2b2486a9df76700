"""What ``linkstate serve`` shows over HTTP: the board of links, and the ASGI app that serves it.

Theory of operation
-------------------
:class:`Board` is the one source of what is shown. At every request it reads
the store's links (in the journal's worker thread, never on the event loop)
and lays the fleet's live status over the links this process supervises: the
page, ``/status`` and the ``linkstate_links`` gauge all read the same
snapshot, so they cannot disagree. Links that another process writes into
the same file (``linkstate demo --db``, a second gateway) are shown from the
store alone, marked as not supervised here.

:func:`build_app` is a Starlette app; hypercorn serves it inside the same
trio loop as the fleet. It is read-only: every route is ``GET`` (and
``HEAD``), and operator actions stay in the command line, whose exact
commands the page prints. Everything on it is escaped, because close reasons
come from remote peers: the HTML is built by :func:`_h` only, the browser
updates swap in fragments the server escaped, and the Content-Security-Policy
allows no inline script at all, so an ``<img onerror>`` that got through
anyway would still run nothing.

Access. On a loopback address the app answers requests whose ``Host`` is a
loopback name (which stops a DNS-rebinding page in the operator's browser
from reading it). Elsewhere ``serve`` requires a token: a request must carry
``Authorization: Bearer TOKEN``, or the cookie that a first visit with
``?token=TOKEN`` sets. ``/healthz`` answers anyone: it tells nothing but that
the loop is alive, and orchestrators probe it without credentials.
"""

from __future__ import annotations

import hmac
import shlex
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import anyio

from linkstate._channel import Channel
from linkstate._lifecycle import State
from linkstate._machine import TransitionRecord
from linkstate.cli._render import ago, describe_verdict, timestamp
from linkstate.cli.common import db_word
from linkstate.runtime._fleet import Fleet, LinkStatus
from linkstate.runtime._metrics import FleetMetrics
from linkstate.store._journal import Journal
from linkstate.store._sqlite import LinkRow, StoredTransition

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = [
    "GROUPS",
    "POLL_SECONDS",
    "Board",
    "LinkView",
    "build_app",
    "operator_command",
]

POLL_SECONDS: Final = 2.0
"""How often the page asks for a fresh fragment."""

# The page's groups, in the order shown. Rules: every state is in exactly
# one group (a test checks it); the states that wait for a person come first,
# because that is what an operator opens the page for; within a group links
# are sorted by id.
GROUPS: Final[tuple[tuple[str, str, tuple[State, ...]], ...]] = (
    ("person", "Needs a person", (State.needs_relink, State.failed)),
    ("trying", "Reconnecting", (State.connecting, State.reconnecting)),
    ("healthy", "Healthy", (State.open,)),
    ("resting", "Stopped or not started", (State.stopped, State.idle)),
)

# Every response carries these. The policy allows scripts and styles from
# this origin only: no inline script, no inline event handler, no plugin.
_HEADERS: Final = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

_COOKIE: Final = "linkstate_token"
_LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_HISTORY_SHOWN: Final = 50


@dataclass(frozen=True, slots=True)
class LinkView:
    """One link as the page and ``/status`` show it; times are wall-clock (Unix seconds).

    Attributes:
        link: The link's id.
        channel: The channel's name.
        state: The lifecycle state.
        since: When it entered ``state``.
        attempts: The reconnect-attempt counter.
        status: The status of the last close.
        code: The symbolic code of the last close.
        rule: The table row that classified the last close.
        verdict: The verdict of the last close.
        reason: The (sanitised) reason text of the last close, as the peer sent it.
        stop_reason: Why a terminal link stopped.
        message: The operator message of a terminal state.
        command: The exact command that brings it back, for a terminal link.
        owner: The process or host holding the link's lease; None without leases.
        supervised: True when this process supervises the link.
        running: True while its supervisor runs here.
        restarts: Crash restarts of its supervisor here.
        error: Its supervisor's latest crash here.
        seq: Transitions ever stored for it (changes with every transition).

    """

    link: str
    channel: str
    state: str
    since: float
    attempts: int
    status: int | None
    code: str | None
    rule: str | None
    verdict: str | None
    reason: str | None
    stop_reason: str | None
    message: str | None
    command: str | None
    owner: str | None
    supervised: bool
    running: bool
    restarts: int
    error: str | None
    seq: int

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict of every field, with ``since`` also as UTC text."""
        return {
            "link": self.link,
            "channel": self.channel,
            "state": self.state,
            "since": self.since,
            "since_utc": timestamp(self.since),
            "attempts": self.attempts,
            "status": self.status,
            "code": self.code,
            "rule": self.rule,
            "verdict": self.verdict,
            "reason": self.reason,
            "stop_reason": self.stop_reason,
            "message": self.message,
            "command": self.command,
            "owner": self.owner,
            "supervised": self.supervised,
            "running": self.running,
            "restarts": self.restarts,
            "error": self.error,
            "seq": self.seq,
        }


def operator_command(state: str, link: str, db: str) -> str | None:
    """The command that brings a terminal link back, spelled to work as pasted; else None."""
    where = f"{shlex.quote(link)} --db {db_word(db)}"
    if state == State.needs_relink:
        return f"linkstate relink {where}"
    if state == State.failed:
        return f"linkstate reset {where}"
    return None


class Board:
    """The links a page shows: the store's, with the fleet's live status laid over them.

    Args:
        journal: The journal of the store ``db``.
        db: The database path, as the operator commands must name it.
        fleet: The fleet this process supervises links in.

    """

    def __init__(self, journal: Journal, db: str, fleet: Fleet) -> None:
        self.journal = journal
        self.db = db
        self.fleet = fleet
        self.links: list[LinkView] = []
        self.metrics = FleetMetrics(fleet, links=self._counted)

    async def refresh(self) -> list[LinkView]:
        """Read the store and the fleet now; the snapshot is also kept in :attr:`links`."""
        rows = {row.link_id: row for row in await self.journal.links()}
        live = {status.link_id: status for status in self.fleet.statuses()}
        wall_minus_clock = time.time() - self.fleet.clock()
        views = []
        for link_id in sorted(rows.keys() | live.keys()):
            views.append(
                self._view(link_id, rows.get(link_id), live.get(link_id), wall_minus_clock)
            )
        self.links = views
        return views

    def counts(self) -> dict[str, int]:
        """How many links of the last snapshot are in each state, every state listed."""
        counts = dict.fromkeys((state.value for state in State), 0)
        for view in self.links:
            counts[view.state] = counts.get(view.state, 0) + 1
        return counts

    async def history(self, link_id: str) -> list[StoredTransition]:
        """The newest stored transitions of ``link_id``, oldest first."""
        return await self.journal.history(link_id, _HISTORY_SHOWN)

    def _counted(self) -> list[tuple[str, str]]:
        return [(view.channel, view.state) for view in self.links]

    def _view(
        self, link_id: str, row: LinkRow | None, status: LinkStatus | None, shift: float
    ) -> LinkView:
        # The fleet's status is the newer truth while a link runs here; the
        # row adds what the status does not carry (rule, reason, seq). Once
        # it no longer runs here the committed row is the truth: the same
        # state for a link that ended here, the new owner's for one taken over.
        if status is not None and (status.running or row is None):
            state, since, attempts = status.state, status.since + shift, status.attempts
            verdict, close, message = status.verdict, status.status, status.message
        else:
            assert row is not None
            state, since, attempts = row.state, row.since, row.attempt
            verdict, close, message = row.verdict, row.status, row.message
        same = row is not None and row.state == state
        return LinkView(
            link=link_id,
            channel=status.channel if status is not None else row.channel if row else "",
            state=state,
            since=since,
            attempts=attempts,
            status=close,
            code=row.code if row is not None and same else None,
            rule=row.rule if row is not None and same else None,
            verdict=verdict,
            reason=row.reason if row is not None and same else None,
            stop_reason=row.stop_reason if row is not None and same else None,
            message=message,
            command=operator_command(state, link_id, self.db),
            owner=None if row is None else row.owner,
            supervised=status is not None,
            running=status is not None and status.running,
            restarts=0 if status is None else status.restarts,
            error=None if status is None else status.error,
            seq=0 if row is None else row.seq,
        )


# -- HTML ---------------------------------------------------------------------


def _h(value: object) -> str:
    """The one way text reaches the page: escaped, quotes included."""
    return escape("" if value is None else str(value), quote=True)


def _link_href(link_id: str) -> str:
    return f"/links/{quote(link_id, safe='')}"


def _page(title: str, fragment_url: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_h(title)}</title>"
        '<link rel="stylesheet" href="/static/page.css"></head><body>'
        f'<header><a href="/">linkstate</a> <span id="updated" class="muted"></span></header>'
        f'<main id="live" data-fragment="{_h(fragment_url)}" '
        f'data-every="{POLL_SECONDS * 1000:.0f}">{body}</main>'
        '<script src="/static/page.js"></script></body></html>\n'
    )


def _card(view: LinkView, now: float) -> str:
    close = describe_verdict(view.status, view.rule, view.verdict)
    parts = [
        f'<article class="link state-{_h(view.state)}" data-link="{_h(view.link)}">',
        f'<h3><a href="{_h(_link_href(view.link))}">{_h(view.link)}</a> '
        f'<span class="badge">{_h(view.state)}</span> '
        f'<span class="muted">{_h(view.channel)}</span></h3>',
        f'<p class="muted">since {_h(timestamp(view.since))} ({_h(ago(view.since, now))}); '
        f"attempts {view.attempts}",
    ]
    if close:
        parts.append(f"; last close {_h(close)}")
    parts.append("</p>")
    if view.reason:
        parts.append(f'<p class="reason">close reason: <q>{_h(view.reason)}</q></p>')
    if view.message:
        parts.append(f'<p class="message">{_h(view.message)}</p>')
    if view.command:
        parts.append(f'<p>run: <code class="command">{_h(view.command)}</code></p>')
    if view.error:
        parts.append(f'<p class="error">supervisor crashed: {_h(view.error)}</p>')
    if not view.supervised:
        parts.append('<p class="muted">not supervised by this process (read from the store)</p>')
    parts.append("</article>")
    return "".join(parts)


def board_fragment(views: Sequence[LinkView], db: str, now: float) -> str:
    """The groups of links, "Needs a person" first; what the page swaps in on each poll."""
    if not views:
        return f'<p class="muted">no links in {_h(db)} yet</p>'
    by_state: dict[str, list[LinkView]] = {}
    for view in views:
        by_state.setdefault(view.state, []).append(view)
    sections = []
    known = {state.value for _, _, states in GROUPS for state in states}
    groups = [*GROUPS, ("other", "Other", tuple(sorted(by_state.keys() - known)))]
    for group_id, title, states in groups:
        members = [view for state in states for view in by_state.get(str(state), [])]
        if not members:
            continue
        cards = "".join(_card(view, now) for view in sorted(members, key=lambda v: v.link))
        sections.append(
            f'<section class="group" id="group-{group_id}"><h2>{_h(title)} '
            f'<span class="count">{len(members)}</span></h2>{cards}</section>'
        )
    return "".join(sections)


def link_fragment(view: LinkView, history: Sequence[StoredTransition], svg: str, now: float) -> str:
    """One link's page: its card, its diagram, and its history, newest first."""
    rows = []
    for entry in reversed(history):
        record = entry.record
        close = describe_verdict(record.status, record.rule, record.verdict)
        rows.append(
            "<tr>"
            f"<td>{_h(timestamp(entry.wall))}</td>"
            f"<td>{_h(record.src)} &rarr; {_h(record.dst)}</td>"
            f"<td>{_h(record.trigger)}</td><td>{_h(close)}</td>"
            f"<td>{_h(record.reason)}</td><td>{_h(record.message)}</td>"
            "</tr>"
        )
    table = (
        '<table class="history"><thead><tr><th>time (UTC)</th><th>transition</th>'
        "<th>trigger</th><th>close</th><th>reason</th><th>message</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="muted">no stored history</p>'
    )
    return (
        f"{_card(view, now)}"
        f'<figure class="diagram" data-state="{_h(view.state)}">{svg}</figure>'
        f"<h2>History</h2>{table}"
    )


# -- the app ------------------------------------------------------------------


class Access:
    """Who may read the app: loopback hosts, or a token (see the module header).

    Args:
        token: The token every request must carry, or None on loopback.
        loopback: True when the app listens on a loopback address only.

    """

    def __init__(self, token: str | None, *, loopback: bool) -> None:
        self.token = token
        self.loopback = loopback

    def allowed(self, headers: dict[str, str], cookies: dict[str, str]) -> bool:
        """True when a request with these headers and cookies may read the app."""
        if self.token is None:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            return not self.loopback or name in _LOOPBACK_NAMES
        given = headers.get("authorization", "")
        bearer = given[7:] if given.lower().startswith("bearer ") else ""
        return self.matches(bearer) or self.matches(cookies.get(_COOKIE, ""))

    def matches(self, given: str) -> bool:
        """True when ``given`` is the token (compared in constant time)."""
        if self.token is None:
            return False
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())


Renderer = Callable[[str, str, Sequence[TransitionRecord]], Awaitable[str]]
"""Draws the live diagram of (channel, state, records) as inline SVG markup."""


class _Routes:
    """The app's endpoints; each reads a fresh snapshot of the board."""

    def __init__(
        self,
        board: Board,
        access: Access,
        diagram: Renderer,
        static: dict[str, tuple[str, bytes]],
    ) -> None:
        from prometheus_client import CollectorRegistry

        self.board = board
        self.access = access
        self.diagram = diagram
        self.static = static
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(board.metrics)

    def guarded(
        self, handler: Callable[[Request], Awaitable[Response]], *, public: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind the access check, with the security headers on its answer."""

        async def endpoint(request: Request) -> Response:
            if not public:
                token = request.query_params.get("token")
                if token is not None and self.access.token is not None:
                    return self._login(request, token)
                if not self.access.allowed(dict(request.headers), dict(request.cookies)):
                    return self._refused()
            response = await handler(request)
            response.headers.update(_HEADERS)
            return response

        return endpoint

    def _login(self, request: Request, token: str) -> Response:
        from starlette.responses import Response

        # A first visit with ?token= sets the cookie, then drops the token from the URL.
        if not self.access.matches(token):
            return self._refused()
        response = Response(status_code=303, headers={"location": request.url.path})
        response.set_cookie(_COOKIE, token, httponly=True, samesite="strict")
        return response

    def _refused(self) -> Response:
        from starlette.responses import PlainTextResponse

        if self.access.token is None:
            text = "this page answers on loopback names only (127.0.0.1, localhost, ::1)\n"
            return PlainTextResponse(text, status_code=421, headers=_HEADERS)
        text = "a token is required: send Authorization: Bearer TOKEN, or open /?token=TOKEN\n"
        return PlainTextResponse(
            text, status_code=401, headers={**_HEADERS, "www-authenticate": "Bearer"}
        )

    async def healthz(self, request: Request) -> Response:
        """``ok``: the event loop answers."""
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("ok\n")

    async def status(self, request: Request) -> Response:
        """Every link as JSON, with the count per state."""
        from starlette.responses import JSONResponse

        views = await self.board.refresh()
        body = {
            "links": [view.to_json() for view in views],
            "counts": self.board.counts(),
            "generated": time.time(),
        }
        return JSONResponse(body)

    async def metrics(self, request: Request) -> Response:
        """The Prometheus exposition."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from starlette.responses import Response

        await self.board.refresh()
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def index(self, request: Request) -> Response:
        """The status page."""
        from starlette.responses import HTMLResponse

        body = await self._board_body()
        return HTMLResponse(_page(f"linkstate: {self.board.db}", "/fragment", body))

    async def fragment(self, request: Request) -> Response:
        """The status page's groups, for its live updates."""
        from starlette.responses import HTMLResponse

        return HTMLResponse(await self._board_body())

    async def link_page(self, request: Request) -> Response:
        """One link's page."""
        from starlette.responses import HTMLResponse

        link_id = request.path_params["link"]
        body = await self._link_body(link_id)
        if body is None:
            return self._unknown(link_id)
        title, fragment = f"linkstate: {link_id}", f"{_link_href(link_id)}/fragment"
        return HTMLResponse(_page(title, fragment, body))

    async def link_fragment(self, request: Request) -> Response:
        """One link's page body, for its live updates."""
        from starlette.responses import HTMLResponse

        link_id = request.path_params["link"]
        body = await self._link_body(link_id)
        return self._unknown(link_id) if body is None else HTMLResponse(body)

    async def asset(self, request: Request) -> Response:
        """The page's script or style sheet."""
        from starlette.responses import PlainTextResponse, Response

        found = self.static.get(request.path_params["name"])
        if found is None:
            return PlainTextResponse("no such file\n", status_code=404)
        media, data = found
        return Response(data, media_type=media)

    async def _board_body(self) -> str:
        return board_fragment(await self.board.refresh(), self.board.db, time.time())

    async def _link_body(self, link_id: str) -> str | None:
        views = {view.link: view for view in await self.board.refresh()}
        view = views.get(link_id)
        if view is None:
            return None
        history = await self.board.history(link_id)
        svg = await self.diagram(view.channel, view.state, [entry.record for entry in history])
        return link_fragment(view, history, svg, time.time())

    def _unknown(self, link_id: str) -> Response:
        from starlette.responses import PlainTextResponse

        text = f"no link {link_id!r} in {self.board.db}; see / for the links\n"
        return PlainTextResponse(text, status_code=404, headers=_HEADERS)


def build_app(
    board: Board,
    access: Access,
    diagram: Renderer,
    *,
    static: dict[str, tuple[str, bytes]],
) -> Starlette:
    """The read-only ASGI app: ``/healthz``, ``/status``, ``/metrics``, ``/`` and link pages."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    app = _Routes(board, access, diagram, static)
    guarded = app.guarded
    routes = [
        Route("/healthz", guarded(app.healthz, public=True), methods=["GET"]),
        Route("/status", guarded(app.status), methods=["GET"]),
        Route("/metrics", guarded(app.metrics), methods=["GET"]),
        Route("/", guarded(app.index), methods=["GET"]),
        Route("/fragment", guarded(app.fragment), methods=["GET"]),
        Route("/links/{link:path}/fragment", guarded(app.link_fragment), methods=["GET"]),
        Route("/links/{link:path}", guarded(app.link_page), methods=["GET"]),
        Route("/static/{name}", guarded(app.asset, public=True), methods=["GET"]),
    ]
    return Starlette(routes=routes)


def diagram_renderer(channels: Callable[[str], Channel | None]) -> Renderer:
    """Draw live diagrams with the machine's Graphviz renderer, in a worker thread, cached.

    ``channels`` finds a stored link's channel by name (None when it is not
    installed: the bare lifecycle is drawn then).
    """
    from linkstate.diagrams._dot import to_dot
    from linkstate.diagrams._output import DiagramError
    from linkstate.diagrams._renderer import RendererNotFoundError, RenderError, render
    from linkstate.diagrams._trace import RECENT_STEPS, live_picture

    cache: dict[str, str] = {}

    async def draw(channel: str, state: str, records: Sequence[TransitionRecord]) -> str:
        recent = list(records)[-RECENT_STEPS:]
        try:
            source = to_dot(live_picture(channels(channel), state, recent))
        except DiagramError as exc:
            return f'<p class="error">{_h(exc)}</p>'
        svg = cache.get(source)
        if svg is None:
            try:
                data = await anyio.to_thread.run_sync(render, source, "svg")
            except (RendererNotFoundError, RenderError) as exc:
                return f'<p class="error">{_h(exc)}</p>'
            svg = _inline_svg(data.decode())
            if len(cache) > 256:
                cache.clear()  # bounded: a page views a few links; the drawing is cheap
            cache[source] = svg
        return svg

    return draw


def _inline_svg(document: str) -> str:
    """The ``<svg>`` element of a Graphviz SVG document, without its XML prolog."""
    start = document.find("<svg")
    return document[start:] if start >= 0 else ""
