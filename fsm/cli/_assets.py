"""The status page's script and style sheet, served from ``/static/`` by ``linkstate serve``.

They are files of their own, not inline, so that the page's
Content-Security-Policy can forbid every inline script and event handler.
The script only swaps in the HTML fragments the server built and escaped;
it never builds markup from data itself.
"""

from __future__ import annotations

from typing import Final

__all__ = ["STATIC"]

_SCRIPT: Final = """\
"use strict";
// Live updates without a reload: every few seconds, fetch the fragment this
// page was built from and swap it in. The server escaped every value in it.
(function () {
  const box = document.getElementById("live");
  const stamp = document.getElementById("updated");
  if (!box) { return; }
  const url = box.dataset.fragment;
  const every = Number(box.dataset.every) || 2000;
  function say(text) { if (stamp) { stamp.textContent = text; } }
  async function tick() {
    try {
      const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
      if (response.ok) {
        box.innerHTML = await response.text();
        say("updated " + new Date().toLocaleTimeString());
      } else {
        say("update failed: HTTP " + response.status);
      }
    } catch (error) {
      say("the server does not answer; retrying");
    }
  }
  say("live: updates every " + every / 1000 + " s");
  setInterval(tick, every);
})();
"""

_STYLE: Final = """\
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1b1b1b; background: #fafafa; }
header { padding: 10px 20px; background: #20242b; color: #eee; }
header a { color: #fff; font-weight: 600; text-decoration: none; }
main { padding: 8px 20px 40px; max-width: 1200px; }
.muted { color: #666; }
header .muted { color: #aab; margin-left: 1em; font-size: 12px; }
.group h2 { font-size: 16px; margin: 18px 0 6px; }
.count { background: #ddd; border-radius: 9px; padding: 0 8px; font-size: 12px; }
.link { background: #fff; border: 1px solid #ddd; border-left: 6px solid #3d6db5;
  border-radius: 4px; padding: 6px 12px; margin: 6px 0; }
.link h3 { margin: 2px 0; font-size: 15px; }
.link p { margin: 3px 0; }
.badge { font-size: 12px; padding: 1px 7px; border-radius: 8px; background: #e8f0fe; }
.state-needs_relink { border-left-color: #b36b00; }
.state-needs_relink .badge { background: #fde5bd; }
.state-failed { border-left-color: #b3261e; }
.state-failed .badge { background: #f9d4cf; }
.state-stopped, .state-idle { border-left-color: #5f5f5f; }
.state-stopped .badge, .state-idle .badge { background: #e4e4e4; }
.message { background: #fff8e6; padding: 4px 8px; border-radius: 3px; }
.error { color: #b3261e; }
code { background: #f1f1f1; padding: 1px 5px; border-radius: 3px; }
.diagram svg { max-width: 100%; height: auto; }
table.history { border-collapse: collapse; font-size: 13px; }
table.history td, table.history th { border-bottom: 1px solid #e3e3e3; padding: 3px 8px;
  text-align: left; vertical-align: top; }
"""

STATIC: Final[dict[str, tuple[str, bytes]]] = {
    "page.js": ("text/javascript; charset=utf-8", _SCRIPT.encode()),
    "page.css": ("text/css; charset=utf-8", _STYLE.encode()),
}
"""Served at ``/static/NAME``: (media type, content)."""
