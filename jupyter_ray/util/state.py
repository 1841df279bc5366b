"""``ray.util.state`` under its Ray name: the same functions as ``jupyter_ray.state``."""

from __future__ import annotations

from ..state import (
    get_actor,
    get_task,
    list_actors,
    list_jobs,
    list_nodes,
    list_objects,
    list_tasks,
    summarize_tasks,
)

__all__ = [
    "get_actor",
    "get_task",
    "list_actors",
    "list_jobs",
    "list_nodes",
    "list_objects",
    "list_tasks",
    "summarize_tasks",
]
