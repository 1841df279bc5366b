"""``get_runtime_context()``: which job, task, node and worker this code runs in."""

from __future__ import annotations

import os
from typing import Any

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

    def get_actor_id(self) -> str | None:
        """Hex id of the actor this code runs in, or None outside actors."""
        return context.actor_id.hex() if context.actor_id is not None else None

    @property
    def current_actor(self) -> Any:
        """A handle to the actor this code runs in (to pass to tasks or other actors)."""
        from .actor import ActorHandle, _method_table
        from .runtime.ids import object_id_for
        from .runtime.object_ref import ObjectRef

        instance = context.actor_instance
        if context.actor_id is None or instance is None:
            raise RuntimeError("current_actor is only available inside an actor's methods")
        cls = type(instance)
        return ActorHandle(
            context.actor_id,
            ObjectRef(object_id_for(context.actor_id, 0)),
            cls.__name__,
            _method_table(cls),
        )

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        """The accelerators assigned to the running task or actor, by kind."""
        ctx = context.current_task()
        return {"GPU": [str(i) for i in ctx.gpu_ids] if ctx is not None else []}

    @property
    def runtime_env(self) -> dict[str, Any]:
        """The runtime env of the running task (the driver's outside tasks)."""
        return dict(context.current_runtime_env() or {})

    @property
    def namespace(self) -> str:
        """The namespace of named actors here (``init(namespace=...)``)."""
        return context.current_namespace() or "default"

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
