"""Supervise a slack_sdk Socket Mode app: the adapter, and a loopback stand-in for Slack.

:class:`SlackSocketModeTransport` takes your
``slack_sdk.socket_mode.aiohttp.SocketModeClient``; a
:class:`linkstate.runtime.Supervisor` over it, with the ``slack`` channel,
decides every reconnect. :class:`LoopbackSlack` is ``apps.connections.open``
and the Socket Mode WebSocket on 127.0.0.1, scripted per attempt with
:class:`SocketSession`, for your tests and the documentation's example.
Needs the extra: ``pip install 'linkstate[slack]'``.
"""

from linkstate.adapters._slack import SlackSocketModeTransport
from linkstate.adapters._slack_server import LoopbackSlack, SocketSession

__all__ = ["LoopbackSlack", "SlackSocketModeTransport", "SocketSession"]
