"""Ray's state records (``ray.util.state``) as this project's (``state_schema``).

The sidebar, the REST API and ``jupyter_ray.state`` speak one schema; on the Ray backend
their records come from Ray's state API and are mapped here. What Ray does not expose
is left empty and named in ``UNAVAILABLE``, so the views can say "not available on Ray"
instead of showing a made-up figure. Pure functions on plain values; no Ray import.
"""

from __future__ import annotations

import re
from typing import Any

from ..runtime.common.state_schema import (
    CANCELLED,
    FAILED,
    FINISHED,
    PENDING_ARGS,
    PENDING_RESOURCES,
    RUNNING,
    SCHEDULED,
    ActorState,
    JobState,
    NodeState,
    ObjectState,
    TaskState,
)

CELL_TAG = "@cell:"
"""Tasks a notebook cell submits on Ray are named ``<function>@cell:<cell id>#<run>``
(``run``: the cell's execution count): the name is the one field Ray keeps, shows in
its state API, and prefixes output with."""

_CELL = re.compile(re.escape(CELL_TAG) + r"(?P<cell>[^\s@#]+)(#(?P<count>\d+))?$")

UNAVAILABLE: dict[str, list[str]] = {
    "tasks": ["depends_on", "returns", "owner_pid"],
    "nodes": ["resources_available", "cpu_percent", "memory", "object_store"],
    "objects": ["local_refs", "pending_task_refs", "contained_in", "pinned_views", "preview"],
    "graph": ["data edges (Ray's state API does not say which results a task takes)"],
}

_TASK_STATES = {
    "NIL": PENDING_ARGS,
    "PENDING_ARGS_AVAIL": PENDING_ARGS,
    "PENDING_ARGS_FETCH": PENDING_ARGS,
    "PENDING_ACTOR_TASK_ARGS_FETCH": PENDING_ARGS,
    "GETTING_AND_PINNING_ARGS": PENDING_ARGS,
    "PENDING_NODE_ASSIGNMENT": PENDING_RESOURCES,
    "PENDING_OBJ_STORE_MEM_AVAIL": PENDING_RESOURCES,
    "SUBMITTED_TO_WORKER": SCHEDULED,
    "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY": SCHEDULED,
    "RUNNING": RUNNING,
    "RUNNING_IN_RAY_GET": RUNNING,
    "RUNNING_IN_RAY_WAIT": RUNNING,
    "FINISHED": FINISHED,
    "FAILED": FAILED,
}
_KINDS = {
    "NORMAL_TASK": "task",
    "ACTOR_CREATION_TASK": "actor_creation",
    "ACTOR_TASK": "actor_method",
}


def tagged_name(name: str, cell_id: str | None, execution_count: int | None = None) -> str:
    """The Ray task name that carries a notebook cell (``name`` alone outside cells)."""
    if not cell_id:
        return name
    run = f"#{execution_count}" if execution_count is not None else ""
    return f"{name}{CELL_TAG}{cell_id}{run}"


def split_name(name: str) -> tuple[str, str | None, int | None]:
    """(function name, cell id or None, execution count or None) of a Ray task name."""
    match = _CELL.search(name or "")
    if match is None:
        return name, None, None
    count = match.group("count")
    return name[: match.start()], match.group("cell"), int(count) if count else None


def _get(record: Any, key: str, default: Any = None) -> Any:
    if isinstance(record, dict):
        return record.get(key, default)
    return getattr(record, key, default)


def _text(value: Any) -> str:
    """An enum (Ray gives some fields as enums) or a string, as its name."""
    return str(getattr(value, "name", value) or "")


def _driver_task(task_id: str | None) -> bool:
    # a driver's "task" id is all f's before the job id: not a task anyone submitted
    return not task_id or task_id.startswith("ffffffffffffffff")


def task(record: Any) -> TaskState | None:
    """A Ray task (a ``ray.util.state`` TaskState or its dict) as ours; None for the
    driver's own pseudo-task."""
    kind = _KINDS.get(_text(_get(record, "type")))
    if kind is None:
        return None
    raw_state = _text(_get(record, "state"))
    error_type = _get(record, "error_type")
    state = _TASK_STATES.get(raw_state, PENDING_ARGS)
    if state == FAILED and error_type and "CANCEL" in str(error_type).upper():
        state = CANCELLED
    times: dict[str, float] = {}
    for event in _get(record, "events") or []:
        mapped = _TASK_STATES.get(_text(_get(event, "state")))
        created = _get(event, "created_ms")
        if mapped is not None and created is not None:
            times.setdefault(mapped, float(created) / 1000)
    if state == CANCELLED and FAILED in times:
        times[CANCELLED] = times.pop(FAILED)
    for key, field in ((PENDING_ARGS, "creation_time_ms"), (RUNNING, "start_time_ms")):
        if key not in times and _get(record, field):
            times[key] = float(_get(record, field)) / 1000
    ended = _get(record, "end_time_ms")
    if state in (FINISHED, FAILED, CANCELLED) and state not in times and ended:
        times[state] = float(ended) / 1000
    name, cell, count = split_name(str(_get(record, "name") or ""))
    parent = _get(record, "parent_task_id")
    return TaskState(
        task_id=str(_get(record, "task_id")),
        name=name or str(_get(record, "func_or_class_name") or ""),
        kind=kind,
        state=state,
        times=times,
        owner_pid=0,
        parent_task_id=None if _driver_task(parent) else str(parent),
        depends_on=[],
        returns=[],
        node_id=str(_get(record, "node_id") or ""),
        worker_pid=_get(record, "worker_pid"),
        actor_id=_get(record, "actor_id"),
        resources=dict(_get(record, "required_resources") or {}),
        attempt=int(_get(record, "attempt_number") or 0),
        error_type=str(error_type) if error_type else None,
        error_message=_get(record, "error_message"),
        cell_id=cell,
        cell_execution_count=count,
        job_id=_get(record, "job_id"),
    )


def actor(record: Any) -> ActorState:
    state = _text(_get(record, "state"))
    death = _get(record, "death_cause")
    return ActorState(
        actor_id=str(_get(record, "actor_id")),
        class_name=str(_get(record, "class_name") or ""),
        name=_get(record, "name") or None,
        namespace=str(_get(record, "ray_namespace") or "default"),
        state="PENDING_CREATION" if state == "DEPENDENCIES_UNREADY" else state,
        node_id=str(_get(record, "node_id") or ""),
        pid=_get(record, "pid"),
        restarts=int(_get(record, "num_restarts") or 0),
        death_cause=str(death) if death else None,
        detached=bool(_get(record, "is_detached")),
    )


def node(record: Any) -> NodeState:
    total = dict(_get(record, "resources_total") or {})
    return NodeState(
        node_id=str(_get(record, "node_id")),
        alive=_text(_get(record, "state")) == "ALIVE",
        address=str(_get(record, "node_ip") or ""),
        hostname=str(_get(record, "node_name") or _get(record, "node_ip") or ""),
        is_head=bool(_get(record, "is_head_node")),
        resources_total=total,
        resources_available={},
        cpu_percent=0.0,
        memory_used=0,
        memory_total=0,
        object_store_used=0,
        object_store_capacity=int(total.get("object_store_memory", 0)),
        object_store_spilled=0,
        num_workers=0,
        gpus=None,
        extra={"backend": "ray", "unavailable": UNAVAILABLE["nodes"]},
    )


def obj(record: Any) -> ObjectState:
    size = _get(record, "object_size")
    return ObjectState(
        object_id=str(_get(record, "object_id")),
        size=int(size) if size and size > 0 else 0,
        owner_pid=int(_get(record, "pid") or 0),
        location=_text(_get(record, "reference_type")).lower() or "unknown",
        local_refs=0,
        pending_task_refs=0,
        contained_in=0,
        borrowers=0,
        pinned_views=0,
        task_id="",
        type_name=_text(_get(record, "type")),
        preview=None,
        created=0.0,
    )


def job(record: Any) -> JobState:
    start = _get(record, "start_time")
    end = _get(record, "end_time")
    metadata = {k: str(v) for k, v in (_get(record, "metadata") or {}).items()}
    metadata.setdefault("origin", "ray")
    return JobState(
        job_id=str(_get(record, "job_id") or _get(record, "submission_id") or ""),
        pid=int((_get(record, "driver_info") and _get(_get(record, "driver_info"), "pid")) or 0),
        start_time=float(start) / 1000 if start else 0.0,
        end_time=float(end) / 1000 if end else None,
        metadata=metadata,
    )
