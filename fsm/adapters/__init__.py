"""Adapters: the client libraries people already run, supervised as transports.

Each module takes the user's own client object (so its handlers keep
working), switches off the library's own retry loop, and reports every
disconnect in the library's native form (the exception, or the error
response) to the channel's table; the supervisor decides the rest. A user
handler that raises or takes long is never mistaken for a disconnect.

The modules import their client library when they load, so each needs its
extra (``linkstate[telegram]``, ``linkstate[matrix]``, ``linkstate[whatsapp]``);
without it, importing the module raises :class:`LibraryMissingError`, which
names the extra. This package itself imports no client library, and the core
never imports an adapter.
The libraries are asyncio-only: run the supervisor from ``asyncio.run`` (or
anyio's asyncio back end).

* :mod:`linkstate.adapters.ptb`: python-telegram-bot, :class:`~linkstate.adapters.ptb.PTBTransport`.
* :mod:`linkstate.adapters.aiogram`: aiogram, :class:`~linkstate.adapters.aiogram.AiogramTransport`.
* :mod:`linkstate.adapters.nio`: matrix-nio, :class:`~linkstate.adapters.nio.NioTransport`.
* :mod:`linkstate.adapters.neonize`: neonize (whatsmeow),
  :class:`~linkstate.adapters.neonize.NeonizeTransport`.
"""

from linkstate.adapters._link import LibraryMissingError

__all__ = ["LibraryMissingError"]
