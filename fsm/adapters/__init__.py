"""Supervise the client libraries people already run.

Each module here is one library's adapter: a :class:`linkstate.runtime.Transport`
that takes the user's own client object (so their handlers keep working),
switches off the library's own reconnect loop and reports every disconnect in
the library's native form (the exception, or the error response) to the
channel's table, which decides. A user handler that raises or takes long is
never mistaken for a disconnect. Each module imports its library, which the
matching extra installs (``pip install 'linkstate[discord]'``, ``[slack]``,
``[telegram]``, ``[matrix]``, ``[whatsapp]``); nothing else in linkstate
imports one. Without it, importing the python-telegram-bot, aiogram,
matrix-nio or neonize adapter raises :class:`LibraryMissingError`, which
names the extra.

- :mod:`linkstate.adapters.discord`: discord.py's ``Client``.
- :mod:`linkstate.adapters.slack`: slack_sdk's Socket Mode ``SocketModeClient`` (aiohttp).
- :mod:`linkstate.adapters.ptb`: python-telegram-bot's ``Application``.
- :mod:`linkstate.adapters.aiogram`: aiogram's ``Dispatcher`` and ``Bot``.
- :mod:`linkstate.adapters.nio`: matrix-nio's ``AsyncClient``.
- :mod:`linkstate.adapters.neonize`: neonize's ``NewAClient`` (WhatsApp through whatsmeow).

The libraries are asyncio-only, so the adapters run on anyio's asyncio back
end: ``asyncio.run(...)`` around a :class:`linkstate.runtime.Supervisor`.
"""

from linkstate.adapters._link import LibraryMissingError

__all__ = ["LibraryMissingError"]
