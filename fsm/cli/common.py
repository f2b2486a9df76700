"""Helpers shared by the subcommands: errors, channel lookup and JSON output."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from enum import IntEnum
from typing import Final, TextIO

from linkstate._channel import BUNDLED_PACKAGE, Channel, ChannelError, load_channel
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
    """Load a channel by name, turning an unknown name into a :class:`CommandError`.

    A bundled channel is imported straight from its module; only another name
    reads the entry-point registry, whose error lists the installed channels.
    """
    bundled = _bundled_channel(name)
    if bundled is not None:
        return bundled
    try:
        return load_channel(name)
    except ChannelError as exc:
        raise CommandError(str(exc)) from exc


def _bundled_channel(name: str) -> Channel | None:
    """The bundled channel ``name``, or None for any other name, without the registry.

    Reading the registry means importlib.metadata and a scan of every
    installed distribution: most of a one-shot command's start-up. A bundled
    channel is registered as ``NAME = "linkstate.channels.NAME:CHANNEL"``
    (tests/test_cli_contract.py holds the two to that), so its module gives the
    same object directly. Anything unexpected falls back to the registry,
    which reports it properly.
    """
    if not name.isidentifier() or name.startswith("_"):
        return None
    module_name = f"{BUNDLED_PACKAGE}.{name}"
    try:
        if importlib.util.find_spec(module_name) is None:
            return None
        channel = getattr(importlib.import_module(module_name), "CHANNEL", None)
    except Exception:
        return None  # the registry's path names the broken module and the fix
    return channel if isinstance(channel, Channel) and channel.name == name else None


def print_json(value: object, stream: TextIO | None = None) -> None:
    """Print ``value`` as one line of JSON with stable key order."""
    print(json.dumps(value, ensure_ascii=False), file=stream or sys.stdout, flush=True)
