"""The status page in a real browser: Debian's Chromium, headless, driven by Playwright.

The browser is the system's ``/usr/bin/chromium`` (``apt-get install chromium``);
nothing downloads one. It runs with a new, empty profile and every background
service off, because the machines this runs on have no network beyond loopback.
The page is served by a real ``linkstate serve`` over a real loopback WebSocket
server, and the test drives both from one trio loop: the browser runs in a
worker thread, and asks the loop (``trio.from_thread``) to close a connection.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import pytest
import trio
from serving import Closer, LoopbackServer, get_blocking, labels, metric_samples, start_serve

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A close reason is whatever the peer sends; the page must show this as text.
HOSTILE = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
EMPHASIS = "#1a56c4"

if not CHROMIUM.exists():  # pragma: no cover - CI installs it (.ci/run)
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Chromium: apt-get install -y chromium (see .ci/run)")
    pytest.skip("needs Debian's Chromium: apt-get install -y chromium", allow_module_level=True)


def _browse(base: str, conflict: Closer, db: Path, shots: Path | None) -> dict[str, Any]:
    """Everything the browser sees; runs in a worker thread."""
    from playwright.sync_api import Dialog, sync_playwright

    seen: dict[str, Any] = {"dialogs": []}
    with sync_playwright() as driver, tempfile.TemporaryDirectory() as profile:
        browser = driver.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=FLAGS,
            headless=True,
            viewport={"width": 1100, "height": 900},
        )
        try:
            page = browser.new_page()

            def on_dialog(dialog: Dialog) -> None:
                seen["dialogs"].append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.goto(f"{base}/")
            healthy = page.locator('#group-healthy article[data-link="acct1"]')
            healthy.wait_for(timeout=30_000)
            # A mark on this document: a reload would make a new one without it.
            page.evaluate("window.sameDocument = true")
            trio.from_thread.run_sync(conflict.now.set)
            person = page.locator('#group-person article[data-link="acct1"]')
            person.wait_for(timeout=30_000)
            seen["same_document"] = page.evaluate("window.sameDocument === true")
            seen["message"] = person.locator(".message").inner_text()
            seen["reason"] = person.locator(".reason q").inner_text()
            seen["command"] = person.locator("code.command").inner_text()
            seen["first_group"] = page.locator("section.group h2").first.inner_text()
            seen["images"] = page.locator("#live img").count()
            if shots is not None:
                page.screenshot(path=str(shots / "status-page.png"), full_page=True)
            page.goto(f"{base}/links/acct1")
            node = page.locator("figure.diagram svg g.node", has_text="needs_relink")
            node.first.wait_for(timeout=30_000)
            seen["highlight"] = node.first.locator("polygon").first.get_attribute("stroke")
            seen["highlight_width"] = node.first.locator("polygon").first.get_attribute(
                "stroke-width"
            )
            open_node = page.locator("figure.diagram svg g.node", has_text="open").first
            seen["open_stroke"] = open_node.locator("path, polygon").first.get_attribute("stroke")
            seen["history"] = page.locator("table.history tbody tr").count()
            seen["history_reason"] = page.locator("table.history tbody tr td").nth(4).inner_text()
            seen["pwned"] = page.evaluate("window.pwned === undefined ? null : window.pwned")
        finally:
            browser.close()
    return seen


async def test_the_page_moves_a_440_to_needs_a_person_live_and_runs_nothing_it_shows(
    tmp_path: Path,
) -> None:
    db = tmp_path / "links.db"
    server = LoopbackServer()
    # The demo channel's 4440 carries WhatsApp's 440 over WebSocket (linkstate demo).
    server.closers["/acct1"] = conflict = Closer(4440, HOSTILE)
    shots = (
        Path(os.environ["LINKSTATE_SCREENSHOTS"]) if "LINKSTATE_SCREENSHOTS" in os.environ else None
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        with trio.fail_after(120):
            served = await start_serve(
                [
                    "--db",
                    str(db),
                    "--link",
                    f"acct1=demo:{server.url('/acct1')}",
                    "--link",
                    f"acct2=websocket:{server.url('/acct2')}",
                ]
            )
            await served.lines.until(r"link acct1: connecting --opened--> open", move=False)
            seen = await trio.to_thread.run_sync(_browse, served.base, conflict, db, shots)
            metrics = await trio.to_thread.run_sync(get_blocking, f"{served.base}/metrics")
            served.process.send_signal(signal.SIGTERM)
            await served.lines.rest()
            await served.process.wait()
        nursery.cancel_scope.cancel()
    assert served.process.returncode == 0
    # Moved without a reload, with its message and the command to run.
    assert seen["same_document"] is True
    assert seen["first_group"].startswith("Needs a person")
    assert "another client took over this session" in seen["message"]
    assert seen["command"] == f"linkstate relink acct1 --db {db}"
    # The peer's markup is text on the page, and nothing in it ran.
    assert seen["reason"] == HOSTILE
    assert HOSTILE in seen["message"] and HOSTILE in seen["history_reason"]
    assert seen["pwned"] is None and seen["dialogs"] == [] and seen["images"] == 0
    # The diagram highlights needs_relink, and only it.
    assert (seen["highlight"], seen["highlight_width"]) == (EMPHASIS, "3")
    assert seen["open_stroke"] != EMPHASIS
    assert seen["history"] == 3  # start, opened, closed into needs_relink
    samples = metric_samples(metrics.text)
    assert samples["linkstate_links", labels(channel="demo", state="needs_relink")] == 1
    assert samples["linkstate_links", labels(channel="websocket", state="open")] == 1
    relinked = labels(channel="demo", trigger="closed", dst="needs_relink", verdict="relink")
    assert samples["linkstate_transitions_total", relinked] == 1
