"""Verdicts, close-code tables and the classifier protocol.

A channel plugin describes its platform as data: a :class:`CloseTable` of
:class:`Rule` rows, each mapping one close reason to a :class:`Verdict`, a
name, what it means, and (for terminal verdicts) the operator message that
says what to do. Everything else (the lifecycle, the runtime, diagrams and
checks) is shared.

Rules a table keeps, checked when it is built:

1. Every row names a status, a symbolic code, or both.
2. A ``relink`` or ``fatal`` row carries an operator message: a terminal stop
   that does not tell the operator what to do is a bug.
3. Messages use only the placeholders ``{status}``, ``{code}``, ``{reason}``,
   ``{link}``, ``{channel}``, ``{reset_command}`` and ``{relink_command}``.
   The last two are the framework's: the command that brings the link back,
   spelled by :class:`OperatorCommands` (the ``linkstate`` command line's by
   default), so that no channel spells out a command line by hand.
4. Rows for the same status or code are tried in order, so a row with a
   narrowing predicate (``reason_contains``, ``flag``) must come before a
   plain row for the same key; a plain row that shadows a later row is an
   error, not a silent surprise.
5. The table states its default for unknown codes and for events with no
   status at all; classification is therefore total.
6. A retryable row may draw its delay from a window of its own:
   ``min_delay=5, max_delay=30`` waits ``uniform(5, 30)`` seconds instead of
   the policy's schedule (WebSocket 1012's registration asks for exactly
   that). ``max_delay`` needs a retryable verdict and ``max_delay >= min_delay``.
7. A retryable row may escalate: with ``escalate_after=N`` the N-th close in a
   row classified by that row (with no healthy connection in between) is
   ``fatal``. Such a row needs an operator message for that stop, and N >= 2
   (a row that is fatal the first time is simply a ``fatal`` row).
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Protocol, runtime_checkable

from linkstate._errors import LinkstateError
from linkstate._events import CloseEvent, sanitise_reason

__all__ = [
    "CLI_COMMANDS",
    "MESSAGE_PLACEHOLDERS",
    "Classifier",
    "CloseTable",
    "OperatorCommands",
    "Rule",
    "TableError",
    "Verdict",
]


class Verdict(StrEnum):
    """What a close means for the link."""

    retry = "retry"
    """Reconnect after a backoff delay from the policy."""
    retry_now = "retry_now"
    """The server asked for a restart: reconnect after a short jittered delay."""
    relink = "relink"
    """A person must relink the account or resolve a session conflict: ``needs_relink``."""
    fatal = "fatal"
    """Configuration or code must change; retrying cannot help: ``failed``."""

    @property
    def retryable(self) -> bool:
        """True for the verdicts that lead back to ``reconnecting``."""
        return self in _RETRYABLE

    @property
    def terminal(self) -> bool:
        """True for the verdicts that stop the link until a person acts."""
        return not self.retryable


_RETRYABLE: Final = frozenset({Verdict.retry, Verdict.retry_now})

MESSAGE_PLACEHOLDERS: Final = frozenset(
    {"status", "code", "reason", "link", "channel", "reset_command", "relink_command"}
)


@dataclass(frozen=True, slots=True)
class OperatorCommands:
    """The commands that operator messages name: ``{reset_command}``, ``{relink_command}``.

    Each is a template in which ``{link}`` stands for the link's id; nothing
    else in it is a placeholder. The defaults are the ``linkstate`` command
    line's own operator commands. An application that offers its operator
    other commands (a gateway's admin page, say) gives its
    :class:`linkstate.LinkMachine` its own.

    Attributes:
        reset: After the cause is fixed: any terminal state back to ``idle``.
        relink: After the account is relinked: ``needs_relink`` back to ``idle``.

    """

    reset: str = "linkstate reset {link}"
    relink: str = "linkstate relink {link}"

    # replace, not format: any other braces in a command (a shell's ${VAR})
    # stay as written, and a template can never fail at a stop.

    def reset_for(self, link: str) -> str:
        """The reset command for ``link``: what ``{reset_command}`` says."""
        return self.reset.replace("{link}", link)

    def relink_for(self, link: str) -> str:
        """The relink command for ``link``: what ``{relink_command}`` says."""
        return self.relink.replace("{link}", link)

    def placeholders(self, link: str) -> dict[str, str]:
        """The values of ``{reset_command}`` and ``{relink_command}`` for ``link``."""
        return {"reset_command": self.reset_for(link), "relink_command": self.relink_for(link)}


CLI_COMMANDS: Final = OperatorCommands()
"""The ``linkstate`` command line's operator commands: what messages name by default."""


class TableError(LinkstateError, ValueError):
    """A close-code table breaks one of the rules in this module's header."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of a channel's close-code table.

    Attributes:
        verdict: What this close means.
        name: The platform's own name for it (``connectionReplaced``).
        meaning: A short description for people and diagrams.
        status: The numeric status this row matches, if any.
        code: The symbolic code this row matches, if any.
        reason_contains: Match only when the reason contains this text
            (case-insensitive); tells Telegram's three 409s apart.
        flag: Match only when the event carries this flag (``soft_logout``).
        message: The operator message for a terminal verdict: what happened
            and what to do. May use the placeholders in ``MESSAGE_PLACEHOLDERS``.
        min_delay: A floor, in seconds, on the next reconnect delay.
        max_delay: With it, the next delay is drawn uniformly from
            ``[min_delay, max_delay]`` instead of from the policy's schedule;
            a server's retry-after hint still raises it. None: the policy decides.
        escalate_after: For a retryable row, the number of consecutive closes
            classified by this row (with no healthy connection in between)
            after which the verdict becomes ``fatal``; None never escalates.
            Counted per link by :class:`linkstate.LinkMachine`; it catches a
            retryable error that keeps happening at connect time, where flap
            detection (which counts closes of open connections) cannot see it.
        transient: The platform documents this status or code as temporary
            (5xx, rate limits, "try again later"): a connect failure classified
            by this row is not a refusal, so
            :attr:`linkstate.ReconnectPolicy.refuse_after` never stops it.

    """

    verdict: Verdict
    name: str
    meaning: str = ""
    status: int | None = None
    code: str | None = None
    reason_contains: str | None = None
    flag: str | None = None
    message: str | None = None
    min_delay: float = 0.0
    max_delay: float | None = None
    escalate_after: int | None = None
    transient: bool = False

    @property
    def key(self) -> str:
        """The status or code this row matches, as shown in tables and diagrams."""
        if self.status is not None:
            return str(self.status)
        return self.code or "none"

    @property
    def label(self) -> str:
        """``440 connectionReplaced``: key and name, for diagrams and listings."""
        if (self.status is None and self.code is None) or self.key == self.name:
            return self.name
        return f"{self.key} {self.name}"

    @property
    def narrowed(self) -> bool:
        """True when the row matches only part of its key's events."""
        return self.reason_contains is not None or self.flag is not None

    def matches(self, event: CloseEvent) -> bool:
        """True when this row applies to ``event``."""
        if self.status is not None and event.status != self.status:
            return False
        if self.code is not None and event.code != self.code:
            return False
        if self.flag is not None and self.flag not in event.flags:
            return False
        return self.reason_contains is None or self.reason_contains.lower() in (
            event.reason.lower()
        )

    @property
    def refusable(self) -> bool:
        """True when a repeated connect failure by this row counts as a refusal.

        A terminal row stops by itself, a row with ``escalate_after`` escalates
        by its own count, and a ``transient`` row is the platform saying "later".
        """
        return not (self.verdict.terminal or self.transient or self.escalate_after is not None)

    def verdict_after(self, repeats: int) -> Verdict:
        """The verdict for the ``repeats``-th consecutive close classified by this row."""
        if self.escalate_after is not None and repeats >= self.escalate_after:
            return Verdict.fatal
        return self.verdict

    def operator_message(
        self,
        event: CloseEvent,
        *,
        link: str,
        channel: str,
        commands: OperatorCommands = CLI_COMMANDS,
    ) -> str:
        """The message to show a person, with the placeholders filled in.

        Sanitised like a close's reason, without being cut short: a link id
        typed with an escape sequence, CR/LF or a bidi override must not reach
        a log or a terminal as itself.
        """
        template = self.message or f"{self.name}: {self.meaning}"
        values: Mapping[str, object] = {
            "status": event.status if event.status is not None else "none",
            "code": event.code or "none",
            "reason": event.reason or "no reason given",
            "link": link,
            "channel": channel,
            **commands.placeholders(link),
        }
        return sanitise_reason(template.format_map(values), limit=None)


@runtime_checkable
class Classifier(Protocol):
    """Anything that maps a close event to a rule; a :class:`CloseTable` is one."""

    def classify(self, event: CloseEvent) -> Rule:
        """Return the rule for ``event``; must be total and must not raise."""
        ...


@dataclass(frozen=True)
class CloseTable:
    """A channel's close reasons as data, with stated defaults; see the module header.

    Attributes:
        channel: The channel's name, used in errors.
        rules: The rows, tried in order within each status or code.
        unknown: The row used for a status or code the table does not list.
        no_status: The row used for an event with neither status nor code.

    """

    channel: str
    rules: tuple[Rule, ...]
    unknown: Rule
    no_status: Rule
    _by_status: dict[int, tuple[Rule, ...]] = field(init=False, repr=False, compare=False)
    _by_code: dict[str, tuple[Rule, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_status: dict[int, list[Rule]] = {}
        by_code: dict[str, list[Rule]] = {}
        for rule in (*self.rules, self.unknown, self.no_status):
            self._check_rule(rule)
        for rule in self.rules:
            if rule.status is None and rule.code is None:
                raise TableError(
                    f"channel {self.channel!r}: rule {rule.name!r} names neither a status nor "
                    "a code; give it status= or code= (use no_status= for events without one)"
                )
            if rule.status is not None:
                bucket = by_status.setdefault(rule.status, [])
            else:
                assert rule.code is not None
                bucket = by_code.setdefault(rule.code, [])
            self._check_not_shadowed(bucket, rule)
            bucket.append(rule)
        object.__setattr__(self, "_by_status", {k: tuple(v) for k, v in by_status.items()})
        object.__setattr__(self, "_by_code", {k: tuple(v) for k, v in by_code.items()})

    def _check_rule(self, rule: Rule) -> None:
        if not isinstance(rule.verdict, Verdict):
            known = ", ".join(f"Verdict.{v.value}" for v in Verdict)
            raise TableError(
                f"channel {self.channel!r}: rule {rule.name!r} has verdict {rule.verdict!r}, "
                f"which is not a Verdict; use one of {known}"
            )
        if rule.verdict.terminal and not rule.message:
            raise TableError(
                f"channel {self.channel!r}: rule {rule.label!r} has verdict "
                f"{rule.verdict.value!r} but no operator message; add message= saying what "
                "happened and what the operator must do"
            )
        if rule.escalate_after is not None:
            self._check_escalation(rule)
        if rule.min_delay < 0:
            raise TableError(
                f"channel {self.channel!r}: rule {rule.label!r} has min_delay "
                f"{rule.min_delay}; use a delay of 0 seconds or more"
            )
        if rule.max_delay is not None:
            self._check_window(rule)
        if rule.message:
            names = {
                name for _, name, _, _ in string.Formatter().parse(rule.message) if name is not None
            }
            unknown = names - MESSAGE_PLACEHOLDERS
            if unknown:
                raise TableError(
                    f"channel {self.channel!r}: rule {rule.label!r} uses unknown placeholder(s) "
                    f"{sorted(unknown)}; use only {sorted(MESSAGE_PLACEHOLDERS)}"
                )

    def _check_window(self, rule: Rule) -> None:
        assert rule.max_delay is not None
        if (
            rule.verdict.terminal
            or not math.isfinite(rule.max_delay)
            or rule.max_delay < rule.min_delay
        ):
            raise TableError(
                f"channel {self.channel!r}: rule {rule.label!r} has max_delay="
                f"{rule.max_delay} with min_delay={rule.min_delay} and verdict "
                f"{rule.verdict.value!r}; a delay window needs a retryable verdict and a "
                "finite max_delay >= min_delay"
            )

    def _check_escalation(self, rule: Rule) -> None:
        assert rule.escalate_after is not None
        if rule.verdict.terminal or rule.escalate_after < 2 or not rule.message:
            raise TableError(
                f"channel {self.channel!r}: rule {rule.label!r} has escalate_after="
                f"{rule.escalate_after} with verdict {rule.verdict.value!r}; escalation needs a "
                "retryable verdict, escalate_after >= 2 and a message= for the fatal stop "
                "(make a row that is fatal at once a plain fatal row)"
            )

    def _check_not_shadowed(self, earlier: list[Rule], rule: Rule) -> None:
        for previous in earlier:
            if not previous.narrowed and (previous.code == rule.code or previous.code is None):
                raise TableError(
                    f"channel {self.channel!r}: rule {rule.label!r} can never match because "
                    f"the earlier rule {previous.label!r} matches all its events; put the "
                    "narrower rule first"
                )

    def classify(self, event: CloseEvent) -> Rule:
        """Return the first matching row for ``event``, else the stated default."""
        if event.status is not None:
            for rule in self._by_status.get(event.status, ()):
                if rule.matches(event):
                    return rule
        if event.code is not None:
            for rule in self._by_code.get(event.code, ()):
                if rule.matches(event):
                    return rule
        if event.status is None and event.code is None:
            return self.no_status
        return self.unknown

    def rows(self) -> tuple[Rule, ...]:
        """Every row, defaults last, for listings, diagrams and checks."""
        return (*self.rules, self.unknown, self.no_status)
