"""``get_runtime_context()``: which job, task, node and worker this code runs in."""

from __future__ import annotations

import os

from .runtime import context


class RuntimeContext:
    """A view of the current process's place in the runtime (see Ray's RuntimeContext)."""

    def get_node_id(self) -> str:
        client = context.get_client()
        if client is None or client.welcome is None:
            raise RuntimeError("jupyter_ray is not initialized: call jupyter_ray.init() first")
        return client.welcome.node_id

    def get_task_id(self) -> str | None:
        """Hex id of the running task, or None in the driver."""
        ctx = context.current_task()
        return ctx.task_id.hex() if ctx is not None else None

    def get_task_name(self) -> str | None:
        ctx = context.current_task()
        return ctx.name if ctx is not None else None

    def get_worker_id(self) -> str:
        client = context.get_client()
        return f"{os.getpid():x}-{client.welcome.conn_id if client and client.welcome else 0}"

    def get_job_id(self) -> str:
        """Hex id of the job: one per driver connection, inherited by every task it
        causes (nested tasks and actor calls included)."""
        job = context.current_job_id()
        if job is None:
            raise RuntimeError(
                "no job here: call jupyter_ray.init() first (in a worker, ask from inside a "
                "task or actor method)"
            )
        return job

    def get_assigned_resources(self) -> dict[str, float]:
        ctx = context.current_task()
        if ctx is None:
            return {}
        return {"GPU": float(len(ctx.gpu_ids))} if ctx.gpu_ids else {}

    def get_cell_id(self) -> str | None:
        """The notebook cell that submitted the running task (None outside notebooks)."""
        ctx = context.current_task()
        return ctx.cell_id if ctx is not None else context.current_cell_id()

    @property
    def node_id(self) -> str:
        return self.get_node_id()

    @property
    def task_id(self) -> str | None:
        return self.get_task_id()


def get_runtime_context() -> RuntimeContext:
    """Return the runtime context of the calling process or task."""
    return RuntimeContext()
