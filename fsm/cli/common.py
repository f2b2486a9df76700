"""Helpers shared by the subcommands: errors, channel lookup and JSON output."""

from __future__ import annotations

import json
import sys
from typing import Final, TextIO

from linkstate._channel import Channel, ChannelError, load_channel
from linkstate._errors import LinkstateError

__all__ = ["CommandError", "channel_or_exit", "print_json"]

USAGE_ERROR: Final = 2


class CommandError(LinkstateError):
    """A problem with what the user typed; printed as one line, exit status 2 by default."""

    def __init__(self, message: str, exit_status: int = USAGE_ERROR) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def channel_or_exit(name: str) -> Channel:
    """Load a channel by name, turning an unknown name into a :class:`CommandError`."""
    try:
        return load_channel(name)
    except ChannelError as exc:
        raise CommandError(str(exc)) from exc


def print_json(value: object, stream: TextIO | None = None) -> None:
    """Print ``value`` as one line of JSON with stable key order."""
    print(json.dumps(value, ensure_ascii=False), file=stream or sys.stdout, flush=True)
