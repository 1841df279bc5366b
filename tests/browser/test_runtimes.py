"""The sidebar lists the machine's runtimes and switches the server to another one, and
it survives a restart of the Jupyter server: it says it is disconnected, reconnects on
its own, and shows the new runtime from a fresh snapshot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _lab import WAIT, command, notebook, open_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

CELL = """\
%load_ext jupyter_ray
%ray_start
import jupyter_ray as ray

@ray.remote
def square(x):
    return x * x

print("squares", ray.get([square.remote(i) for i in range(3)]))
"""

# A runtime of the machine that a script started (1 CPU, to tell it apart).
SCRIPT = """\
import sys
import jupyter_ray as ray
ray.init(num_cpus=1, object_store_memory=64 << 20)
print("ready", flush=True)
sys.stdin.read()  # until the test closes stdin
"""

# Every text the status item shows from now on.
WATCH_STATUS = """() => {
  const item = document.querySelector('.jr-StatusItem');
  window.__jrStatuses = [item.textContent];
  new MutationObserver(() => window.__jrStatuses.push(item.textContent)).observe(item, {
    childList: true, subtree: true, characterData: true
  });
}"""


def test_sidebar_switches_runtime_and_survives_a_server_restart(
    lab: Any, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    server = lab({"restart.ipynb": notebook([("squares", CELL)])})
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    open_notebook(page, server, "restart.ipynb")
    status = page.locator(".jr-StatusItem")
    sidebar = page.locator("#jupyter-ray-sidebar")
    expect(sidebar).to_be_hidden()
    status.click()  # the status-bar item opens the sidebar
    expect(sidebar).to_be_visible()
    # The command palette lists the extension's commands.
    command(page, "apputils:activate-command-palette")
    page.locator(".lm-CommandPalette-input").fill("Ray")
    palette = page.locator(".lm-CommandPalette-item")
    expect(palette.filter(has_text="Start a Ray Runtime")).to_have_count(1)
    expect(palette.filter(has_text="Download the Ray Timeline")).to_have_count(1)
    page.locator(".lm-CommandPalette-input").press("Escape")
    command(page, "notebook:run-all-cells")
    strip = page.locator('.jr-CellStrip[data-cell-id="squares"]')
    expect(strip).to_have_attribute("data-done", "3", timeout=WAIT)
    card = page.locator(".jr-ClusterSection .jr-NodeCard")
    expect(card).to_have_count(1)

    # --- another runtime of the machine appears in the list; switch the server to it ---
    script = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={k: v for k, v in server.env.items() if k != "JUPYTER_RAY_ADDRESS"},
        cwd=tmp_path,
    )
    try:
        assert script.stdout is not None and script.stdout.readline() == b"ready\n"
        command(page, "jupyter-ray:resync")  # the list is read again on (re)connection
        other = page.locator(".jr-Registry-entry:not(.jr-mod-current)")
        expect(other).to_have_count(1, timeout=WAIT)
        other.locator(".jr-Switch").click()
        # The server started the runtime shown now: switching stops it, so it asks.
        page.locator(".jp-Dialog button", has_text="Stop and switch").click()
        expect(status).to_contain_text("Ray: 1 node · CPU 0/1", timeout=WAIT)
        expect(page.locator(".jr-ClusterSection-status")).to_contain_text("attached")
        expect(page.locator(".jr-ClusterSection .jr-Stop")).to_have_text("Detach")
        # The cell's tasks were the stopped runtime's: its strip goes with them.
        expect(strip).to_have_count(0, timeout=WAIT)
        attached_node = card.get_attribute("data-node-id")

        # --- the server restarts: disconnected, then back by itself, fresh snapshot ---
        page.evaluate(WATCH_STATUS)
        server = lab.restart(server)
        expect(status).to_contain_text(re.compile(r"Ray: 1 node · CPU \d+/2"), timeout=WAIT)
        expect(card).to_have_count(1, timeout=WAIT)
        expect(card).not_to_have_attribute("data-node-id", attached_node or "")
        expect(page.locator(".jr-ClusterSection-status")).to_have_attribute(
            "data-connection", "open"
        )
        seen = page.evaluate("window.__jrStatuses")
        assert "Ray: disconnected" in seen, seen
    finally:
        assert script.stdin is not None
        script.stdin.close()
        try:
            script.wait(30)
        except subprocess.TimeoutExpired:
            script.kill()
            script.wait()
        if script.stdout is not None:
            script.stdout.close()
