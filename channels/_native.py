"""Readers for the ``websockets`` library, which every WebSocket channel may meet.

The reading primitives these are built from (:func:`~linkstate.plugin.get`,
:func:`~linkstate.plugin.is_a`...) are public in :mod:`linkstate.plugin`, for
third-party channels as much as for the bundled ones; this module holds only
what reads one client library. ``linkstate.channels.websocket`` uses
:func:`websockets_error` beside its own trio-websocket reading.
"""

from __future__ import annotations

from typing import Final

from linkstate import Initiator, Phase
from linkstate.plugin import Facts, Reader, facts, get, is_a, read_first, retry_after_header, text

__all__ = ["WEBSOCKETS_READERS", "websockets_error"]

# A close frame that never arrived is reported as 1006 (RFC 6455 §7.1.5).
ABNORMAL_CLOSURE: Final = 1006


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
