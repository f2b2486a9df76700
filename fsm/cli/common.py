"""Helpers shared by the subcommands: errors, channel lookup and JSON output."""

from __future__ import annotations

import json
import sys
from enum import IntEnum
from typing import Final, TextIO

from linkstate._channel import Channel, ChannelError, load_channel
from linkstate._errors import LinkstateError

__all__ = ["CommandError", "ExitStatus", "channel_or_exit", "print_json"]


class ExitStatus(IntEnum):
    """What a ``linkstate`` command's exit status means: one table for every command."""

    ok = 0
    """Done; a supervised link ended healthy, or ``stopped`` by the operator."""
    needs_person = 1
    """A supervised link ended ``needs_relink`` or ``failed``, or ``check`` found problems."""
    usage = 2
    """What was typed is wrong; one line names the problem and the fix."""
    store = 3
    """The state store failed: locked, full, corrupt or unwritable."""
    owned_elsewhere = 4
    """Another process or host owns the link."""
    interrupted = 130
    """A second interrupt cut a clean stop short."""


USAGE_ERROR: Final = ExitStatus.usage


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
