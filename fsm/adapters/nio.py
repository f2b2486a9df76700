"""matrix-nio, supervised: the ``AsyncClient.sync`` loop; ``SyncError`` and exceptions are closes.

:class:`NioTransport` takes the user's own ``nio.AsyncClient``, logged in
(``restore_login``, or ``login`` before). nio retries inside every request
by default: a 429 / ``M_LIMIT_EXCEEDED`` and a connection error or timeout
are slept on and retried forever, below ``sync_forever`` and out of anyone's
sight. The adapter switches that off (``max_limit_exceeded=0`` and
``max_timeouts=0`` on the client's config) and runs ``sync`` itself: a
``SyncError`` (nio *returns* it) or an exception ends the connection, in that
native form, and the ``matrix`` channel's table decides. So
``M_UNKNOWN_TOKEN`` stops in ``needs_relink`` with the soft-logout
instructions or the destroyed-session ones, and ``M_LIMIT_EXCEEDED`` retries
no sooner than its ``retry_after_ms``.

* **Connect** is one immediate ``sync`` (``timeout=0``): it proves the token.
  A client with no access token is refused as ``M_MISSING_TOKEN`` (fatal),
  never retried; after a soft logout nio itself clears the token.
* **Callbacks** (``add_event_callback`` and the other ``add_*_callback``, response
  callbacks included) run inline inside ``sync`` in nio, so one that raises
  would escape ``sync`` and one that is slow would stall it. The adapter
  wraps each one, those added later too, so that it runs in the adapter's
  own task, one at a time and in order, after the sync that delivered it:
  a raise is logged, a slow callback delays only the callbacks after it.
* **Activity** for the watchdog is each sync response: set ``watchdog`` above
  ``sync_timeout`` (milliseconds) plus a margin.
* After each sync the adapter does what ``sync_forever`` does: response
  callbacks, to-device messages, and the key upload, query and claim an
  encrypted client needs.
* ``aclose()`` (or leaving ``async with``) waits for running callbacks, then
  closes the client's HTTP session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final

from anyio.abc import TaskGroup

from linkstate._errors import ArgumentError
from linkstate.adapters._connection import AdapterConnection
from linkstate.adapters._link import (
    DEFAULT_DRAIN_TIMEOUT,
    ClosingTransport,
    Handlers,
    LibraryMissingError,
    polled_connection,
    whole_number,
)
from linkstate.runtime import ConnectFailed

try:
    import nio
except ImportError as exc:
    raise LibraryMissingError(__name__, "matrix-nio", "matrix") from exc

__all__ = ["DEFAULT_SYNC_TIMEOUT", "NioTransport"]

DEFAULT_SYNC_TIMEOUT: Final = 30_000
"""Milliseconds one ``/sync`` long poll may be held by the server (nio's own default)."""

# Every list of callbacks nio runs inline (``ClientCallback`` objects).
_CALLBACK_LISTS: Final = (
    "event_callbacks",
    "ephemeral_callbacks",
    "to_device_callbacks",
    "presence_callbacks",
    "global_account_data_callbacks",
    "room_account_data_callbacks",
    "response_callbacks",
)


class _Deferred:
    """A user callback nio calls inline, handed to the adapter's handler task instead."""

    def __init__(self, original: Callable[..., Any], handlers: Handlers, kind: str) -> None:
        self.original = original
        self._handlers = handlers
        self._kind = kind

    def __call__(self, *args: Any) -> None:
        what = f"{type(args[-1]).__name__} ({self._kind})" if args else self._kind
        self._handlers.submit(what, lambda: self.original(*args))


class NioTransport(ClosingTransport):
    """A transport for one matrix-nio ``AsyncClient``, synced by the supervisor.

    Args:
        client: The user's AsyncClient, logged in, its callbacks added.
        sync_timeout: Milliseconds each ``/sync`` may be held open.
        sync_filter: A filter id or filter dict for every sync, as ``sync`` takes it.
        set_presence: The presence to sync with (``online``, ``offline``...), or None.
        drain_timeout: Seconds ``aclose()`` waits for running callbacks.

    Use it as ``async with NioTransport(client) as transport:`` around the supervisor.

    """

    def __init__(
        self,
        client: nio.AsyncClient,
        *,
        sync_timeout: int = DEFAULT_SYNC_TIMEOUT,
        sync_filter: str | dict[str, Any] | None = None,
        set_presence: str | None = None,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    ) -> None:
        if not isinstance(client, nio.AsyncClient):
            raise ArgumentError(
                f"NioTransport takes a nio.AsyncClient, not {type(client).__name__}: "
                "NioTransport(AsyncClient(HOMESERVER, USER_ID))"
            )
        self.client = client
        self.sync_timeout = whole_number("sync_timeout", sync_timeout, "milliseconds")
        self.sync_filter = sync_filter
        self.set_presence = set_presence
        self.drain_timeout = drain_timeout
        self.handlers = Handlers("matrix-nio", sequential=True)

    async def connect(self, tasks: TaskGroup) -> AdapterConnection:
        """Switch nio's retries off, defer the callbacks, and sync once to prove the token."""
        client = self.client
        # AsyncClientConfig is a frozen dataclass: replace it, keeping the user's other settings.
        client.config = dataclasses.replace(client.config, max_limit_exceeded=0, max_timeouts=0)
        if not client.access_token:
            raise ConnectFailed(
                {
                    "errcode": "M_MISSING_TOKEN",
                    "error": "the nio client has no access token; call login() or "
                    "restore_login() before supervising it",
                }
            )
        connection = polled_connection()
        first = await self._sync(0)
        if isinstance(first, nio.ErrorResponse):
            raise ConnectFailed(first)
        await self._after(first)
        tasks.start_soon(self._loop, connection)
        return connection

    async def _loop(self, connection: AdapterConnection) -> None:
        while True:
            try:
                response = await self._sync(self.sync_timeout)
                if isinstance(response, nio.ErrorResponse):
                    connection.end(response)  # the SyncError nio returned: the table reads it
                    return
                connection.touch()
                await self._after(response)
            except Exception as exc:
                connection.end(exc)
                return

    async def _sync(self, timeout: int) -> object:
        self._defer_callbacks()  # callbacks added since the last sync too
        return await self.client.sync(
            timeout=timeout, sync_filter=self.sync_filter, set_presence=self.set_presence
        )

    async def _after(self, response: object) -> None:
        """What ``sync_forever`` does after each sync (its callbacks now deferred)."""
        client = self.client
        await client.run_response_callbacks([response])
        await client.send_to_device_messages()
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())

    def _defer_callbacks(self) -> None:
        for kind in _CALLBACK_LISTS:
            for callback in getattr(self.client, kind, ()):
                if not isinstance(callback.func, _Deferred):
                    callback.func = _Deferred(callback.func, self.handlers, kind)

    async def aclose(self) -> None:
        """Wait for running callbacks, then close the client's HTTP session."""
        await self.handlers.aclose(self.drain_timeout)
        await self.client.close()
