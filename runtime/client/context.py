"""Per-process runtime state: the connected client and the task being executed.

A driver sets the client in ``init()``; a worker sets it at start-up. The task context is
a context variable, since an actor may run several calls at once (threads, coroutines).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import CoreClient

_client: CoreClient | None = None
# A context variable, not a thread-local: each thread of a threaded actor and each
# coroutine of an async actor sees the call it is running.
_task: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar("task", default=None)
actor_id: bytes | None = None
"""Set in a worker that hosts an actor."""
actor_instance: Any = None
"""The actor object itself, in its worker (for ``get_runtime_context().current_actor``)."""
actor_name: str | None = None
"""The actor's name, in its worker (None: unnamed)."""
actor_restarts = 0
"""How often the actor had been restarted when this process created it."""

cell_id_provider: Callable[[], tuple[str | None, int | None]] | None = None
"""Set by the Jupyter layer: returns (cell id, execution count) of the cell now running."""


@dataclass(slots=True)
class TaskContext:
    task_id: bytes
    name: str
    gpu_ids: list[int] = field(default_factory=list)
    cell_id: str | None = None
    cell_execution_count: int | None = None
    cancel_requested: bool = False
    job_id: str | None = None
    lane: Any = None  # direct.CallerLane of a direct actor call: output goes there
    runtime_env: dict[str, Any] | None = None  # inherited by the tasks this one submits
    namespace: str | None = None  # the job's namespace for named actors (None: default)
    capture_group: bytes | None = None  # placement group its children run in (if any)
    resources: dict[str, float] | None = None  # what the node granted it (or its actor)
    function: Any = None  # the function or method it runs (for its name)


def get_client() -> CoreClient | None:
    return _client


def set_client(client: CoreClient | None) -> None:
    global _client
    _client = client


def current_task() -> TaskContext | None:
    return _task.get()


def set_current_task(ctx: TaskContext | None) -> None:
    _task.set(ctx)


def current_cell() -> tuple[str | None, int | None]:
    """(cell id, execution count) to stamp on a new task: inherited inside a task, else
    asked of the kernel-side provider; (None, None) outside notebooks."""
    ctx = current_task()
    if ctx is not None:
        return ctx.cell_id, ctx.cell_execution_count
    return _driver_cell()


def _driver_cell() -> tuple[str | None, int | None]:
    if cell_id_provider is not None:
        try:
            cell_id, count = cell_id_provider()
            return cell_id, count
        except Exception:  # a broken provider must never break task submission
            return None, None
    return None, None


def current_cell_id() -> str | None:
    return current_cell()[0]


driver_job_id: str | None = None
"""Set in a driver when it connects: the id of its job (one per driver connection)."""

job_metadata: dict[str, str] = {}
"""What a driver tells its node about its job when it connects (``JobInfo``): the kernel
layer puts the kernel's id here; ``origin`` says what kind of driver it is."""


job_runtime_env: dict[str, Any] | None = None
"""Set by a driver's ``init(runtime_env=...)``: the base of its tasks' runtime envs."""


def current_runtime_env() -> dict[str, Any] | None:
    """What a new task inherits: its parent task's runtime env, else the job's."""
    ctx = current_task()
    if ctx is not None:
        return ctx.runtime_env
    return job_runtime_env


job_namespace: str | None = None
"""Set by a driver's ``init(namespace=...)``: where its named actors live."""


def current_namespace() -> str | None:
    """The namespace for named actors here: the task's job's, else the driver's; None
    for the default one."""
    ctx = current_task()
    if ctx is not None:
        return ctx.namespace
    return job_namespace


def current_job_id() -> str | None:
    """The job to stamp on a new task: inherited inside a task, else the driver's own."""
    ctx = current_task()
    if ctx is not None:
        return ctx.job_id
    return driver_job_id


def stamp(ctx: TaskContext | None) -> tuple[str | None, int | None, str | None, str | None]:
    """(cell id, execution count, job id, namespace) of a task submitted from ``ctx`` (the
    running task, ``current_task()``), or from the driver when None: ``current_cell()``,
    ``current_job_id()`` and ``current_namespace()`` in one look."""
    if ctx is not None:
        return ctx.cell_id, ctx.cell_execution_count, ctx.job_id, ctx.namespace
    cell_id, count = _driver_cell()
    return cell_id, count, driver_job_id, job_namespace


class ActorExit(BaseException):
    """Raised by ``exit_actor()``: the actor finishes this call, then its process exits."""

    def __init__(self, reason: str = "exit_actor() was called") -> None:
        super().__init__(reason)
        self.reason = reason


def exit_actor() -> None:
    """Stop the current actor once this call returns; later calls raise ActorDiedError."""
    if actor_id is None:
        raise TypeError("exit_actor() can only be called inside an actor method")
    raise ActorExit()
