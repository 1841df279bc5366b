"""HTML views of jupyter_ray objects in a notebook.

Registered with IPython's ``text/html`` formatter (``for_type``) rather than as
``_repr_html_`` methods: the engine's classes (``ObjectRef``, the state records) must not
know about notebooks, and a script never pays for any of this. Each view asks the
runtime for what is current (an object's size and owner, an actor's state); a view of
something the runtime no longer knows says so instead of failing.
"""

from __future__ import annotations

import contextlib
import html
import time
from collections.abc import Callable, Iterable
from dataclasses import fields, is_dataclass
from typing import Any

from .. import _client, api, state
from ..actor import ActorHandle
from ..api import RuntimeInfo
from ..runtime.client import context
from ..runtime.client.object_ref import ObjectRef
from ..runtime.common.state_schema import (
    ActorState,
    JobState,
    NodeState,
    ObjectState,
    TaskState,
    TaskSummary,
)

MAX_ROWS = 200
"""Rows shown of a list of records; the rest are counted."""

SIDEBAR_NOTE = (
    "In JupyterLab, the jupyter_ray sidebar (the cluster icon in the left bar) shows this "
    "runtime live: its nodes and resources, the task graph of each cell, the object store "
    "and the actors. <code>%ray_status</code> shows the nodes and this kernel's tasks here."
)

RECORD_TYPES: tuple[type, ...] = (TaskState, ActorState, ObjectState, NodeState, JobState)

STYLE = (
    "<style>.jr-view table{border-collapse:collapse;font-size:12px;margin:2px 0}"
    ".jr-view th,.jr-view td{padding:1px 8px;text-align:left;border-bottom:1px solid #8883}"
    ".jr-bar{display:inline-block;width:120px;height:9px;background:#8883;"
    "vertical-align:middle;border-radius:2px}"
    ".jr-bar>span{display:block;height:100%;background:#4a90d9;border-radius:2px}"
    ".jr-muted{color:#888}</style>"
)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def size(n: float | int | None) -> str:
    """Bytes for people: ``1.5 GiB``."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def bar(used: float, total: float) -> str:
    """A small horizontal bar, ``used`` of ``total``."""
    share = 0.0 if total <= 0 else min(max(used / total, 0.0), 1.0)
    return f'<span class="jr-bar"><span style="width:{share * 100:.0f}%"></span></span>'


def table(rows: Iterable[tuple[str, str]]) -> str:
    """Two columns, name and value; values are HTML already."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def view(title: str, body: str) -> str:
    return f'{STYLE}<div class="jr-view"><b>{title}</b>{body}</div>'


def resources(res: dict[str, float]) -> str:
    """``CPU 4 · GPU 1 · memory 12.0 GiB · ...``, leaving out the node's own marker."""
    parts = []
    for key in sorted(res, key=lambda k: (k not in ("CPU", "GPU"), k)):
        if key.startswith("node:"):
            continue
        value = res[key]
        shown = size(value) if key in ("memory", "object_store_memory") else f"{value:g}"
        parts.append(f"{esc(key.replace('_', ' '))} {shown}")
    return " · ".join(parts)


def _query(fn: Callable[[], Any]) -> Any:
    """A state query for a view, or None when there is no runtime to ask."""
    client = context.get_client()
    if client is None or client.closed:
        return None
    try:
        return fn()
    except Exception:
        return None


def runtime_info_html(info: Any) -> str:
    """``init()``'s result (and ``%ray_start``'s summary)."""
    client = context.get_client()
    live = client is not None and not client.closed and client.welcome is not None
    connected = live and client is not None and client.welcome.node_id == info.node_id  # type: ignore[union-attr]
    nodes = _query(api.nodes) if connected else None
    rows = [
        ("status", "running" if connected else '<span class="jr-muted">disconnected</span>'),
        ("address", f"<code>{esc(info.session_dir)}/node.sock</code>"),
        ("node", f"<code>{esc(info.node_id[:16])}</code>"),
    ]
    if nodes is not None:
        alive = sum(1 for n in nodes if n.get("Alive"))
        rows.append(
            ("nodes", f"{alive} alive" + (f" of {len(nodes)}" if alive != len(nodes) else ""))
        )
        total = _query(api.cluster_resources) or info.resources
    else:
        total = info.resources
    rows.append(("resources", resources(total)))
    if connected:
        owned = _client._node is not None  # a local runtime this process started
        rows.append(
            (
                "started by",
                "this process: it stops when this kernel stops"
                if owned
                else "another process (the Jupyter server, a script or the command line): "
                "it outlives this kernel",
            )
        )
    return view("jupyter_ray", table(rows) + f"<div class='jr-muted'>{SIDEBAR_NOTE}</div>")


def object_ref_html(ref: ObjectRef) -> str:
    """State (pending, ready, failed), size, owner and cell of an ObjectRef."""
    oid = ref.hex()
    rows = [("object", f"<code>{esc(oid)}</code>")]
    client = context.get_client()
    if client is not None and not client.closed:
        ready, failed = client.readiness([ref])
        rows.append(("state", "failed" if failed else "ready" if ready else "pending"))
    obj = _query(lambda: state.list_objects([("object_id", "=", oid)], limit=1))
    if obj:
        o: ObjectState = obj[0]
        rows += [
            ("size", size(o.size) if o.size else "(not yet known)"),
            ("type", esc(o.type_name) or "?"),
            ("where", esc(o.location)),
            ("owner", f"pid {o.owner_pid}"),
        ]
        if o.preview is not None:
            rows.append(("value", f"<code>{esc(o.preview)}</code>"))
    elif client is not None:
        rows.append(("where", '<span class="jr-muted">not in the object store (freed?)</span>'))
    task_id = ref.task_id().hex()
    tasks = _query(lambda: state.list_tasks([("task_id", "=", task_id)], limit=1))
    if tasks:
        t: TaskState = tasks[0]
        rows.append(("made by", f"{esc(t.name)}() · {esc(t.state)}"))
        rows.append(("cell", _cell(t.cell_id, t.cell_execution_count)))
    return view("ObjectRef", table(rows))


def _cell(cell_id: str | None, count: int | None) -> str:
    if cell_id is None:
        return '<span class="jr-muted">none (not from a notebook cell)</span>'
    label = f"In[{count}]" if count is not None else "cell"
    return f"{label} <span class='jr-muted'>{esc(cell_id[:12])}</span>"


def actor_handle_html(handle: Any) -> str:
    """Class, state, process and name of an actor."""
    actor_id = handle._actor_id.hex()
    rows = [("class", esc(handle._class_name)), ("actor", f"<code>{esc(actor_id)}</code>")]
    found = _query(lambda: state.list_actors([("actor_id", "=", actor_id)], limit=1))
    if found:
        a: ActorState = found[0]
        rows += [("state", esc(a.state)), ("pid", esc(a.pid or "")), ("restarts", str(a.restarts))]
        if a.name:
            rows.append(
                ("name", f"{esc(a.name)} <span class='jr-muted'>({esc(a.namespace)})</span>")
            )
        if a.death_cause:
            rows.append(("death cause", esc(a.death_cause)))
    return view("Actor", table(rows))


def _cell_value(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key in ("size", "memory_used", "memory_total") or key.startswith("object_store_"):
        return size(value)
    if key in ("created", "start_time", "end_time") and isinstance(value, float):
        return esc(time.strftime("%H:%M:%S", time.localtime(value)))
    if key == "times" and isinstance(value, dict):
        return esc(
            ", ".join(
                f"{k} {time.strftime('%H:%M:%S', time.localtime(v))}" for k, v in value.items()
            )
        )
    if isinstance(value, dict) and key.startswith("resources"):
        return resources(value)
    text = str(value)
    return esc(text if len(text) <= 80 else text[:77] + "...")


def record_html(record: Any) -> str:
    """One state record: its fields, one per row."""
    rows = [(f.name, _cell_value(f.name, getattr(record, f.name))) for f in fields(record)]
    return view(type(record).__name__, table(rows))


def records_html(records: list[Any]) -> str | None:
    """A list of state records of one kind as a table (others: None, IPython's default)."""
    if not records or not is_dataclass(records[0]) or not isinstance(records[0], RECORD_TYPES):
        return None
    kind: Any = type(records[0])
    if any(type(r) is not kind for r in records):
        return None
    names = [f.name for f in fields(kind) if f.name not in ("times", "extra", "gpus")]
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell_value(n, getattr(r, n))}</td>" for n in names) + "</tr>"
        for r in records[:MAX_ROWS]
    )
    more = len(records) - MAX_ROWS
    note = f"<div class='jr-muted'>... and {more:,} more</div>" if more > 0 else ""
    title = f"{len(records):,} {kind.__name__}"
    return view(title, f"<table><tr>{head}</tr>{body}</table>{note}")


def summary_html(summary: TaskSummary) -> str:
    """Task counts by state and by function."""
    states = table((k, f"{v:,}") for k, v in sorted(summary.by_state.items()))
    names = "".join(
        f"<tr><th>{esc(name)}</th><td>"
        + " · ".join(f"{esc(s)} {n:,}" for s, n in sorted(per.items()))
        + "</td></tr>"
        for name, per in sorted(summary.by_name.items())[:MAX_ROWS]
    )
    return view(
        f"Tasks: {summary.total_submitted:,} submitted",
        f"{states}<table>{names}</table>",
    )


def register(shell: Any) -> None:
    """Add the views to IPython's HTML formatter."""
    formatter = shell.display_formatter.formatters["text/html"]
    formatter.for_type(RuntimeInfo, _guarded(runtime_info_html))
    formatter.for_type(ObjectRef, _guarded(object_ref_html))
    formatter.for_type(ActorHandle, _guarded(actor_handle_html))
    formatter.for_type(TaskSummary, _guarded(summary_html))
    for kind in RECORD_TYPES:
        formatter.for_type(kind, _guarded(record_html))
    formatter.for_type(list, _guarded(records_html))


def unregister(shell: Any) -> None:
    formatter = shell.display_formatter.formatters["text/html"]
    for kind in (RuntimeInfo, ObjectRef, ActorHandle, TaskSummary, list, *RECORD_TYPES):
        with contextlib.suppress(KeyError):
            formatter.pop(kind)


def _guarded(render: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """A view that fails shows the plain repr (None) instead of a formatter traceback."""

    def guarded(obj: Any) -> str | None:
        try:
            return render(obj)
        except Exception:
            return None

    guarded.__doc__ = render.__doc__
    return guarded
