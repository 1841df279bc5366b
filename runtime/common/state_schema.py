"""Records returned by the state API: one dataclass per kind, a comment per field.

These are what ``jupyter_ray.state.list_*`` return, what the change feed carries, and
what the JupyterLab sidebar draws. Times are seconds since the epoch (``time.time()``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .framing import pickle_as_field_tuples

# Task states, in the order a task normally goes through them.
PENDING_ARGS = "PENDING_ARGS"  # waiting for ObjectRef arguments to be ready
PENDING_RESOURCES = "PENDING_RESOURCES"  # arguments ready; waiting for resources or a worker
SCHEDULED = "SCHEDULED"  # sent to a worker (or queued in its actor)
RUNNING = "RUNNING"  # the worker started executing it (reported once it ran 0.1 s)
FINISHED = "FINISHED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
TASK_STATES = (PENDING_ARGS, PENDING_RESOURCES, SCHEDULED, RUNNING, FINISHED, FAILED, CANCELLED)
DONE_STATES = frozenset({FINISHED, FAILED, CANCELLED})

KINDS = ("tasks", "actors", "objects", "nodes")
"""The kinds of record the change feed carries, and the field that names each record."""
ID_FIELDS = {"tasks": "task_id", "actors": "actor_id", "objects": "object_id", "nodes": "node_id"}


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(slots=True)
class TaskState(_Record):
    task_id: str  # hex id
    name: str  # function name, or Class.method for actor calls
    kind: str  # "task", "actor_creation" or "actor_method"
    state: str  # one of TASK_STATES
    times: dict[str, float]  # time each state was entered
    owner_pid: int  # process that submitted it (and owns its results)
    parent_task_id: str | None  # task that submitted it, None when a driver did
    depends_on: list[str]  # object ids of its ObjectRef arguments
    returns: list[str]  # object ids of its results
    node_id: str  # node that runs (or ran) it; another node's when it was forwarded
    worker_pid: int | None  # worker that ran (or runs) it; None on another node
    actor_id: str | None  # the actor it belongs to (creation or method call)
    resources: dict[str, float]  # what it asked for
    attempt: int  # 0 for the first try, +1 per retry
    error_type: str | None  # exception class name when FAILED or CANCELLED
    error_message: str | None
    cell_id: str | None  # notebook cell that submitted it (None outside notebooks)
    cell_execution_count: int | None  # that cell's execution count
    job_id: str | None  # the driver connection whose work this is (see get_job_id())


@dataclass(slots=True)
class ActorState(_Record):
    actor_id: str
    class_name: str
    name: str | None  # registered name, for named actors
    namespace: str
    state: str  # PENDING_CREATION, ALIVE, RESTARTING or DEAD
    node_id: str
    pid: int | None  # worker process hosting it now (or last)
    restarts: int
    death_cause: str | None
    detached: bool


@dataclass(slots=True)
class ObjectState(_Record):
    object_id: str
    size: int  # bytes, serialized; 0 while pending
    owner_pid: int
    location: str  # "pending", "inline" (in messages/memory), "shared_memory", "spilled", "file"
    local_refs: int  # processes holding at least one ObjectRef to it
    pending_task_refs: int  # tasks in flight that take it as an argument
    contained_in: int  # live objects that contain a ref to it
    borrowers: int  # processes other than the owner that hold refs
    pinned_views: int  # zero-copy views of it currently mapped
    task_id: str  # task (or put) that created it
    type_name: str  # type of the value, e.g. "numpy.ndarray"
    preview: str | None  # short repr of small builtin values
    created: float


@dataclass(slots=True)
class GpuState(_Record):
    index: int
    name: str
    utilization: float  # percent
    memory_used: int  # bytes
    memory_total: int


@dataclass(slots=True)
class NodeState(_Record):
    node_id: str
    alive: bool
    address: str
    hostname: str
    is_head: bool
    resources_total: dict[str, float]
    resources_available: dict[str, float]
    cpu_percent: float  # whole machine
    memory_used: int  # bytes, whole machine
    memory_total: int
    object_store_used: int  # bytes in shared memory
    object_store_capacity: int
    object_store_spilled: int  # bytes spilled to disk
    num_workers: int
    gpus: list[GpuState] | None = None  # None when the machine has no GPU tooling
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class JobState(_Record):
    job_id: str  # what tasks carry in TaskState.job_id
    pid: int  # the driver process (a script, a notebook kernel)
    start_time: float
    end_time: float | None  # when the driver disconnected; None while it is connected
    metadata: dict[str, str]  # e.g. {"kernel_id": ..., "origin": "kernel"}


@dataclass(slots=True)
class TaskSummary(_Record):
    by_state: dict[str, int]  # tasks known now (live and kept history), per state
    by_name: dict[str, dict[str, int]]  # function name -> state -> count
    total_submitted: int  # since start, including those dropped from history
    dropped_from_history: dict[str, int]  # finished tasks forgotten, per final state


# --- filters of the state queries ---------------------------------------------------


def matches(record: Any, filters: Iterable[tuple[str, str, Any]]) -> bool:
    """Whether a state record passes every ``(key, "=" | "!=", value)`` filter."""
    for key, op, value in filters:
        have = getattr(record, key, None)
        if isinstance(have, bytes):
            have = have.hex()
        if op == "=" and str(have) != str(value):
            return False
        if op == "!=" and str(have) == str(value):
            return False
    return True


def check_filters(filters: Any) -> list[tuple[str, str, Any]]:
    """Validate ``[(key, "=" | "!=", value), ...]``; raises ValueError with the fix."""
    if filters is None:
        return []
    out = []
    for item in filters:
        if not isinstance(item, tuple | list) or len(item) != 3 or item[1] not in ("=", "!="):
            raise ValueError(
                f"each filter is (key, '=' or '!=', value), got {item!r}; for example "
                "[('state', '=', 'FAILED')]"
            )
        out.append((str(item[0]), str(item[1]), item[2]))
    return out


pickle_as_field_tuples(globals(), __name__)
