"""Live diagrams: a channel's whole lifecycle, the current state highlighted, the recent
path numbered on the arrows it took (the status page of ``linkstate serve``)."""

from __future__ import annotations

import pytest

from linkstate._machine import TransitionRecord
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.diagrams import DiagramError, lifecycle_picture, live_picture, to_dot
from linkstate.diagrams._picture import ArrowKind


def record(src: str, dst: str, trigger: str, **fields: object) -> TransitionRecord:
    return TransitionRecord(0.0, "acct1", src, dst, trigger, **fields)  # type: ignore[arg-type]


PATH = [
    record("idle", "connecting", "start"),
    record("connecting", "open", "opened"),
    record("open", "reconnecting", "closed", status=428, rule="428 connectionClosed",
           verdict="retry", delay=1.0),
    record("reconnecting", "connecting", "backoff_elapsed"),
    record("connecting", "open", "opened"),
    record("open", "needs_relink", "closed", status=440, rule="440 connectionReplaced",
           verdict="relink", stop_reason="relink"),
    record("needs_relink", "needs_relink", "resume"),  # absorbed: no arrow to number
]  # fmt: skip


def test_the_current_state_is_highlighted_and_the_path_numbered() -> None:
    picture = live_picture(WHATSAPP, "needs_relink", PATH)
    base = lifecycle_picture(WHATSAPP)
    # The whole lifecycle, not only the states visited.
    assert [node.id for node in picture.nodes] == [node.id for node in base.nodes]
    assert [node.id for node in picture.nodes if node.emphasis] == ["needs_relink"]
    assert picture.node("needs_relink").detail.startswith("now here")
    taken = {(a.src, a.dst): a for a in picture.arrows if a.taken}
    assert taken["connecting", "open"].lines[0].text == "2, 5."
    assert taken["idle", "connecting"].lines[0].text == "1."
    branches = {a.dst: a for a in picture.arrows if a.taken and a.kind is ArrowKind.branch}
    assert branches["reconnecting"].lines[0].text == "3."
    assert branches["needs_relink"].lines[0].text == "6."
    # The arrow into the choice that the closes went through is drawn as taken too.
    into = [a for a in picture.arrows if a.taken and a.kind is ArrowKind.into_choice]
    assert [(a.src, a.dst) for a in into] == [("open", branches["needs_relink"].src)]
    assert not any(a.taken for a in picture.arrows if a.dst == "failed")
    dot = to_dot(picture)
    assert "penwidth=3" in dot and "6." in dot


def test_only_the_recent_path_is_numbered_and_errors_name_the_fix() -> None:
    picture = live_picture(WHATSAPP, "open", PATH[:5], recent=2)
    numbered = sorted(
        a.lines[0].text for a in picture.arrows if a.taken and a.kind is not ArrowKind.into_choice
    )
    assert numbered == ["1.", "2."]  # backoff_elapsed, then opened
    bare = live_picture(None, "idle")
    assert not any(a.taken for a in bare.arrows) and bare.node("idle").emphasis
    with pytest.raises(DiagramError, match="state 'sleeping' is not in the lifecycle"):
        live_picture(WHATSAPP, "sleeping", PATH)
