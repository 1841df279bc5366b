"""What a task sees of its process while it runs in a worker: its ``TaskContext``, its
runtime env applied (and undone after, since a worker runs many tasks), and its output,
sent to the driver that submitted it."""

from __future__ import annotations

import io
import os
import sys
from typing import TYPE_CHECKING, Any

from ..client import context
from ..common import protocol as p

if TYPE_CHECKING:
    from ..client.core import CoreClient
    from .lane_server import CallerLane


class TaskOutput(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` of a worker: lines go to the task's driver."""

    def __init__(self, client: CoreClient, stream: int, fallback: Any) -> None:
        self._client = client
        self._stream = stream
        self._fallback = fallback
        self._buf: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        ctx = context.current_task()
        if ctx is None:
            return int(self._fallback.write(text))
        self._buf.append(text)
        if "\n" in text:
            self.flush()
        return len(text)

    def flush(self) -> None:
        ctx = context.current_task()
        if not self._buf:
            return
        text = "".join(self._buf)
        self._buf.clear()
        if ctx is None:
            self._fallback.write(text)
            return
        lines = p.LogLines(
            task_id=ctx.task_id,
            name=ctx.name,
            pid=os.getpid(),
            stream=self._stream,
            text=text,
            cell_id=ctx.cell_id,
            cell_execution_count=ctx.cell_execution_count,
        )
        if ctx.lane is not None:  # a direct call: its caller hears it on the same lane
            ctx.lane.send(lines)
            return
        try:
            self._client.send(lines)
        except (ConnectionError, OSError):
            self._fallback.write(text)


def task_context(
    msg: p.ExecuteTask, lane: CallerLane | None = None, actor: p.TaskSpec | None = None
) -> context.TaskContext:
    """What code running this call sees as its task (ids, GPUs, cell, job, runtime env,
    placement group, resources); an actor's calls see their actor's creation for the
    last three."""
    spec = msg.spec
    where = actor if spec.kind == p.ACTOR_METHOD and actor is not None else spec
    return context.TaskContext(
        spec.task_id,
        spec.name,
        list(msg.gpu_ids),
        spec.cell_id,
        spec.cell_execution_count,
        job_id=spec.job_id,
        lane=lane,
        runtime_env=where.runtime_env,
        namespace=spec.namespace,
        capture_group=where.capture_group,
        resources=where.resources,
    )


def enter_runtime_env(env: dict[str, Any]) -> Any:
    """Apply a runtime env in this process; returns a function that undoes it."""
    saved = {k: os.environ.get(k) for k in env.get("env_vars", {})}
    os.environ.update(env.get("env_vars", {}))
    working_dir = env.get("working_dir")
    old_cwd = os.getcwd()
    if working_dir:
        os.chdir(working_dir)
        sys.path.insert(0, working_dir)

    def undo() -> None:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if working_dir:
            os.chdir(old_cwd)
            if working_dir in sys.path:
                sys.path.remove(working_dir)

    return undo
