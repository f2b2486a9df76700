"""The loopback Bot API and homeserver on their own, on trio, with a bare HTTP/1.1 client.

The adapter tests drive these servers with the real client libraries on
asyncio; here they run on trio (pytest-trio), which proves they are written
against anyio only, and face what no library sends: junk bytes, wrong
tokens, bad parameters. Nothing a client sends may stop them serving others.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import anyio
import h11
import pytest
import trio
import trio.testing

from linkstate import ArgumentError, LinkstateError
from linkstate.testing import BotAPIServer, MatrixHomeserver


async def call(
    url: str, method: str, path: str, body: bytes = b"", *, authorization: str = "", **headers: str
) -> tuple[int, object]:
    """One request over a fresh connection; the status and the decoded JSON body."""
    port = urlsplit(url).port
    assert port is not None
    client = h11.Connection(h11.CLIENT)
    sent = [("host", "127.0.0.1"), ("content-length", str(len(body)))]
    sent += [(name.replace("_", "-"), value) for name, value in headers.items()]
    if authorization:
        sent.append(("authorization", authorization))
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        request: tuple[h11.Request, h11.Data, h11.EndOfMessage] = (
            h11.Request(method=method, target=path, headers=sent),
            h11.Data(data=body),
            h11.EndOfMessage(),
        )
        for part in request:
            await stream.send(client.send(part) or b"")
        status, payload = 0, bytearray()
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(await stream.receive())
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                payload += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, json.loads(payload)


FORM = {"content_type": "application/x-www-form-urlencoded"}


async def held(api: BotAPIServer, polls: int) -> None:
    """Return once ``polls`` getUpdates reached the server and every task waits (none answered)."""
    while api.calls.count("getUpdates") < polls:
        await trio.sleep(0.001)
    await trio.testing.wait_all_tasks_blocked()


async def test_bot_api_answers_get_me_and_refuses_another_token() -> None:
    async with BotAPIServer("42:secret") as api:
        status, body = await call(api.url, "POST", "/bot42:secret/getMe")
        assert status == 200 and body == {
            "ok": True,
            "result": {
                "id": 42,
                "is_bot": True,
                "first_name": "Loopback",
                "username": "loopback_bot",
            },
        }
        status, body = await call(api.url, "POST", "/bot42:other/getMe")
        assert (status, body) == (
            401,
            {"ok": False, "error_code": 401, "description": "Unauthorized"},
        )
        status, _ = await call(api.url, "POST", "/bot42:secret/sendPhoto")
        assert status == 404
        assert api.calls == ["getMe", "getMe", "sendPhoto"]


async def test_bot_api_long_poll_is_held_until_an_update_and_offset_confirms() -> None:
    async with BotAPIServer() as api, trio.open_nursery() as nursery:
        answers: list[tuple[int, object]] = []

        async def poll(offset: int) -> None:
            form = f"timeout=30&offset={offset}".encode()
            answers.append(await call(api.url, "POST", f"/bot{api.token}/getUpdates", form, **FORM))

        nursery.start_soon(poll, 0)
        await held(api, 1)
        assert answers == []  # held: nothing to deliver yet
        first = api.send_message("m1")
        while not answers:
            await trio.sleep(0.001)
        assert [a[0] for a in answers] == [200]
        result = answers[0][1]
        assert isinstance(result, dict) and [u["update_id"] for u in result["result"]] == [first]
        api.send_message("m2")
        await poll(first + 1)  # the offset confirms m1: only m2 comes back
        result = answers[1][1]
        assert isinstance(result, dict) and [u["message"]["text"] for u in result["result"]] == [
            "m2"
        ]


async def test_bot_api_scripted_errors_wake_a_held_poll_and_carry_retry_after() -> None:
    async with BotAPIServer() as api, trio.open_nursery() as nursery:
        answers: list[tuple[int, object]] = []

        async def poll() -> None:
            answers.append(
                await call(api.url, "POST", f"/bot{api.token}/getUpdates", b"timeout=30", **FORM)
            )

        nursery.start_soon(poll)
        await held(api, 1)
        assert answers == []
        api.fail(429, retry_after=7)
        while not answers:
            await trio.sleep(0.001)
        assert answers == [
            (
                429,
                {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry after 7",
                    "parameters": {"retry_after": 7},
                },
            )
        ]
        api.fail(409)
        await poll()
        status, body = answers[1]
        assert status == 409 and isinstance(body, dict)
        assert "terminated by other getUpdates request" in body["description"]


async def test_junk_bytes_close_that_connection_only() -> None:
    async with BotAPIServer() as api:
        port = urlsplit(api.url).port
        assert port is not None
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"\x16\x03\x01 not HTTP at all\r\n\r\n")
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                while True:
                    await stream.receive()  # the server answers 400 at most, then hangs up
        status, _ = await call(api.url, "POST", f"/bot{api.token}/getMe")
        assert status == 200


async def test_homeserver_checks_the_token_and_scripts_its_errors() -> None:
    async with MatrixHomeserver() as server:
        sync = "/_matrix/client/v3/sync?timeout=0"
        bearer = f"Bearer {server.access_token}"
        status, body = await call(server.url, "GET", sync)
        assert (status, body) == (
            401,
            {"errcode": "M_MISSING_TOKEN", "error": "Missing access token"},
        )
        status, body = await call(server.url, "GET", sync, authorization="Bearer nope")
        assert status == 401 and isinstance(body, dict) and body["soft_logout"] is False
        status, body = await call(server.url, "GET", sync, authorization=bearer)
        assert (status, body) == (200, {"next_batch": "s0"})
        server.send_message("m1")
        status, body = await call(server.url, "GET", sync + "&since=s0", authorization=bearer)
        assert isinstance(body, dict) and body["next_batch"] == "s1"
        server.fail("M_LIMIT_EXCEEDED", retry_after_ms=1500)
        status, body = await call(server.url, "GET", sync + "&since=s1", authorization=bearer)
        assert (status, body) == (
            429,
            {"errcode": "M_LIMIT_EXCEEDED", "error": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500},
        )
        status, body = await call(
            server.url, "GET", "/_matrix/client/v3/account/whoami", authorization=bearer
        )
        assert (status, body) == (200, {"user_id": server.user_id})
        server.logout(soft=True)
        status, body = await call(server.url, "GET", sync, authorization=bearer)
        assert status == 401 and isinstance(body, dict) and body["soft_logout"] is True
        assert server.syncs == 6


def test_wrong_scripting_and_use_before_start_are_one_clear_error() -> None:
    with pytest.raises(ArgumentError, match="not an HTTP error status"):
        BotAPIServer().fail(200)
    with pytest.raises(ArgumentError, match="not a Matrix errcode"):
        MatrixHomeserver().fail("LIMIT_EXCEEDED")
    with pytest.raises(LinkstateError, match="async with BotAPIServer"):
        _ = BotAPIServer().url
