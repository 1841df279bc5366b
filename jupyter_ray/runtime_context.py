"""``get_runtime_context()``: which job, task, node and worker this code runs in.

Ids come as Ray gives them: the ``get_*_id()`` methods return hex strings, ``get()`` and
the older properties (``node_id``, ``task_id``...) return id objects (:class:`NodeID`,
:class:`JobID`, :class:`TaskID`, :class:`ActorID`) with ``hex()`` and ``binary()``.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any

from ._client import auto_client
from .actor import ActorHandle, _method_table
from .runtime.client import context

__all__ = ["ActorID", "JobID", "NodeID", "RuntimeContext", "TaskID", "get_runtime_context"]

_GROUP_RESOURCE = re.compile(r"^(.+)_group_(?:\d+_)?[0-9a-f]+$")


class BaseID:
    """An id as Ray's id classes present one: compare, hash, ``hex()``, ``binary()``."""

    __slots__ = ("_id",)

    def __init__(self, id_bytes: bytes) -> None:
        if not isinstance(id_bytes, bytes):
            raise TypeError(f"{type(self).__name__} takes bytes, got {type(id_bytes).__name__}")
        self._id = id_bytes

    @classmethod
    def from_hex(cls, hex_id: str) -> Any:
        return cls(bytes.fromhex(hex_id))

    def hex(self) -> str:
        return self._id.hex()

    def binary(self) -> bytes:
        return self._id

    def is_nil(self) -> bool:
        return not any(self._id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BaseID) and type(other) is type(self) and other._id == self._id

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._id))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hex()})"


class NodeID(BaseID):
    """A node's id (28 bytes, as Ray's)."""


class JobID(BaseID):
    """A job's id: one per driver connection (4 bytes, as Ray's)."""


class TaskID(BaseID):
    """A task's id."""


class ActorID(BaseID):
    """An actor's id."""


class RuntimeContext:
    """A view of the current process's place in the runtime (see Ray's RuntimeContext)."""

    def get(self) -> dict[str, Any]:
        """The ids of this job, node, task and actor, as id objects (deprecated in Ray,
        as here: use the ``get_*_id()`` methods)."""
        warnings.warn(
            "RuntimeContext.get() is deprecated; use the get_*_id() methods instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        out: dict[str, Any] = {
            "job_id": JobID.from_hex(self.get_job_id()),
            "node_id": NodeID.from_hex(self.get_node_id()),
            "namespace": self.namespace,
        }
        task = context.current_task()
        if task is not None:
            out["task_id"] = TaskID(task.task_id)
        if context.actor_id is not None:
            out["actor_id"] = ActorID(context.actor_id)
        return out

    def get_node_id(self) -> str:
        """Hex id of the node this process runs on."""
        welcome = auto_client().welcome
        assert welcome is not None  # (set by the handshake, before the client is returned)
        return str(welcome.node_id)

    def get_task_id(self) -> str | None:
        """Hex id of the running task, or None in the driver."""
        ctx = context.current_task()
        return ctx.task_id.hex() if ctx is not None else None

    def get_task_name(self) -> str | None:
        """The running task's name (``Cls.method`` for an actor's), or None."""
        ctx = context.current_task()
        return ctx.name if ctx is not None else None

    def get_task_function_name(self) -> str | None:
        """``module.qualname`` of the running task's function (or actor method), or
        None in the driver."""
        ctx = context.current_task()
        if ctx is None or ctx.function is None:
            return None
        fn = ctx.function
        module = getattr(fn, "__module__", None) or ""
        qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", ctx.name)
        return f"{module}.{qualname}" if module else str(qualname)

    def get_worker_id(self) -> str:
        client = auto_client()
        return f"{os.getpid():x}-{client.welcome.conn_id if client and client.welcome else 0}"

    def get_job_id(self) -> str:
        """Hex id of the job: one per driver connection, inherited by every task it
        causes (nested tasks and actor calls included)."""
        job = context.current_job_id()
        if job is None:
            auto_client()  # (a driver that had not started yet has a job now)
            job = context.current_job_id()
        if job is None:
            raise RuntimeError(
                "no job here: call jupyter_ray.init() first (in a worker, ask from inside a "
                "task or actor method)"
            )
        return job

    def get_assigned_resources(self) -> dict[str, float]:
        """The resources the running task, or the actor, holds: ``{"CPU": 1.0}`` for a
        default task; an actor created without resources holds none once it runs. Names
        of a placement group's resources are given as the plain ones."""
        ctx = context.current_task()
        if ctx is None:
            return {}
        out: dict[str, float] = {}
        for name, amount in (ctx.resources or {}).items():
            match = _GROUP_RESOURCE.match(name)
            if match is not None:
                name = match.group(1)
            if amount <= 0.001 or name == "bundle" or ":" in name:
                continue  # slivers: placement markers, accelerator and label constraints
            out[name] = max(out.get(name, 0.0), amount)
        return out

    def get_actor_id(self) -> str | None:
        """Hex id of the actor this code runs in, or None outside actors."""
        return context.actor_id.hex() if context.actor_id is not None else None

    def get_actor_name(self) -> str | None:
        """The actor's name: ``""`` for an unnamed actor, None outside actors."""
        if context.actor_id is None:
            return None
        return context.actor_name or ""

    @property
    def was_current_actor_reconstructed(self) -> bool:
        """True in an actor that has been restarted after its process died."""
        return context.actor_id is not None and context.actor_restarts > 0

    @property
    def current_actor(self) -> Any:
        """A handle to the actor this code runs in (to pass to tasks or other actors).

        Weak, like one from ``get_actor``: an actor that keeps it does not keep itself
        alive."""
        instance = context.actor_instance
        if context.actor_id is None or instance is None:
            raise RuntimeError("current_actor is only available inside an actor's methods")
        cls = type(instance)
        return ActorHandle(context.actor_id, None, cls.__name__, _method_table(cls))

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
    def node_id(self) -> NodeID:
        """The node's id, as an id object (Ray's older property)."""
        return NodeID.from_hex(self.get_node_id())

    @property
    def job_id(self) -> JobID:
        return JobID.from_hex(self.get_job_id())

    @property
    def task_id(self) -> TaskID | None:
        ctx = context.current_task()
        return TaskID(ctx.task_id) if ctx is not None else None

    @property
    def actor_id(self) -> ActorID | None:
        return ActorID(context.actor_id) if context.actor_id is not None else None


def get_runtime_context() -> RuntimeContext:
    """Return the runtime context of the calling process or task; in a driver that has
    not called ``init()`` yet, this starts the runtime, as in Ray."""
    if context.get_client() is None:
        auto_client()
    return RuntimeContext()
