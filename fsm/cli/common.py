"""Helpers shared by the subcommands: errors, channel lookup and JSON output."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shlex
import sys
from enum import IntEnum
from typing import Final, TextIO

from linkstate._channel import BUNDLED_PACKAGE, Channel, ChannelError, load_channel
from linkstate._errors import LinkstateError
from linkstate._events import sanitise_reason

__all__ = [
    "CommandError",
    "ExitStatus",
    "channel_or_exit",
    "db_word",
    "link_id",
    "print_json",
    "reader_gone",
    "shell_word",
    "shown",
]


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


def reader_gone() -> None:
    """Point stdout at devnull: its reader went away (``linkstate status | head -1``).

    The Python documentation's recipe: later writes, and the flush at exit,
    then go nowhere instead of raising BrokenPipeError again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real stdout: nothing to redirect
        pass


def link_id(text: str) -> str:
    """Argparse type of ``--link ID`` and ``LINK``: any text, but text it must be.

    Python hands over bytes that are not UTF-8 as lone surrogates, which no
    database, log or terminal can take; say so, instead of a traceback later.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(
            f"{text!a} is not valid UTF-8 text; give the link an id in UTF-8"
        ) from None
    return text


def shown(text: str) -> str:
    """``text`` as text output shows it: a user's ids and notes sanitised like network text.

    Escape sequences, CR/LF and bidi overrides become spaces, as in a close's
    reason (:func:`linkstate._events.sanitise_reason`); nothing is cut short.
    """
    return sanitise_reason(text, limit=None)


# How $'...' spells each character that must not reach a terminal as itself.
_ANSI_C_ESCAPES: Final = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shell_word(text: str) -> str:
    """``text`` quoted for a POSIX shell, and printable: safe to show, and to paste.

    Printable text is quoted as :func:`shlex.quote` does. Text holding control,
    format (bidi) or other unprintable characters is spelled in the ``$'...'``
    quoting of bash, zsh and ksh, each such character escaped, so a printed
    command neither drives the terminal nor names another link.
    """
    if text.isprintable():
        return shlex.quote(text)
    return "$'" + "".join(_ansi_c(ch) for ch in text) + "'"


def db_word(db: str) -> str:
    """``--db``'s value as a command shows it: without a password, quoted for the shell.

    Operator messages name the store, and they are stored, logged and shown on
    the status page, so a ``postgresql://`` URL loses its password (in the user
    part or as a ``password`` parameter). The command still works as pasted where
    libpq finds the password itself, in ``~/.pgpass`` or ``PGPASSWORD``.
    """
    return shell_word(_without_password(db))


def _without_password(db: str) -> str:
    # The test of linkstate.store.is_postgres_url, spelled here: importing the
    # store package would load sqlite3 and anyio into every command.
    scheme, found, rest = db.partition("://")
    if not found or scheme not in ("postgresql", "postgres"):
        return db  # a SQLite file's path
    # Split by hand: urllib's urlunsplit drops the empty host of
    # postgresql:///db?host=/run/postgresql, a URL libpq reads.
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        user, hosts = authority.rsplit("@", 1)
        authority = f"{user.partition(':')[0]}@{hosts}"
    path, question, query = tail.partition("?")
    # The other parameters stay as they were typed, escapes and all.
    kept = [pair for pair in query.split("&") if pair.partition("=")[0] != "password"]
    return f"{scheme}://{authority}{path}{question if any(kept) else ''}{'&'.join(kept)}"


def _ansi_c(ch: str) -> str:
    if ch in _ANSI_C_ESCAPES:
        return _ANSI_C_ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape): that byte
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:
        return f"\\x{code:02x}"  # one byte, which is the character
    # $'\\xHH' is a byte, not a character: above ASCII, name the code point.
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
