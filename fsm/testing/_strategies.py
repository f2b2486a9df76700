"""Close-event strategies: every form of a table row, junk, and any close a channel may see."""

from __future__ import annotations

import functools
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


class _HostileError(Exception):
    """What every hostile dunder below raises."""


def _boom(*_: object) -> object:
    raise _HostileError("hostile")


# Dunders a reader may touch; each hostile class below raises from one of them.
_DUNDERS: Final = (
    "__eq__",
    "__hash__",
    "__len__",
    "__iter__",
    "__str__",
    "__repr__",
    "__bool__",
    "__getitem__",
    "__contains__",
    "__index__",
    "__int__",
    "__float__",
)
# str/bytes methods readers call on text: strip, lower, decode...
_TEXT_METHODS: Final = ("strip", "lower", "replace", "isdecimal", "isascii", "decode", "encode")


def _hostile_class(base: type, name: str) -> type:
    """A subclass of ``base`` whose method ``name`` raises."""
    return type(f"Hostile{base.__name__.title()}{name.strip('_').title()}", (base,), {name: _boom})


class _RaisingClass:
    """An object whose ``__class__`` raises: ``isinstance`` consults it for foreign types."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise _HostileError("hostile __class__")


class _RaisingGetattribute:
    """An object every attribute read of which raises, even the dunders Python looks up."""

    def __getattribute__(self, name: str) -> object:
        raise _HostileError(f"hostile {name}")


class _CollidingKey:
    """A dict key that hashes like ``"status"`` and cannot be compared with it."""

    def __hash__(self) -> int:
        return hash("status")

    def __eq__(self, other: object) -> bool:
        raise _HostileError("cannot compare")


def _hostile_instances() -> list[Callable[[], object]]:
    """Makers of hostile objects: subclasses of builtins with one raising method, and more."""
    makers: list[Callable[[], object]] = [
        _RaisingClass,
        _RaisingGetattribute,
        lambda: {_CollidingKey(): 440},  # looking "status" up compares with it
        lambda: {1: "a", "b": 2, None: 3, (1,): 4},  # keys that cannot be sorted
    ]
    seeds: dict[type, object] = {
        int: 440,
        float: 440.0,
        str: "440",
        bytes: b"440",
        dict: {"status": 440},
        list: ["soft_logout"],
        frozenset: frozenset({"soft_logout"}),
        set: {"soft_logout"},
        tuple: ("soft_logout",),
    }
    for base, seed in seeds.items():
        names = _DUNDERS + (_TEXT_METHODS if base in (str, bytes) else ())
        for name in (*names, "get", "keys", "items") if base is dict else names:
            makers.append(functools.partial(_hostile_class(base, name), seed))
    return makers


_HOSTILE_MAKERS: Final = _hostile_instances()


def _deep_json(depth: int) -> str:
    """JSON text nested ``depth`` levels, deeper than the recursion limit, under 64 KiB."""
    return '{"error":' * depth + "1" + "}" * depth


def _deep_dict(depth: int) -> dict[str, object]:
    """A dict nested ``depth`` levels under the wrapper keys, built without recursion."""
    inner: dict[str, object] = {"status": 440}
    for level in range(depth):
        # One chain: a value shared by two keys per level would make repr() exponential.
        inner = {"error": inner} if level % 2 else {"lastDisconnect": {"error": inner}}
    return inner


# Ten million characters: reading one must cost as little as reading ten.
_HUGE: Final = 10_000_000


@functools.cache
def _huge_values() -> tuple[object, ...]:
    """Built once per process: they are immutable to every reader, and costly to build."""
    text = "4" * _HUGE
    return (
        text,
        " " * _HUGE + "op7",
        "{" + text + "}",
        b"\xff" * _HUGE,
        {"reason": text, "code": text, "message": text},
        {"status": 440, "flags": ["soft_logout"] * 100_000},
        {"status": 440, "flags": [f"f{i}" for i in range(100_000)]},
    )


def hostile() -> st.SearchStrategy[object]:
    """Objects built to break a reader.

    Raising ``__class__`` / ``__getattribute__`` / ``__eq__`` / ``__hash__`` /
    ``__len__`` / ``__iter__`` / ``__str__`` / ``__repr__``; int, float, str,
    bytes, dict and container subclasses with one raising method; dict keys
    that cannot be compared; ``flags`` containers whose iteration or hashing
    raises; JSON text nested deeper than the recursion limit; ten-million-
    character text and unbounded flags. Each may sit anywhere a close's facts
    may: bare, under a key a reader looks at, or inside a wrapper.
    """
    # st.builds, not sampled_from(...).map(...): hypothesis checks what those
    # return with isinstance, which an object with a raising __class__ breaks.
    made = st.one_of(*(st.builds(make) for make in _HOSTILE_MAKERS))
    deep = st.one_of(
        st.integers(min_value=1_000, max_value=6_000).map(_deep_json),
        st.integers(min_value=1_000, max_value=3_000).map(_deep_dict),
    )
    huge = st.integers(0, len(_huge_values()) - 1).map(lambda i: _huge_values()[i])
    leaf = st.one_of(made, deep, huge)
    placed = st.tuples(st.lists(st.sampled_from(_JUNK_KEYS), min_size=1, max_size=3), leaf).map(
        lambda pair: _nest(tuple(pair[0]), pair[1])
    )
    return st.one_of(leaf, placed)


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
    """Anything a broken or hostile peer or library might hand over instead of a close.

    :func:`broken` values and :func:`hostile` objects alike.
    """
    return st.one_of(broken(), hostile())


def broken() -> st.SearchStrategy[object]:
    """Junk that is cheap to build and to print: nested JSON-like values, cycles, bad objects.

    The state machines draw this rather than :func:`junk`: they print and
    compare every close they fire, which a :func:`hostile` object forbids.
    """
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
    bad = st.sampled_from(makers).map(lambda make: make())
    return st.one_of(nested, bad)


def close_events(channel: Channel, *, junk_weight: int = 1) -> st.SearchStrategy[object]:
    """Any close the channel may see: a row of its table in any form, or :func:`broken` junk."""
    rows = channel.table.rows()
    forms = st.sampled_from(rows).flatmap(lambda rule: close_forms(channel, rule))
    return st.one_of(forms, *([broken()] * junk_weight))
