"""Lab stays responsive while a job of 5,000 tasks runs, 200 of them at once, and the
collapsed graph of those 5,000 tasks is drawn in under a second.

Frame times come from requestAnimationFrame deltas recorded in the page during the job
(and long tasks from the Long Tasks API); the graph's time is the extension's own
``jupyter-ray:graph-draw`` performance measure (model update, layout and DOM) and the
time from the command to the next painted frame. The figures are printed for
docs/benchmarks.md. On a 2-core machine the kernel, the runtime's workers, the Jupyter
server and Chromium share the CPUs, so the frame figures include that contention.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

import pytest
from _lab import WAIT, command, notebook, open_notebook, start_command, widen_left_panel

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

SETUP = "%load_ext jupyter_ray\n%ray_start"
# 1,000 plain tasks feed 3,999 calls on an async actor that runs 200 at a time: 5,000
# tasks in all (with the actor's creation), 200 of them running at once.
JOB = """\
import asyncio
import jupyter_ray as ray

@ray.remote
def produce(i):
    return i

@ray.remote(max_concurrency=200)
class Sleeper:
    async def work(self, x):
        await asyncio.sleep(0.4)
        return x

sleeper = Sleeper.remote()
inputs = [produce.remote(i) for i in range(1000)]
calls = [sleeper.work.remote(inputs[i % 1000]) for i in range(3999)]
print("job-done", len(ray.get(calls)))
"""

RECORD = """() => {
  const rec = { deltas: [], longTasks: [], peakRunning: 0, on: true };
  window.__jrRecord = rec;
  const status = () => document.querySelector('.jr-StatusItem-text');
  let last = performance.now();
  const tick = now => {
    rec.deltas.push(now - last);
    last = now;
    const m = /(\\d+) running/.exec(status()?.textContent ?? '');
    if (m) rec.peakRunning = Math.max(rec.peakRunning, Number(m[1]));
    if (rec.on) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) rec.longTasks.push(e.duration);
  }).observe({ type: 'longtask' });
}"""

STOP = """() => {
  const r = window.__jrRecord;
  r.on = false;
  const entries = name => performance.getEntriesByName(name).map(m => m.duration);
  const feed = entries('jupyter-ray:feed-apply');
  return { ...r, feed, draws: entries('jupyter-ray:graph-draw') };
}"""

# From the command to the frame after it: what the user waits for.
DRAW_CLUSTER_GRAPH = """async () => {
  performance.clearMeasures('jupyter-ray:graph-draw');
  const t0 = performance.now();
  await window.jupyterapp.commands.execute('jupyter-ray:graph-scope', { scope: 'cluster' });
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const painted = performance.now() - t0;
  const measures = performance.getEntriesByName('jupyter-ray:graph-draw')
    .map(m => ({ duration: m.duration, ...m.detail }));
  return { painted, measures };
}"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_lab_stays_responsive_during_5000_tasks(lab: Any, browser: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    server = lab({"job.ipynb": notebook([("setup", SETUP), ("job", JOB)])})
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    open_notebook(page, server, "job.ipynb")
    command(page, "jupyter-ray:open")
    widen_left_panel(page, 470)

    page.evaluate(RECORD)
    # Not awaited: the command's promise settles only when every cell has run, and the
    # checks below are of the page while the job runs.
    start_command(page, "notebook:run-all-cells")
    graph = page.locator(".jr-GraphSection")
    # Mid-job: many running, the cell's graph collapsed into one node per function.
    status = page.locator(".jr-StatusItem-text")
    expect(status).to_contain_text(re.compile(r"· [1-9]\d+ running"), timeout=WAIT)
    expect(graph).to_have_attribute("data-collapsed", "true", timeout=WAIT)
    page.screenshot(path=str(shots / "job-running.png"))
    expect(page.locator(".jp-OutputArea-output").filter(has_text="job-done 3999")).to_be_visible(
        timeout=300_000
    )
    strip = page.locator('.jr-CellStrip[data-cell-id="job"]')
    expect(strip).to_have_attribute("data-done", "5000", timeout=WAIT)
    record = page.evaluate(STOP)

    # The job's final picture, collapsed: one group per function, with its counts.
    expect(graph).to_have_attribute("data-tasks", "5000", timeout=WAIT)
    produce = graph.locator(".jr-Group[data-name='produce']")
    expect(produce).to_have_attribute("data-counts", re.compile(r"done:1000 "), timeout=WAIT)
    work = graph.locator(".jr-Group[data-name$='work']")
    expect(work).to_have_attribute("data-counts", re.compile(r"done:3999 "), timeout=WAIT)
    expect(graph.locator(".jr-Node[data-kind='task']")).to_have_count(0)
    page.screenshot(path=str(shots / "job-done.png"))

    # The whole cluster's graph, drawn from nothing.
    draw = page.evaluate(DRAW_CLUSTER_GRAPH)
    expect(graph).to_have_attribute("data-scope", "cluster")
    expect(produce).to_have_attribute("data-total", "1000")
    rebuilds = [m for m in draw["measures"] if m["rebuild"] and m["tasks"] == 5000]
    assert rebuilds, draw
    page.screenshot(path=str(shots / "cluster-graph.png"))

    deltas = record["deltas"][1:]
    figures = {
        "frames": len(deltas),
        "frame_mean_ms": round(statistics.fmean(deltas), 1),
        "frame_p50_ms": round(percentile(deltas, 0.50), 1),
        "frame_p95_ms": round(percentile(deltas, 0.95), 1),
        "frame_p99_ms": round(percentile(deltas, 0.99), 1),
        "frame_max_ms": round(max(deltas), 1),
        "long_tasks": len(record["longTasks"]),
        "long_task_max_ms": round(max(record["longTasks"], default=0), 1),
        "peak_running": record["peakRunning"],
        "feed_messages": len(record["feed"]),
        "feed_apply_max_ms": round(max(record["feed"], default=0), 1),
        "graph_updates": len(record["draws"]),
        "graph_update_max_ms": round(max(record["draws"], default=0), 1),
        "graph_5000_draw_ms": round(rebuilds[0]["duration"], 1),
        "graph_5000_painted_ms": round(draw["painted"], 1),
    }
    print("jupyter-ray browser figures:", figures)
    # The status bar samples 4 times a second what the feed last said; a call shows as
    # RUNNING from 0.1 s into its 0.4 s: it sees many, never more than the actor's 200.
    assert 50 <= figures["peak_running"] <= 200, figures
    assert figures["frame_p95_ms"] < 50, figures
    assert figures["graph_5000_draw_ms"] < 1000, figures
    assert figures["graph_5000_painted_ms"] < 1000, figures
