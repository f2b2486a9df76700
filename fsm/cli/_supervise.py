"""The run loop shared by the commands that supervise a link.

``simulate``, ``watch`` and ``demo`` differ only in their transport and clock.
Everything else is here, once: the supervisor (:func:`supervisor_from_args`)
and the printing run (:func:`supervise`); their common options and the policy
built from them are in :mod:`linkstate.cli._options`, which ``--help`` imports
without this module. A command that wants more options adds them after calling
:func:`~linkstate.cli._options.add_run_options`; a feature that changes how
every supervised run is built (a store, a diagram) changes
:func:`supervisor_from_args` or :func:`supervise` only.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import threading
from collections.abc import Callable
from typing import Final

import anyio
from anyio.abc import TaskStatus

from linkstate._channel import Channel
from linkstate._lifecycle import State
from linkstate._machine import LinkMachine
from linkstate._verdicts import OperatorCommands
from linkstate.cli._options import policy_from_args
from linkstate.cli._render import Format, Printer, default_format
from linkstate.cli._store import journal_from_args, store_errors
from linkstate.cli.common import CommandError, ExitStatus, db_word, shell_word
from linkstate.cli.diagram import record_trace
from linkstate.runtime._supervisor import (
    DEFAULT_CONNECT_TIMEOUT,
    OWNED_ELSEWHERE,
    Outcome,
    Supervisor,
    Transport,
)

__all__ = [
    "STOP_SIGNALS",
    "configure_logging",
    "operator_commands",
    "outcome_status",
    "printer_from_args",
    "stop_on_signals",
    "supervise",
    "supervisor_from_args",
]


def configure_logging(*, verbose: bool) -> None:
    """Send ``linkstate`` logs to stderr with ``--verbose``; otherwise keep them quiet.

    The printed output already carries every transition and the operator
    message, so without ``--verbose`` the log records must not reach Python's
    last-resort handler, which would print the operator message a second time.
    """
    logger = logging.getLogger("linkstate")
    if verbose:
        if not logging.getLogger().handlers:
            logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
        logger.setLevel(logging.INFO)
    elif not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def printer_from_args(args: argparse.Namespace) -> Printer:
    """The printer for ``--format`` (resolved against stdout when not given)."""
    printer = Printer("text")
    fmt: Format = args.format or default_format(printer.stream)
    printer.fmt = fmt
    return printer


def supervisor_from_args(
    args: argparse.Namespace, channel: Channel, transport: Transport
) -> Supervisor:
    """Build the supervisor every command runs; call it inside the event loop."""
    machine = LinkMachine(
        channel,
        policy_from_args(args, channel.policy),
        rng=random.Random(args.seed) if args.seed is not None else None,
        commands=operator_commands(args),
    )
    return Supervisor(
        channel,
        transport,
        link_id=args.link,
        machine=machine,
        connect_timeout=getattr(args, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        watchdog=args.watchdog,
    )


def outcome_status(outcome: Outcome) -> ExitStatus:
    """The exit status of a supervised run (``ExitStatus``).

    1 when the link needs a person, 4 when it is owned elsewhere, else 0
    (``stopped`` by ``--max-time``, Ctrl-C or SIGTERM).
    """
    if outcome.stop_reason == OWNED_ELSEWHERE:
        return ExitStatus.owned_elsewhere
    if outcome.state in (State.needs_relink, State.failed):
        return ExitStatus.needs_person
    return ExitStatus.ok


def operator_commands(args: argparse.Namespace) -> OperatorCommands:
    """The commands this run's operator messages name, spelled to work as pasted.

    With ``--db`` they are the operator commands on that database and link.
    Without one nothing outlives the run, so there is nothing to reset: what
    brings the link back is running the same command again (``argv``, which
    :func:`linkstate.cli.main` keeps on ``args``).
    """
    db: str | None = getattr(args, "db", None)
    link = shell_word(args.link)
    if db is not None:
        where = f"{link} --db {db_word(db)}"
        return OperatorCommands(
            reset=f"linkstate reset {where}", relink=f"linkstate relink {where}"
        )
    again = " ".join(
        shell_word(word) for word in ["linkstate", *getattr(args, "argv", [args.command])]
    )
    return OperatorCommands(reset=again, relink=again)


STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
"""Ctrl-C, and what systemd, Docker and ``kill`` send: each stops the link cleanly."""


async def stop_on_signals(
    stop: Callable[[], None],
    stopping: Callable[[], bool],
    cut_short: Callable[[], None],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Turn SIGINT and SIGTERM into a clean stop: ``stop()``, or ``cut_short()`` once stopping.

    Every command that supervises links runs this one handler: ``supervise``
    below for one link, ``linkstate serve`` for a fleet. Reports started once
    the handlers are installed, so that no early signal is lost.
    """
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        task_status.started()
        async for _ in signals:
            if stopping():
                cut_short()
            stop()


async def supervise(
    args: argparse.Namespace,
    supervisor: Supervisor,
    printer: Printer,
) -> Outcome:
    """Run ``supervisor`` while printing each transition; stop at ``--max-time``; print the end.

    The first SIGINT or SIGTERM stops the link as ``--max-time`` does: the
    connection closed with a close frame, ``stopped`` committed, the final
    line printed, exit status 0. A second one cuts that stop short (one line,
    exit status 130). A store error is one line with
    its exit status (:func:`linkstate.cli._store.store_exit_status`); a link
    owned elsewhere (another process claimed it) is one line and exit status 4.
    """
    configure_logging(verbose=args.verbose)
    printer.origin = supervisor.clock()
    supervisor.subscribe(printer.transition)
    draw_trace = record_trace(args, supervisor)
    cut_short = False

    def cut() -> None:
        nonlocal cut_short
        cut_short = True
        tasks.cancel_scope.cancel()

    def stop() -> None:
        # A command whose own success is another end (the demo) reads this:
        # a stop by the operator is exit status 0 everywhere.
        args.stopped_by_signal = True
        supervisor.abort()

    with store_errors():
        async with journal_from_args(args) as journal:
            if journal is not None:
                supervisor.journal = journal
            async with anyio.create_task_group() as tasks:
                # Signals become an ordinary abort: the loop then never raises
                # KeyboardInterrupt into the middle of the supervisor's cleanup.
                if threading.current_thread() is threading.main_thread():
                    await tasks.start(
                        stop_on_signals, stop, lambda: supervisor.abort_requested, cut
                    )
                if args.max_time is not None:

                    async def time_limit() -> None:
                        await anyio.sleep(args.max_time)
                        supervisor.abort()

                    tasks.start_soon(time_limit)
                outcome = await supervisor.run()
                tasks.cancel_scope.cancel()
    if cut_short:
        raise CommandError(
            f"a second interrupt cut the clean stop of link {args.link!r} short; its last "
            "state may not be recorded as stopped",
            ExitStatus.interrupted,
        )
    printer.outcome(outcome)
    if outcome.stop_reason == OWNED_ELSEWHERE:
        print(f"linkstate {args.command}: {outcome.message}", file=sys.stderr)
    draw_trace()
    return outcome
