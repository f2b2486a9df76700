"""Close events: whatever a client library reports, turned into one typed value.

Theory of operation
-------------------
A disconnect reaches us in many shapes: a bare number, the string ``"440"``, a
Baileys ``Boom`` error whose number sits at ``output.statusCode``, a wrapper
that nests that again under ``lastDisconnect.error``, an exception with a
``code`` attribute, or plain junk. :func:`normalise` reads all of them the same
way and never raises: what it cannot read becomes an event with no status.

The search is driven by small tables below. ``STATUS_PATHS`` lists where a
status may sit on one object; ``WRAPPERS`` lists the attributes that wrap an
inner error; ``REASON_PATHS``, ``CODE_PATHS`` and ``RETRY_AFTER_PATHS`` the
rest. We look at the object itself, then at each error it wraps, breadth
first (the layers), and stop at ``MAX_DEPTH`` levels; a layer already seen is
not read again, which also makes cycles harmless. Each field comes from the
first layer, and the first path on it in table order, that gives a readable
value.

That definition is :func:`_read_general`: each table across every layer in
turn. What :func:`normalise` runs is :func:`_read_fast`, which gives the same
event (no read has a side effect, so the order of reads cannot change it;
tests/test_hot_path.py holds the two equal over nested dicts, objects and
hostile leaves) at a fraction of the cost: each layer is read once, only for
the paths whose first key it holds, chosen by a plan cached per set of keys
(a dict's keys, taken with its stored hashes, so no key's ``__hash__`` runs);
and equal readings share one frozen event. A dict close whose top keys were
seen before is read by its plan's tree: that same reading compiled to
straight-line code for the way the close it was compiled from nests, which
checks that this close nests alike and else leaves it to the per-layer
reading (see "compiled trees" below). The caches are bounded and keyed on
exact, short strs and plain values only, never on an object's identity.
Whatever the fast reader trips over, the general reader decides.
A channel whose client library keeps its facts where these tables do not
look runs its own readers first: :func:`extract_with` hands the facts of the
first reader that recognises the object to ``normalise``.
Dicts and objects are read alike, a key else an attribute, by
:func:`linkstate._reading.lookup`, the reader the channel plugins use too
(the fast reader reads an object's keys all at once by the same rules,
:func:`linkstate._reading.lookup_all`, and for an object of a type seen
before only the keys its instance dict and classes name, by a per-type plan:
:class:`linkstate._reading.LookupAll`; those names, seen before, are read
by a reader compiled for them, as a tree reads a dict: see "compiled
attribute readers" below).

Everything that came from the network and may end up in a log (the reason
text, the symbolic code) is sanitised here, once, so no later layer has to
remember to.

Shapes one platform's clients produce and no other's (OpenClaw's WhatsApp
``isLoggedOut`` flag, node-slack-sdk's ``data.error``, Slack's error text
``An API error occurred: account_inactive``) are not read for every channel:
a channel declares them as data, :class:`Shapes`, which it trusts above the
generic reading. ``isLoggedOut`` means something on WhatsApp and nothing on
Discord, and a ``data.error`` is a Slack error code only on Slack.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeVar, cast

from linkstate._errors import ArgumentError
from linkstate._reading import (
    MAX_RETRY_AFTER,
    LookupAll,
    Reader,
    json_text,
    lookup,
    lookup_all,
    read_first,
    text,
)

__all__ = [
    "MAX_REASON_LENGTH",
    "CloseEvent",
    "Initiator",
    "Phase",
    "Shapes",
    "TrustedFlag",
    "extract_with",
    "normalise",
    "parse_status",
    "read_safely",
    "sanitise_reason",
]


class Phase(StrEnum):
    """When the connection ended: while it was being opened, or once it was open."""

    handshake = "handshake"
    established = "established"


class Initiator(StrEnum):
    """Who ended the connection."""

    local = "local"
    remote = "remote"
    unknown = "unknown"


# Reason text comes from the network and goes into logs: it is cut to this
# many characters, after control and format characters are replaced.
MAX_REASON_LENGTH: Final = 200

# Bytes of reason text decoded: sanitise_reason looks at no more than 4x its limit.
_REASON_TEXT_LIMIT: Final = MAX_REASON_LENGTH * 4

# Codes outside this range are not statuses of any platform we know; a huge or
# negative number is junk, not a status.
_STATUS_RANGE: Final = range(1, 10_000)

# How deep we follow wrappers; bounds the work on hostile or cyclic input.
MAX_DEPTH: Final = 4

# Flags read from one object: a channel knows a handful, so more is junk, and
# an unbounded container must not cost unbounded work.
MAX_FLAGS: Final = 32

# Where a status may sit on one object, in the order we trust them.
STATUS_PATHS: Final[tuple[tuple[str, ...], ...]] = (
    ("status",),
    ("statusCode",),
    ("status_code",),
    ("code",),
    ("error_code",),
    ("output", "statusCode"),
    ("output", "payload", "statusCode"),
)

# Attributes that wrap an inner error which may carry the status instead.
WRAPPERS: Final[tuple[tuple[str, ...], ...]] = (
    ("error",),
    ("lastDisconnect", "error"),
    ("lastDisconnect",),
)

# Where human-readable text may sit, in order of preference.
REASON_PATHS: Final[tuple[tuple[str, ...], ...]] = (
    ("reason",),
    ("description",),
    ("message",),
    ("error",),
    ("msg",),
    ("output", "payload", "message"),
)

# Where a symbolic code (``too_many_websockets``, ``M_UNKNOWN_TOKEN``) may sit.
CODE_PATHS: Final[tuple[tuple[str, ...], ...]] = (
    ("code",),
    ("errcode",),
    ("error_code",),
)

# Where a server's retry-after hint may sit, and the unit it is given in.
RETRY_AFTER_PATHS: Final[tuple[tuple[tuple[str, ...], float], ...]] = (
    (("retry_after",), 1.0),
    (("retryAfter",), 1.0),
    (("parameters", "retry_after"), 1.0),
    (("headers", "Retry-After"), 1.0),
    (("headers", "retry-after"), 1.0),
    (("retry_after_ms",), 0.001),
)

_WRAPPER_KEYS: Final = frozenset(path[0] for path in WRAPPERS)

_SYMBOLIC_CODE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
_WHITESPACE = re.compile(r"\s+")
T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class CloseEvent:
    """One disconnect, in the one shape every classifier reads.

    Attributes:
        status: The numeric status (HTTP, WebSocket close code, platform code),
            or None when there was none or it could not be read.
        code: A symbolic error code such as ``too_many_websockets``, or None.
        reason: Sanitised human-readable text; safe to log.
        initiator: Who closed the connection.
        phase: Whether it ended during the opening handshake or once open.
        retry_after: The server's hint, in seconds, for the earliest retry.
        flags: Extra boolean facts a channel extracted (``soft_logout``).

    """

    status: int | None = None
    code: str | None = None
    reason: str = ""
    initiator: Initiator = Initiator.unknown
    phase: Phase = Phase.established
    retry_after: float | None = None
    flags: frozenset[str] = frozenset()  # immutable, so one shared default is safe

    def to_json(self) -> dict[str, object]:
        """Return a JSON-ready dict that :func:`normalise` reads back to an equal event."""
        return {
            "status": self.status,
            "code": self.code,
            "reason": self.reason,
            "initiator": self.initiator.value,
            "phase": self.phase.value,
            "retry_after": self.retry_after,
            "flags": sorted(self.flags),
        }


def sanitise_reason(text: str, limit: int | None = MAX_REASON_LENGTH) -> str:
    """Make network text safe to log: no control characters, one line, at most ``limit`` chars.

    Control, format (bidi overrides) and separator characters become spaces,
    runs of whitespace collapse to one, and overlong text ends in ``…``. With
    ``limit=None`` nothing is cut: for text we made ourselves around a user's
    input (an operator message naming a link id), which is as long as it is.
    """
    if limit is None:
        limit = max(len(text), 1)
    # Look only at a bounded prefix: a megabyte of reason costs no more than 4x the limit.
    head = text[: limit * 4]
    if head.isprintable():
        printable = head  # the usual case, checked in one C call instead of per character
    else:
        printable = "".join(ch if ch.isprintable() else " " for ch in head)
    cleaned = _WHITESPACE.sub(" ", printable).strip()
    if len(cleaned) > limit or len(text) > len(head):
        return cleaned[: limit - 1].rstrip() + "…"
    return cleaned


def parse_status(value: object) -> int | None:
    """Read one status value: 440, "440", " 440 " and 440.0 give 440; anything else None.

    The result is always an exact ``int``, never a subclass the caller handed
    in: an event's fields are hashed and compared by every classifier, and a
    subclass may make that raise.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        whole = int.__int__(value)  # int's own conversion: a subclass's __int__ may raise
        return whole if whole in _STATUS_RANGE else None
    if isinstance(value, float):
        real = float.__float__(value)  # likewise: an exact float
        if math.isfinite(real) and real.is_integer():
            return parse_status(int(real))
        return None
    if isinstance(value, str) and str.__len__(value) <= 32 and str.isascii(value):
        # str's own methods: a str subclass may override them to raise.
        text = str.strip(value)
        if text.isdecimal():
            return parse_status(int(text))
        try:
            number = float(text)
        except ValueError:
            return None
        return parse_status(number)
    return None


def _follow(obj: object, path: tuple[str, ...]) -> object:
    for key in path:
        obj = lookup(obj, key)
        if obj is None:
            return None
    return obj


def _layers(raw: object) -> Iterator[object]:
    """Yield ``raw`` and the errors it wraps, breadth first, at most MAX_DEPTH deep."""
    frontier = [raw]
    seen: set[int] = set()
    for _ in range(MAX_DEPTH):
        next_frontier: list[object] = []
        for obj in frontier:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield obj
            if type(obj) is dict and obj.keys().isdisjoint(_WRAPPER_KEYS):
                continue  # decoded JSON with no wrapper key, decided in one C call
            for path in WRAPPERS:
                inner = _follow(obj, path)
                if inner is not None and not isinstance(inner, (str, int, float, bool)):
                    next_frontier.append(inner)
        frontier = next_frontier
        if not frontier:
            return


def _read_layers(raw: object) -> list[object]:
    """``list(_layers(raw))``, without the generator for a plain dict that wraps nothing."""
    if type(raw) is dict and raw.keys().isdisjoint(_WRAPPER_KEYS):
        return [raw]  # the flat {status, reason} close of most channels
    return list(_layers(raw))


class _Paths:
    """A path table with the set of its first keys, for the plain-dict shortcut of ``_present``."""

    __slots__ = ("firsts", "paths")

    def __init__(self, paths: tuple[tuple[str, ...], ...]) -> None:
        self.paths = paths
        self.firsts = frozenset(path[0] for path in paths)


def _present(layers: list[object], table: _Paths) -> Iterator[tuple[int, object]]:
    """Yield ``(index of the path, value)`` for each path present, layer by layer, in order."""
    paths, firsts = table.paths, table.firsts
    for layer in layers:
        if type(layer) is dict:
            # Decoded JSON, the usual case: a layer holding none of the table's
            # first keys is skipped in one C call, and only the paths whose
            # first key it holds are followed (a plain dict's get cannot raise).
            if layer.keys().isdisjoint(firsts):
                continue
            for index, path in enumerate(paths):
                value = layer.get(path[0])
                if value is not None and len(path) > 1:
                    value = _follow(value, path[1:])
                if value is not None:
                    yield index, value
            continue
        for index, path in enumerate(paths):
            value = _follow(layer, path)
            if value is not None:
                yield index, value


def _first(layers: list[object], table: _Paths, read: Callable[[object], T | None]) -> T | None:
    for _, value in _present(layers, table):
        parsed = read(value)
        if parsed is not None:
            return parsed
    return None


def _read_code(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    code = str.__str__(value)  # an exact str: a subclass's hash or == may raise in a classifier
    if _SYMBOLIC_CODE.fullmatch(code) and not code.isdecimal():
        return code
    return None


def _read_text(value: object) -> str | None:
    if type(value) is str:
        return value  # the usual case, answered without a second call
    return text(value, _REASON_TEXT_LIMIT)


def _read_seconds(value: object, unit: float) -> float | None:
    if isinstance(value, bool):
        return None
    number: float
    # Exact float and int (their own conversions): a subclass's arithmetic or
    # comparisons may raise, in here or later in the policy.
    if isinstance(value, float):
        number = float.__float__(value)
    elif isinstance(value, int):
        whole = int.__int__(value)
        # float() of a JSON integer with hundreds of digits raises OverflowError.
        number = float(whole) if abs(whole) <= 2**63 else math.inf if whole > 0 else -math.inf
    elif isinstance(value, str) and str.isascii(value):
        # str's own methods: a str subclass may override them to raise.
        text = str.strip(value)
        if str.isdecimal(text):
            # Whole seconds, however many digits: a long wait, capped below.
            number = float(text) if len(text) <= 32 else math.inf
        elif len(text) <= 32:
            try:
                number = float(text)
            except ValueError:
                return None
        else:
            return None
    else:
        return None
    seconds = number * unit
    if math.isnan(seconds) or seconds < 0.0:
        return None  # no hint at all: a negative wait means nothing
    # However long (infinite: a JSON integer of hundreds of digits), capped, not
    # dropped: see MAX_RETRY_AFTER.
    # + 0.0 turns -0.0 into 0.0: equal hints read alike, down to the sign.
    return min(seconds, MAX_RETRY_AFTER) + 0.0


# The module's path tables, each with its first keys.
_STATUS: Final = _Paths(STATUS_PATHS)
_REASON: Final = _Paths(REASON_PATHS)
_CODE: Final = _Paths(CODE_PATHS)
_RETRY_AFTER: Final = _Paths(tuple(path for path, _ in RETRY_AFTER_PATHS))


def _read_retry_after(layers: list[object]) -> float | None:
    for index, value in _present(layers, _RETRY_AFTER):
        seconds = _read_seconds(value, RETRY_AFTER_PATHS[index][1])
        if seconds is not None:
            return seconds
    return None


def _read_enum(value: object, kind: type[E]) -> E | None:
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            return None
    return None


def _read_flags(value: object) -> frozenset[str]:
    if isinstance(value, (list, tuple, frozenset, set)):
        try:
            # Exact str only: a str subclass may hash or compare in ways that raise.
            return frozenset(
                flag
                for flag in itertools.islice(value, MAX_FLAGS)
                if type(flag) is str and _SYMBOLIC_CODE.fullmatch(flag)
            )
        except Exception:  # a container subclass whose iteration raises has no flags
            return frozenset()
    return frozenset()


def _exception_text(raw: object) -> str:
    if isinstance(raw, BaseException):
        try:
            return str(raw)
        except Exception:
            return type(raw).__name__
    return ""


def normalise(
    raw: object,
    *,
    phase: Phase | None = None,
    initiator: Initiator | None = None,
    flags: frozenset[str] = frozenset(),
) -> CloseEvent:
    """Turn anything a client library reports about a close into a :class:`CloseEvent`.

    Never raises. A :class:`CloseEvent` is returned unchanged (apart from the
    keyword overrides), which makes normalisation idempotent.

    Args:
        raw: A number, a string, a dict, an exception, or anything else.
        phase: Overrides the phase read from ``raw`` (default: established).
        initiator: Overrides who closed (default: read from ``raw``, else unknown).
        flags: Extra flags to add, such as ``soft_logout``.

    """
    try:
        if type(raw) is dict:
            # Decoded JSON, the usual close: straight to its layers.
            event = _read_object(raw)
        else:
            event = raw if type(raw) is CloseEvent else _normalise_fresh(raw)
    except Exception:
        # The tables above bound the work, and every read goes through lookup,
        # which catches what a hostile property raises; what remains (a dict
        # key whose __eq__ raises, a str subclass whose strip() raises, a
        # RecursionError) means the object cannot be read, which is what an
        # event without a status says. A disconnect must never crash the supervisor.
        event = _UNREADABLE
    if phase is None and initiator is None and not flags:
        return event
    return CloseEvent(
        status=event.status,
        code=event.code,
        reason=event.reason,
        initiator=initiator or event.initiator,
        phase=phase or event.phase,
        retry_after=event.retry_after,
        # Caller flags are bounded and filtered like flags read from a close.
        flags=event.flags | _read_flags(flags) if flags else event.flags,
    )


def read_safely(read: Callable[[object], CloseEvent], raw: object) -> CloseEvent:
    """``read(raw)``, or the generic reading of ``raw`` when ``read`` raises; never raises.

    An extractor that trips over a hostile object (a dict subclass whose
    ``get`` raises, a str subclass whose ``__hash__`` does) must not turn a
    disconnect into a crash.
    """
    try:
        return read(raw)
    except Exception:
        return normalise(raw)


def extract_with(
    raw: object,
    readers: Iterable[Reader],
    fallback: Callable[[object], CloseEvent] = normalise,
) -> CloseEvent:
    """Normalise ``raw`` through the first reader that recognises it, else through ``fallback``.

    Text holding a JSON object is parsed first, so a raw frame reads like its dict.
    """
    try:
        raw = json_text(raw)
        found = read_first(raw, readers)
        return fallback(raw) if found is None else normalise(found)
    except Exception:
        # A reader (or a plugin's fallback) that trips over a hostile object
        # must not turn a disconnect into a crash: read it the generic way.
        return normalise(raw)


# A bare status is the commonest close (a WebSocket close code, a test's 428).
# Its event is immutable, so one per status is shared: building a frozen
# dataclass costs about a microsecond. At most len(_STATUS_RANGE) entries.
_STATUS_EVENTS: Final[dict[int, CloseEvent]] = {}


def _status_event(status: int) -> CloseEvent:
    event = _STATUS_EVENTS.get(status)
    if event is None:
        event = _STATUS_EVENTS[status] = CloseEvent(status=status)
    return event


# What an object that cannot be read at all normalises to.
_UNREADABLE: Final = CloseEvent(reason="unreadable close")


def _normalise_fresh(raw: object) -> CloseEvent:
    status = parse_status(raw)
    if status is not None:
        return _status_event(status)
    # An exception, by its real type (the checks below ask a __class__ too).
    # One of a planned type has no __class__ of its own, so none of the cases
    # below is it: straight to its reader. Its names are asked for once.
    error = issubclass(type(raw), BaseException)
    names = _object_keys.names(raw) if error else None
    if names is not None:
        try:
            return _read_names(raw, names)
        except Exception:
            return _read_general(raw)
    if isinstance(raw, (str, bytes, bytearray)):
        whole = _read_text(raw) or ""
        # A symbolic code is at most 64 characters: a longer text is a reason
        # only, so a ten-million-character string costs no scan here.
        head = str.strip(whole[:_REASON_TEXT_LIMIT]) if isinstance(raw, str) else ""
        code = _read_code(head) if len(head) <= 64 else None
        return CloseEvent(code=code, reason=sanitise_reason(whole))
    if raw is None or isinstance(raw, (bool, int, float)):
        return CloseEvent()
    try:
        # _read_object's case of an object, a call fewer; an exception's
        # names were asked for above (None: its type has no plan).
        return _read_names(raw, None) if error else _read_attrs(raw)
    except Exception:
        return _read_general(raw)


def _read_object(raw: object) -> CloseEvent:
    """A dict, an exception or any other object, read through its layers.

    Whatever the fast reader trips over (a hostile key it compared while
    choosing its plan), the general reader decides, or raises for
    :func:`normalise` to answer.
    """
    try:
        return _read_fast(raw) if type(raw) is dict else _read_attrs(raw)
    except Exception:
        return _read_general(raw)


def _read_general(raw: object) -> CloseEvent:
    """The reading the tables describe: each table across every layer, in turn.

    The definition :func:`_read_fast` must agree with (tests/test_hot_path.py).
    """
    layers = _read_layers(raw)
    reason = _first(layers, _REASON, _read_text)
    top = layers[0]
    return CloseEvent(
        status=_first(layers, _STATUS, parse_status),
        code=_first(layers, _CODE, _read_code),
        reason=sanitise_reason(reason if reason is not None else _exception_text(raw)),
        initiator=_read_enum(lookup(top, "initiator"), Initiator) or Initiator.unknown,
        phase=_read_enum(lookup(top, "phase"), Phase) or Phase.established,
        retry_after=_read_retry_after(layers),
        flags=_read_flags(lookup(top, "flags")),
    )


# -- the fast reader --------------------------------------------------------------------------
#
# _read_general reads each table across every layer: about thirty probes and
# as many calls for a Baileys close. _read_fast gives the same event (no read
# has a side effect, so the order of reads cannot matter) from one pass: each
# layer is read once, for the paths whose first key it holds, chosen by a
# plan cached per set of keys; equal readings share one event. A close of a
# shape seen before skips even that: its top layer's plan holds a compiled
# tree (below) that reads the whole close in one call.

# The keys read on the first layer only: a close's own initiator, phase and flags.
_TOP_KEYS: Final = ("initiator", "phase", "flags")

# Every first key a layer is read for, in table order.
_KEYS: Final = tuple(
    dict.fromkeys(
        [
            *(path[0] for table in (STATUS_PATHS, REASON_PATHS, CODE_PATHS) for path in table),
            *(path[0] for path, _ in RETRY_AFTER_PATHS),
            *(path[0] for path in WRAPPERS),
            *_TOP_KEYS,
        ]
    )
)
_ALL_KEYS: Final = frozenset(_KEYS)

# _STATUS_RANGE as bounds: a chained comparison costs less than range's contains.
_STATUS_LOW: Final = _STATUS_RANGE.start
_STATUS_HIGH: Final = _STATUS_RANGE.stop

# What a layer at this depth wraps is past the depth bound.
_LAST_DEPTH: Final = MAX_DEPTH - 1
_NO_FLAGS: Final[frozenset[str]] = frozenset()

# Values that are never a wrapped error.
_SCALAR_TYPES: Final = (str, int, float, bool)


def _status_value(value: object) -> int | None:
    # An exact int in range is its own status: parse_status without its checks.
    if type(value) is int and _STATUS_LOW <= value < _STATUS_HIGH:
        return value
    return parse_status(value)


def _seconds_reader(unit: float) -> Callable[[object], float | None]:
    return lambda value: _read_seconds(value, unit)


_Found = tuple[int | None, str | None, str | None, float | None]

# One step: the first key, the rest of the path, and the reader of the value.
_Step = tuple[str, tuple[str, ...], Callable[[object], object]]

# The steps of each field, in table order; a field's slot is its index here
# (and in _read_fast's ``found``): status, reason, code, retry-after.
_FIELD_STEPS: Final[tuple[tuple[_Step, ...], ...]] = (
    tuple((path[0], path[1:], _status_value) for path in STATUS_PATHS),
    tuple((path[0], path[1:], _read_text) for path in REASON_PATHS),
    tuple((path[0], path[1:], _read_code) for path in CODE_PATHS),
    tuple((path[0], path[1:], _seconds_reader(unit)) for path, unit in RETRY_AFTER_PATHS),
)


class _Plan:
    """The paths worth following on one layer: those whose first key it holds, in table order.

    A layer is planned by the set of its keys (a dict's, or the keys of ours an
    object has), so two layers holding the same keys share one plan.
    """

    __slots__ = ("attrs", "fields", "misses", "top", "tree", "wrappers")

    def __init__(self, keys: frozenset[object]) -> None:
        # (slot, its steps) for each field the layer may give, in _FIELD_STEPS' order.
        self.fields = tuple(
            (slot, present)
            for slot, steps in enumerate(_FIELD_STEPS)
            if (present := tuple(step for step in steps if step[0] in keys))
        )
        self.wrappers = tuple((path[0], path[1:]) for path in WRAPPERS if path[0] in keys)
        # Whether the layer holds initiator, phase or flags (read on the first layer only).
        self.top = any(key in keys for key in _TOP_KEYS)
        # The reader compiled for a close whose top layer holds these keys (see
        # _compile_tree), None until one is; and how many closes in a row it missed.
        self.tree: _Tree | None = None
        self.misses = 0
        # The reader compiled for an object whose type's plan names these keys
        # (see _compile_attrs), None until one is.
        self.attrs: _Attrs | None = None


# Plans by the keys of a small dict layer (all of them: frozenset(d) reuses the
# hashes the dict stored, so no key's __hash__ runs), or by the keys of ours a
# large or non-dict layer holds. Only sets of exact, short strs are kept, so a
# hostile key never keys the cache and a huge one is not held on to; a set
# holding one is planned afresh each time. Emptied when full, which bounds it.
_PLANS: Final[dict[frozenset[object], _Plan]] = {}
_MAX_PLANS: Final = 256
# A dict layer of more keys is intersected with ours instead: bounded work.
_SMALL_LAYER: Final = 16
_MAX_KEY_LENGTH: Final = 64


def _plan(keys: frozenset[object]) -> _Plan:
    """The plan for a layer holding ``keys``, made and kept on a miss."""
    plan = _PLANS.get(keys)
    if plan is None:
        plan = _Plan(keys)
        if all(type(key) is str and len(key) <= _MAX_KEY_LENGTH for key in keys):
            if len(_PLANS) >= _MAX_PLANS:
                _PLANS.clear()
            _PLANS[keys] = plan
    return plan


# Which of our keys an object layer may answer: an exception's type is planned
# once, then only the keys its instance dict and classes name are read.
_object_keys: Final = LookupAll(_KEYS)


def _layer(obj: object) -> tuple[Callable[[str], object], _Plan]:
    """A getter of one layer's keys, and its plan."""
    # (_read_fast inlines the first case for the dicts it finds wrapped.)
    if type(obj) is dict:
        keys = frozenset(obj) if len(obj) <= _SMALL_LAYER else frozenset(obj.keys() & _ALL_KEYS)
        return obj.get, _plan(keys)
    names = _object_keys.names(obj)
    if names is not None:
        # A planned type: the keys it may answer, read once (the plan of the
        # names that read None too gives the same reading: each step skips a
        # None). Whatever raises here, the general reader decides.
        held = {key: getattr(obj, key, None) for key in names}
        return held.get, _plan(names)
    held = lookup_all(obj, _KEYS)  # what lookup gives for each key, read once
    return held.get, _plan(frozenset(held))


def _follow_fast(value: object, rest: tuple[str, ...]) -> object:
    """``_follow``, reading plain dicts without the call to lookup."""
    for key in rest:
        value = value.get(key) if type(value) is dict else lookup(value, key)
        if value is None:
            return None
    return value


# -- compiled trees ---------------------------------------------------------------------------
#
# The closes one sender reports nest alike, close after close: Baileys' top
# layer {connection, lastDisconnect} wraps {error, date}, which wraps the Boom
# {message, output}. _read_fast reads such a close with a plan look-up per
# layer and a walk through each plan's steps. A tree is that same reading for
# one shape, written out once as straight-line code: it first checks that the
# close nests as the one it was compiled from (each wrapper leads to an exact
# dict holding the same keys, to the same layer again, or to no layer: None
# or a scalar), then reads every field from the same paths, in the same order,
# with the readers of _FIELD_STEPS (the exact int and str cases inline). A
# close that nests otherwise makes it answer None: _read_fast reads it as
# usual, and after _MAX_MISSES misses in a row compiles again from the next.
#
# Why a tree may skip _read_fast's ids: a layer read a second time gives
# nothing new (its fields were read from it already, and what it wraps was
# found already), so a tree reading one object twice, as two layers of the
# same keys, gives the same event. The reverse would not hold, so a layer the
# compiled close held once but reached twice is checked to be that same
# object again.
#
# A tree is compiled when a top layer's keys are seen a second time, so a
# sender of ever new keys never pays for a compile, and a shape that keeps
# changing pays for one in _MAX_MISSES closes. It hangs on its top layer's
# plan, so _PLANS bounds the trees too; each reads at most 1 + 3 + 9 + 27
# layers (three wrappers a layer, MAX_DEPTH deep).
#
# Nothing a client sent is ever compiled: the source holds our table keys
# (the reprs of the str literals above), names and our own numbers; the key
# sets the checks compare a layer with are passed in as values.

_Tree = Callable[[dict[Any, Any]], "CloseEvent | None"]

# Misses in a row after which a tree is compiled again.
_MAX_MISSES: Final = 64


def _no_tree(raw: dict[Any, Any]) -> CloseEvent | None:
    """The tree of a shape no tree reads (an object or a large dict wrapped): always a miss."""
    return None


def _path_source(target: str, first: str, rest: tuple[str, ...]) -> list[str]:
    """Lines setting ``target`` to the value at ``rest`` of the value ``first`` reads, or None."""
    lines = [f"{target} = {first}"]
    lines.extend(
        f"if {target} is not None: {target} = "
        f"{target}.get({key!r}) if type({target}) is dict else lookup({target}, {key!r})"
        for key in rest
    )
    return lines


def _tree_source(raw: dict[Any, Any]) -> tuple[str, dict[str, object]] | None:
    """The source of the tree reading closes nested as ``raw``, and its namespace; None if none can.

    Walks ``raw``'s layers as :func:`_read_fast` does, writing down the checks
    that a close nests alike, then the reads of each layer's fields.
    """
    namespace: dict[str, object] = {
        "_NO_FLAGS": _NO_FLAGS,
        "_SCALAR_TYPES": _SCALAR_TYPES,
        "_event": _event,
        "_read_enum": _read_enum,
        "_read_flags": _read_flags,
        "Initiator": Initiator,
        "Phase": Phase,
        "lookup": lookup,
    }
    checks: list[str] = []
    plans: list[_Plan] = []  # layer n's plan; the tree's variable ln holds the layer
    index_of: dict[int, int] = {id(raw): 0}  # a layer's id: its n, in the order found
    frontier = [raw]
    for depth in range(MAX_DEPTH):
        wrapped: list[dict[Any, Any]] = []
        for layer in frontier:
            name = f"l{len(plans)}"  # layers are read in the order they are found
            plan = _plan(frozenset(layer))
            plans.append(plan)
            for first, rest in plan.wrappers if depth < _LAST_DEPTH else ():
                checks.extend(_path_source("v", f"{name}.get({first!r})", rest))
                inner = layer.get(first)
                if rest and inner is not None:
                    inner = _follow_fast(inner, rest)
                found = len(index_of)
                check = _wrapped_check(inner, index_of, namespace)
                if check is None:
                    return None
                checks.extend(check)
                if len(index_of) > found:
                    wrapped.append(cast("dict[Any, Any]", inner))  # a new layer
        if not wrapped:
            break
        frontier = wrapped
    reads = ["f0 = f1 = f2 = f3 = None"]
    for n, plan in enumerate(plans):
        reads.extend(_field_source(f"l{n}", plan, namespace, fresh=n == 0))
    top = plans[0].top
    reads.extend(
        [
            "initiator = _read_enum(l0.get('initiator'), Initiator)" if top else "initiator = None",
            "phase = _read_enum(l0.get('phase'), Phase)" if top else "phase = None",
            "flags = _read_flags(l0.get('flags'))" if top else "flags = _NO_FLAGS",
            "return _event((f0, f2, '' if f1 is None else f1, initiator, phase, f3, flags))",
        ]
    )
    body = "\n".join(f"    {line}" for line in (*checks, *reads))
    return f"def tree(l0):\n{body}\n", namespace


def _wrapped_check(
    inner: object, index_of: dict[int, int], namespace: dict[str, object]
) -> list[str] | None:
    """Lines checking that the value ``v`` a wrapper leads to is like ``inner``; None if none can.

    A new layer is numbered in ``index_of``, and the key set its check
    compares with is put in ``namespace``.
    """
    if inner is not None and id(inner) in index_of:
        return [f"if v is not l{index_of[id(inner)]}: return None"]  # a layer found before
    if inner is None or (type(inner) is not dict and isinstance(inner, _SCALAR_TYPES)):
        return ["if v is not None and not isinstance(v, _SCALAR_TYPES): return None"]
    if type(inner) is not dict or len(inner) > _SMALL_LAYER:
        return None  # an object, or a large dict: read by _read_fast
    keys = frozenset(inner)
    if not all(type(key) is str and len(key) <= _MAX_KEY_LENGTH for key in keys):
        return None
    name = f"l{len(index_of)}"
    index_of[id(inner)] = len(index_of)
    namespace[f"keys_{name}"] = keys
    return [f"if type(v) is not dict or v.keys() != keys_{name}: return None", f"{name} = v"]


def _field_source(
    layer: str,
    plan: _Plan,
    namespace: dict[str, object],
    *,
    fresh: bool,
    held: dict[str, str] | None = None,
) -> list[str]:
    """Lines reading the fields ``plan`` gives from ``layer``, each step while its field is None.

    ``fresh``: no layer was read before this one, so every field is still
    None at its first step. A dict layer's first keys are read with its
    ``get``; an object's were read already, into the variables ``held`` names.
    """
    lines = []
    for slot, steps in plan.fields:
        for step, (first, rest, read) in enumerate(steps):
            reader = f"read{len(namespace)}"
            namespace[reader] = read
            # The readers' commonest cases inline: an exact int in range, an exact str.
            if read is _status_value:
                value = f"v if type(v) is int and {_STATUS_LOW} <= v < {_STATUS_HIGH} else "
            elif read is _read_text:
                value = "v if type(v) is str else "
            else:
                value = ""
            # _read_code reads a str only: for any other value, no call.
            test = "isinstance(v, str)" if read is _read_code else "v is not None"
            source = f"{layer}.get({first!r})" if held is None else held[first]
            # On the first layer read, a field's first step finds it None: no test.
            tested = step > 0 or not fresh
            indent = "    " if tested else ""
            if tested:
                lines.append(f"if f{slot} is None:")
            lines.extend(f"{indent}{line}" for line in _path_source("v", source, rest))
            lines.append(f"{indent}if {test}: f{slot} = {value}{reader}(v)")
    return lines


def _compile_tree(raw: dict[Any, Any]) -> _Tree:
    """The tree reading closes nested as ``raw`` (:func:`_no_tree` when none can)."""
    made = _tree_source(raw)
    if made is None:
        return _no_tree
    source, namespace = made
    exec(source, namespace)  # our table keys only: see the section's comment
    return cast("_Tree", namespace["tree"])


# -- compiled attribute readers ---------------------------------------------------------------
#
# An object (an exception, mostly) is one layer, read by the keys its type's
# plan names (_object_keys, a LookupAll: it checks on every call that the
# plan still describes the type and the instance, and answers None whenever
# it cannot say). _read_planned would copy those attributes into a dict and
# walk the plan of those names. An attribute reader is that same reading,
# written out as straight-line code for one set of names: one getattr for
# each name, held in a local, then each field from the same steps in the same
# order, the exact int and str cases inline, as in a tree. It depends on the
# names alone, never on a type or an object: any object whose names are
# these reads the same attributes it would in _read_planned. An object
# wrapping a layer (a name of WRAPPERS) gets no reader: _read_planned reads
# its layers. A reader is compiled on the second sighting of its names and
# hangs on their plan, so _PLANS bounds them; its source holds our table keys
# only (names are our keys; see _attrs_source).

_Attrs = Callable[[object], CloseEvent]


def _no_attrs(raw: object) -> CloseEvent:
    """The reader of names no attribute reader reads (a wrapper among them): never called."""
    raise AssertionError("_read_attrs reads these names through _read_planned")


def _attrs_source(names: frozenset[str], plan: _Plan) -> tuple[str, dict[str, object]] | None:
    """The source of the reader of an object whose plan names ``names``; None if none can."""
    if plan.wrappers or not names <= _ALL_KEYS:
        return None
    namespace: dict[str, object] = {
        "_NO_FLAGS": _NO_FLAGS,
        "_event": _event,
        "_exception_text": _exception_text,
        "_read_enum": _read_enum,
        "_read_flags": _read_flags,
        "BaseException": BaseException,
        "Initiator": Initiator,
        "Phase": Phase,
        "lookup": lookup,
    }
    held = {key: f"a{_KEYS.index(key)}" for key in names}
    lines = [f"{held[key]} = getattr(l0, {key!r}, None)" for key in _KEYS if key in held]
    lines.append("f0 = f1 = f2 = f3 = None")
    lines.extend(_field_source("l0", plan, namespace, fresh=True, held=held))
    # A close's own initiator, phase and flags, as _read_planned reads them on its first layer.
    initiator, phase, flags = (held.get(key, "None") for key in _TOP_KEYS)
    lines.extend(
        [
            f"initiator = _read_enum({initiator}, Initiator)" if plan.top else "initiator = None",
            f"phase = _read_enum({phase}, Phase)" if plan.top else "phase = None",
            f"flags = _read_flags({flags})" if plan.top else "flags = _NO_FLAGS",
            "if f1 is None: f1 = _exception_text(l0) if isinstance(l0, BaseException) else ''",
            "return _event((f0, f2, f1, initiator, phase, f3, flags))",
        ]
    )
    body = "\n".join(f"    {line}" for line in lines)
    return f"def attrs(l0):\n{body}\n", namespace


def _compile_attrs(names: frozenset[str], plan: _Plan) -> _Attrs:
    """The reader of an object whose plan names ``names`` (:func:`_no_attrs` when none can)."""
    made = _attrs_source(names, plan)
    if made is None:
        return _no_attrs
    source, namespace = made
    exec(source, namespace)  # our table keys only: see the section's comment
    return cast("_Attrs", namespace["attrs"])


def _read_attrs(raw: object) -> CloseEvent:
    """An object's reading (not a dict's), by the names its type's plan gives, if it has one."""
    return _read_names(raw, _object_keys.names(raw))


def _read_names(raw: object, names: frozenset[str] | None) -> CloseEvent:
    """:func:`_read_planned` of an object whose plan names ``names``, through their reader if any.

    ``names`` is what ``_object_keys.names(raw)`` gave: None for a type it has no plan for.
    """
    if names is None:
        # No plan for its type: what lookup gives for each key, read once.
        found = lookup_all(raw, _KEYS)
        return _read_planned(raw, (found.get, _plan(frozenset(found))))
    plan = _PLANS.get(names)
    if plan is None:
        plan = _plan(names)  # the first sighting of these names: no reader yet
    else:
        attrs = plan.attrs
        if attrs is None:
            attrs = plan.attrs = _compile_attrs(names, plan)
        if attrs is not _no_attrs:
            return attrs(raw)
    # (the plan of the names that read None too gives the same reading: each step skips a None)
    held = {key: getattr(raw, key, None) for key in names}
    return _read_planned(raw, (held.get, plan))


def _read_fast(raw: object) -> CloseEvent:
    """What :func:`_read_general` gives, reading each layer once, breadth first."""
    if (
        type(raw) is dict
        and len(raw) <= _SMALL_LAYER
        and (plan := _PLANS.get(frozenset(raw))) is not None
    ):
        # A top layer seen before: its compiled tree reads the whole close,
        # unless this close's nested layers differ from the tree's.
        tree = plan.tree
        if tree is None:
            tree = plan.tree = _compile_tree(raw)
        if (event := tree(raw)) is not None:
            if plan.misses:
                plan.misses = 0
            return event
        plan.misses += 1
        if plan.misses >= _MAX_MISSES:
            # The shape of this sender's closes changed: compile again, from the next one.
            plan.tree, plan.misses = None, 0
        return _read_planned(raw, (raw.get, plan))
    return _read_planned(raw, _layer(raw))


def _read_planned(raw: object, top: tuple[Callable[[str], object], _Plan]) -> CloseEvent:
    """:func:`_read_fast`'s reading of ``raw``, whose top layer is ``top``, layer by layer."""
    layers = [top]
    # status, reason, code, retry-after: each from the first step that reads it.
    found: list[object] = [None, None, None, None]
    initiator: Initiator | None = None
    phase: Phase | None = None
    flags = _NO_FLAGS
    # The ids of every layer found: a cycle, or an error wrapped twice, is read once.
    # Each layer of the depth being read is held as its getter and plan: a
    # layer is planned where it is found, so a dict's type is checked once.
    seen = [id(raw)]
    for depth in range(MAX_DEPTH):
        wrapped: list[tuple[Callable[[str], object], _Plan]] = []
        for get, plan in layers:
            for slot, steps in plan.fields:
                if found[slot] is None:
                    for first, rest, read in steps:
                        value = get(first)
                        if rest and value is not None:
                            value = _follow_fast(value, rest)
                        if value is not None and (value := read(value)) is not None:
                            found[slot] = value
                            break
            if plan.top and depth == 0:
                initiator = _read_enum(get("initiator"), Initiator)
                phase = _read_enum(get("phase"), Phase)
                flags = _read_flags(get("flags"))
            if plan.wrappers and depth < _LAST_DEPTH:
                for first, rest in plan.wrappers:
                    inner = get(first)
                    if rest and inner is not None:
                        inner = _follow_fast(inner, rest)
                    if inner is None or (layer_id := id(inner)) in seen:
                        continue
                    if type(inner) is dict:
                        seen.append(layer_id)
                        # _layer's commonest case inline: a dict whose keys were planned.
                        if (
                            len(inner) <= _SMALL_LAYER
                            and (inner_plan := _PLANS.get(frozenset(inner))) is not None
                        ):
                            wrapped.append((inner.get, inner_plan))
                        else:
                            wrapped.append(_layer(inner))
                    elif not isinstance(inner, _SCALAR_TYPES):
                        seen.append(layer_id)
                        wrapped.append(_layer(inner))
        if not wrapped:
            break
        layers = wrapped
    # The slots hold what their readers return (see _FIELD_STEPS).
    status, reason, code, retry_after = cast("_Found", found)
    if reason is None:
        reason = _exception_text(raw) if isinstance(raw, BaseException) else ""
    return _event((status, code, reason, initiator, phase, retry_after, flags))


# One reading: status, code, reason (unsanitised), initiator, phase, retry-after, flags.
_Reading = tuple[
    int | None, str | None, str, Initiator | None, Phase | None, float | None, frozenset[str]
]


def _event(reading: _Reading) -> CloseEvent:
    """The event of one reading, shared with every equal reading."""
    # Events are frozen, so equal readings share one: building a frozen slotted
    # dataclass costs more than reading a close. The reading holds exact
    # values only (exact int, str and float, our enums, a frozenset of exact
    # str); a reason that is not an exact str, or is long, is not kept.
    status, code, reason, initiator, phase, retry_after, flags = reading
    cacheable = type(reason) is str and len(reason) <= MAX_REASON_LENGTH
    if cacheable and (event := _EVENTS.get(reading)) is not None:
        return event
    event = CloseEvent(
        status=status,
        code=code,
        reason=sanitise_reason(reason),
        initiator=initiator or Initiator.unknown,
        phase=phase or Phase.established,
        retry_after=retry_after,
        flags=flags,
    )
    if cacheable:
        if len(_EVENTS) >= _MAX_EVENTS:
            _EVENTS.clear()
        _EVENTS[reading] = event
    return event


# The events of the readings seen, by reading; emptied when full, which bounds it.
_EVENTS: Final[dict[tuple[object, ...], CloseEvent]] = {}
_MAX_EVENTS: Final = 1024


# -- shapes a channel trusts ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustedFlag:
    """A boolean a channel's clients put on a close, and the event flag it becomes.

    Attributes:
        keys: The keys (or attributes) that carry it, read on the close and on
            each error it wraps (``lastDisconnect``...); only ``True`` counts.
        flag: The event flag it sets, for rows narrowed with ``flag=``.
        status: The status it stands for, replacing any status read beside
            it: the client decides on this flag before the number
            (OpenClaw's ``isLoggedOut`` is WhatsApp's 401 whatever the status).

    """

    keys: tuple[str, ...]
    flag: str
    status: int | None = None

    def __post_init__(self) -> None:
        if not self.keys or not all(isinstance(key, str) and key for key in self.keys):
            raise ArgumentError(
                f"TrustedFlag {self.flag!r}: keys={self.keys!r} must name at least one key, "
                "such as keys=('isLoggedOut',)"
            )
        if not isinstance(self.flag, str) or not _SYMBOLIC_CODE.fullmatch(self.flag):
            raise ArgumentError(
                f"TrustedFlag flag={self.flag!r} is not a flag name; use an identifier such "
                "as 'logged_out'"
            )
        if self.status is not None and parse_status(self.status) != self.status:
            raise ArgumentError(
                f"TrustedFlag {self.flag!r}: status={self.status!r} is not a status; use a "
                f"whole number from {_STATUS_RANGE.start} to {_STATUS_RANGE.stop - 1}, or None"
            )


@dataclass(frozen=True, slots=True)
class Shapes:
    """Where one channel's clients put facts the generic reading does not look for.

    A channel trusts these above :func:`normalise`'s guesses, so they win:
    a trusted flag's status replaces the status read, and a trusted code
    replaces the generic ``code`` (node-slack-sdk's ``code`` is its own
    class name, ``slack_webapi_platform_error``; the Slack code sits in
    ``data.error``).

    Attributes:
        flags: Booleans that become event flags (and may stand for a status).
        code_paths: Where a symbolic code sits, tried in order on the close
            and on each error it wraps, before the generic ``code``.
        code_patterns: Regular expressions with one group, searched in the
            sanitised reason when no code path matched; the group is the code
            (``An API error occurred: ([a-z_]+)``).

    """

    flags: tuple[TrustedFlag, ...] = ()
    code_paths: tuple[tuple[str, ...], ...] = ()
    code_patterns: tuple[str, ...] = ()
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _code_paths: _Paths = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for path in self.code_paths:
            if not path or not all(isinstance(key, str) and key for key in path):
                raise ArgumentError(
                    f"Shapes code_paths: {path!r} is not a path; give a tuple of keys, "
                    "such as ('data', 'error')"
                )
        compiled = []
        for pattern in self.code_patterns:
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                raise ArgumentError(
                    f"Shapes code_patterns: {pattern!r} is not a regular expression ({exc}); fix it"
                ) from exc
            if regex.groups != 1:
                raise ArgumentError(
                    f"Shapes code_patterns: {pattern!r} has {regex.groups} groups; give "
                    "exactly one, around the code, such as r'An API error occurred: ([a-z_]+)'"
                )
            compiled.append(regex)
        object.__setattr__(self, "_patterns", tuple(compiled))
        object.__setattr__(self, "_code_paths", _Paths(self.code_paths))

    def __bool__(self) -> bool:
        return bool(self.flags or self.code_paths or self.code_patterns)

    def read(self, raw: object, event: CloseEvent) -> CloseEvent:
        """``event`` (read from ``raw``) with what these shapes find in ``raw``; never raises."""
        try:
            return self._read(json_text(raw), event)
        except Exception:
            return event  # a hostile object: keep the generic reading

    def _read(self, raw: object, event: CloseEvent) -> CloseEvent:
        if raw is None or type(raw) in (int, float, bool):
            return event  # a bare status carries no shape
        layers = [] if isinstance(raw, (str, bytes, bytearray)) else _read_layers(raw)
        status, found = event.status, []
        for trusted in self.flags:
            if _any_true(layers, trusted.keys):
                found.append(trusted.flag)
                if trusted.status is not None:
                    status = trusted.status
        code = _first(layers, self._code_paths, _read_code) if self.code_paths else None
        if code is None and self._patterns:
            code = next(
                (
                    found_code
                    for pattern in self._patterns
                    if (match := pattern.search(event.reason))
                    and (found_code := _read_code(match.group(1)))
                ),
                None,
            )
        flags = event.flags.union(found) if found else event.flags
        if status == event.status and code in (None, event.code) and flags is event.flags:
            return event
        return CloseEvent(
            status=status,
            code=code or event.code,
            reason=event.reason,
            initiator=event.initiator,
            phase=event.phase,
            retry_after=event.retry_after,
            flags=flags,
        )


def _any_true(layers: list[object], keys: tuple[str, ...]) -> bool:
    """True when one of ``keys`` is exactly ``True`` on one of ``layers``."""
    for layer in layers:
        if type(layer) is dict:
            # Decoded JSON, the usual case: a plain dict's get cannot raise.
            if any(layer.get(key) is True for key in keys):
                return True
        elif any(lookup(layer, key) is True for key in keys):
            return True
    return False
