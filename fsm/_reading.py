"""Duck-typed reading of what client libraries raise or emit; never raises.

Theory of operation
-------------------
A gateway should be able to hand linkstate the exception its client library
just raised (``discord.errors.ConnectionClosed``, ``slack_sdk.errors.SlackApiError``,
``websockets.exceptions.InvalidStatus``...) and get the right verdict, yet
linkstate must not depend on any of those libraries. So nothing here imports
them. A reader recognises an object by the *package and name* of a class in
its MRO (:func:`is_a`; the package matters because discord.py, websockets and
trio-websocket each have a ``ConnectionClosed``) and reads plain attributes
through :func:`get`, which never raises.

:func:`lookup` is the one reader of keys and attributes: :func:`get` is it
with warnings silenced, and :func:`linkstate.normalise` calls it on
every step of every path it follows, which is why its common cases (a plain
dict, a scalar) are answered before any abstract check.

Every reader returns :data:`Facts` (a plain dict with the keys that
:func:`~linkstate.normalise` reads: ``status``, ``code``, ``reason``,
``retry_after``, ``flags``, ``phase``, ``initiator``) or None when the object
is not the kind it reads. A channel's extractor tries its readers in order
(:func:`read_first`) and hands the first result to ``normalise``, which
sanitises the text and range-checks the numbers, so a reader never has to.
"""

from __future__ import annotations

import itertools
import json
import time
import warnings
from abc import get_cache_token
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import GetSetDescriptorType
from typing import Any, Final

__all__ = [
    "MAX_RETRY_AFTER",
    "Facts",
    "LookupAll",
    "Reader",
    "facts",
    "first_class",
    "get",
    "header",
    "is_a",
    "json_text",
    "lookup",
    "lookup_all",
    "read_first",
    "retry_after_header",
    "retry_after_seconds",
    "seconds",
    "text",
]

Facts = dict[str, object]
"""What a reader found: the keys :func:`~linkstate.normalise` reads, absent when unknown."""

Reader = Callable[[object], Facts | None]
"""Reads one kind of native object into :data:`Facts`; returns None for any other kind."""

MAX_RETRY_AFTER: Final = 7 * 24 * 3600.0
"""Seconds: a server's retry-after hint above a week is read as a week.

Capped, not dropped: a hint of a week and one of a week and a second both
mean "not for a long time", and the policy's ``max_retry_after`` caps both
again the same way. Dropping the larger one would retry it at once."""

# Bounds on work done for hostile input: headers scanned, text decoded, JSON text parsed.
_MAX_HEADERS: Final = 100
_MAX_TEXT_BYTES: Final = 1024
_MAX_JSON_TEXT: Final = 64 * 1024

# Exact built-in types that hold no keys: answered before the slower abstract
# Mapping check. Their subclasses go the long way and end at _NO_KEYS.
_SCALARS: Final = frozenset({str, bytes, bytearray, int, float, bool, list, tuple})
_NO_KEYS: Final = (str, bytes, bytearray, int, float, list, tuple)


def _keyed(obj: object) -> bool | None:
    """How :func:`lookup` reads ``obj``: True by key, False by attribute, None: it holds none.

    Never raises: an object whose ``isinstance`` check raises holds no keys.
    """
    if obj is None or type(obj) in _SCALARS:
        return None
    try:
        if isinstance(obj, Mapping):
            return True
        if isinstance(obj, _NO_KEYS):
            return None
    except Exception:  # a hostile __class__ or metaclass
        return None
    return False


def lookup(obj: object, key: str, quiet: bool = False) -> object:
    """Read ``key`` from a mapping, else as an attribute; None if absent or if reading raises.

    With ``quiet``, warnings that reading an attribute emits are silenced. That
    costs tens of times the read itself, so only :func:`get` asks for it.
    """
    if type(obj) is dict:
        # Decoded JSON, the usual case; a plain dict's get cannot raise, and the
        # abstract Mapping check below costs more than the lookup itself.
        return obj.get(key)
    keyed = _keyed(obj)
    if keyed is None:
        return None
    try:
        if keyed:
            return obj.get(key)  # type: ignore[attr-defined]
        if not quiet:
            return getattr(obj, key, None)
        with warnings.catch_warnings():
            # Libraries deprecate attributes (websockets' ConnectionClosed.code,
            # python-telegram-bot's int retry_after); reading one is not our user's bug.
            warnings.simplefilter("ignore")
            return getattr(obj, key, None)
    except Exception:  # a hostile property or __getattr__ must not crash us
        return None


def lookup_all(obj: object, keys: Iterable[str]) -> dict[str, object]:
    """``{key: lookup(obj, key)}`` for each of ``keys`` whose value is not None.

    What :func:`lookup` would give key by key, with its type checks done once
    for all of them: ``normalise`` reads two dozen keys of every exception.
    """
    if type(obj) is dict:
        # Unguarded, as in lookup: a plain dict's get cannot raise.
        return {key: value for key in keys if (value := obj.get(key)) is not None}
    keyed = _keyed(obj)
    if keyed is None:
        return {}
    try:
        # Every key in one comprehension, the usual case: nothing raises.
        if keyed:
            return {key: value for key in keys if (value := obj.get(key)) is not None}  # type: ignore[attr-defined]
        return {key: value for key in keys if (value := getattr(obj, key, None)) is not None}
    except Exception:
        pass  # a hostile property: read again key by key, so that only it reads as absent
    found: dict[str, object] = {}
    for key in keys:
        try:
            value = obj.get(key) if keyed else getattr(obj, key, None)  # type: ignore[attr-defined]
        except Exception:  # as in lookup: a hostile property reads as absent
            continue
        if value is not None:
            found[key] = value
    return found


# -- lookup_all of an object, planned per type ------------------------------------------------
#
# Theory of operation. lookup_all reads an object's keys with a getattr each;
# most are missing, and a missing attribute is looked for in every class of
# the MRO. An object's attribute can only come from its instance dict, from a
# class dict of its MRO (a property, a slot, a class attribute), or from a
# hook (__getattr__, a __getattribute__ of its own). So where no hook exists,
# the keys worth a getattr are those named in one of those dicts, and the
# others read as None without being asked. Reading a key the object lacks is
# harmless (getattr gives None, as lookup does); missing one it holds is the
# error to rule out. Hence what a type's plan holds, and what each call checks:
#
# * made once per exact type (``type(obj)``, never ``obj.__class__``), and only
#   for a type lookup reads by attribute (not a Mapping, not a scalar), whose
#   MRO holds no __getattr__, no __getattribute__ but object's and
#   BaseException's own in their own (immutable) class dicts, no __class__ of
#   its own (isinstance would believe it), and an instance dict reached
#   through a C getset (no property runs to find it; a type with a dict slot
#   and no such descriptor gets no plan). A class of ours naming the generic
#   __getattribute__ gets no plan either: assigning another one later
#   changes a value, not the keys the checks below compare;
# * the plan holds our keys that the MRO's class dicts name. Those of the
#   built-in, immutable classes cannot change (setting an attribute on one
#   raises); those of the others can, so each call compares their live key
#   views with the keys they had (one tuple comparison, in C, touching keys
#   only, never a value): a property or a __getattr__ added to a class since
#   makes the plan again;
# * the plan is made again, too, when the MRO is another tuple (``__bases__``
#   was assigned) or an ABC registered a class since (a class registered as
#   a Mapping is read by key from then on): each checked by identity;
# * the instance dict's keys are the per-object part: our keys among them are
#   added, and kept for the next call while its instances hold the same keys.
#   Both are asked of the dict itself, through dict's own methods (an
#   instance dict may be a dict subclass, whose keys() could lie) and in the
#   direction that looks up our exact strs in it, with the hashes it stored:
#   a key whose __hash__ changes between calls is found, or not, exactly as
#   getattr finds it, never re-hashed to look like another.
#
# Neither ``__dict__`` nor ``__class__`` can be set on a class once made
# (type's own descriptors refuse), so a class dict's entries for them stay
# what the plan saw. Type-level reads go through type's own descriptors, so
# no metaclass code runs, and plans are kept by id(type) beside the type
# itself (which also keeps the id from being reused), so no metaclass
# __hash__ or __eq__ runs either. Anything that raises on the way is read by
# lookup_all, which decides.

_type_dict: Final[Callable[[type], Mapping[str, object]]] = type.__dict__["__dict__"].__get__
_type_mro: Final[Callable[[type], tuple[type, ...]]] = type.__dict__["__mro__"].__get__
_type_flags: Final[Callable[[type], int]] = type.__dict__["__flags__"].__get__
_type_dictoffset: Final[Callable[[type], int]] = type.__dict__["__dictoffset__"].__get__
_IMMUTABLE_TYPE: Final = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: setting an attribute raises
_GENERIC_GETATTRIBUTE: Final = (
    object.__dict__["__getattribute__"],
    BaseException.__dict__["__getattribute__"],
)
_OBJECT_CLASS: Final = object.__dict__["__class__"]
_dict_keys: Final = dict.keys
# Types planned, and keys of an instance dict kept: bounded work and memory.
_MAX_TYPES: Final = 256
_MAX_INSTANCE_KEYS: Final = 64


class _TypePlan:
    """What one exact type's instances may answer of the keys (see the section's comment)."""

    __slots__ = (
        "class_names",
        "cls",
        "instance_dict",
        "instance_keys",
        "instance_size",
        "mro",
        "names",
        "snapshot",
        "token",
        "views",
    )

    def __init__(
        self,
        cls: type,
        mro: tuple[type, ...],
        namespaces: list[Mapping[str, object]],
        class_names: frozenset[str],
        instance_dict: Callable[[object], dict[Any, object]] | None,
    ) -> None:
        self.cls = cls
        self.mro = mro
        self.token = get_cache_token()
        # The live keys of the class dicts that may change, and what they were.
        self.views = tuple(namespace.keys() for namespace in namespaces)
        self.snapshot = tuple(frozenset(view) for view in self.views)
        self.class_names = class_names  # our keys that a class of the MRO names
        self.instance_dict = instance_dict
        # The keys of the last instance dict read, and the names they gave.
        # Exact strs only; an instance_size of -1 matches no dict.
        self.instance_keys: frozenset[str] = frozenset()
        self.instance_size = -1
        self.names = class_names

    def valid(self, cls: type) -> bool:
        """True while this plan still describes ``cls`` (see the section's comment)."""
        return (
            self.cls is cls
            and self.mro is _type_mro(cls)
            and self.token == get_cache_token()
            and self.views == self.snapshot
        )


def _type_plan(obj: object, keys: frozenset[str]) -> _TypePlan | None:
    """The plan of ``type(obj)``; None when its attributes may come from anywhere else."""
    cls = type(obj)
    if _keyed(obj) is not False:
        return None  # read by key, or holding no keys: lookup_all's own cases
    mro = _type_mro(cls)
    namespaces: list[Mapping[str, object]] = []
    class_names: set[str] = set()
    instance_dict: Callable[[object], Any] | None = None
    found_dict = False
    for klass in mro:
        namespace = _type_dict(klass)
        if "__getattr__" in namespace:
            return None
        mutable = not _type_flags(klass) & _IMMUTABLE_TYPE
        hook = namespace.get("__getattribute__")
        if hook is not None and (mutable or all(hook is not ok for ok in _GENERIC_GETATTRIBUTE)):
            return None  # a hook, or a name a hook may be assigned to unseen
        if namespace.get("__class__", _OBJECT_CLASS) is not _OBJECT_CLASS:
            return None  # a __class__ of its own: isinstance, hence lookup, would believe it
        if not found_dict and "__dict__" in namespace:
            # The first in the MRO is the one attribute lookup's __dict__ finds.
            found_dict = True
            descriptor = namespace["__dict__"]
            if type(descriptor) is not GetSetDescriptorType:
                return None  # a property, say: reading the dict would run its code
            instance_dict = descriptor.__get__
        class_names.update(key for key in keys if key in namespace)
        if mutable:
            namespaces.append(namespace)
    if not found_dict and _type_dictoffset(cls) != 0:
        return None  # instances hold a dict this plan cannot reach
    return _TypePlan(cls, mro, namespaces, frozenset(class_names), instance_dict)


class LookupAll:
    """:func:`lookup_all` for one fixed tuple of keys, planned per type for objects.

    ``LookupAll(keys)(obj) == lookup_all(obj, keys)`` for every object (its
    keys may come in another order), at a fraction of the cost for an object
    of a type seen before: only the keys its instance dict and classes name
    are read (see the comment above).
    """

    __slots__ = ("_keys", "_ours", "_plans")

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(keys)
        self._ours = frozenset(self._keys)
        self._plans: dict[int, _TypePlan] = {}

    def names(self, obj: object) -> frozenset[str] | None:
        """The keys worth reading on ``obj``: every one that may not be None; never raises.

        None when ``obj``'s type has no plan (a dict, a Mapping, a scalar, a
        class with hooks...): then any of the keys may answer, as lookup says.
        """
        cls = type(obj)
        try:
            plan = self._plans.get(id(cls))
            if (  # plan.valid(cls), inline: this is the hot path of every exception
                plan is None
                or plan.cls is not cls
                or plan.mro is not _type_mro(cls)
                or plan.token != get_cache_token()
                or plan.views != plan.snapshot
            ):
                plan = self._plan(obj)
                if plan is None:
                    return None
            if plan.instance_dict is None:
                return plan.class_names
            # dict's own keys(): an instance dict may be a subclass whose keys() lies.
            keys = _dict_keys(plan.instance_dict(obj))
            # Our exact strs looked up in the dict (its stored hashes), never
            # its keys re-hashed: as many keys, each of the last ones held.
            if len(keys) == plan.instance_size and keys >= plan.instance_keys:
                return plan.names  # the instance holds the keys the last one held
            names = plan.class_names | (keys & self._ours)  # iterates ours: see above
            if len(keys) <= _MAX_INSTANCE_KEYS and all(type(key) is str for key in keys):
                # Kept only as exact strs: no key's __eq__ runs at the next comparison.
                plan.instance_keys, plan.names = frozenset(keys), names
                plan.instance_size = len(plan.instance_keys)
            return names
        except Exception:  # a hostile class or instance dict: lookup_all decides
            return None

    def _plan(self, obj: object) -> _TypePlan | None:
        cls = type(obj)
        self._plans.pop(id(cls), None)
        if type(obj) is dict or obj is None or type(obj) in _SCALARS:
            return None  # lookup_all answers these at once
        plan = _type_plan(obj, self._ours)
        if plan is not None:
            if len(self._plans) >= _MAX_TYPES:
                self._plans.clear()
            self._plans[id(cls)] = plan
        return plan

    def __call__(self, obj: object) -> dict[str, object]:
        """``lookup_all(obj, keys)``; never raises."""
        names = self.names(obj)
        if names is not None:
            try:
                return {k: found for k in names if (found := getattr(obj, k, None)) is not None}
            except Exception:
                pass  # a hostile property: lookup_all reads it key by key, as absent
        return lookup_all(obj, self._keys)


def get(obj: object, key: str) -> object:
    """Read ``key`` from a mapping, else as an attribute; None if absent or if reading raises.

    Never raises and never warns: a deprecated attribute is read silently.
    """
    return lookup(obj, key, True)


def _class_names(obj: object, package: str) -> Iterator[str]:
    """The names of the classes in ``obj``'s MRO that live in ``package``, most derived first."""
    for cls in type(obj).__mro__:
        module = getattr(cls, "__module__", "") or ""
        if module.split(".", 1)[0] == package:
            yield cls.__name__


def is_a(obj: object, package: str, *names: str) -> bool:
    """True when a class in ``obj``'s MRO is called one of ``names`` and lives in ``package``."""
    return any(name in names for name in _class_names(obj, package))


def first_class(obj: object, package: str, names: Mapping[str, object]) -> object:
    """The value in ``names`` for the most derived class of ``obj`` from ``package``; else None."""
    return next((names[name] for name in _class_names(obj, package) if name in names), None)


def text(value: object, limit: int = _MAX_TEXT_BYTES) -> str | None:
    """``value`` as text when it is a str, or bytes (the first ``limit`` decoded); else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[:limit]).decode("utf-8", "replace")
    return None


def seconds(value: object) -> float | None:
    """A duration as seconds: a number, numeric text, or a ``timedelta``-like object."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        return float(value) if abs(value) <= 2**63 else None  # huge ints overflow float()
    raw = text(value)
    if raw is not None:
        try:
            return float(raw.strip()[:32])
        except ValueError:
            return None
    total = get(value, "total_seconds")
    if callable(total):
        try:
            result = total()
        except Exception:
            return None
        return seconds(result) if isinstance(result, (int, float)) else None
    return None


def header(headers: object, name: str) -> str | None:
    """Read HTTP header ``name`` case-insensitively from any header container; else None.

    Reads dicts, ``websockets`` ``Headers``, aiohttp's ``CIMultiDict`` and
    trio-websocket's tuple of ``(bytes, bytes)`` pairs alike.
    """
    wanted = name.lower()
    try:
        pairs: Iterable[object]
        if isinstance(headers, (list, tuple)):
            pairs = headers
        elif isinstance(headers, Mapping) or callable(get(headers, "items")):
            pairs = headers.items()  # type: ignore[attr-defined]
        else:
            return None
        for pair in itertools.islice(pairs, _MAX_HEADERS):
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                key = text(pair[0])
                if key is not None and key.lower() == wanted:
                    return text(pair[1])
    except Exception:
        return None
    return None


def retry_after_seconds(value: str, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` value: delta-seconds or an HTTP-date; None when unreadable."""
    stripped = value.strip()[:64]
    if stripped.isascii() and stripped.isdecimal():
        delay = float(stripped)
    else:
        try:
            # Imported here: email.utils pulls in socket and datetime, a tenth
            # of the CLI's start-up, for the rare HTTP-date Retry-After.
            import email.utils

            when = email.utils.parsedate_to_datetime(stripped)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        reference = time.time() if now is None else now
        delay = max(0.0, when.timestamp() - reference)
    # A long hint is capped (see MAX_RETRY_AFTER); normalise caps hints again on its own.
    return min(delay, MAX_RETRY_AFTER)


def retry_after_header(headers: object) -> float | None:
    """The ``Retry-After`` header of any header container, in seconds; else None."""
    value = header(headers, "Retry-After")
    return None if value is None else retry_after_seconds(value)


def facts(**values: object) -> Facts:
    """A :data:`Facts` dict of the values that are not None."""
    return {key: value for key, value in values.items() if value is not None}


def json_text(raw: object) -> object:
    """Parse ``raw`` when it is text holding a JSON object (a raw frame); else return it as is."""
    if isinstance(raw, (str, bytes, bytearray)) and len(raw) <= _MAX_JSON_TEXT:
        body = raw.strip()
        if body[:1] in ("{", b"{"):
            try:
                return json.loads(body)
            except (ValueError, RecursionError):
                # RecursionError: nesting deeper than the interpreter's stack,
                # which 64 KiB of brackets reaches; such text is junk, not a frame.
                return raw
    return raw


def read_first(raw: object, readers: Iterable[Reader]) -> Facts | None:
    """The facts from the first reader that recognises ``raw``; None if none does."""
    for reader in readers:
        found = reader(raw)
        if found is not None:
            return found
    return None
