"""Close-event strategies: every form of a table row, junk, and any close a channel may see."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from hypothesis import strategies as st

from linkstate._channel import Channel
from linkstate._events import CloseEvent
from linkstate._verdicts import Rule
from linkstate.check._paths import row_event, unlisted_status

# Where client libraries put a status, as (outer keys..., status key) paths the
# generic normaliser reads; each row is tried in every one of them.
_STATUS_HOLDERS: Final[tuple[tuple[str, ...], ...]] = (
    ("status",),
    ("statusCode",),
    ("status_code",),
    ("error_code",),
    ("output", "statusCode"),
    ("output", "payload", "statusCode"),
)
_CODE_HOLDERS: Final[tuple[tuple[str, ...], ...]] = (("code",), ("errcode",))

# The wrappers client libraries put around an error (Baileys' lastDisconnect,
# a library's error.error); forms nest a row's payload in up to two of them.
_WRAPPERS: Final[tuple[tuple[str, ...], ...]] = (
    ("error",),
    ("lastDisconnect", "error"),
    ("lastDisconnect",),
)


class CloseError(Exception):
    """An exception carrying a close the way many client libraries raise one.

    Attributes:
        status: The numeric status, or None.
        code: The symbolic code, or None.
        reason: The human-readable text.
        flags: Extra boolean facts (``soft_logout``).

    """

    def __init__(
        self,
        status: int | None = None,
        code: str | None = None,
        reason: str = "",
        flags: Sequence[str] = (),
    ) -> None:
        super().__init__(reason or f"closed with {status if status is not None else code}")
        self.status = status
        self.code = code
        self.reason = reason
        self.flags = list(flags)


# -- forms of one row ---------------------------------------------------------------


def _nest(path: tuple[str, ...], value: object) -> dict[str, object]:
    nested: object = value
    for key in reversed(path):
        nested = {key: nested}
    assert isinstance(nested, dict)
    return nested


def _payloads(rule: Rule) -> list[dict[str, object]]:
    """The dict shapes of a keyed row: its status (and code) under every holder."""
    if rule.flag is not None:
        # How a flag sits in a platform's dict is the channel's own business
        # (Matrix: ``soft_logout: true``); such rows are tried as events and
        # exceptions only, and through the author's ``expected`` examples.
        return []
    extra: dict[str, object] = {}
    if rule.reason_contains is not None:
        extra["reason"] = rule.reason_contains
    payloads = []
    if rule.status is not None:
        for holder in _STATUS_HOLDERS:
            for status in (rule.status, str(rule.status)):
                payload = _nest(holder, status)
                if rule.code is not None:
                    payload["errcode"] = rule.code
                payloads.append({**payload, **extra})
    else:
        assert rule.code is not None
        payloads.extend({**_nest(holder, rule.code), **extra} for holder in _CODE_HOLDERS)
    return payloads


def _wrapped(payload: dict[str, object], wrapper: tuple[str, ...]) -> dict[str, object]:
    return _nest(wrapper, payload)


def _default_forms(channel: Channel, rule: Rule) -> list[object]:
    if rule is channel.table.no_status:
        return [None, CloseEvent(), {"reason": "socket closed"}, OSError("connection reset")]
    status = unlisted_status(channel)
    return [status, str(status), {"status": status}, CloseEvent(status=status)]


def row_forms(channel: Channel, rule: Rule) -> tuple[object, ...]:
    """Every form of ``rule`` this kit knows, each of which must classify to ``rule``.

    For a keyed row: the canonical event, an exception with attributes, the
    status under every holder (as int and as text), each nested in every
    wrapper; for an un-narrowed status row also the bare int, ``"440"`` and
    ``" 440 "``; for an un-narrowed code row the bare code. For the table's
    defaults: events with an unlisted status, or with none at all.
    """
    if rule is channel.table.unknown or rule is channel.table.no_status:
        return tuple(_default_forms(channel, rule))
    forms: list[object] = [row_event(rule)]
    event = row_event(rule)
    forms.append(CloseError(rule.status, rule.code, event.reason, sorted(event.flags)))
    if not rule.narrowed:
        if rule.status is not None and rule.code is None:
            forms.extend([rule.status, str(rule.status), f" {rule.status} "])
        elif rule.status is None:
            forms.append(rule.code)
    payloads = _payloads(rule)
    forms.extend(payloads)
    forms.extend(_wrapped(payload, wrapper) for payload in payloads for wrapper in _WRAPPERS)
    return tuple(forms)


def _noise(channel: Channel, rule: Rule) -> st.SearchStrategy[str]:
    """Reason text that cannot narrow the event onto another row of the same key."""
    narrowers = [
        other.reason_contains.lower()
        for other in channel.table.rules
        if other.reason_contains is not None and other is not rule
    ]
    return st.text(max_size=40).filter(lambda text: not any(n in text.lower() for n in narrowers))


def close_forms(channel: Channel, rule: Rule) -> st.SearchStrategy[object]:
    """Forms of ``rule``: :func:`row_forms`, plus nested dict forms with random reason text.

    Every value drawn must classify to ``rule`` (for un-narrowed rows the
    random text only adds a reason; for narrowed rows it surrounds the
    narrowing text).
    """
    fixed = st.sampled_from(row_forms(channel, rule))
    if rule is channel.table.unknown or rule is channel.table.no_status or not _payloads(rule):
        return fixed

    @st.composite
    def noisy(draw: st.DrawFn) -> object:
        payload = dict(draw(st.sampled_from(_payloads(rule))))
        before, after = draw(_noise(channel, rule)), draw(_noise(channel, rule))
        if rule.reason_contains is not None:
            payload["reason"] = f"{before} {rule.reason_contains} {after}"
        else:
            payload["reason"] = before
        wrappers = draw(st.lists(st.sampled_from(_WRAPPERS), max_size=1))
        for wrapper in wrappers:
            payload = _wrapped(payload, wrapper)
        return payload

    return st.one_of(fixed, noisy())


class _Hostile:
    """An object whose every attribute read raises, like a broken proxy."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"hostile attribute {name}")

    def __repr__(self) -> str:
        return "<hostile>"


class _UnprintableError(Exception):
    """An exception whose ``str()`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("cannot print")


def _cycle() -> dict[str, object]:
    loop: dict[str, object] = {"status": "oops"}
    loop["error"] = loop
    loop["lastDisconnect"] = {"error": loop}
    return loop


_JUNK_KEYS: Final = (
    "status",
    "statusCode",
    "code",
    "error",
    "output",
    "payload",
    "lastDisconnect",
    "reason",
    "data",
    "tag",
    "attrs",
    "flags",
    "retry_after",
    "parameters",
)


def junk() -> st.SearchStrategy[object]:
    """Anything a broken or hostile peer or library might hand over instead of a close."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=300),
        st.binary(max_size=64),
        st.sampled_from(["440", " 4e2 ", "-1", "1e308", "NaN", "\x00\u202e440", "٤٤٠"]),
    )
    nested = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(_JUNK_KEYS) | st.text(max_size=8), inner, max_size=5),
        ),
        max_leaves=20,
    )
    makers: list[Callable[[], object]] = [_Hostile, _UnprintableError, _cycle, object, ValueError]
    hostile = st.sampled_from(makers).map(lambda make: make())
    return st.one_of(nested, hostile)


def close_events(channel: Channel, *, junk_weight: int = 1) -> st.SearchStrategy[object]:
    """Any close the channel may see: a row of its table in any form, or junk."""
    rows = channel.table.rows()
    forms = st.sampled_from(rows).flatmap(lambda rule: close_forms(channel, rule))
    return st.one_of(forms, *([junk()] * junk_weight))
