"""Close-code tables: matching order, defaults, and the rules a table must keep."""

from __future__ import annotations

import pytest
from linkstate._events import CloseEvent
from linkstate._verdicts import CloseTable, Rule, TableError, Verdict

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


def test_negative_min_delay_is_rejected() -> None:
    with pytest.raises(TableError, match="min_delay -1"):
        table(Rule(Verdict.retry, "x", status=1, min_delay=-1))


def test_operator_message_fills_placeholders() -> None:
    rule = Rule(Verdict.fatal, "x", status=1, message="{channel}/{link}: {status} {code} {reason}")
    text = rule.operator_message(CloseEvent(status=1), link="acct", channel="chan")
    assert text == "chan/acct: 1 none no reason given"


def test_verdict_properties() -> None:
    assert {v for v in Verdict if v.retryable} == {Verdict.retry, Verdict.retry_now}
    assert {v for v in Verdict if v.terminal} == {Verdict.relink, Verdict.fatal}


def test_verdict_given_as_a_plain_string_is_rejected_clearly() -> None:
    with pytest.raises(TableError, match=r"has verdict 'relink', which is not a Verdict; use one"):
        table(Rule("relink", "conflict", status=440, message="m"))  # type: ignore[arg-type]
