"""``linkstate serve``: a real process over a real loopback WebSocket server and a real
SQLite file, read over real HTTP; systemd's notify socket is a real datagram socket."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
import trio
from serving import (
    SCRIPT,
    Closer,
    DeafPeer,
    LoopbackServer,
    get,
    labels,
    metric_samples,
    start_serve,
)

from linkstate.cli import main
from linkstate.cli._systemd import Notifier, status_line
from linkstate.store._sqlite import SQLiteStore

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
NO_DELAY = ["--initial", "0", "--cap", "0", "--retry-now-max", "0"]


async def _simulate(*argv: str) -> None:
    """Run ``linkstate simulate`` in its own process (it runs a trio loop of its own)."""
    done = await trio.run_process(
        [str(SCRIPT), "simulate", *argv], capture_stdout=True, check=False
    )
    assert done.returncode in (0, 1)


def _status(argv: list[str]) -> object:
    """The exit status of ``linkstate ARGV``, run in this process; argparse exits by raising."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


async def _notifications(
    sock: trio.socket.SocketType, into: list[str], stopping: trio.Event | None = None
) -> None:
    while True:
        into.append((await sock.recv(4096)).decode())
        if stopping is not None and "STOPPING=1" in into[-1]:
            stopping.set()


async def test_serve_supervises_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "links.db"
    # A link of another process, already failed: shown and counted, not supervised.
    await _simulate("whatsapp", *["--close", "500"] * 6, "--db", str(db), "--link", "old")
    notify_path = str(tmp_path / "notify.sock")
    notify = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await notify.bind(notify_path)
    told: list[str] = []
    server = LoopbackServer()
    server.closers["/conflict"] = conflict = Closer(4440, HOSTILE)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        nursery.start_soon(_notifications, notify, told)
        with trio.fail_after(90):
            served = await start_serve(
                [
                    "--db",
                    str(db),
                    "--link",
                    f"acct1=demo:{server.url('/conflict')}",
                    "--link",
                    f"calm=websocket:{server.url('/calm')}",
                ],
                env={**os.environ, "NOTIFY_SOCKET": notify_path},
            )
            base, lines = served.base, served.lines
            # The two links open in either order.
            await lines.until(r"link acct1: connecting --opened--> open", move=False)
            await lines.until(r"link calm: connecting --opened--> open", move=False)
            assert (await get(f"{base}/healthz")).text == "ok\n"

            conflict.now.set()
            await lines.until(r"link acct1: open --closed--> needs_relink")
            status = await get(f"{base}/status")
            assert status.status == 200
            links = {link["link"]: link for link in status.json()["links"]}
            assert {k: v["state"] for k, v in links.items()} == {
                "acct1": "needs_relink",
                "calm": "open",
                "old": "failed",
            }
            acct1 = links["acct1"]
            assert (acct1["status"], acct1["verdict"], acct1["reason"]) == (4440, "relink", HOSTILE)
            assert acct1["command"] == f"linkstate relink acct1 --db {db}"
            assert acct1["command"] in acct1["message"]
            assert (acct1["supervised"], links["old"]["supervised"]) == (True, False)
            assert links["old"]["command"] == f"linkstate reset old --db {db}"
            assert status.json()["counts"]["needs_relink"] == 1

            samples = metric_samples((await get(f"{base}/metrics")).text)
            gauge = "linkstate_links"
            assert samples[gauge, labels(channel="demo", state="needs_relink")] == 1
            assert samples[gauge, labels(channel="websocket", state="open")] == 1
            assert samples[gauge, labels(channel="whatsapp", state="failed")] == 1
            assert samples[gauge, labels(channel="demo", state="open")] == 0
            closed = labels(channel="demo", trigger="closed", dst="needs_relink", verdict="relink")
            assert samples["linkstate_transitions_total", closed] == 1
            assert not any("link" in dict(key) for _, key in samples)

            page = await get(f"{base}/")
            html = page.text
            assert page.headers["content-security-policy"].startswith("default-src 'none'")
            assert html.index('id="group-person"') < html.index('id="group-healthy"')
            assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html
            assert "<script>alert" not in html and "<img src=x" not in html
            assert f"linkstate relink acct1 --db {db}" in html
            detail = (await get(f"{base}/links/acct1")).text
            assert 'data-state="needs_relink"' in detail and "<svg" in detail
            assert (await get(f"{base}/links/nobody")).status == 404
            # Read-only, and deaf to a DNS-rebinding page's Host.
            assert (await get(f"{base}/status", method="POST")).status == 405
            assert (await get(f"{base}/status", {"Host": "evil.example:80"})).status == 421

            # The operator relinks from another shell: serve starts the link again.
            relinked = await trio.run_process(
                [str(SCRIPT), "relink", "acct1", "--db", str(db)], capture_stdout=True
            )
            assert relinked.returncode == 0
            await lines.until(r"link acct1: idle --start--> connecting")
            await lines.until(r"link acct1: open --closed--> needs_relink")
            assert server.connections["/conflict"] == 2

            served.process.send_signal(signal.SIGTERM)
            rest = await lines.rest()
            await served.process.wait()
        nursery.cancel_scope.cancel()
    assert served.process.returncode == 0, lines.seen
    assert any("link calm: open --abort--> stopped" in line for line in rest)
    with SQLiteStore(db) as store:
        rows = store.links()
    stored = {row.link_id: row.state for row in rows}
    assert [row.owner for row in rows] == [None, None, None]  # every claim released
    # Every live link is stopped; the verdicts that wait for a person are kept.
    assert stored == {"acct1": "needs_relink", "calm": "stopped", "old": "failed"}
    ready = next(message for message in told if "READY=1" in message)
    assert "STATUS=3 links: " in ready
    stopping = next(i for i, message in enumerate(told) if "STOPPING=1" in message)
    assert told.index(ready) < stopping
    assert told[-1] == "STATUS=stopped; 3 links: 1 needs_relink, 1 failed, 1 stopped"


async def test_curl_metrics_during_the_demo_shows_its_needs_relink(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    with trio.fail_after(90):
        served = await start_serve(["--db", str(db)])
        demo = await trio.run_process(
            [str(SCRIPT), "demo", "--db", str(db), "--hold", "0", *NO_DELAY],
            capture_stdout=True,
        )
        assert demo.returncode == 0
        samples = metric_samples((await get(f"{served.base}/metrics")).text)
        served.process.send_signal(signal.SIGTERM)
        await served.lines.rest()
        await served.process.wait()
    assert samples["linkstate_links", labels(channel="demo", state="needs_relink")] == 1
    assert served.process.returncode == 0


async def test_a_token_guards_every_route_but_healthz(tmp_path: Path) -> None:
    token = "t0ken-" + "x" * 20
    with trio.fail_after(90):
        served = await start_serve(
            ["--db", str(tmp_path / "x.db")], env={**os.environ, "LINKSTATE_TOKEN": token}
        )
        base = served.base
        assert (await get(f"{base}/healthz")).status == 200
        refused = await get(f"{base}/status")
        assert refused.status == 401 and "Bearer" in refused.text
        assert (await get(f"{base}/metrics", {"Authorization": "Bearer wrong"})).status == 401
        allowed = await get(f"{base}/metrics", {"Authorization": f"Bearer {token}"})
        assert allowed.status == 200
        # A browser's first visit with ?token= gets a cookie and a URL without the token.
        login = await get(f"{base}/links/x?token={token}")
        assert (login.status, login.headers["location"]) == (303, "/links/x")
        cookie_set = login.headers["set-cookie"]
        assert f"linkstate_token={token}" in cookie_set
        assert "HttpOnly" in cookie_set and "SameSite=strict" in cookie_set
        assert (await get(f"{base}/?token=wrong")).status == 401
        cookie = {"Cookie": f"linkstate_token={token}"}
        assert (await get(f"{base}/", cookie)).status == 200
        served.process.send_signal(signal.SIGINT)
        await served.lines.rest()
        await served.process.wait()
    assert served.process.returncode == 0


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--listen", "0.0.0.0:9473"], "not a loopback address"),
        (["--listen", "127.0.0.1:99999"], "is not HOST:PORT with a port from 0 to 65535"),
        (["--link", "acct1"], "is not ID=CHANNEL:URL"),
        (["--link", "a=nochannel:ws://127.0.0.1:1/"], "unknown channel 'nochannel'"),
        (["--link", "a=whatsapp:ws://127.0.0.1:1/"], "has no transport for live connections"),
        (
            ["--link", "a=websocket:ws://127.0.0.1:1/", "--link", "a=websocket:ws://127.0.0.1:2/"],
            "is given twice",
        ),
        (["--token-file", "/nonexistent/token"], "cannot read the token file"),
    ],
)
def test_what_the_user_typed_wrong_is_one_line_and_exit_2(
    argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _status(["serve", "--db", str(tmp_path / "x.db"), *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


def test_a_short_token_and_a_busy_port_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINKSTATE_TOKEN", "short")
    assert main(["serve", "--db", str(tmp_path / "x.db")]) == 2
    assert "use at least 16 characters" in capsys.readouterr().err
    monkeypatch.delenv("LINKSTATE_TOKEN")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["serve", "--db", str(tmp_path / "x.db"), "--listen", f"127.0.0.1:{port}"]
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "choose another --listen" in err


def test_the_notifier_speaks_the_systemd_protocol(tmp_path: Path) -> None:
    path = str(tmp_path / "n.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        notifier = Notifier(path)
        assert notifier.enabled
        assert notifier.ready("2 links: 1 open, 1 failed")
        assert sock.recv(4096) == b"READY=1\nSTATUS=2 links: 1 open, 1 failed"
        assert notifier.status("a\nSTOPPING=1")  # one line: nothing smuggled in
        assert sock.recv(4096) == b"STATUS=a STOPPING=1"
    assert not Notifier("").send(READY="1")  # not under systemd: nothing to do
    assert not Notifier(str(tmp_path / "gone.sock")).ready("x")  # logged, not raised
    assert status_line({"open": 1, "failed": 2, "idle": 0}) == "3 links: 1 open, 2 failed"
    assert status_line({"open": 1}) == "1 link: 1 open"
    assert status_line({"open": 0}) == "0 links"


async def test_a_second_signal_cuts_the_clean_stop_short(tmp_path: Path) -> None:
    notify_path = str(tmp_path / "notify.sock")
    notify = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await notify.bind(notify_path)
    told: list[str] = []
    stopping = trio.Event()
    async with trio.open_nursery() as nursery:
        peer = await nursery.start(DeafPeer().run)
        nursery.start_soon(_notifications, notify, told, stopping)
        with trio.fail_after(90):
            served = await start_serve(
                [
                    "--db",
                    str(tmp_path / "x.db"),
                    "--link",
                    f"a=websocket:ws://127.0.0.1:{peer.port}/",
                ],
                env={**os.environ, "NOTIFY_SOCKET": notify_path},
            )
            await served.lines.until(r"link a: connecting --opened--> open")
            served.process.send_signal(signal.SIGTERM)
            # The stop has begun; closing waits for a close reply that never comes.
            await stopping.wait()
            served.process.send_signal(signal.SIGINT)
            rest = await served.lines.rest()
            await served.process.wait()
        nursery.cancel_scope.cancel()
    assert served.process.returncode == 130
    errors = [line for line in rest if "error:" in line]
    assert len(errors) == 1 and "a second interrupt cut the clean stop short" in errors[0]


def test_a_broken_store_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "x.db"
    db.write_bytes(b"this is not a database" * 100)
    assert main(["serve", "--db", str(db), "--listen", "127.0.0.1:0"]) == 3
    err = capsys.readouterr().err
    assert str(db) in err and len(err.strip().splitlines()) == 1


def test_the_writer_process_needs_a_sqlite_database(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--db", pg_url, "--writer", "process", "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert "--writer process writes a SQLite database" in err
    assert "drop --writer process" in err and len(err.strip().splitlines()) == 1


async def test_serve_with_the_writer_process_stops_cleanly_into_the_file(tmp_path: Path) -> None:
    """SIGTERM reaches serve (and its writer's group); every link is still stored stopped."""
    db = tmp_path / "links.db"
    server = LoopbackServer()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        with trio.fail_after(90):
            served = await start_serve(
                [
                    "--db",
                    str(db),
                    "--writer",
                    "process",
                    "--link",
                    f"calm=websocket:{server.url('/calm')}",
                ]
            )
            await served.lines.until(r"link calm: connecting --opened--> open")
            served.process.send_signal(signal.SIGTERM)
            rest = await served.lines.rest()
            await served.process.wait()
        nursery.cancel_scope.cancel()
    assert served.process.returncode == 0, served.lines.seen
    assert any("link calm: open --abort--> stopped" in line for line in rest)
    with SQLiteStore(db) as store:
        row = store.load("calm")
    assert row is not None and (row.state, row.owner) == ("stopped", None)
