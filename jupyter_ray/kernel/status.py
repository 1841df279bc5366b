"""``%ray_status``: a live view of the nodes, their resources and this kernel's tasks.

The view is three ipywidgets ``HTML`` widgets; one thread keeps every open view current
while later cells run, asking the runtime at most every ``INTERVAL`` seconds, and less
often when the asking itself takes long (at most a tenth of its time goes to it), so a
status view never slows a big job down. Running ``%ray_status`` again in the same cell
closes the view that cell showed before.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from .. import state
from ..runtime.client import context
from ..runtime.common.state_schema import DONE_STATES, TASK_STATES, NodeState, TaskState
from .reprs import bar, esc, resources, size, view

INTERVAL = 1.0
MAX_VIEWS = 8
"""Open views kept current; opening more closes the oldest."""


@dataclass(slots=True)
class Snapshot:
    """What a status view shows; ``error`` when the runtime could not be asked."""

    nodes: list[NodeState] = field(default_factory=list)
    tasks: list[TaskState] = field(default_factory=list)
    connected: bool = False
    error: str | None = None
    taken: float = field(default_factory=time.time)


def take_snapshot() -> Snapshot:
    """Ask the runtime for its nodes and this driver's tasks (any thread)."""
    client = context.get_client()
    job = context.driver_job_id
    if client is None or client.closed or job is None:
        return Snapshot()
    try:
        nodes = state.list_nodes(limit=None)
        tasks = state.list_tasks([("job_id", "=", job)], limit=None)
    except Exception as err:
        return Snapshot(connected=True, error=str(err))
    return Snapshot(nodes, tasks, connected=True)


def header_html(snap: Snapshot) -> str:
    if not snap.connected:
        return view(
            "jupyter_ray status",
            "<div class='jr-muted'>not running in this kernel: <code>%ray_start</code> "
            "starts it (or attaches to the Jupyter server's runtime).</div>",
        )
    clock = time.strftime("%H:%M:%S", time.localtime(snap.taken))
    if snap.error:
        return view(
            "jupyter_ray status", f"<div>could not ask the runtime: {esc(snap.error)}</div>"
        )
    alive = sum(1 for n in snap.nodes if n.alive)
    return view(
        "jupyter_ray status",
        f" <span class='jr-muted'>{alive} node{'s' if alive != 1 else ''} alive · "
        f"updated {clock}</span>",
    )


def nodes_html(snap: Snapshot) -> str:
    if not snap.nodes:
        return ""
    head = (
        "<tr><th>node</th><th>CPU</th><th>GPU</th><th>memory</th><th>object store</th>"
        "<th>workers</th><th>other resources</th></tr>"
    )
    rows = []
    for n in snap.nodes:
        total, free = n.resources_total, n.resources_available
        cells = [
            f"<code>{esc(n.node_id[:12])}</code>{' (head)' if n.is_head else ''}"
            + ("" if n.alive else " <b>dead</b>")
        ]
        for key in ("CPU", "GPU"):
            have = total.get(key, 0.0)
            used = have - free.get(key, have)
            cells.append(f"{bar(used, have)} {used:g}/{have:g}" if have else "")
        cells.append(
            f"{bar(n.memory_used, n.memory_total)} {size(n.memory_used)}/{size(n.memory_total)}"
            if n.memory_total
            else ""
        )
        cells.append(
            f"{bar(n.object_store_used, n.object_store_capacity)} {size(n.object_store_used)}"
            f"/{size(n.object_store_capacity)}"
            + (f" ({size(n.object_store_spilled)} spilled)" if n.object_store_spilled else "")
        )
        cells.append(str(n.num_workers))
        other = {
            k: v
            for k, v in total.items()
            if k not in ("CPU", "GPU", "memory", "object_store_memory") and "_group_" not in k
        }
        cells.append(resources(other))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<div class='jr-view'><table>{head}{''.join(rows)}</table></div>"


def tasks_html(snap: Snapshot) -> str:
    if not snap.connected or snap.error:
        return ""
    by_state = Counter(t.state for t in snap.tasks)
    states = " · ".join(
        f"{esc(s.lower().replace('_', ' '))} {by_state[s]:,}" for s in TASK_STATES if by_state[s]
    )
    busy: Counter[tuple[int | None, str]] = Counter(
        (t.cell_execution_count, t.cell_id or "")
        for t in snap.tasks
        if t.state not in DONE_STATES and t.cell_id
    )
    cells = " · ".join(
        f"In[{count if count is not None else '?'}] {n:,}" for (count, _), n in busy.most_common(8)
    )
    body = f"<div>{states or 'none yet'}</div>"
    if cells:
        body += f"<div class='jr-muted'>live tasks by cell: {cells}</div>"
    return f"<div class='jr-view'><b>this kernel's tasks</b>{body}</div>"


class StatusView:
    """One ``%ray_status`` output: a header, the nodes and this kernel's tasks."""

    def __init__(self, cell_id: str | None) -> None:
        import ipywidgets as widgets

        self.cell_id = cell_id
        self.header = widgets.HTML()
        self.nodes = widgets.HTML()
        self.tasks = widgets.HTML()
        self.box = widgets.VBox([self.header, self.nodes, self.tasks])

    @property
    def closed(self) -> bool:
        return self.box.comm is None

    def render(self, snap: Snapshot) -> None:
        for widget, text in (
            (self.header, header_html(snap)),
            (self.nodes, nodes_html(snap)),
            (self.tasks, tasks_html(snap)),
        ):
            if widget.value != text:  # an unchanged view sends nothing
                widget.value = text

    def close(self) -> None:
        self.box.close()
        for widget in (self.header, self.nodes, self.tasks):
            widget.close()


class StatusService:
    """Keeps the open status views current from one thread; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: list[StatusView] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.rounds = 0

    def open(self, cell_id: str | None) -> StatusView:
        """A new view, drawn once before it is returned (the caller displays it)."""
        view_ = StatusView(cell_id)
        view_.render(take_snapshot())
        with self._lock:
            stale = [v for v in self._views if v.closed or (cell_id and v.cell_id == cell_id)]
            self._views = [v for v in self._views if v not in stale]
            self._views.append(view_)
            while len(self._views) > MAX_VIEWS:
                stale.append(self._views.pop(0))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="jupyter-ray-status", daemon=True
                )
                self._thread.start()
        for old in stale:
            old.close()
        return view_

    def _loop(self) -> None:
        while not self._closed:
            with self._lock:
                self._views = [v for v in self._views if not v.closed]
                views = list(self._views)
            started = time.monotonic()
            if views:
                snap = take_snapshot()
                for v in views:
                    try:
                        v.render(snap)
                    except Exception:  # closed meanwhile, or the kernel is exiting
                        continue
                self.rounds += 1
            spent = time.monotonic() - started
            self._wake.wait(max(INTERVAL, 10 * spent) - spent)
            self._wake.clear()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        with self._lock:
            views, self._views = self._views, []
        for v in views:
            v.close()
