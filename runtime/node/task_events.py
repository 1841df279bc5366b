"""The task state machine's vocabulary: the events it takes, the instructions it returns,
and what it reads of its neighbours (see :mod:`task_machine`).

Events and instructions are slotted dataclasses: one small object per event, read by
type in one loop by the shell (:mod:`tasks`). Every event carries a *stimulus id* that
names what caused it (a message type, ``worker-lost``...), kept with each transition
when the machine traces (``TaskStateMachine.story``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..common import protocol as p
from .actors import ActorRecord
from .records import TaskRecord, TaskStatus, WorkerState

if TYPE_CHECKING:
    from ..common.protocol import NodeView
    from .feed import ChangeFeed
    from .scheduler import ReadyQueue, ResourceLedger


# --- events ----------------------------------------------------------------------------


@dataclass(slots=True)
class TaskSubmitted:
    """A task (not an actor call) was submitted here: hold its arguments, queue it."""

    rec: TaskRecord
    stimulus_id: str


@dataclass(slots=True)
class DepsReady:
    """An object that tasks wait for was sealed: those it was the last one of are ready."""

    object_id: bytes
    stimulus_id: str


@dataclass(slots=True)
class WorkerIdle:
    """A worker joined or resources came back: dispatch what fits."""

    stimulus_id: str


@dataclass(slots=True)
class WorkerBlocked:
    """A worker's task waits in ``get`` for these objects: lend its CPUs meanwhile."""

    worker: WorkerState | None
    waiting_on: list[bytes]
    stimulus_id: str


@dataclass(slots=True)
class WorkerUnblocked:
    """The worker's ``get`` returned: take the lent CPUs back."""

    worker: WorkerState | None
    stimulus_id: str


@dataclass(slots=True)
class TaskFinished:
    """A worker reported a plain task (``rec`` None: a task this node forgot)."""

    rec: TaskRecord | None
    worker: WorkerState | None
    msg: p.TaskDone
    stimulus_id: str


@dataclass(slots=True)
class WorkerLost:
    """A worker's connection dropped (it exited, crashed or was killed)."""

    worker: WorkerState
    exit_code: int | None
    stimulus_id: str


@dataclass(slots=True)
class CancelRequested:
    """Cancel these tasks (with ``recursive``, the tasks they started, children first)."""

    task_ids: list[bytes]
    force: bool
    recursive: bool
    stimulus_id: str


@dataclass(slots=True)
class NodeLost:
    """The link to a node dropped; ``lost`` were the tasks forwarded there."""

    node_id: str
    lost: list[TaskRecord]
    stimulus_id: str


@dataclass(slots=True)
class ActorLost:
    """An actor's process died, or (``cause`` given) the node that hosted it."""

    record: ActorRecord
    exit_code: int | None
    cause: str | None
    stimulus_id: str


Event = (
    TaskSubmitted
    | DepsReady
    | WorkerIdle
    | WorkerBlocked
    | WorkerUnblocked
    | TaskFinished
    | WorkerLost
    | CancelRequested
    | NodeLost
    | ActorLost
)


# --- instructions ----------------------------------------------------------------------


@dataclass(slots=True)
class SendTask:
    """Send the task to the worker (its function, its arguments' payloads)."""

    rec: TaskRecord
    worker: WorkerState
    gpu_ids: list[int]


@dataclass(slots=True)
class StartWorkers:
    """Start this many worker processes (already counted in the pool's ``starting``)."""

    count: int


@dataclass(slots=True)
class KillWorker:
    worker: WorkerState
    sig: int


@dataclass(slots=True)
class Forward:
    """Send the task to another node (``SCHEDULED`` there already)."""

    rec: TaskRecord
    node_id: str


@dataclass(slots=True)
class ForwardCancel:
    """Cancel a task on the node it was forwarded to."""

    task_id: bytes
    force: bool
    recursive: bool


@dataclass(slots=True)
class CancelRunning:
    """Interrupt a running task in its worker (``CancelTask``)."""

    worker: WorkerState
    task_id: bytes


@dataclass(slots=True)
class Finish:
    """Seal the task's results (its owner hears), then release what it held. The task
    has left the table and its final state is recorded already."""

    rec: TaskRecord
    results: list[p.Payload]
    contained: list[list[bytes]]
    push: bool


@dataclass(slots=True)
class ReleasePayloads:
    """Free results nobody will read (a retried attempt's, a forgotten task's)."""

    payloads: list[p.Payload]


@dataclass(slots=True)
class ReleaseHolds:
    """Release what a task held: its arguments, nested refs."""

    spec: p.TaskSpec


@dataclass(slots=True)
class Warn:
    """Tell the task's owner (and the log) why it waits."""

    owner: int
    text: str


@dataclass(slots=True)
class PumpActor:
    """Release the actor's calls whose turn has come."""

    record: ActorRecord


@dataclass(slots=True)
class UnqueueActorCall:
    """Take a cancelled call out of its actor's queue."""

    rec: TaskRecord


@dataclass(slots=True)
class ActorDead:
    """The actor will not come back: fail its calls, free its name (the actors component)."""

    record: ActorRecord
    cause: str


@dataclass(slots=True)
class GroupsReserved:
    """Placement groups got their resources: seal their ``ready()`` objects."""

    groups: list[Any]


Instruction = (
    SendTask
    | StartWorkers
    | KillWorker
    | Forward
    | ForwardCancel
    | CancelRunning
    | Finish
    | ReleasePayloads
    | ReleaseHolds
    | Warn
    | PumpActor
    | UnqueueActorCall
    | ActorDead
    | GroupsReserved
)


# --- what the machine reads of its neighbours -------------------------------------------


class Workers(Protocol):
    """The pool's bookkeeping (:class:`worker_pool.WorkerPool`)."""

    workers: dict[int, WorkerState]
    idle: deque[WorkerState]
    starting: int
    pool_size: int
    logs_dir: str

    def take_idle(self, gpu: bool) -> WorkerState | None: ...
    def free(self, worker: WorkerState, exiting: bool) -> None: ...
    def stopping_now(self) -> bool: ...


class Placement(Protocol):
    """The cluster as this node sees it (:class:`cluster.Membership`)."""

    cluster: dict[str, NodeView]

    def peers(self) -> list[NodeView]: ...
    def place_elsewhere(self, demand: dict[str, float]) -> str | None: ...
    def feasible_somewhere(self, demand: dict[str, float]) -> bool: ...


class Groups(Protocol):
    """The placement groups' bookkeeping (:class:`placement_groups.PlacementGroups`)."""

    groups: dict[bytes, Any]
    pending_groups: list[Any]

    def reserve_fitting(self) -> list[Any]: ...
    def group_gpu_ids(self, demand: dict[str, float]) -> list[int]: ...


class Core(Protocol):
    """The part of the task state machine that its actor transitions use."""

    tasks: dict[bytes, TaskRecord]
    ready: ReadyQueue
    ledger: ResourceLedger
    feed: ChangeFeed
    out: list[Instruction]

    def mark(self, rec: TaskRecord, state: TaskStatus, when: float | None = None) -> None: ...
    def track(self, rec: TaskRecord) -> None: ...
    def enqueue(self, rec: TaskRecord) -> None: ...
    def unwait(self, rec: TaskRecord) -> None: ...
    def fail(self, rec: TaskRecord, error: BaseException) -> None: ...
    def record_done(self, rec: TaskRecord, results: list[p.Payload]) -> None: ...
