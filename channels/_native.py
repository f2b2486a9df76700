"""Duck-typed readers for what popular client libraries raise or emit.

Theory of operation
-------------------
A gateway should be able to hand linkstate the exception its client library
just raised (``discord.errors.ConnectionClosed``, ``slack_sdk.errors.SlackApiError``,
``websockets.exceptions.InvalidStatus``...) and get the right verdict, yet
linkstate must not depend on any of those libraries. So nothing in
``channels/`` imports them. A reader recognises an object by the *package
and name* of a class in its MRO (:func:`is_a`; the package matters because
discord.py, websockets and trio-websocket each have a ``ConnectionClosed``)
and reads plain attributes through :func:`get`, which never raises.

Every reader returns :data:`Facts` (a plain dict with the keys that
:func:`linkstate._events.normalise` reads: ``status``, ``code``, ``reason``,
``retry_after``, ``flags``, ``phase``, ``initiator``) or None when the object
is not the kind it reads. A channel's extractor tries its readers in order
(:func:`read_first`) and hands the first result to ``normalise``, which
sanitises the text and range-checks the numbers, so a reader never has to.

This module also reads the errors of the ``websockets`` library
(:func:`websockets_error`), for every channel that runs over a WebSocket;
``linkstate.channels.websocket`` uses it beside its own trio-websocket reading.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

from linkstate._events import CloseEvent, Initiator, Phase, normalise

__all__ = [
    "Facts",
    "Reader",
    "extract_with",
    "facts",
    "first_class",
    "get",
    "header",
    "is_a",
    "json_text",
    "read_first",
    "seconds",
    "text",
    "websockets_error",
]

Facts = dict[str, object]
Reader = Callable[[object], Facts | None]

# A close frame that never arrived is reported as 1006 (RFC 6455 §7.1.5).
ABNORMAL_CLOSURE: Final = 1006

# Bounds on work done for hostile input: headers scanned, JSON text parsed.
_MAX_HEADERS: Final = 100
# A Retry-After above a week is junk, not advice.
_MAX_RETRY_AFTER: Final = 7 * 24 * 3600.0
_MAX_JSON_TEXT: Final = 64 * 1024


# Exact built-in types that hold no keys: answered before the slower abstract
# Mapping check (a subclass still goes the long way).
_SCALARS: Final = frozenset({str, bytes, bytearray, int, float, bool, list, tuple})


def get(obj: object, key: str) -> object:
    """Read ``key`` from a mapping, else as an attribute; None if absent or if reading raises."""
    if obj is None or type(obj) in _SCALARS:
        return None
    if type(obj) is dict:
        # Decoded JSON, the usual case; a plain dict's get cannot raise, and the
        # abstract Mapping check below costs more than the lookup itself.
        return obj.get(key)
    try:
        if isinstance(obj, Mapping):
            return obj.get(key)
        if obj is None or isinstance(obj, (str, bytes, bytearray, int, float, list, tuple)):
            return None
        with warnings.catch_warnings():
            # Libraries deprecate attributes (websockets' ConnectionClosed.code,
            # python-telegram-bot's int retry_after); reading one is not our user's bug.
            warnings.simplefilter("ignore")
            return getattr(obj, key, None)
    except Exception:  # a hostile property or __getattr__ must not crash us
        return None


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


def text(value: object) -> str | None:
    """``value`` as text when it is a str or bytes; else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[:1024]).decode("utf-8", "replace")
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
            when = email.utils.parsedate_to_datetime(stripped)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        reference = time.time() if now is None else now
        delay = max(0.0, when.timestamp() - reference)
    # linkstate._events caps hints again on its own; this only keeps junk out.
    return delay if math.isfinite(delay) and delay <= _MAX_RETRY_AFTER else None


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
            except ValueError:
                return raw
    return raw


def read_first(raw: object, readers: Iterable[Reader]) -> Facts | None:
    """The facts from the first reader that recognises ``raw``; None if none does."""
    for reader in readers:
        found = reader(raw)
        if found is not None:
            return found
    return None


def extract_with(
    raw: object,
    readers: Iterable[Reader],
    fallback: Callable[[object], CloseEvent] = normalise,
) -> CloseEvent:
    """Normalise ``raw`` through the first reader that recognises it, else through ``fallback``.

    Text holding a JSON object is parsed first, so a raw frame reads like its dict.
    """
    raw = json_text(raw)
    found = read_first(raw, readers)
    return fallback(raw) if found is None else normalise(found)


# -- the websockets library ----------------------------------------------------------
# (trio-websocket, linkstate's own transport library, is read by linkstate.channels.websocket.)


def _websockets_closed(raw: object) -> Facts | None:
    """``websockets`` ``ConnectionClosed``: ``rcvd``/``sent`` close frames; no frame is 1006."""
    if not is_a(raw, "websockets", "ConnectionClosed"):
        return None
    rcvd, sent = get(raw, "rcvd"), get(raw, "sent")
    frame = rcvd if rcvd is not None else sent
    if rcvd is not None and (sent is None or get(raw, "rcvd_then_sent") is True):
        initiator = Initiator.remote
    elif sent is not None:
        initiator = Initiator.local
    else:
        initiator = Initiator.unknown
    return facts(
        status=get(rcvd, "code") if rcvd is not None else ABNORMAL_CLOSURE,
        reason=text(get(frame, "reason")) or str(raw),
        initiator=initiator.value,
    )


def _websockets_rejected(raw: object) -> Facts | None:
    """``websockets`` handshake rejections: ``InvalidStatus`` and legacy ``InvalidStatusCode``."""
    if not is_a(raw, "websockets", "InvalidStatus", "InvalidStatusCode"):
        return None
    response = get(raw, "response")
    holder = response if response is not None else raw
    headers = get(holder, "headers")
    return facts(
        status=get(holder, "status_code"),
        reason=text(get(response, "reason_phrase")) or str(raw),
        retry_after=retry_after_header(headers),
        phase=Phase.handshake.value,
        initiator=Initiator.remote.value,
    )


WEBSOCKETS_READERS: Final[tuple[Reader, ...]] = (_websockets_closed, _websockets_rejected)
"""Readers for the ``websockets`` library's close and handshake-rejection errors."""


def websockets_error(raw: object) -> Facts | None:
    """Read a close or handshake rejection raised by the ``websockets`` library; else None."""
    return read_first(raw, WEBSOCKETS_READERS)
