"""One rendering of a supervised run, shared by ``simulate``, ``watch`` and ``demo``.

Two formats:

* ``json``: one object per transition (``t``, ``src``, ``dst``, ``trigger``,
  ``status``, ``verdict``, ``attempt``, ``delay`` and a few more), then one
  last object with ``final``, ``connects``, ``sleeps`` and ``message``. Meant
  for scripts: one line each, stable keys.
* ``text``: aligned lines for people, then a summary and the operator message.

``t`` is seconds since the run started, on the supervisor's clock (virtual for
``simulate``).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Literal, TextIO

from linkstate._machine import TransitionRecord
from linkstate.cli.common import reader_gone

if TYPE_CHECKING:  # the runtime loads trio: `linkstate --help` must not pay for it
    from linkstate.runtime._supervisor import Outcome

__all__ = [
    "FORMATS",
    "Format",
    "Printer",
    "ago",
    "default_format",
    "describe_close",
    "describe_verdict",
    "timestamp",
]

Format = Literal["json", "text"]
FORMATS: Final[tuple[Format, ...]] = ("json", "text")


def default_format(stream: TextIO) -> Format:
    """``text`` for a terminal, ``json`` for a pipe or a file."""
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def describe_close(record: TransitionRecord) -> str:
    """``428 connectionClosed: retry``, or "" for a transition without a close."""
    return describe_verdict(record.status, record.rule, record.verdict)


def describe_verdict(status: int | None, rule: str | None, verdict: str | None) -> str:
    """``428 connectionClosed: retry`` from a close's parts, or "" without a verdict."""
    if verdict is None:
        return ""
    label = rule or ""
    if status is not None and not label.startswith(str(status)):
        # A default row ("unknown") says nothing about which code it caught.
        label = f"{status} {label}".rstrip()
    return f"{label or 'no status'}: {verdict}"


class Printer:
    """Prints each transition as it happens, then the outcome.

    Args:
        fmt: ``json`` or ``text``.
        origin: The clock reading that ``t = 0`` stands for.
        stream: Where to print; defaults to ``sys.stdout`` at print time.

    """

    def __init__(self, fmt: Format, *, origin: float = 0.0, stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.origin = origin
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        """The output stream (looked up late so that test capture works)."""
        return self._stream or sys.stdout

    def _emit(self, line: str) -> None:
        try:
            print(line, file=self.stream, flush=True)
        except BrokenPipeError:
            # The reader left (`linkstate watch ... | head -1`): the link is
            # still supervised, and the exit status still says how it ended.
            reader_gone()

    def transition(self, record: TransitionRecord) -> None:
        """Print one transition; usable directly as a supervisor observer."""
        t = round(record.t - self.origin, 6)
        if self.fmt == "json":
            self._emit(
                json.dumps(
                    {
                        "t": t,
                        "link": record.link,
                        "src": record.src,
                        "dst": record.dst,
                        "trigger": record.trigger,
                        "status": record.status,
                        "code": record.code,
                        "rule": record.rule,
                        "verdict": record.verdict,
                        "attempt": record.attempt,
                        "delay": record.delay,
                        "stop_reason": record.stop_reason,
                        "reason": record.reason,
                    },
                    ensure_ascii=False,
                )
            )
            return
        what = f"{record.src} -> {record.dst}"
        extra = [describe_close(record)] if record.verdict else []
        if record.delay is not None:
            extra.append(f"attempt {record.attempt}, retry in {record.delay:.2f} s")
        if record.stop_reason is not None:
            extra.append(f"stopped: {record.stop_reason}")
        if record.reason and record.trigger in ("watchdog_expired", "connect_failed"):
            extra.append(record.reason)
        self._emit(f"{t:8.2f} s  {what:<28} {record.trigger:<17} {'; '.join(extra)}".rstrip())

    def note(self, text: str) -> None:
        """Print a side remark for people (the demo server's story); nothing in json."""
        if self.fmt == "text":
            self._emit(f"{'':10}  # {text}")

    def outcome(self, outcome: Outcome) -> None:
        """Print the final line (json) or the summary and operator message (text)."""
        if self.fmt == "json":
            self._emit(json.dumps(outcome.to_json(), ensure_ascii=False))
            return
        self._emit("")
        self._emit(
            f"final state: {outcome.state} after {_count(outcome.connects, 'connect')}, "
            f"{_count(outcome.sleeps, 'backoff sleep')} ({outcome.slept:.2f} s)"
        )
        if outcome.message:
            label = "operator message" if outcome.state != "stopped" else "note"
            self._emit(f"{label}: {outcome.message}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def timestamp(wall: float) -> str:
    """``2026-11-23T23:44:34Z``: a wall-clock time, in UTC, to the second."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(wall: float, now: float | None = None) -> str:
    """``3 min ago``: how long before ``now`` (default: the wall clock) ``wall`` was."""
    seconds = max(0.0, (time.time() if now is None else now) - wall)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"
