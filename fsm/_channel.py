"""Channels: one platform's close-code table, event extraction and policy; and their registry.

A channel plugin is a module that builds one :class:`Channel` and exposes it
through the ``linkstate.channels`` entry-point group. The bundled channels
register exactly like third-party ones (see ``pyproject.toml``), so the
framework never imports a channel by name. (The command line, which ties the
layers together, imports a bundled channel's module directly to skip reading
the registry at start-up; a test holds the two to the same answer.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from linkstate._errors import LinkstateError
from linkstate._events import CloseEvent, Initiator, Phase, Shapes, normalise, read_safely
from linkstate._policy import ReconnectPolicy
from linkstate._verdicts import CloseTable, Rule

if TYPE_CHECKING:
    from importlib.metadata import EntryPoints

    # For the annotation only: the runtime imports the core, never the reverse,
    # so the synchronous core loads without the runtime (and without trio).
    from linkstate.runtime._supervisor import Transport

__all__ = [
    "BUNDLED_PACKAGE",
    "ENTRY_POINT_GROUP",
    "Channel",
    "ChannelError",
    "available_channels",
    "load_channel",
]

ENTRY_POINT_GROUP: Final = "linkstate.channels"
"""The entry-point group a channel plugin registers its :class:`Channel` under."""

BUNDLED_PACKAGE: Final = "linkstate.channels"
"""The package of the bundled channels: module ``NAME`` registers ``NAME = "...NAME:CHANNEL"``."""

Extractor = Callable[[object], CloseEvent]

# A bare status carries no shape: the commonest close skips reading shapes.
_BARE: Final = frozenset({int, float, bool, type(None)})


@dataclass(frozen=True)
class Channel:
    """Everything that is particular to one messaging platform.

    Attributes:
        name: The registry name (``whatsapp``).
        title: A human title (``WhatsApp Web``).
        table: The close-code table, with its defaults.
        policy: The reconnect policy this platform wants by default.
        extract: Turns the platform's native errors into a :class:`CloseEvent`;
            defaults to the generic :func:`linkstate.normalise`. Must never raise.
        transport: The transport factory (``url -> Transport``) that opens
            real connections for the runtime, where the channel has one we
            can test for real; None otherwise.
        shapes: The flags and shapes this platform's clients produce that the
            generic reading does not look for (OpenClaw's ``isLoggedOut``,
            node-slack-sdk's ``data.error``), declared as data; read after
            ``extract`` and trusted above it.

    """

    name: str
    title: str
    table: CloseTable
    policy: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    extract: Extractor = normalise
    transport: Callable[[str], Transport] | None = None
    shapes: Shapes = field(default_factory=Shapes)
    _shapes: Shapes | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        # Most channels declare no shapes: decide that once, not on every close.
        object.__setattr__(self, "_shapes", self.shapes or None)

    def event(
        self, raw: object, *, phase: Phase | None = None, initiator: Initiator | None = None
    ) -> CloseEvent:
        """Normalise ``raw`` the way this platform reports closes; never raises."""
        # A plugin's extractor bug must not turn a disconnect into a crash.
        extracted = read_safely(self.extract, raw)
        if self._shapes is not None and type(raw) not in _BARE:
            extracted = self._shapes.read(raw, extracted)
        if phase is None and initiator is None and type(extracted) is CloseEvent:
            return extracted  # the common case: nothing to override
        return normalise(extracted, phase=phase, initiator=initiator)

    def classify(
        self, raw: object, *, phase: Phase | None = None, initiator: Initiator | None = None
    ) -> tuple[CloseEvent, Rule]:
        """Normalise ``raw`` and return the event with the table row that applies."""
        event = self.event(raw, phase=phase, initiator=initiator)
        try:
            return event, self.table.classify(event)
        except Exception:
            # Only an event a plugin built by hand with hostile field values
            # (an int subclass whose __eq__ raises) gets here: read it afresh,
            # which rebuilds every field from plain values.
            try:
                event = normalise(event.to_json())
                return event, self.table.classify(event)
            except Exception:
                event = normalise(None)  # nothing of it can be read: an event without a status
                return event, self.table.classify(event)


class ChannelError(LinkstateError, LookupError):
    """A channel name is unknown, its entry point is broken, or it has no live transport."""


def _registered() -> EntryPoints:
    """Every entry point of the channel group, read from the installed distributions."""
    # Imported here, not at the top: importlib.metadata (with the email, zipfile
    # and csv modules it loads) costs more than the rest of the core, and only
    # a lookup of the registry needs it, not `import linkstate`.
    from importlib.metadata import entry_points

    return entry_points(group=ENTRY_POINT_GROUP)


def available_channels() -> tuple[str, ...]:
    """The names of every installed channel, sorted."""
    return tuple(sorted({ep.name for ep in _registered()}))


def load_channel(name: str) -> Channel:
    """Load the channel registered under ``name``.

    Raises:
        ChannelError: the name is unknown (the message lists the installed
            channels) or the entry point does not yield a :class:`Channel`.

    """
    # A bundled channel's name is taken: should a plugin register the same
    # name, the bundled entry point wins, as it does on the command line's
    # direct path (linkstate.cli.common.channel_or_exit), whatever order the
    # distributions are found in.
    matches = sorted(
        (ep for ep in _registered() if ep.name == name),
        key=lambda ep: not ep.value.startswith(BUNDLED_PACKAGE + "."),
    )
    if not matches:
        installed = ", ".join(available_channels()) or "none"
        raise ChannelError(
            f"unknown channel {name!r}; installed channels: {installed}. Check the spelling, "
            "or install the plugin package that registers it"
        )
    try:
        loaded = matches[0].load()
    except Exception as exc:
        raise ChannelError(
            f"channel {name!r} is registered by {matches[0].value!r} but fails to load: "
            f"{type(exc).__name__}: {exc}; fix or reinstall that plugin"
        ) from exc
    if not isinstance(loaded, Channel):
        raise ChannelError(
            f"channel {name!r}: entry point {matches[0].value!r} gives a "
            f"{type(loaded).__name__}, not a linkstate.Channel; "
            "point it at the module's Channel object"
        )
    return loaded
