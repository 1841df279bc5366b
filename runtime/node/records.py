"""The records the node manager's components share: a worker process, a task, a task
forwarded to another node, and the small helpers that read them.

Plain data, below every component (no module of the node imports a component from
here). Everything runs on the node manager's event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from ..common import protocol as p
from ..common import state_schema as schema
from ..common.serialization import serialize
from .actors import ActorRecord
from .scheduler import Grant

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .peer_link import PeerLink


class TaskStatus(str, Enum):
    """Where a task is, in the order it normally goes through them.

    A ``str`` enum whose values are the state API's strings (``state_schema``): records
    sent to clients carry ``.value``, so the feed's JSON and the REST API read the same
    strings as before.
    """

    PENDING_ARGS = schema.PENDING_ARGS  # waiting for ObjectRef arguments to be ready
    PENDING_RESOURCES = schema.PENDING_RESOURCES  # waiting for resources or a worker
    SCHEDULED = schema.SCHEDULED  # sent to a worker (or queued in its actor)
    RUNNING = schema.RUNNING  # the worker started it (reported once it ran 0.1 s)
    FINISHED = schema.FINISHED
    FAILED = schema.FAILED
    CANCELLED = schema.CANCELLED


@dataclass(slots=True, eq=False)
class WorkerState:
    """A worker process connected to this node."""

    conn: ServerConnection
    pid: int
    worker_id: str
    functions: set[bytes] = field(default_factory=set)
    task: TaskRecord | None = None
    lent_cpus: float = 0.0
    idle_since: float = field(default_factory=time.monotonic)
    exiting: bool = False
    actor: ActorRecord | None = None  # set while the worker is dedicated to an actor
    # Whether it has run work that used GPUs (None: nothing yet). As in Ray, GPU and CPU
    # work never share a process: a library that opened a GPU keeps it (and its memory)
    # for the life of the process.
    gpu: bool | None = None


@dataclass(slots=True, eq=False)
class TaskRecord:
    """A task this node is responsible for, from submission to its last result."""

    spec: p.TaskSpec
    missing: int = 0
    state: TaskStatus = TaskStatus.PENDING_ARGS
    times: dict[TaskStatus, float] = field(default_factory=dict)  # when it entered each
    attempt: int = 0
    owner_pid: int = 0
    worker_pid: int | None = None
    node_id: str | None = None  # the node it was forwarded to; None: this one
    error_type: str | None = None
    error_message: str | None = None
    ended: float = 0.0
    worker: WorkerState | None = None
    grant: Grant | None = None
    retries_left: int = 0
    cancelled: bool = False
    force_cancel: bool = False
    actor: ActorRecord | None = None
    items: int = 0  # a streaming generator's: how many values it has reported


@dataclass(slots=True, eq=False)
class Forwarded:
    """A task this node sent to another node, and what it is waiting for."""

    rec: TaskRecord
    node_id: str
    link: PeerLink
    pushed: list[bytes]
    results: dict[bytes, p.Payload] = field(default_factory=dict)
    contained: dict[bytes, list[bytes]] = field(default_factory=dict)  # refs in each result


def error_payload(error: BaseException) -> p.Payload:
    """An exception as a stored value: what ``get`` raises."""
    data = serialize(error).to_bytes()
    return p.Payload(data=data, size=len(data), error=True)


def uses_group_gpu(demand: dict[str, float]) -> bool:
    """Whether a demand takes a placement group's GPUs."""
    return any(k.startswith("GPU_group_") and v > 0 for k, v in demand.items())
