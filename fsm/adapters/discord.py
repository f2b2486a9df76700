"""Supervise a discord.py bot: the adapter, and a loopback stand-in for Discord to test it on.

:class:`DiscordTransport` takes your ``discord.Client`` (or ``commands.Bot``)
and its token; a :class:`linkstate.runtime.Supervisor` over it, with the
``discord`` channel, decides every reconnect. :class:`LoopbackDiscord` is
Discord's login API and gateway on 127.0.0.1, scripted per connection with
:class:`GatewaySession`, for your tests and the documentation's example.
Needs the extra: ``pip install 'linkstate[discord]'``.
"""

from linkstate.adapters._discord import DiscordTransport
from linkstate.adapters._discord_server import GatewaySession, LoopbackDiscord

__all__ = ["DiscordTransport", "GatewaySession", "LoopbackDiscord"]
