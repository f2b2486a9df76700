"""Close-code tables: matching order, defaults, and the rules a table must keep."""

from __future__ import annotations

import pytest

from linkstate._channel import Channel
from linkstate._events import CloseEvent
from linkstate._lifecycle import Trigger
from linkstate._machine import LinkMachine
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import (
    CLI_COMMANDS,
    CloseTable,
    OperatorCommands,
    Rule,
    TableError,
    Verdict,
)
from linkstate.cli import build_parser

UNKNOWN = Rule(Verdict.retry, "unknown", "not listed")
NO_STATUS = Rule(Verdict.retry, "noStatus", "no status")


def table(*rules: Rule) -> CloseTable:
    return CloseTable("test", rules, unknown=UNKNOWN, no_status=NO_STATUS)


def test_narrow_rule_before_plain_rule_for_same_status() -> None:
    webhook = Rule(Verdict.fatal, "webhook", status=409, reason_contains="webhook", message="m")
    plain = Rule(Verdict.retry, "plain", status=409)
    t = table(webhook, plain)
    assert t.classify(CloseEvent(status=409, reason="Conflict: WEBHOOK is active")) is webhook
    assert t.classify(CloseEvent(status=409, reason="something else")) is plain


def test_flag_narrows_a_code() -> None:
    soft = Rule(Verdict.relink, "soft", code="M_UNKNOWN_TOKEN", flag="soft_logout", message="m")
    hard = Rule(Verdict.relink, "hard", code="M_UNKNOWN_TOKEN", message="n")
    t = table(soft, hard)
    assert t.classify(CloseEvent(code="M_UNKNOWN_TOKEN", flags=frozenset({"soft_logout"}))) is soft
    assert t.classify(CloseEvent(code="M_UNKNOWN_TOKEN")) is hard


def test_status_rules_are_tried_before_code_rules() -> None:
    by_status = Rule(Verdict.relink, "s", status=401, message="m")
    by_code = Rule(Verdict.fatal, "c", code="M_MISSING_TOKEN", message="m")
    t = table(by_status, by_code)
    assert t.classify(CloseEvent(status=401, code="M_MISSING_TOKEN")) is by_status
    assert t.classify(CloseEvent(status=999, code="M_MISSING_TOKEN")) is by_code


def test_defaults_are_stated_and_total() -> None:
    t = table(Rule(Verdict.retry, "x", status=1))
    assert t.classify(CloseEvent()) is NO_STATUS
    assert t.classify(CloseEvent(status=2)) is UNKNOWN
    assert t.classify(CloseEvent(code="nope")) is UNKNOWN


def test_terminal_rule_without_message_is_rejected() -> None:
    with pytest.raises(TableError, match="'440 conflict' has verdict 'relink' but no operator"):
        table(Rule(Verdict.relink, "conflict", status=440))


def test_shadowed_rule_is_rejected() -> None:
    with pytest.raises(TableError, match=r"can never match.*put the narrower rule first"):
        table(
            Rule(Verdict.retry, "plain", status=409),
            Rule(Verdict.fatal, "webhook", status=409, reason_contains="webhook", message="m"),
        )


def test_rule_without_key_is_rejected() -> None:
    with pytest.raises(TableError, match="names neither a status nor a code"):
        table(Rule(Verdict.retry, "keyless"))


def test_unknown_placeholder_is_rejected() -> None:
    with pytest.raises(TableError, match=r"unknown placeholder\(s\) \['user'\]"):
        table(Rule(Verdict.fatal, "x", status=1, message="hi {user}"))
    with pytest.raises(TableError, match=r"\['reset'\]; use only \[.*'relink_command'.*\]"):
        table(Rule(Verdict.fatal, "x", status=1, message="run {reset}"))


def test_negative_min_delay_is_rejected() -> None:
    with pytest.raises(TableError, match="min_delay -1"):
        table(Rule(Verdict.retry, "x", status=1, min_delay=-1))


def test_operator_message_fills_placeholders() -> None:
    rule = Rule(Verdict.fatal, "x", status=1, message="{channel}/{link}: {status} {code} {reason}")
    text = rule.operator_message(CloseEvent(status=1), link="acct", channel="chan")
    assert text == "chan/acct: 1 none no reason given"


def test_the_framework_fills_the_operator_commands_from_the_link_id() -> None:
    rule = Rule(Verdict.relink, "x", status=1, message="`{relink_command}`, or `{reset_command}`")
    event = CloseEvent(status=1)
    text = rule.operator_message(event, link="acct-7", channel="chan")
    assert text == "`linkstate relink acct-7`, or `linkstate reset acct-7`"
    gateway = OperatorCommands(reset="gw reset --id {link} ${ENV}", relink="gw login {link}")
    text = rule.operator_message(event, link="acct-7", channel="chan", commands=gateway)
    assert text == "`gw login acct-7`, or `gw reset --id acct-7 ${ENV}`"


def test_the_machine_names_its_commands_in_every_stop_message() -> None:
    rule = Rule(Verdict.relink, "x", status=1, message="relink: `{relink_command}`")
    retry = Rule(Verdict.retry, "y", status=2)
    channel = Channel("c", "C", table(rule, retry), ReconnectPolicy(max_attempts=1))
    gateway = OperatorCommands(reset="gw reset {link}", relink="gw login {link}")
    for commands, relink, reset in (
        (CLI_COMMANDS, "linkstate relink a", "linkstate reset a"),
        (gateway, "gw login a", "gw reset a"),
    ):
        machine = LinkMachine(channel, commands=commands)
        link = machine.new_link("a")
        machine.fire(link, Trigger.start, 0)
        assert machine.close(link, 1, 1, trigger=Trigger.connect_failed).message == (
            f"relink: `{relink}`"
        )
        machine.fire(link, Trigger.reset, 2)
        machine.fire(link, Trigger.start, 3)
        machine.close(link, 2, 4, trigger=Trigger.connect_failed)
        machine.fire(link, Trigger.backoff_elapsed, 5)
        spent = machine.close(link, 2, 6, trigger=Trigger.connect_failed)
        assert spent.stop_reason == "budget_spent"
        assert spent.message is not None and spent.message.endswith(f"then run `{reset}`.")


@pytest.mark.parametrize(
    ("template", "command"), [(CLI_COMMANDS.reset, "reset"), (CLI_COMMANDS.relink, "relink")]
)
def test_the_default_commands_are_the_command_lines_own(template: str, command: str) -> None:
    program, *argv = template.replace("{link}", "acct-7").split()
    args = build_parser().parse_args([*argv, "--db", "state.db"])
    assert (program, args.command, args.link) == ("linkstate", command, "acct-7")


def test_verdict_properties() -> None:
    assert {v for v in Verdict if v.retryable} == {Verdict.retry, Verdict.retry_now}
    assert {v for v in Verdict if v.terminal} == {Verdict.relink, Verdict.fatal}


def test_verdict_given_as_a_plain_string_is_rejected_clearly() -> None:
    with pytest.raises(TableError, match=r"has verdict 'relink', which is not a Verdict; use one"):
        table(Rule("relink", "conflict", status=440, message="m"))  # type: ignore[arg-type]
