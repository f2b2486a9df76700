"""The checker and ``linkstate check``: the bundled machine is proven; broken ones are named.

Each seeded bug below builds a mutated definition (or table) from the real
one and asserts the check reports it with the state, trigger and verdict.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from test_docs import ROOT, blocks

from linkstate._channel import available_channels, load_channel
from linkstate._lifecycle import (
    DECISIONS,
    LIFECYCLE,
    Decision,
    Definition,
    DefinitionError,
    Edge,
    State,
    StopReason,
    Trigger,
)
from linkstate._machine import LinkMachine
from linkstate._verdicts import CloseTable, Rule, Verdict
from linkstate.check._checker import Kind, Report, check, check_rows, promised_route
from linkstate.cli import main

SCRIPT = Path(sys.executable).with_name("linkstate")

WHATSAPP = load_channel("whatsapp")


def without(predicate: Callable[[Edge], bool]) -> Definition:
    return replace(LIFECYCLE, edges=tuple(e for e in LIFECYCLE.edges if not predicate(e)))


def plus(*edges: Edge) -> Definition:
    return replace(LIFECYCLE, edges=(*LIFECYCLE.edges, *edges))


def only(report: Report, kind: Kind) -> None:
    assert report.kinds() == {kind}, report.render()


# -- the real machine is clean ---------------------------------------------------------


def test_the_bare_lifecycle_is_proven() -> None:
    report = check()
    assert report.ok, report.render()
    # 16 decisions for each of the 3 close-like (state, trigger) pairs, one case for the rest.
    assert report.cases == 3 * len(DECISIONS) + (len(LIFECYCLE.edges) - 3 * 5)
    assert report.render().startswith("ok    lifecycle:")


@pytest.mark.parametrize("name", available_channels())
def test_every_installed_channel_is_proven(name: str) -> None:
    channel = load_channel(name)
    report = check(LIFECYCLE, channel)
    assert report.ok, report.render()
    assert report.rows == len(channel.table.rows())


def test_promised_route_follows_the_lifecycle_rules() -> None:
    for decision in DECISIONS:
        edge = LIFECYCLE.resolve(State.open, Trigger.closed, decision)
        assert (edge.dest, edge.stop_reason) == promised_route(decision)


# -- seeded bugs in the definition -------------------------------------------------------


def test_gap_for_one_verdict_names_state_trigger_verdict_and_rows() -> None:
    broken = without(
        lambda e: (
            e.source is State.open and e.trigger is Trigger.closed and e.guard_name == "is_fatal"
        )
    )
    report = check(broken, WHATSAPP)
    only(report, Kind.gap)
    (finding,) = report.findings
    assert (finding.state, finding.trigger, finding.verdict) == (
        State.open,
        Trigger.closed,
        Verdict.fatal,
    )
    assert len(finding.decisions) == 4  # every budget and flapping condition
    assert "402 temporaryBan" in finding.rows
    text = report.render()
    assert "state 'open', trigger 'closed', verdict 'fatal'" in text
    assert "no edge fires" in text


def test_gap_in_one_condition_only() -> None:
    broken = without(
        lambda e: e.source is State.connecting and e.guard_name == "retry_budget_spent"
    )
    report = check(broken)
    only(report, Kind.gap)
    for finding in report.findings:
        assert finding.state is State.connecting and finding.trigger is Trigger.connect_failed
        assert all(d.budget_spent for d in finding.decisions)
    assert {f.verdict for f in report.findings} == {Verdict.retry, Verdict.retry_now}
    assert "budget_spent=True, any flapping" in report.render()


def overlapping_guard(decision: Decision) -> bool:
    """Retry whenever the verdict is retryable: overlaps the budget and flap guards."""
    return decision.verdict.retryable


def test_two_overlapping_guards_are_reported() -> None:
    broken = plus(Edge(State.open, Trigger.closed, State.reconnecting, overlapping_guard))
    report = check(broken)
    only(report, Kind.overlap)
    verdicts = {f.verdict for f in report.findings}
    assert verdicts == {Verdict.retry, Verdict.retry_now}
    text = report.render()
    assert "state 'open', trigger 'closed', verdict 'retry'" in text
    assert "open --closed [retry_budget_spent]--> failed" in text
    assert "open --closed [overlapping_guard]--> reconnecting" in text


def test_an_overlap_that_changes_nothing_is_still_reported() -> None:
    # A second guard agreeing with the first: transitions takes the first, the
    # outcome is the same, but the table no longer says what it means.
    broken = plus(
        Edge(
            State.open,
            Trigger.closed,
            State.needs_relink,
            lambda d: d.verdict is Verdict.relink,
            StopReason.relink,
        )
    )
    assert Kind.overlap in check(broken).kinds()


# A terminal state with an exit edge: see tests/test_seeded_bugs.py.


def test_a_terminal_state_that_does_not_absorb_is_reported() -> None:
    broken = without(lambda e: e.source is State.failed and e.trigger is Trigger.closed)
    report = check(broken)
    only(report, Kind.not_absorbing)
    assert report.findings[0].state is State.failed


def test_reset_missing_or_misplaced() -> None:
    assert check(
        without(lambda e: e.source is State.stopped and e.trigger is Trigger.reset)
    ).kinds() == {Kind.no_reset}
    assert Kind.no_reset in check(plus(Edge(State.open, Trigger.reset, State.idle))).kinds()


def test_resume_missing_or_misplaced() -> None:
    report = check(
        replace(
            LIFECYCLE,
            edges=tuple(
                replace(e, dest=None)
                if e.source is State.stopped and e.trigger is Trigger.resume
                else e
                for e in LIFECYCLE.edges
            ),
        )
    )
    only(report, Kind.no_resume)
    assert (report.findings[0].state, report.findings[0].trigger) == (
        State.stopped,
        Trigger.resume,
    )
    assert "entered by a local stop (abort)" in report.render()
    misplaced = check(plus(Edge(State.reconnecting, Trigger.resume, State.idle)))
    only(misplaced, Kind.no_resume)
    assert "state 'reconnecting' is not terminal but has a 'resume' edge" in misplaced.render()


def test_a_needs_relink_link_that_resumes_on_its_own_is_a_terminal_exit() -> None:
    broken = replace(
        LIFECYCLE,
        edges=tuple(
            replace(e, dest=State.idle)
            if e.source is State.needs_relink and e.trigger is Trigger.resume
            else e
            for e in LIFECYCLE.edges
        ),
    )
    report = check(broken)
    only(report, Kind.terminal_exit)
    assert (report.findings[0].state, report.findings[0].trigger) == (
        State.needs_relink,
        Trigger.resume,
    )
    assert "no local stop enters it" in report.render()


def test_unreachable_and_dead_end_states() -> None:
    no_open = without(lambda e: e.dest is State.open)
    assert {f.state for f in check(no_open).findings if f.kind is Kind.unreachable} == {State.open}
    stuck = without(lambda e: e.source is State.reconnecting and e.trigger is Trigger.abort)
    kinds = {(f.kind, f.state) for f in check(stuck).findings}
    assert (Kind.no_abort, State.reconnecting) in kinds


def test_dead_end_when_a_live_state_can_never_stop() -> None:
    loop = Definition(
        states=(State.idle, State.connecting, State.stopped),
        initial=State.idle,
        terminal=frozenset({State.stopped}),
        edges=(
            Edge(State.idle, Trigger.start, State.connecting),
            Edge(State.connecting, Trigger.opened, State.idle),
            Edge(State.stopped, Trigger.reset, State.idle),
        ),
    )
    findings = check(loop).findings
    assert {(f.kind, f.state) for f in findings if f.kind is Kind.dead_end} == {
        (Kind.dead_end, State.idle),
        (Kind.dead_end, State.connecting),
    }


def test_a_broken_promise_relink_routed_to_reconnecting() -> None:
    broken = replace(
        LIFECYCLE,
        edges=tuple(
            replace(e, dest=State.reconnecting, stop_reason=None)
            if e.source is State.open and e.guard_name == "is_relink"
            else e
            for e in LIFECYCLE.edges
        ),
    )
    report = check(broken, WHATSAPP)
    only(report, Kind.broken_promise)
    assert {f.trigger for f in report.findings} == {Trigger.closed, Trigger.watchdog_expired}
    assert all(f.verdict is Verdict.relink for f in report.findings)
    assert "promises needs_relink (stop reason relink)" in report.render()
    assert "440 connectionReplaced" in report.render()


def test_an_edge_into_a_terminal_state_needs_a_stop_reason() -> None:
    broken = replace(
        LIFECYCLE,
        edges=tuple(
            replace(e, stop_reason=None)
            if e.trigger is Trigger.abort and e.source is State.idle
            else e
            for e in LIFECYCLE.edges
        ),
    )
    only(check(broken), Kind.no_stop_reason)


def test_guard_on_a_trigger_without_a_decision_never_fires() -> None:
    broken = replace(
        LIFECYCLE,
        edges=tuple(
            replace(e, guard=overlapping_guard) if e.trigger is Trigger.opened else e
            for e in LIFECYCLE.edges
        ),
    )
    assert check(broken).kinds() == {Kind.guard_unused, Kind.gap}


def truthy_guard(decision: Decision) -> bool:
    return "yes" if decision.verdict is Verdict.relink else ""  # type: ignore[return-value]


def raising_guard(decision: Decision) -> bool:
    raise KeyError(decision.verdict)


@pytest.mark.parametrize("guard", [truthy_guard, raising_guard])
def test_guards_must_return_real_bools(guard: Callable[[Decision], bool]) -> None:
    broken = replace(
        LIFECYCLE,
        edges=tuple(
            replace(e, guard=guard) if e.guard_name == "is_relink" else e for e in LIFECYCLE.edges
        ),
    )
    report = check(broken)
    assert Kind.guard_error in report.kinds()
    # transitions compares with True: "yes" never passes, so relink has a gap too.
    assert Kind.gap in report.kinds()


# -- definition time, not first use -------------------------------------------------------


def test_an_undeclared_destination_fails_when_defined() -> None:
    states = tuple(s for s in LIFECYCLE.states if s is not State.reconnecting)
    with pytest.raises(DefinitionError, match=r"destination reconnecting is not a declared state"):
        replace(LIFECYCLE, states=states)


def test_an_uncallable_or_async_guard_fails_when_defined() -> None:
    async def async_guard(decision: Decision) -> bool:
        return True

    with pytest.raises(DefinitionError, match="is not callable"):
        plus(Edge(State.open, Trigger.closed, State.failed, "is_fatal"))  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="guard is async"):
        plus(Edge(State.open, Trigger.closed, State.failed, async_guard))  # type: ignore[arg-type]


def test_an_unknown_initial_or_terminal_state_fails_when_defined() -> None:
    with pytest.raises(DefinitionError, match="initial state 'connected'"):
        replace(LIFECYCLE, initial="connected")  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="terminal state 'done'"):
        replace(LIFECYCLE, terminal=frozenset({"done"}))  # type: ignore[arg-type]


def test_linkmachine_only_ever_sees_a_validated_definition() -> None:
    # transitions alone would accept this edge and fail on first use; the
    # definition refuses it before any LinkMachine can be built from it.
    with pytest.raises(DefinitionError):
        LinkMachine(
            WHATSAPP,
            definition=plus(Edge(State.open, Trigger.closed, "nowhere")),  # type: ignore[arg-type]
        )


# -- table rows ---------------------------------------------------------------------------


def test_rows_with_unknown_verdicts_or_without_messages_are_reported() -> None:
    rows = (
        Rule("relink", "stringly", status=1),  # type: ignore[arg-type]
        Rule(Verdict.fatal, "silent", status=2),
        Rule(Verdict.relink, "told", status=3, message="relink {link}"),
        Rule(Verdict.retry, "fine", status=4),
    )
    findings = check_rows(rows)
    assert [(f.kind, f.rows) for f in findings] == [
        (Kind.unknown_verdict, ("1 stringly",)),
        (Kind.no_message, ("2 silent",)),
    ]


def test_a_channel_with_an_unknown_verdict_row_fails_the_check() -> None:
    # CloseTable refuses a terminal row without a message when built, so the
    # check's own row rule is shown on a table that slipped through another way.
    table = WHATSAPP.table
    silent = Rule(Verdict.relink, "silentRelink", status=499)
    sneaky = object.__new__(CloseTable)
    for name in ("channel", "unknown", "no_status", "_by_status", "_by_code"):
        object.__setattr__(sneaky, name, getattr(table, name))
    object.__setattr__(sneaky, "rules", (*table.rules, silent))
    report = check(LIFECYCLE, replace(WHATSAPP, table=sneaky))
    only(report, Kind.no_message)
    assert "silentRelink" in report.render()


# -- the command line -----------------------------------------------------------------------


def test_cli_check_all_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1].rstrip(":") for line in lines] == ["lifecycle", *available_channels()]
    assert all(line.startswith("ok    ") for line in lines)


def test_cli_bare_check_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith("ok    lifecycle:")
    assert main(["check", "whatsapp", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["subject"] == "whatsapp" and payload["ok"] and payload["findings"] == []


BROKEN_MODULE = """
from dataclasses import replace
from linkstate._lifecycle import LIFECYCLE, State, Trigger

GAP = replace(LIFECYCLE, edges=tuple(
    e for e in LIFECYCLE.edges
    if not (e.source is State.open and e.trigger is Trigger.closed and e.guard_name == "is_relink")
))
NOT_A_DEFINITION = 42
"""

UNDEFINED_MODULE = """
from dataclasses import replace
from linkstate._lifecycle import LIFECYCLE, State

BAD = replace(LIFECYCLE, states=tuple(s for s in LIFECYCLE.states if s is not State.failed))
"""


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "broken_flow.py").write_text(BROKEN_MODULE, encoding="utf-8")
    (tmp_path / "undefined_flow.py").write_text(UNDEFINED_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("broken_flow", "undefined_flow"):
        sys.modules.pop(name, None)


def test_cli_reports_a_broken_definition_naming_state_trigger_verdict(
    flows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "whatsapp", "--definition", "broken_flow:GAP"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL  whatsapp: 1 problem(s)")
    assert "gap: state 'open', trigger 'closed', verdict 'relink'" in out
    assert "440 connectionReplaced" in out


def test_cli_reports_a_definition_that_refuses_to_build(
    flows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--definition", "undefined_flow:BAD"]) == 1
    assert "destination failed is not a declared state" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "nosuchchannel"], "unknown channel 'nosuchchannel'"),
        (["check", "whatsapp", "--all"], "not both"),
        (["check", "--definition", "nocolon"], "MODULE:NAME"),
        (["check", "--definition", "no_such_module_xyz:X"], "cannot import"),
        (
            ["check", "--definition", "broken_flow:NOT_A_DEFINITION"],
            "not a linkstate.Definition",
        ),
    ],
)
def test_cli_usage_errors_exit_2(
    flows: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_the_ci_script_runs_the_check() -> None:
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert ".venv/bin/linkstate check --all" in ci


def linkstate(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the console script in ``cwd``, as from a shell there."""
    return subprocess.run(
        [str(SCRIPT), *argv], capture_output=True, text=True, cwd=cwd, check=False, timeout=120
    )


def test_the_documented_definition_file_works_with_the_commands_shown(tmp_path: Path) -> None:
    # docs/testing.md shows flows.py, then the commands that check it and what
    # they print; test_docs runs the file's tests, this runs its commands.
    found = list(blocks(ROOT / "docs" / "testing.md"))
    index = next(i for i, b in enumerate(found) if b.code.startswith('"""flows.py:'))
    code, console = found[index].code, found[index + 1]
    assert console.language == "console"
    (tmp_path / "flows.py").write_text(code, encoding="utf-8")
    sessions = re.split(r"^\$ ", console.code, flags=re.MULTILINE)[1:]
    assert len(sessions) >= 3
    status = None
    for session in sessions:
        command, *expected = session.splitlines()
        if command == "echo $?":
            assert [str(status)] == expected
            continue
        program, *argv = shlex.split(command)
        assert program == "linkstate"
        done = linkstate(*argv, cwd=tmp_path)
        assert done.stderr == ""
        assert done.stdout.splitlines() == expected
        status = done.returncode
    assert status == 1  # the last command shown is the refused definition


@pytest.mark.parametrize("spec", ["flows:FLOW", "flows.py:FLOW", "sub/flows.py:FLOW"])
def test_a_definition_is_found_by_module_or_by_file(tmp_path: Path, spec: str) -> None:
    # The file imports a module beside it, as `python sub/flows.py` could.
    (tmp_path / "sub").mkdir()
    for folder in (tmp_path, tmp_path / "sub"):
        (folder / "edges.py").write_text(
            "from linkstate import Edge, State, Trigger\n"
            "CONNECT_NOW = Edge(State.reconnecting, Trigger.start, State.connecting)\n",
            encoding="utf-8",
        )
        (folder / "flows.py").write_text(
            "import dataclasses\n"
            "from edges import CONNECT_NOW\n"
            "from linkstate import LIFECYCLE\n"
            "FLOW = dataclasses.replace(LIFECYCLE, edges=(*LIFECYCLE.edges, CONNECT_NOW))\n",
            encoding="utf-8",
        )
    done = linkstate("check", "--definition", spec, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("ok    lifecycle: 7 states, 50 edges")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing.py:FLOW", "there is no file 'missing.py'"),
        ("flows.txt:FLOW", "is not a Python file"),
        ("raises.py:FLOW", "running 'raises.py' failed (ZeroDivisionError"),
        ("raises.py:NOPE", "running 'raises.py' failed"),
        ("empty.py:FLOW", "'empty.py' defines no 'FLOW'"),
        ("empty.py:", "write it as MODULE:NAME or path/to/file.py:NAME"),
    ],
)
def test_a_definition_file_that_cannot_be_used_is_one_line_and_exit_2(
    tmp_path: Path, spec: str, message: str
) -> None:
    (tmp_path / "flows.txt").write_text("FLOW = 1\n", encoding="utf-8")
    (tmp_path / "raises.py").write_text("FLOW = 1 / 0\n", encoding="utf-8")
    (tmp_path / "empty.py").write_text("", encoding="utf-8")
    done = linkstate("check", "--definition", spec, cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("linkstate check: error: --definition ") and message in line
