"""``linkstate simulate CHANNEL --close CODE ...``: the real supervisor on a virtual clock.

The supervisor, machine and channel table are the real ones; only the peer
is scripted (:class:`linkstate.runtime.ScriptedTransport`) and the clock is
trio's ``MockClock`` with autojump, so hours of backoff take milliseconds.
Once the script runs out the link stays open, and the run ends with an abort
(state ``stopped``), unless the link reached a terminal state first.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Final

from linkstate.cli._options import add_run_options, policy_from_args, seconds
from linkstate.cli.classify import parse_event
from linkstate.cli.common import CommandError, channel_or_exit

if TYPE_CHECKING:
    from linkstate._channel import Channel
    from linkstate._machine import TransitionRecord
    from linkstate.runtime._scripted import Step
    from linkstate.runtime._supervisor import Outcome

__all__ = ["MAX_STEPS", "ORDER", "register", "run", "script_from_args", "simulate"]

ORDER: Final = 20


class _AppendStep(argparse.Action):
    """Appends one script step, keeping ``--close`` and ``--fail`` in command-line order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        # Only recorded here: parsing errors are reported by `run`, as one line.
        steps: list[tuple[str, str]] = list(getattr(namespace, self.dest, None) or [])
        steps.append((self.const, str(values)))
        setattr(namespace, self.dest, steps)


def register(subparsers: Any) -> None:
    """Add the ``simulate`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run the supervisor against scripted closes on a virtual clock",
        description=(
            "Run the real supervisor on a virtual clock against a scripted peer: each connect "
            "opens and then closes with the next --close CODE (or fails its handshake with the "
            "next --fail CODE; --repeat N repeats the step before it). When the script runs "
            "out the link stays open and the run ends with an abort. Prints every transition, "
            "then the final state, connect and sleep counts and the operator message."
        ),
    )
    parser.add_argument("channel", metavar="CHANNEL", help="a channel name, such as whatsapp")
    parser.add_argument(
        "--close",
        dest="script",
        action=_AppendStep,
        const="close",
        metavar="CODE",
        help="the next connection opens, then closes with CODE (a code or JSON, as in classify)",
    )
    parser.add_argument(
        "--fail",
        dest="script",
        action=_AppendStep,
        const="fail",
        metavar="CODE",
        help="the next connection fails its handshake with CODE",
    )
    parser.add_argument(
        "--repeat",
        dest="script",
        action=_AppendStep,
        const="repeat",
        metavar="N",
        help="the preceding --close or --fail happens N times in all, such as "
        "--fail 428 --repeat 12 for twelve failing connects",
    )
    parser.add_argument(
        "--open-for",
        type=seconds,
        default=1.0,
        metavar="S",
        help="virtual seconds each scripted connection stays open (default 1)",
    )
    add_run_options(parser, connect_timeout=False)
    parser.set_defaults(run=run)


# A script longer than this is a typo (an extra digit), not a simulation.
MAX_STEPS: Final = 100_000


def script_from_args(args: argparse.Namespace) -> list[Step]:
    """The transport script in command-line order; an unreadable CODE or N is a CommandError."""
    # The runtime is imported where a command runs, never for its --help.
    from linkstate.runtime._scripted import Close, Reject

    steps: list[Step] = []
    for kind, text in args.script or []:
        if kind == "repeat":
            steps.extend([_repeated(steps, text)] * (_times(text) - 1))
            continue
        raw = parse_event(text, f"--{kind} CODE")
        steps.append(Close(raw, after=args.open_for) if kind == "close" else Reject(raw))
    if len(steps) > MAX_STEPS:
        raise CommandError(
            f"the script has {len(steps)} steps, more than {MAX_STEPS}; lower the --repeat counts"
        )
    return steps


def _repeated(steps: list[Step], text: str) -> Step:
    if not steps:
        raise CommandError(
            f"--repeat {text} has no step to repeat; put it after a --close or --fail, "
            "such as --fail 428 --repeat 12"
        )
    return steps[-1]


def _times(text: str) -> int:
    try:
        times = int(text)
    except ValueError:
        times = 0
    if not 1 <= times <= MAX_STEPS:
        raise CommandError(
            f"--repeat {text!r} is not a count; give how many times the step before it "
            f"happens in all, a whole number from 1 to {MAX_STEPS}, such as --repeat 12"
        )
    return times


async def simulate(args: argparse.Namespace, channel: Channel, script: list[Step]) -> Outcome:
    """Run one simulation inside trio (on whatever clock the caller's run has)."""
    from linkstate.cli._supervise import printer_from_args, supervise, supervisor_from_args
    from linkstate.runtime._scripted import ScriptedTransport

    transport = ScriptedTransport(script)
    supervisor = supervisor_from_args(args, channel, transport)

    def abort_when_the_script_is_done(record: TransitionRecord) -> None:
        if record.dst == "open" and transport.exhausted:
            supervisor.abort()

    supervisor.subscribe(abort_when_the_script_is_done)
    return await supervise(args, supervisor, printer_from_args(args))


def run(args: argparse.Namespace) -> int:
    """Run ``linkstate simulate``."""
    channel = channel_or_exit(args.channel)
    script = script_from_args(args)
    policy_from_args(args, channel.policy)  # report a bad policy before starting
    # Here, not at the top: trio is a third of `linkstate --help`, and
    # trio.testing imports pytest, which would cost it another tenth of a second.
    import trio
    from trio.testing import MockClock

    from linkstate.cli._supervise import outcome_status

    clock = MockClock(autojump_threshold=0)
    outcome = trio.run(simulate, args, channel, script, clock=clock)
    return outcome_status(outcome)
