"""Golden examples for the bundled channels, gathered for the conformance kit.

Each pair is a close as the platform (or its best-known client library)
reports it, and the verdict the platform's documentation calls for (each
channel module's header says where its facts come from). The tables themselves are
restated once, in each channel's own test module; this module only reshapes
them into the kit's ``(raw, verdict)`` pairs and adds the Baileys shapes of
WhatsApp's 440, the close this project exists for. The conformance kit checks
every pair in every form of the row it names; the runtime stateful test feeds
them to the real supervisor.
"""

from __future__ import annotations

from typing import Final

from test_channel_tables import EXPECTED as NATIVE
from test_whatsapp import EXPECTED as WHATSAPP_STATUSES

from linkstate._verdicts import Verdict
from linkstate.testing import Expectation

# How Baileys and its wrappers deliver WhatsApp's session conflict.
BAILEYS_440: Final[tuple[Expectation, ...]] = (
    ({"error": {"output": {"statusCode": 440}}}, Verdict.relink),
    ({"lastDisconnect": {"error": {"output": {"payload": {"statusCode": "440"}}}}}, Verdict.relink),
    ({"error": {"data": {"tag": "conflict", "attrs": {"type": "replaced"}}}}, Verdict.relink),
    ({"status": 408, "reason": "QR refs attempts ended"}, Verdict.relink),
    (None, Verdict.retry),
)

EXPECTED: Final[dict[str, tuple[Expectation, ...]]] = {
    "whatsapp": (*WHATSAPP_STATUSES.items(), *BAILEYS_440),
    **{name: tuple((raw, verdict) for raw, _, verdict in cases) for name, cases in NATIVE.items()},
}
