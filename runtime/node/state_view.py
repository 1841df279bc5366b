"""The node manager's state API: records of tasks, actors, objects and the node.

A component of the node manager (:mod:`manager`); every method runs on its event loop and
only reads its tables. The records are the dataclasses of :mod:`state_schema`.
"""

from __future__ import annotations

import pickle
import pickletools
import reprlib
import socket
from typing import TYPE_CHECKING, Any

from ..common import protocol as p
from ..common.ids import task_id_of
from ..common.serialization import meta_of
from ..common.state_schema import (
    DONE_STATES,
    FINISHED,
    RUNNING,
    ActorState,
    NodeState,
    ObjectState,
    TaskState,
    TaskSummary,
    matches,
)
from ..common.task_graph import task_graph

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .actors import ActorDirectory, ActorRecord
    from .cluster import Membership
    from .history import TaskHistory
    from .object_store import ObjectStore
    from .objects import ObjectEntry
    from .records import TaskRecord, WorkerState
    from .scheduler import ResourceLedger
    from .telemetry import Telemetry

STATE_QUERIES = frozenset(
    {
        "list_tasks",
        "list_actors",
        "list_objects",
        "list_nodes",
        "summarize_tasks",
        "task_graph",
        "timeline",
    }
)

KIND_NAMES = {p.TASK: "task", p.ACTOR_CREATION: "actor_creation", p.ACTOR_METHOD: "actor_method"}
PREVIEW_TYPES = frozenset(
    {"int", "float", "complex", "bool", "str", "bytes", "NoneType", "list", "tuple", "dict", "set"}
)
PREVIEW_MAX_BYTES = 4096
_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 8


def task_state(rec: TaskRecord, node_id: str) -> TaskState:
    """The state API's record of a live task (or one that just finished)."""
    spec = rec.spec
    return TaskState(
        task_id=spec.task_id.hex(),
        name=spec.name,
        kind=KIND_NAMES.get(spec.kind, "task"),
        # plain strings: clients must not need the enum to unpickle (_value_: .value's
        # slot, without the property's cost on every finished task)
        state=rec.state._value_,
        times={state._value_: when for state, when in rec.times.items()},
        owner_pid=rec.owner_pid,
        parent_task_id=spec.parent_task.hex() if spec.parent_task else None,
        depends_on=[d.hex() for d in spec.deps],
        returns=[(spec.task_id + i.to_bytes(4, "big")).hex() for i in range(spec.num_returns)],
        node_id=rec.node_id or node_id,  # forwarded: where it runs
        worker_pid=rec.worker_pid,
        actor_id=spec.actor_id.hex() if spec.actor_id else None,
        resources=dict(spec.resources),
        attempt=rec.attempt,
        error_type=rec.error_type,
        error_message=rec.error_message,
        cell_id=spec.cell_id,
        cell_execution_count=spec.cell_execution_count,
        job_id=spec.job_id,
    )


class StateView:
    """Builds state records from the node manager's tables; see the module docstring."""

    def __init__(
        self,
        membership: Membership,
        tasks: dict[bytes, TaskRecord],
        history: TaskHistory,
        store: ObjectStore,
        actors: ActorDirectory,
        conns: dict[int, ServerConnection],
        workers: dict[int, WorkerState],
        ledger: ResourceLedger,
        telemetry: Telemetry,
        socket_path: str,
    ) -> None:
        self.membership = membership
        self.node_id = membership.node_id
        self.tasks = tasks
        self.history = history
        self.store = store
        self.objects = store.objects
        self.alloc = store.alloc
        self.actors = actors
        self.conns = conns
        self.workers = workers
        self.ledger = ledger
        self.telemetry = telemetry
        self.socket_path = socket_path

    # --- records ---------------------------------------------------------------------

    def _pid_of(self, conn_id: int) -> int:
        conn = self.conns.get(conn_id)
        return conn.pid if conn is not None else 0

    def task_state(self, rec: TaskRecord) -> TaskState:
        return task_state(rec, self.node_id)

    def actor_state(self, record: ActorRecord) -> ActorState:
        return ActorState(
            actor_id=record.actor_id.hex(),
            class_name=record.options.class_name,
            name=record.options.name,
            namespace=record.options.namespace,
            state=record.state.value,
            node_id=record.route or self.node_id,  # placed on another node: that one
            pid=record.pid or None,
            restarts=record.restarts,
            death_cause=record.death_cause or None,
            detached=record.options.detached,
        )

    def object_state(self, entry: ObjectEntry) -> ObjectState:
        payload = entry.payload
        if payload is None:
            location = "pending"
        elif payload.data is not None:
            location = "inline"
        elif payload.path is None:
            location = "shared_memory"
        else:
            location = "spilled" if payload.offset == -2 else "file"
        owner_in = entry.owner in entry.refs
        return ObjectState(
            object_id=entry.object_id.hex(),
            size=payload.size if payload is not None else 0,
            owner_pid=self._pid_of(entry.owner),
            location=location,
            local_refs=len(entry.refs),
            pending_task_refs=entry.holds - entry.contained_in,
            contained_in=entry.contained_in,
            borrowers=len(entry.refs) - (1 if owner_in else 0),
            pinned_views=sum(entry.pins.values()),
            task_id=task_id_of(entry.object_id).hex(),
            type_name=payload.type_name if payload is not None else "",
            preview=_preview(payload),
            created=entry.created,
        )

    def node_state(self) -> NodeState:
        sample = self.telemetry.sample
        return NodeState(
            node_id=self.node_id,
            alive=True,
            address=self.membership.tcp_address or "127.0.0.1",
            hostname=socket.gethostname(),
            is_head=self.membership.is_head,
            resources_total=dict(self.ledger.total),
            resources_available={k: max(v, 0.0) for k, v in self.ledger.available.items()},
            cpu_percent=sample.cpu_percent,
            memory_used=sample.memory_used,
            memory_total=sample.memory_total,
            object_store_used=self.alloc.used,
            object_store_capacity=self.alloc.capacity,
            object_store_spilled=self.store.spilled_bytes,
            num_workers=len(self.workers),
            gpus=list(sample.gpus) if sample.gpus is not None else None,
            extra={"socket": self.socket_path},
        )

    def node_states(self) -> list[NodeState]:
        """This node, then every other node this one knows of (alive or dead)."""
        out = [self.node_state()]
        for view in self.membership.cluster.values():
            if view.node_id == self.node_id:
                continue
            st = view.stats
            out.append(
                NodeState(
                    node_id=view.node_id,
                    alive=view.alive,
                    address=view.address,
                    hostname=str(st.get("hostname", "")),
                    is_head=view.is_head,
                    resources_total=dict(view.total),
                    resources_available=dict(view.available),
                    cpu_percent=float(st.get("cpu_percent", 0.0)),
                    memory_used=int(st.get("memory_used", 0)),
                    memory_total=int(st.get("memory_total", 0)),
                    object_store_used=int(st.get("object_store_used", 0)),
                    object_store_capacity=int(st.get("object_store_capacity", 0)),
                    object_store_spilled=int(st.get("object_store_spilled", 0)),
                    num_workers=int(st.get("num_workers", 0)),
                )
            )
        return out

    # --- collections -----------------------------------------------------------------

    def all_tasks(self) -> list[TaskState]:
        live = {t.task_id: t for t in (self.task_state(r) for r in self.tasks.values())}
        done = [t for t in self.history if t.task_id not in live]
        return done + list(live.values())

    def snapshot(self) -> dict[str, list[Any]]:
        return {
            "tasks": self.all_tasks(),
            "actors": [self.actor_state(r) for r in self.actors.actors.values()],
            "objects": [self.object_state(e) for e in self.objects.entries.values()],
            "nodes": self.node_states(),
        }

    def lookup(self, kind: str, key: str) -> Any:
        """The current record of one entity, or None if it is gone (for the feed)."""
        if kind == "tasks":
            rec = self.tasks.get(bytes.fromhex(key))
            return self.task_state(rec) if rec is not None else self.history.get(key)
        if kind == "actors":
            record = self.actors.actors.get(bytes.fromhex(key))
            return self.actor_state(record) if record is not None else None
        if kind == "objects":
            entry = self.objects.get(bytes.fromhex(key))
            return self.object_state(entry) if entry is not None else None
        if kind == "nodes":
            return next((n for n in self.node_states() if n.node_id == key), None)
        return None

    def state_query(self, what: str, arg: Any) -> Any:
        filters, limit, extra = arg if arg is not None else ([], None, None)
        if what == "list_tasks":
            records: list[Any] = self.all_tasks()
        elif what == "list_actors":
            records = [self.actor_state(r) for r in self.actors.actors.values()]
        elif what == "list_objects":
            records = [self.object_state(e) for e in self.objects.entries.values()]
        elif what == "list_nodes":
            records = self.node_states()
        elif what == "summarize_tasks":
            return self.summarize()
        elif what == "task_graph":
            cell_id, job_id = extra
            return self.task_graph(cell_id, job_id)
        elif what == "timeline":
            return self.timeline_events()
        else:
            raise ValueError(f"unknown state query {what!r}")
        selected = [r for r in records if matches(r, filters)]
        return selected[:limit] if limit is not None else selected

    def summarize(self) -> TaskSummary:
        live = [self.task_state(r) for r in self.tasks.values()]
        by_state, by_name = self.history.summary(live)
        return TaskSummary(
            by_state=dict(by_state),
            by_name={k: dict(v) for k, v in by_name.items()},
            total_submitted=self.history.submitted,
            dropped_from_history=dict(self.history.dropped),
        )

    def task_graph(
        self, cell_id: str | None, job_id: str | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Nodes (tasks) and edges: data (result used as argument), submitted, actor."""
        tasks = [
            t
            for t in self.all_tasks()
            if (cell_id is None or t.cell_id == cell_id) and (job_id is None or t.job_id == job_id)
        ]
        return task_graph(tasks)

    def timeline_events(self) -> list[dict[str, Any]]:
        """Chrome trace events ("X" phase), one per executed task, per worker process."""
        events: list[dict[str, Any]] = []
        for t in self.history:
            start = t.times.get(RUNNING)
            end = t.times.get(FINISHED) or t.times.get(t.state)
            if start is None or end is None or t.state not in DONE_STATES:
                continue
            events.append(
                {
                    "name": t.name,
                    "cat": t.kind,
                    "ph": "X",
                    "ts": start * 1e6,
                    "dur": max(end - start, 0.0) * 1e6,
                    "pid": f"node {t.node_id[:8]}",
                    "tid": f"worker {t.worker_pid}",
                    "args": {
                        "task_id": t.task_id,
                        "state": t.state,
                        "attempt": t.attempt,
                        "cell_id": t.cell_id,
                    },
                }
            )
        return events


def _preview(payload: p.Payload | None) -> str | None:
    """A short repr of small builtin values; never runs code other than builtins'."""
    if payload is None or payload.data is None or payload.error:
        return None
    if payload.type_name not in PREVIEW_TYPES or payload.size > PREVIEW_MAX_BYTES:
        return None
    meta = bytes(meta_of(memoryview(payload.data)))
    try:
        for op, arg, _ in pickletools.genops(meta):
            if op.name in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ"):
                return None  # something other than plain builtin containers: no preview
            del arg
        return _repr.repr(pickle.loads(meta))
    except Exception:
        return None
