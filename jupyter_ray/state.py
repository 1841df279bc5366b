"""The state API: what the runtime is doing, for scripts, the CLI and the JupyterLab sidebar.

>>> from jupyter_ray import state
>>> state.list_tasks(filters=[("state", "=", "FAILED")])
>>> state.summarize_tasks().by_state
>>> state.task_graph(cell_id=...)          # nodes and edges of one cell's tasks

Records are the dataclasses of ``jupyter_ray.runtime.common.state_schema`` (``TaskState``,
``ActorState``, ``ObjectState``, ``NodeState``); ``.to_dict()`` turns one into JSON-ready
data. ``subscribe()`` gives a live view: a snapshot, then batched updates.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ._client import require_client
from .on_ray import backend as _on_ray
from .on_ray import state as ray_state
from .runtime.client.feed_client import FeedView, StateFeed
from .runtime.common.state_schema import (
    ActorState,
    GpuState,
    JobState,
    NodeState,
    ObjectState,
    TaskState,
    TaskSummary,
    check_filters,
)

__all__ = [
    "ActorState",
    "FeedView",
    "GpuState",
    "JobState",
    "NodeState",
    "ObjectState",
    "StateFeed",
    "TaskState",
    "TaskSummary",
    "get_actor",
    "get_task",
    "list_actors",
    "list_jobs",
    "list_nodes",
    "list_objects",
    "list_tasks",
    "subscribe",
    "summarize_tasks",
    "task_graph",
    "timeline",
]

DEFAULT_LIMIT = 100
RAY_PAGE = 10_000  # on the Ray backend: records of each kind read from Ray per query


def _query(what: str, filters: Any = None, limit: int | None = None, extra: Any = None) -> Any:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be an int >= 0 or None, got {limit!r}")
    arg = (check_filters(filters), limit, extra)
    if _on_ray.ray is not None:  # Ray's state API, as this project's records
        tables, jobs = ray_state.fetch(_on_ray.ray.util.state, None, RAY_PAGE)
        return ray_state.answer(what, arg, tables, jobs)
    return require_client().query(what, arg)


def list_tasks(
    filters: list[tuple[str, str, Any]] | None = None, limit: int | None = DEFAULT_LIMIT
) -> list[TaskState]:
    """Tasks, live and recently finished, oldest first.

    ``filters`` is a list of ``(field, "=" | "!=", value)``, e.g. ``[("name", "=", "f")]``.
    """
    return list(_query("list_tasks", filters, limit))


def list_actors(
    filters: list[tuple[str, str, Any]] | None = None, limit: int | None = DEFAULT_LIMIT
) -> list[ActorState]:
    return list(_query("list_actors", filters, limit))


def list_objects(
    filters: list[tuple[str, str, Any]] | None = None, limit: int | None = DEFAULT_LIMIT
) -> list[ObjectState]:
    return list(_query("list_objects", filters, limit))


def list_nodes(
    filters: list[tuple[str, str, Any]] | None = None, limit: int | None = DEFAULT_LIMIT
) -> list[NodeState]:
    return list(_query("list_nodes", filters, limit))


def get_actor(actor_id: str) -> ActorState | None:
    """The actor with this hex id (``handle._ray_actor_id``), or None, as Ray's."""
    if not isinstance(actor_id, str):
        raise TypeError(f"get_actor() takes the actor's hex id (a str), got {actor_id!r}")
    found = list_actors(filters=[("actor_id", "=", actor_id)], limit=1)
    return found[0] if found else None


def get_task(task_id: str) -> TaskState | None:
    """The task with this hex id, or None when it is unknown or forgotten."""
    if not isinstance(task_id, str):
        raise TypeError(f"get_task() takes the task's hex id (a str), got {task_id!r}")
    found = list_tasks(filters=[("task_id", "=", task_id)], limit=1)
    return found[0] if found else None


def list_jobs() -> list[JobState]:
    """Drivers (scripts, notebook kernels) of the node this process is attached to: the
    connected ones and the last 100 that left. ``metadata["kernel_id"]`` names a kernel."""
    return list(_query("list_jobs"))


def summarize_tasks() -> TaskSummary:
    """Counts per state and per function name, including tasks dropped from history."""
    summary: TaskSummary = _query("summarize_tasks")
    return summary


def task_graph(
    cell_id: str | None = None, job_id: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The task graph of one notebook cell, of one job (a driver: a script or a kernel, see
    ``get_runtime_context().get_job_id()``), or of everything the runtime remembers.

    ``{"nodes": [{"id", "name", "kind", "state", ...}], "edges": [{"source", "target",
    "kind"}]}``; edge kinds: ``data`` (a result used as an argument), ``submitted`` (a task
    started from inside another), ``actor`` (a call on the actor made by that creation).
    """
    for name, value in (("cell_id", cell_id), ("job_id", job_id)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"task_graph({name}=...) takes a str or None, got {value!r}")
    graph: dict[str, list[dict[str, Any]]] = _query("task_graph", None, None, (cell_id, job_id))
    return graph


def timeline(filename: str | None = None) -> list[dict[str, Any]]:
    """Chrome trace events of executed tasks, per worker (open in Perfetto or
    chrome://tracing). Written to ``filename`` when given; returned either way."""
    events: list[dict[str, Any]] = _query("timeline")
    if filename is not None:
        with open(filename, "w") as f:
            json.dump(events, f)
    return events


def subscribe(on_message: Callable[[Any, FeedView], None] | None = None) -> StateFeed:
    """Open a live view of the runtime's state; close it with ``.close()``."""
    if _on_ray.ray is not None:
        raise NotImplementedError(
            "Ray has no change feed to subscribe to: on the Ray backend, poll the list_* "
            "functions, or watch the Jupyter server's feed (jupyter-ray/api/events)."
        )
    client = require_client()
    assert client.welcome is not None
    return StateFeed(client.welcome.session_dir + "/node.sock", on_message)
