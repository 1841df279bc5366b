"""The task graph of a set of task records: nodes, and edges of three kinds.

``data``: a task's result is another task's argument (an object id is its task's id
plus a 4-byte index); ``submitted``: a task started from inside another; ``actor``: a
call on an actor, from the task that created it. A pure function over ``TaskState``
records, shared by the node manager's state queries and the Ray backend's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .state_schema import TaskState

TASK_ID_HEX = 32  # an object id is its task's 16-byte id and a 4-byte index, in hex


def task_graph(tasks: Iterable[TaskState]) -> dict[str, list[dict[str, Any]]]:
    """``{"nodes": [...], "edges": [...]}``; an argument no task here made (a ``put``)
    is an edge from the object itself, marked ``"object": True``."""
    tasks = list(tasks)
    ids = {t.task_id for t in tasks}
    creator = {t.actor_id: t.task_id for t in tasks if t.kind == "actor_creation" and t.actor_id}
    nodes = [
        {
            "id": t.task_id,
            "name": t.name,
            "kind": t.kind,
            "state": t.state,
            "cell_id": t.cell_id,
            "job_id": t.job_id,
            "actor_id": t.actor_id,
        }
        for t in tasks
    ]
    edges: list[dict[str, Any]] = []
    for t in tasks:
        for dep in t.depends_on:
            producer = dep[:TASK_ID_HEX]
            if producer in ids:
                edges.append({"source": producer, "target": t.task_id, "kind": "data"})
            else:
                edges.append({"source": dep, "target": t.task_id, "kind": "data", "object": True})
        if t.parent_task_id and t.parent_task_id in ids:
            edges.append({"source": t.parent_task_id, "target": t.task_id, "kind": "submitted"})
        if t.kind == "actor_method" and t.actor_id and creator.get(t.actor_id) in ids:
            edges.append({"source": creator[t.actor_id], "target": t.task_id, "kind": "actor"})
    return {"nodes": nodes, "edges": edges}
