"""Per-process runtime state: the connected client and the task being executed.

A driver sets the client in ``init()``; a worker sets it at start-up. The task context is
a context variable, since an actor may run several calls at once (threads, coroutines).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core import CoreClient

_client: CoreClient | None = None
# A context variable, not a thread-local: each thread of a threaded actor and each
# coroutine of an async actor sees the call it is running.
_task: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar("task", default=None)
actor_id: bytes | None = None
"""Set in a worker that hosts an actor."""

cell_id_provider: Callable[[], str | None] | None = None
"""Set by the Jupyter layer: returns the id of the notebook cell now executing, if any."""


@dataclass(slots=True)
class TaskContext:
    task_id: bytes
    name: str
    gpu_ids: list[int] = field(default_factory=list)
    cell_id: str | None = None
    cancel_requested: bool = False


def get_client() -> CoreClient | None:
    return _client


def set_client(client: CoreClient | None) -> None:
    global _client
    _client = client


def current_task() -> TaskContext | None:
    return _task.get()


def set_current_task(ctx: TaskContext | None) -> None:
    _task.set(ctx)


def current_cell_id() -> str | None:
    """The cell id to stamp on a new task: inherited inside a task, else from the kernel."""
    ctx = current_task()
    if ctx is not None:
        return ctx.cell_id
    if cell_id_provider is not None:
        try:
            return cell_id_provider()
        except Exception:  # a broken provider must never break task submission
            return None
    return None
