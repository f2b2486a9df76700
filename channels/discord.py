"""Discord gateway.

How closes arrive: an integer WebSocket close code in the 4000 range
(discord.py raises ``discord.errors.ConnectionClosed`` with ``.code``, -1 when
unknown; for 4014 it raises ``PrivilegedIntentsRequired`` instead, and a bad
token at login raises ``LoginFailure``). Two server requests are not closes
but gateway payloads: opcode 7 *Reconnect* (``{"op": 7}``) and opcode 9
*Invalid Session* (``{"op": 9, "d": <resumable>}``). They get symbolic codes,
``op7`` and ``op9``, so the table lists them like any other close reason; a
resumable op 9 also carries the flag ``resumable``.

The trap here is the other way round from WhatsApp's: Discord's own docs mark
4004 and 4010-4014 as "do not reconnect". A bad token (4004) or missing
intents (4014) reconnect-loop into Discord's identify limit (1000 a day)
and get the token reset, so they stop at once.
"""

from __future__ import annotations

from typing import Final

from linkstate._channel import Channel
from linkstate._events import CloseEvent
from linkstate._verdicts import CloseTable, Rule, Verdict
from linkstate.channels import websocket
from linkstate.plugin import Facts, extract_with, facts, get, is_a

__all__ = ["CHANNEL", "TABLE", "extract"]

_RESET: Final = "then run `{reset_command}`. Monitoring of this link has stopped."
_PORTAL: Final = "the Discord Developer Portal (https://discord.com/developers/applications)"


def _fatal(code: int, name: str, meaning: str, what: str) -> Rule:
    """A 4010-4014 row: a configuration error in how we identify."""
    return Rule(
        Verdict.fatal,
        name,
        meaning,
        status=code,
        message=(
            f"Discord gateway closed link {{link}} with {{status}} ({meaning}). {what}, {_RESET}"
        ),
    )


# Rules this table keeps (from Discord's "Opcodes and Status Codes" docs,
# section "Gateway Close Event Codes", whose Reconnect column is false for
# exactly 4004 and 4010-4014 (discord/discord-api-docs
# developers/topics/opcodes-and-status-codes.mdx), and how the common client
# libraries handle each code: discord.py's DiscordWebSocket._can_handle_close
# (discord/gateway.py) gives up on the same six, and discord.js's
# WebSocketShard.onClose (packages/ws/src/ws/WebSocketShard.ts) destroys the
# shard on them):
# 1. 4004 (bad token) is relink: a person must put a valid token in place.
# 2. 4010-4014 are fatal: the shard, version or intents configuration is
#    wrong, and identifying again with it can only fail again.
# 3. What Discord marks "reconnect" is retry_now when the server told us to
#    start over (4000, 4003, 4005, 4007, 4009, op 7, op 9), and plain retry
#    when we sent something bad (4001, 4002) or were rate limited (4008), so
#    that a bug on our side backs off instead of hammering the gateway. Here
#    the peers disagree: discord.py resumes at once on every code it can
#    handle, discord.js resumes 4000-4002 and 4009 and re-identifies on 4003,
#    4005, 4007 and 4008, both without a delay; the backoff is our choice.
# 4. Standard WebSocket closes (1000, 1001 from the server, 1006 without a
#    close frame) are network events: retry. Unknown codes retry too, and
#    flap detection stops a loop.
TABLE: Final = CloseTable(
    channel="discord",
    rules=(
        Rule(
            Verdict.retry_now,
            "unknownError",
            "unknown gateway error; resume",
            status=4000,
            transient=True,
        ),
        Rule(Verdict.retry, "unknownOpcode", "we sent an invalid opcode", status=4001),
        Rule(Verdict.retry, "decodeError", "we sent an invalid payload", status=4002),
        Rule(
            Verdict.retry_now, "notAuthenticated", "a payload was sent before Identify", status=4003
        ),
        Rule(
            Verdict.relink,
            "authenticationFailed",
            "the bot token is wrong or was reset",
            status=4004,
            message=(
                "Discord gateway closed link {link} with {status} (authentication failed): the "
                f"bot token is wrong or was reset. Copy the bot's current token from {_PORTAL}, "
                f"put it in the gateway's configuration, {_RESET}"
            ),
        ),
        Rule(Verdict.retry_now, "alreadyAuthenticated", "Identify was sent twice", status=4005),
        Rule(
            Verdict.retry_now,
            "invalidSeq",
            "the resume sequence was invalid; re-identify",
            status=4007,
        ),
        Rule(
            Verdict.retry, "rateLimited", "we sent payloads too fast", status=4008, transient=True
        ),
        Rule(
            Verdict.retry_now, "sessionTimedOut", "the session timed out; re-identify", status=4009
        ),
        _fatal(
            4010,
            "invalidShard",
            "invalid shard",
            "Fix the shard id and shard count in the bot's configuration",
        ),
        _fatal(
            4011,
            "shardingRequired",
            "sharding required",
            "The bot is in too many guilds for one connection: enable sharding",
        ),
        _fatal(
            4012,
            "invalidApiVersion",
            "invalid API version",
            "Upgrade the Discord library or fix the gateway URL's version",
        ),
        _fatal(
            4013,
            "invalidIntents",
            "invalid intents",
            "Fix the intents bitmask the bot sends in Identify",
        ),
        _fatal(
            4014,
            "disallowedIntents",
            "disallowed intents",
            f"Enable the privileged intents the bot asks for in {_PORTAL} (Bot → "
            "Privileged Gateway Intents), or stop requesting them",
        ),
        Rule(
            Verdict.retry,
            "normalClosure",
            "the server closed normally",
            status=1000,
            transient=True,
        ),
        Rule(Verdict.retry, "goingAway", "the server is going away", status=1001, transient=True),
        Rule(
            Verdict.retry,
            "abnormalClosure",
            "the connection dropped without a close frame",
            status=1006,
            transient=True,
        ),
        Rule(
            Verdict.retry_now,
            "Reconnect",
            "the gateway asked us to reconnect and resume",
            code="op7",
        ),
        Rule(
            Verdict.retry_now,
            "Invalid Session (resumable)",
            "the session is invalid but may be resumed",
            code="op9",
            flag="resumable",
        ),
        Rule(
            Verdict.retry_now,
            "Invalid Session",
            "the session is invalid; identify anew",
            code="op9",
        ),
    ),
    unknown=Rule(
        Verdict.retry, "unknown", "a code this table does not list; flap detection escalates"
    ),
    no_status=Rule(Verdict.retry, "noStatus", "closed with no code (discord.py reports -1)"),
)

# Symbolic spellings people use for the two opcodes, mapped to our codes.
_OPCODE_ALIASES: Final = {
    "op7": "op7",
    "reconnect": "op7",
    "op9": "op9",
    "invalid_session": "op9",
}


def _payload(raw: object) -> Facts | None:
    """A gateway payload ``{"op": N, "d": ...}``: op 7 and op 9 become ``op7`` / ``op9``."""
    if not isinstance(raw, dict):
        return None
    op = raw.get("op")
    if isinstance(op, bool) or not isinstance(op, int) or not 0 <= op < 100:
        return None
    flags = ["resumable"] if op == 9 and raw.get("d") is True else []
    return facts(code=f"op{op}", flags=flags, reason=f"gateway opcode {op}")


def _alias(raw: object) -> Facts | None:
    """A bare ``RECONNECT``, ``INVALID_SESSION``, ``op7`` or ``op9``."""
    # The longest alias has 15 characters: longer text is not one, and is not
    # scanned (a ten-million-character close must stay cheap).
    if type(raw) is str and len(raw) <= 64:
        code = _OPCODE_ALIASES.get(raw.strip().lower().replace(" ", ""))
        if code is not None:
            return facts(code=code)
    return None


def _discord_py(raw: object) -> Facts | None:
    """discord.py's gateway exceptions, as its ``Client.connect`` raises them."""
    if is_a(raw, "discord", "ConnectionClosed"):
        return facts(status=get(raw, "code"), reason=get(raw, "reason") or str(raw))
    if is_a(raw, "discord", "PrivilegedIntentsRequired"):
        # discord.py turns close code 4014 into this exception, dropping the code.
        return facts(status=4014, reason=str(raw))
    if is_a(raw, "discord", "LoginFailure"):
        # Raised when the login request is refused (HTTP 401): the same bad token as 4004.
        return facts(status=4004, reason=str(raw))
    if is_a(raw, "discord", "ReconnectWebSocket"):
        # discord.py's internal signal for op 7 / op 9; resume=False means re-identify.
        resumable = get(raw, "resume") is True
        return facts(code="op7" if resumable else "op9", reason=f"op {get(raw, 'op')}")
    return None


def extract(raw: object) -> CloseEvent:
    """Read a Discord close code, gateway payload or client-library exception; never raises."""
    return extract_with(raw, (_payload, _alias, _discord_py), websocket.extract)


CHANNEL: Final = Channel(
    name="discord",
    title="Discord gateway",
    table=TABLE,
    extract=extract,
)
"""The Discord gateway channel, registered under the ``linkstate.channels`` entry point."""
