"""``linkstate demo --listen``: the demo serves its own page, ``/status`` and ``/metrics``.

Issue 18's "curl /metrics during the demo" as a user does it: the real
command in its own process, the port it prints, urllib for the requests and
prometheus_client's own parser for the answer. Nothing sleeps: the test
waits for the lines the demo prints.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from serving import SCRIPT, Lines, get, labels, metric_samples

from linkstate.cli import main

NO_DELAY = ["--initial", "0", "--cap", "0", "--retry-now-max", "0"]


async def test_curl_metrics_during_the_demo_shows_the_websocket_links_needs_relink(
    tmp_path: Path,
) -> None:
    db = tmp_path / "demo.db"
    argv = ["demo", "--db", str(db), "--hold", "0", *NO_DELAY, "--listen", "127.0.0.1:0"]
    with trio.fail_after(90):
        process = await trio.lowlevel.open_process(
            [str(SCRIPT), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert process.stdout is not None and process.stderr is not None
        told = Lines(process.stderr)
        base = (await told.until(r"serving the status page on (http://127\.0\.0\.1:\d+)/")).group(1)
        # While the story plays the page answers already; after it, both links wait.
        assert (await get(f"{base}/healthz")).status == 200
        await told.until(r"the story is over; still serving .* for Ctrl-C")
        samples = metric_samples((await get(f"{base}/metrics")).text)
        status = (await get(f"{base}/status")).json()
        page = await get(f"{base}/")
        process.send_signal(signal.SIGTERM)
        out = await Lines(process.stdout).rest()
        await process.wait()
    assert samples["linkstate_links", labels(channel="websocket", state="needs_relink")] == 1
    assert samples["linkstate_links", labels(channel="demo", state="needs_relink")] == 1
    assert samples["linkstate_links", labels(channel="websocket", state="open")] == 0
    links = {link["link"]: link for link in status["links"]}
    assert links["demo-websocket"]["state"] == links["demo"]["state"] == "needs_relink"
    assert links["demo-websocket"]["status"] == 3000
    assert page.status == 200 and "demo-websocket" in page.text
    # SIGTERM after the story is the operator's stop: the demo still ends as scripted.
    assert process.returncode == 0
    assert "3000 closeUnauthorized: relink" in "\n".join(out)
    assert out[-1].startswith("  linkstate relink demo --db ")


async def test_linger_ends_the_serving_on_its_own(tmp_path: Path) -> None:
    argv = ["demo", "--hold", "0", *NO_DELAY, "--format", "json"]
    argv += ["--db", str(tmp_path / "d.db"), "--listen", "127.0.0.1:0", "--linger", "0"]
    with trio.fail_after(90):
        done = await trio.run_process(
            [str(SCRIPT), *argv], capture_stdout=True, capture_stderr=True, check=False
        )
    assert done.returncode == 0, done.stderr
    assert b"still serving" in done.stderr and b"for 0 s, or Ctrl-C" in done.stderr
    # JSON lines on stdout stay JSON lines: what the demo tells people goes to stderr.
    assert all(line.startswith(b"{") for line in done.stdout.splitlines())


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--listen", "0.0.0.0:9473"], "the demo serves on loopback only"),
        (["--linger", "5"], "give --listen HOST:PORT too"),
        (["--listen", "127.0.0.1"], "is not HOST:PORT"),
    ],
)
def test_what_the_user_typed_wrong_is_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status: object
    try:
        status = main(["demo", *argv])
    except SystemExit as exc:  # argparse exits by raising
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


def test_listen_without_the_serve_extra_names_the_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes `import hypercorn` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "hypercorn", None)
    assert main(["demo", "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert "needs hypercorn" in err and "pip install 'linkstate[serve]'" in err
    assert len(err.strip().splitlines()) == 1
