"""Supervise the client libraries people already run.

Each module here is one library's adapter: a :class:`linkstate.runtime.Transport`
that takes the user's own client object (so their handlers keep working),
switches off the library's own reconnect loop and reports every disconnect in
the library's native form to the channel's table, which decides. Each module
imports its library, which the matching extra installs
(``pip install 'linkstate[discord]'``); nothing else in linkstate imports one.

- :mod:`linkstate.adapters.discord`: discord.py's ``Client``.
- :mod:`linkstate.adapters.slack`: slack_sdk's Socket Mode ``SocketModeClient`` (aiohttp).

The libraries are asyncio-only, so the adapters run on anyio's asyncio back
end: ``asyncio.run(...)`` around a :class:`linkstate.runtime.Supervisor`.
"""
