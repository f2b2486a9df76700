"""The options of the commands, and what they mean: light to import.

``linkstate --help`` registers every command, so every command module is
imported to build it; this module is what they need for that. The options
every supervising command shares (:func:`add_run_options`) and the policy
they make (:func:`policy_from_args`), ``--db`` (:func:`add_db_option`) and the
operator commands' arguments are here, and nothing that runs: trio, the
store and the runtime are imported by the functions that run a command
(:mod:`linkstate.cli._supervise`, :mod:`linkstate.cli._store`), so that
``--help`` or a mistyped option costs no more than the options themselves.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from typing import Final

from linkstate._policy import (
    DEFAULT_CONNECT_TIMEOUT,
    PRESETS,
    Budget,
    Jitter,
    PolicyError,
    ReconnectPolicy,
)
from linkstate.cli._render import FORMATS
from linkstate.cli.common import CommandError, link_id
from linkstate.cli.diagram import add_trace_option

__all__ = [
    "CHANNEL_PRESET",
    "POLICY_OPTIONS",
    "PRESET_CHOICES",
    "add_db_option",
    "add_operator_arguments",
    "add_run_options",
    "policy_from_args",
    "positive_seconds",
    "seconds",
]


def seconds(text: str) -> float:
    """Argparse type: a finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds >= 0")
    return value


def positive_seconds(text: str) -> float:
    """Argparse type: a finite number of seconds > 0."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


# The policy fields a user can set: option, field, type, help. Defaults come
# from the channel's own policy, so only the options given are changed.
POLICY_OPTIONS: Final[tuple[tuple[str, str, Callable[[str], object], str], ...]] = (
    ("--initial", "initial", seconds, "base delay before the first reconnect"),
    ("--factor", "factor", float, "growth of the base delay per attempt"),
    ("--cap", "cap", seconds, "largest base delay"),
    ("--jitter", "jitter", Jitter, f"jitter: {', '.join(j.value for j in Jitter)}"),
    ("--jitter-ratio", "jitter_ratio", float, "spread for proportional/symmetric jitter"),
    ("--retry-now-max", "retry_now_max", seconds, "largest delay after retry_now"),
    ("--max-attempts", "max_attempts", int, "attempts before failed (see --budget)"),
    ("--budget", "budget", Budget, "what --max-attempts counts: reconnects or connects"),
    ("--healthy-after", "healthy_after", seconds, "seconds open that refill the budget"),
    ("--flap-closes", "flap_closes", int, "closes within the flap window that mean failed"),
    ("--flap-window", "flap_window", seconds, "the flap detection window"),
)


_METAVARS: Final[dict[Callable[[str], object], str]] = {
    seconds: "S",
    int: "N",
    Jitter: "KIND",
    Budget: "KIND",
}

# --preset's choices: the channel's own policy (the default), then the named presets.
CHANNEL_PRESET: Final = "channel"
PRESET_CHOICES: Final = (CHANNEL_PRESET, *PRESETS)


def add_run_options(parser: argparse.ArgumentParser, *, connect_timeout: bool = True) -> None:
    """Add the options every supervising command shares."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="json: one object per transition, then a final object; text: for people "
        "(default: text on a terminal, json otherwise)",
    )
    parser.add_argument(
        "--link",
        type=link_id,
        default="link",
        metavar="ID",
        help="the link's id in records and messages",
    )
    add_db_option(parser)
    add_trace_option(parser)
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also log every transition to stderr (the output above already shows them)",
    )
    parser.add_argument(
        "--max-time",
        type=positive_seconds,
        default=None,
        metavar="S",
        help="stop the link (state stopped) after S seconds",
    )
    group = parser.add_argument_group(
        "reconnect policy (defaults: the channel's policy, or the --preset's)"
    )
    group.add_argument(
        "--preset",
        choices=PRESET_CHOICES,
        default=CHANNEL_PRESET,
        help="start from this policy: the channel's own (the default), linkstate's defaults, "
        "OpenClaw's (12 connects, 11 sleeps, 2 s x1.8 +0-25 %%, cap 30 s) or gRPC's; "
        "the options below change it",
    )
    for option, field, kind, text in POLICY_OPTIONS:
        group.add_argument(
            option,
            dest=f"policy_{field}",
            type=kind,
            default=None,
            metavar=_METAVARS.get(kind, "X"),
            help=text,
        )
    group.add_argument(
        "--seed", type=int, default=None, metavar="N", help="seed the jitter for a repeatable run"
    )
    runtime = parser.add_argument_group("supervisor")
    if connect_timeout:
        runtime.add_argument(
            "--connect-timeout",
            type=positive_seconds,
            default=DEFAULT_CONNECT_TIMEOUT,
            metavar="S",
            help=f"seconds one connect may take (default {DEFAULT_CONNECT_TIMEOUT:g})",
        )
    runtime.add_argument(
        "--watchdog",
        type=positive_seconds,
        default=None,
        metavar="S",
        help="reconnect after S seconds without frames or pings (default: off)",
    )


def policy_from_args(args: argparse.Namespace, base: ReconnectPolicy) -> ReconnectPolicy:
    """``base`` (or the ``--preset``) with the policy options given; a bad one is a CommandError."""
    preset = getattr(args, "preset", CHANNEL_PRESET)
    if preset != CHANNEL_PRESET:
        base = PRESETS[preset]
    changes = {
        field: getattr(args, f"policy_{field}")
        for _, field, _, _ in POLICY_OPTIONS
        if getattr(args, f"policy_{field}", None) is not None
    }
    try:
        return dataclasses.replace(base, **changes)
    except PolicyError as exc:
        raise CommandError(f"{exc}; adjust the policy options") from exc


def add_db_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """Add ``--db PATH|URL``."""
    parser.add_argument(
        "--db",
        metavar="PATH|URL",
        default=None,
        required=required,
        help="the state database, a SQLite file or a postgresql:// URL: the link's state and "
        "history outlive the process (with --link ID naming the link)"
        if not required
        else "the state database: a SQLite file, or a postgresql:// URL",
    )


def add_operator_arguments(parser: argparse.ArgumentParser, *, note: str) -> None:
    """Add ``LINK --db PATH [--note TEXT]`` for the operator commands."""
    parser.add_argument("link", metavar="LINK", type=link_id, help="the link's id")
    add_db_option(parser, required=True)
    parser.add_argument(
        "--note",
        default=note,
        metavar="TEXT",
        help=f"what the operator did, kept in the history (default: {note!r})",
    )
