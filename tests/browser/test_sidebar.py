"""The Lab extension in a real JupyterLab, a real kernel and the system's Chromium.

One notebook runs dependent tasks, an actor, a large object and failing tasks; the test
then checks what a user sees: each cell's strip with its final counts, the sidebar's
node and resource bars, the cell's task graph with final states, the object and actor
tables, the timeline and its download, the status bar, stop and start from the sidebar.
Screenshots go to the test's folder; the one of the sidebar beside the notebook is
copied to docs/images/ for the README.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from _lab import (
    WAIT,
    command,
    notebook,
    open_notebook,
    set_setting,
    show_sections,
    widen_left_panel,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

SETUP = "%load_ext jupyter_ray\n%ray_start"
TASKS = """\
import time
import jupyter_ray as ray

@ray.remote
def load(i):
    time.sleep(0.3)
    return list(range(i * 10, i * 10 + 10))

@ray.remote
def total(*parts):
    return sum(sum(p) for p in parts)

@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def add(self, x):
        self.n += x
        return self.n

parts = [load.remote(i) for i in range(6)]
result = total.remote(*parts)
counter = Counter.options(name="tally").remote()
calls = [counter.add.remote(result) for _ in range(3)]
big = ray.put(b"x" * 2_000_000)
print("tasks-done", ray.get(calls))
"""
FAILS = """\
@ray.remote
def broken(x):
    raise ValueError(f"bad input {x}")

refs = [broken.remote(i) for i in range(2)]
ray.wait(refs, num_returns=2)
print("fails-done")
"""


def test_sidebar_shows_a_notebooks_tasks(lab: Any, browser: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    server = lab({"demo.ipynb": notebook([("setup", SETUP), ("tasks", TASKS), ("fails", FAILS)])})
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    open_notebook(page, server, "demo.ipynb")

    # The status bar item is there before anything runs.
    status = page.locator(".jr-StatusItem")
    expect(status).to_contain_text(re.compile(r"Ray: 1 node · CPU 0/2 · 0 running"), timeout=WAIT)

    command(page, "notebook:run-all-cells")
    outputs = page.locator(".jp-OutputArea-output")
    expect(outputs.filter(has_text="tasks-done")).to_be_visible(timeout=WAIT)
    expect(outputs.filter(has_text="fails-done")).to_be_visible(timeout=WAIT)

    # --- the strips under the cells, with final counts ---
    truth = server.api("GET", "tasks?cell_id=tasks&limit=1000")["tasks"]
    assert len(truth) == 11, [t["name"] for t in truth]  # 6 load, total, actor, 3 calls
    strip = page.locator('.jr-CellStrip[data-cell-id="tasks"]')
    expect(strip).to_have_attribute("data-done", "11", timeout=WAIT)
    for bucket in ("pending", "running", "failed", "cancelled"):
        expect(strip).to_have_attribute(f"data-{bucket}", "0")
    expect(strip).to_contain_text("11 tasks")
    expect(strip).not_to_have_class(re.compile("jr-mod-failed"))

    failed = page.locator('.jr-CellStrip[data-cell-id="fails"]')
    expect(failed).to_have_attribute("data-failed", "2", timeout=WAIT)
    expect(failed).to_have_class(re.compile("jr-mod-failed"))
    expect(failed.locator(".jr-CellStrip-error")).to_contain_text(
        re.compile(r"broken: .*ValueError.*bad input [01]")
    )
    assert page.locator('.jr-CellStrip[data-cell-id="setup"]').count() == 0

    # --- a click on the strip opens that cell's graph in the sidebar ---
    strip.click()
    graph = page.locator(".jr-GraphSection")
    expect(graph).to_be_visible(timeout=WAIT)
    widen_left_panel(page, 470)
    expect(graph).to_have_attribute("data-scope", "cell")
    expect(graph).to_have_attribute("data-tasks", "11", timeout=WAIT)
    nodes = graph.locator(".jr-Node[data-kind='task']")
    expect(nodes).to_have_count(11)
    expect(graph.locator(".jr-Node[data-state='FINISHED']")).to_have_count(11)
    expect(graph.locator(".jr-Node[data-name='load']")).to_have_count(6)
    expect(graph.locator(".jr-Node[data-name='total']")).to_have_count(1)
    expect(graph.locator(".jr-Node[data-name$='add']")).to_have_count(3)
    # 6 load -> total, total -> each add (data), the actor's creation -> each add
    expect(graph.locator(".jr-Edge")).to_have_count(12)
    graph.locator(".jr-Node[data-name='total']").click()
    details = graph.locator(".jr-Details")
    expect(details).to_contain_text("total")
    expect(details).to_contain_text("FINISHED")
    expect(details).to_contain_text("Ran")

    # --- cluster: the node, its bars, used/total per resource ---
    cluster = page.locator(".jr-ClusterSection")
    expect(cluster.locator(".jr-ClusterSection-status")).to_have_attribute("data-state", "running")
    cards = cluster.locator(".jr-NodeCard")
    expect(cards).to_have_count(len(server.api("GET", "nodes")["nodes"]))
    card = cards.first
    for label in ("CPU", "Memory", "Store"):
        expect(card.locator(".jr-Bar-label", has_text=label)).to_have_count(1)
    expect(card.locator(".jr-Resource[data-resource='CPU'] .jr-Resource-value")).to_have_text("0/2")
    page.screenshot(path=str(shots / "sidebar.png"))

    # --- the graph of this notebook's kernel: both cells' tasks ---
    command(page, "jupyter-ray:graph-scope", {"scope": "kernel"})
    expect(graph).to_have_attribute("data-scope", "kernel")
    expect(graph).to_have_attribute("data-tasks", "13", timeout=WAIT)
    expect(graph.locator(".jr-Node[data-state='FAILED']")).to_have_count(2)
    # --- a setting changes the picture at once: past 8 tasks, one node per function ---
    set_setting(page, "collapseThreshold", 8)
    expect(graph).to_have_attribute("data-collapsed", "true", timeout=WAIT)
    load = graph.locator(".jr-Group[data-name='load']")
    expect(load).to_have_attribute("data-counts", re.compile(r"done:6 .*failed:0"))
    expect(graph.locator(".jr-Group.jr-mod-failed[data-name='broken']")).to_have_count(1)
    load.dblclick()  # expands the group: its six tasks drawn one by one
    expect(graph.locator(".jr-Node[data-name='load'][data-kind='task']")).to_have_count(
        6, timeout=WAIT
    )
    set_setting(page, "collapseThreshold", 250)
    expect(graph).to_have_attribute("data-collapsed", "false", timeout=WAIT)

    # --- the object store table ---
    show_sections(page, "Objects", "Actors")
    objects = page.locator(".jr-ObjectsTable tbody tr")
    big = objects.filter(has=page.locator("td[data-column='type']", has_text="bytes")).filter(
        has=page.locator("td[data-column='size']", has_text="1.9 MiB")
    )
    expect(big).to_have_count(1, timeout=WAIT)
    expect(page.locator(".jr-ObjectsSection-summary .jr-Bar-label")).to_have_text("Store")

    # --- the actor table ---
    actor = page.locator(".jr-ActorsTable tbody tr", has_text="tally")
    expect(actor.locator("td[data-column='class']")).to_have_text("Counter", timeout=WAIT)
    expect(actor.locator("td[data-column='state']")).to_have_text("ALIVE")
    expect(actor.locator("td[data-column='pending']")).to_have_text("0")
    page.screenshot(path=str(shots / "tables.png"))

    # --- the timeline, and its trace download ---
    show_sections(page, "Cluster", "Timeline")
    expect(page.locator(".jr-Timeline-bar").first).to_be_visible(timeout=WAIT)
    page.screenshot(path=str(shots / "timeline.png"))
    with page.expect_download() as download:
        page.locator(".jr-DownloadTrace").click()
    trace = json.loads(Path(download.value.path()).read_text())
    assert {"load", "total"} <= {event["name"] for event in trace}

    # --- the status bar, and a click on it opens the sidebar ---
    expect(status).to_contain_text("Ray: 1 node · CPU 0/2 · 0 running")

    # --- dark theme: the same picture in JupyterLab's dark colours ---
    show_sections(page, "Cluster", "Task graph")
    command(page, "apputils:change-theme", {"theme": "JupyterLab Dark"})
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false", timeout=WAIT)
    expect(page.locator("#jupyterlab-splash")).to_have_count(0, timeout=WAIT)
    page.screenshot(path=str(shots / "dark.png"))
    command(page, "apputils:change-theme", {"theme": "JupyterLab Light"})
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "true", timeout=WAIT)
    expect(page.locator("#jupyterlab-splash")).to_have_count(0, timeout=WAIT)

    # --- stop from the sidebar: it says so and offers start; start brings it back ---
    page.locator(".jr-ClusterSection .jr-Stop").click()
    expect(status).to_contain_text("Ray: not started", timeout=WAIT)
    expect(page.locator(".jr-ClusterSection-status")).to_contain_text("No runtime is running")
    expect(page.locator(".jr-GraphSection-empty .jr-Start")).to_be_visible()
    expect(page.locator(".jr-CellStrip")).to_have_count(0)
    page.locator(".jr-ClusterSection .jr-Start").click()
    expect(status).to_contain_text(re.compile(r"Ray: 1 node · CPU 0/2"), timeout=WAIT)
    expect(page.locator(".jr-ClusterSection .jr-NodeCard")).to_have_count(1)

    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shots / "sidebar.png", DOCS_IMAGES / "sidebar.png")
    assert not errors, errors
