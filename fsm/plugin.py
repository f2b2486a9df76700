"""What a third-party channel needs to read its client library's closes.

A channel plugin is a :class:`linkstate.Channel` registered under the
:data:`ENTRY_POINT_GROUP` entry-point group. Its extractor turns whatever the
client library raises or emits into a :class:`linkstate.CloseEvent`, and it
must never import that library: it recognises objects by class name
(:func:`is_a`, :func:`first_class`) and reads them with :func:`get`, which
never raises and never warns. A reader returns :data:`Facts` for the kind of
object it knows and None for any other; :func:`extract_with` tries the
readers in order and normalises the first facts found::

    from linkstate.plugin import Facts, extract_with, facts, get, is_a, text

    def _closed(raw: object) -> Facts | None:
        if not is_a(raw, "tinychat", "Disconnected"):
            return None
        return facts(status=get(raw, "code"), reason=text(get(raw, "why")))

    def extract(raw: object) -> CloseEvent:
        return extract_with(raw, (_closed,))

Flags and shapes only this platform's clients produce are declared as data,
not code: a :class:`Shapes` of :class:`TrustedFlag` keys, code paths and
code patterns, given to the channel as ``Channel(shapes=...)``; the channel
trusts them above the generic reading.

:func:`retry_after_header` reads a server's ``Retry-After`` from any header
container (delta-seconds or an HTTP-date); :func:`seconds` reads a duration
in any form. The same functions read the bundled channels' libraries.
"""

from linkstate._channel import ENTRY_POINT_GROUP
from linkstate._events import Shapes, TrustedFlag, extract_with
from linkstate._reading import (
    Facts,
    Reader,
    facts,
    first_class,
    get,
    header,
    is_a,
    json_text,
    read_first,
    retry_after_header,
    retry_after_seconds,
    seconds,
    text,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Facts",
    "Reader",
    "Shapes",
    "TrustedFlag",
    "extract_with",
    "facts",
    "first_class",
    "get",
    "header",
    "is_a",
    "json_text",
    "read_first",
    "retry_after_header",
    "retry_after_seconds",
    "seconds",
    "text",
]
