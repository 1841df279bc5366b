"""The state queries (``list_tasks``, ``task_graph``...) answered from Ray's state API.

``fetch`` reads one page of every kind of record from Ray (``ray.util.state``) and maps
it (``records.py``); ``answer`` replies to the runtime's state queries from such a
picture. The server's poller and ``jupyter_ray.state`` on the Ray backend share both.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..runtime.common.state_schema import (
    DONE_STATES,
    ID_FIELDS,
    RUNNING,
    TaskSummary,
    check_filters,
    matches,
)
from ..runtime.common.task_graph import task_graph
from . import records

Tables = dict[str, dict[str, Any]]


def fetch(api: Any, address: str | None, limit: int) -> tuple[Tables, list[Any]]:
    """Every kind of record, at most ``limit`` each, and the jobs, from Ray's state API
    (``api`` is ``ray.util.state``; ``address`` its dashboard, None from a driver)."""
    common: dict[str, Any] = {"limit": limit, "raise_on_missing_output": False, "timeout": 30}
    if address is not None:
        common["address"] = address
    rows: dict[str, list[Any]] = {
        "tasks": [records.task(t) for t in api.list_tasks(detail=True, **common)],
        "actors": [records.actor(a) for a in api.list_actors(detail=True, **common)],
        "objects": [records.obj(o) for o in api.list_objects(**common)],
        "nodes": [records.node(n) for n in api.list_nodes(detail=True, **common)],
    }
    jobs_kw: dict[str, Any] = {"timeout": 30}
    if address is not None:
        jobs_kw["address"] = address
    jobs = [records.job(j) for j in api.list_jobs(**jobs_kw)]
    tables = {
        kind: {getattr(r, ID_FIELDS[kind]): r for r in found if r is not None}
        for kind, found in rows.items()
    }
    return tables, jobs


def answer(what: str, arg: Any, tables: Tables, jobs: list[Any]) -> Any:
    """The reply to the state query ``what`` (with the runtime's ``(filters, limit,
    extra)`` argument) from a picture of the cluster."""
    if isinstance(arg, tuple) and len(arg) == 3:
        filters, limit, extra = arg
    else:
        filters, limit, extra = [], None, None
    filters = check_filters(filters)
    rows = {k: list(v.values()) for k, v in tables.items()}
    tasks = rows["tasks"]
    if what.startswith("list_") and what[5:] in rows:
        chosen = [r for r in rows[what[5:]] if matches(r, filters)]
        return chosen[:limit] if limit is not None else chosen
    if what == "list_jobs":
        return list(jobs)
    if what == "task_graph":
        cell_id, job_id = extra or (None, None)
        return task_graph(
            t for t in tasks if cell_id in (None, t.cell_id) and job_id in (None, t.job_id)
        )
    if what == "summarize_tasks":
        by_name: dict[str, Counter[str]] = {}
        for t in tasks:
            by_name.setdefault(t.name, Counter())[t.state] += 1
        return TaskSummary(
            by_state=dict(Counter(t.state for t in tasks)),
            by_name={k: dict(v) for k, v in by_name.items()},
            total_submitted=len(tasks),
            dropped_from_history={},
        )
    if what == "timeline":
        return [_trace_event(t) for t in tasks if t.state in DONE_STATES and RUNNING in t.times]
    if what == "store_stats":
        capacity = sum(n.object_store_capacity for n in rows["nodes"])
        return {"capacity": capacity, "used": 0, "spilled": 0, "objects": len(rows["objects"])}
    raise ValueError(f"{what!r} is not available on the Ray backend")


def _trace_event(t: Any) -> dict[str, Any]:
    start = t.times[RUNNING]
    return {
        "name": t.name,
        "cat": t.kind,
        "ph": "X",
        "ts": start * 1e6,
        "dur": max(t.times.get(t.state, start) - start, 0.0) * 1e6,
        "pid": f"node {t.node_id[:8]}",
        "tid": f"worker {t.worker_pid}",
        "args": {"task_id": t.task_id, "state": t.state},
    }
