"""``linkstate classify CHANNEL EVENT``: show what one close would do to a link."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, Final

from linkstate._lifecycle import Trigger
from linkstate._machine import LinkMachine
from linkstate._verdicts import OperatorCommands
from linkstate.cli.common import CommandError, channel_or_exit, print_json

__all__ = ["ORDER", "classify_event", "fell_to_default", "parse_event", "register"]

ORDER: Final = 10

# A bare code that is not JSON: Slack's `too_many_websockets`, Matrix's `M_UNKNOWN_TOKEN`.
_BARE_CODE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


_TEMPLATES: Final = OperatorCommands(
    reset="linkstate reset LINK --db PATH", relink="linkstate relink LINK --db PATH"
)


def register(subparsers: Any) -> None:
    """Add the ``classify`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "classify",
        help="classify one close event and show where it leads",
        description=(
            "Classify one close event with a channel's table and print, as JSON, the verdict "
            "and the state that a close with this event leads to from `open` with a fresh "
            "retry budget."
        ),
    )
    parser.add_argument("channel", metavar="CHANNEL", help="a channel name, such as whatsapp")
    parser.add_argument(
        "event",
        metavar="EVENT",
        help="a bare code (440, too_many_websockets) or a JSON value: 440, '\"440\"', "
        '\'{"error": {"output": {"statusCode": 440}}}\'',
    )
    parser.set_defaults(run=run)


def parse_event(text: str, what: str = "EVENT") -> object:
    """Read EVENT: JSON if it parses, else a bare code; anything else is a CommandError.

    ``what`` names the argument in the error (``--close CODE`` for ``simulate``).
    """
    try:
        return json.loads(text)
    except RecursionError:
        # Python's JSON parser recurses once per level of nesting.
        raise CommandError(
            f"cannot read {what}: its JSON is nested deeper than Python can parse; no client "
            "library nests a close that deep, pass one like '{\"status\": 440}'"
        ) from None
    except json.JSONDecodeError as exc:
        if _BARE_CODE.fullmatch(text.strip()):
            return text.strip()
        raise CommandError(
            f"cannot read {what} {text[:60]!r}: it is neither JSON ({exc.msg} at position "
            f"{exc.pos}) nor a bare code; pass a code like 440 or JSON like "
            "'{\"status\": 440}'"
        ) from exc
    except ValueError:
        # What json.loads raises beyond JSONDecodeError: int() refusing a number
        # of more digits than sys.get_int_max_str_digits() (4,300 by default).
        raise CommandError(
            f"cannot read {what}: it holds a number with thousands of digits, which is no "
            "status or code; pass a code like 440 or JSON like '{\"status\": 440}'"
        ) from None


def classify_event(channel_name: str, raw: object) -> dict[str, object]:
    """Classify ``raw`` on ``channel_name`` and replay it from ``open``; returns the report."""
    channel = channel_or_exit(channel_name)
    # No link exists here: the message names LINK and PATH as the operator
    # commands' own --help does, for the user to fill in with theirs.
    machine = LinkMachine(channel, commands=_TEMPLATES)
    link = machine.new_link("LINK")
    machine.fire(link, Trigger.start, 0.0)
    machine.fire(link, Trigger.opened, 0.0)
    record = machine.close(link, raw, 0.0)
    event = link.last_event
    rule, verdict = link.last_rule, link.verdict
    assert event is not None and rule is not None and verdict is not None
    message = record.message or f"{rule.label}: {rule.meaning}; reconnecting"
    return {
        "channel": channel.name,
        "status": event.status,
        "code": event.code,
        "rule": rule.label,
        "verdict": verdict.value,
        "state": record.dst,
        "message": message,
        "reason": event.reason,
        "retry_after": event.retry_after,
        "phase": event.phase.value,
    }


def fell_to_default(channel_name: str, report: dict[str, object]) -> str | None:
    """Why the classified event matched no row of the table, or None when it matched one.

    A typo (``44O`` with a letter O, a lone ``-``) is still a valid event to
    classify, and it lands on the table's default row; the user should hear so.
    """
    table = channel_or_exit(channel_name).table
    if report["rule"] == table.unknown.label:
        what = " and ".join(
            f"{key} {report[key]!r}" for key in ("status", "code") if report[key] is not None
        )
        return (
            f"{what or 'the event'} matched no row of the {channel_name} table, so it fell to "
            f"the default for unknown codes ({table.unknown.label}: {report['verdict']}); "
            "check the spelling, or see `linkstate diagram "
            f"{channel_name}` for the codes it lists"
        )
    if report["rule"] == table.no_status.label:
        return (
            f"the event carries no status or code the {channel_name} table can read, so it "
            f"fell to the default for events without one ({table.no_status.label}: "
            f"{report['verdict']}); pass a code like 440 or JSON like '{{\"status\": 440}}'"
        )
    return None


def run(args: argparse.Namespace) -> int:
    """Run ``linkstate classify``; a warning on stderr when the event fell to a default row."""
    report = classify_event(args.channel, parse_event(args.event))
    print_json(report)
    warning = fell_to_default(args.channel, report)
    if warning is not None:
        print(f"linkstate classify: warning: {warning}", file=sys.stderr)
    return 0
