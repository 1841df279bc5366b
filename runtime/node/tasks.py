"""Tasks on one node: the shell around the task state machine (a component of the node
manager, on its event loop).

A task is *tracked* from its submission (its arguments held, its missing ones counted),
*queued* by resource shape once they are ready, *dispatched* when the ledger has room and
an idle worker can take it (or *forwarded* to a node that has room), and *finished* when
its worker reports: its results sealed, pushed to its owner, its arguments released. A
worker that dies mid-task has its task queued again while ``max_retries`` lasts.

Every one of those transitions is :class:`task_machine.TaskStateMachine`'s; this module
turns messages into its events and carries out the instructions it returns: messages to
workers and owners, worker processes, seals. Actor creations and calls go through the same
records; what is particular to them is :mod:`actor_manager`'s, reached through
:class:`ActorHooks`.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, Protocol

from ..common import protocol as p
from ..common.ids import object_id_for, random_id
from .records import TaskRecord, WorkerState
from .task_events import (
    ActorDead,
    ActorLost,
    CancelRequested,
    CancelRunning,
    DepsReady,
    Finish,
    Forward,
    ForwardCancel,
    Groups,
    GroupsReserved,
    Instruction,
    KillWorker,
    NodeLost,
    PumpActor,
    ReleaseHolds,
    ReleasePayloads,
    SendTask,
    StartWorkers,
    TaskFinished,
    TaskSubmitted,
    UnqueueActorCall,
    Warn,
    WorkerBlocked,
    WorkerIdle,
    WorkerLost,
    WorkerUnblocked,
)
from .task_machine import TaskStateMachine

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .actors import ActorDirectory, ActorRecord
    from .cluster import Membership
    from .feed import ChangeFeed
    from .history import TaskHistory
    from .object_manager import ObjectManager
    from .objects import ObjectEntry
    from .records import Forwarded
    from .scheduler import ReadyQueue, ResourceLedger
    from .worker_pool import WorkerPool

log = logging.getLogger("jupyter_ray.node")


class ActorHooks(Protocol):
    """What the tasks component asks of the actors component (:mod:`actor_manager`)."""

    def submit_actor_call(self, conn: ServerConnection, rec: TaskRecord) -> None: ...
    def pump_actor(self, record: ActorRecord) -> None: ...
    def unqueue_actor_call(self, rec: TaskRecord) -> None: ...
    def actor_task_done(self, rec: TaskRecord, msg: p.TaskDone) -> None: ...
    def direct_done_early(self, msg: p.TaskDone) -> None: ...
    def actor_dead(self, record: ActorRecord, cause: str) -> None: ...


class GroupHooks(Groups, Protocol):
    """What the tasks component asks of the placement groups (:mod:`placement_groups`)."""

    def groups_reserved(self, groups: list[Any]) -> None: ...


class PeerHooks(Protocol):
    """What the tasks component asks of the peers (:mod:`peers`)."""

    def forward(self, rec: TaskRecord, node_id: str) -> None: ...


class Tasks:
    """The task life cycle of a node; see the module docstring."""

    def __init__(
        self,
        node_id: str,
        ledger: ResourceLedger,
        ready: ReadyQueue,
        objects: ObjectManager,
        pool: WorkerPool,
        membership: Membership,
        forwarded: dict[bytes, Forwarded],
        conns: dict[int, ServerConnection],
        actors: ActorDirectory,
        history: TaskHistory,
        feed: ChangeFeed,
        recording: bool,
    ) -> None:
        self.objects = objects
        self.table = objects.objects
        self.store = objects.store
        self.pool = pool
        self.forwarded = forwarded
        self.conns = conns
        self.actors = actors
        self.machine = TaskStateMachine(
            node_id,
            ledger,
            ready,
            self.table,
            objects.waiting_on,
            pool,
            membership,
            forwarded,
            history,
            feed,
            recording,
            self.pid_of,
        )
        self.tasks = self.machine.tasks
        self.waiting_on = objects.waiting_on  # object id -> tasks that wait for it
        self.functions: dict[bytes, tuple[str, bytes]] = {}

    def wire(self, actor_hooks: ActorHooks, group_hooks: GroupHooks, peers: PeerHooks) -> None:
        """Connect the components above this one (they are built after it)."""
        self.actor_hooks = actor_hooks
        self.group_hooks = group_hooks
        self.peers = peers
        self.machine.wire(group_hooks)

    def pid_of(self, conn_id: int) -> int:
        conn = self.conns.get(conn_id)
        return conn.pid if conn is not None else 0

    # --- carrying out instructions -----------------------------------------------------

    def execute(self, instructions: list[Instruction]) -> None:
        """Do what the state machine asked, in order (the common ones first)."""
        for ins in instructions:
            if type(ins) is SendTask:
                self._send_task(ins.rec, ins.worker, ins.gpu_ids)
            elif type(ins) is Finish:
                self._finish(ins.rec, ins.results, ins.contained, ins.push)
            elif type(ins) is StartWorkers:
                for _ in range(ins.count):
                    self.pool.processes.spawn(random_id(8))
            elif type(ins) is ReleasePayloads:
                self.store.release_payloads(ins.payloads)
            elif type(ins) is PumpActor:
                self.actor_hooks.pump_actor(ins.record)
            elif type(ins) is Forward:
                self.peers.forward(ins.rec, ins.node_id)
            elif type(ins) is ReleaseHolds:
                self.release_holds(ins.spec)
            elif type(ins) is KillWorker:
                self.pool.kill(ins.worker, ins.sig)
            elif type(ins) is CancelRunning:
                ins.worker.conn.send(p.CancelTask(task_id=ins.task_id, force=False))
            elif type(ins) is ForwardCancel:
                fwd = self.forwarded.get(ins.task_id)
                if fwd is not None:
                    oid = object_id_for(ins.task_id, 0)
                    fwd.link.send(
                        p.CancelRequest(object_id=oid, force=ins.force, recursive=ins.recursive)
                    )
            elif type(ins) is UnqueueActorCall:
                self.actor_hooks.unqueue_actor_call(ins.rec)
            elif type(ins) is ActorDead:
                self.actor_hooks.actor_dead(ins.record, ins.cause)
            elif type(ins) is GroupsReserved:
                self.group_hooks.groups_reserved(ins.groups)
            elif type(ins) is Warn:
                log.warning(ins.text)
                owner = self.conns.get(ins.owner)
                if owner is not None:
                    owner.send(p.DriverWarning(text=ins.text))
            else:
                raise AssertionError(f"no executor for {ins!r}")

    def _send_task(self, rec: TaskRecord, worker: WorkerState, gpu_ids: list[int]) -> None:
        spec = rec.spec
        fn_payload = None
        if spec.kind != p.ACTOR_METHOD and spec.fn_id not in worker.functions:
            fn_payload = self.functions[spec.fn_id][1]
            worker.functions.add(spec.fn_id)
        payloads: list[p.Payload] = []
        for oid in spec.deps:
            entry = self.table.get(oid)
            assert entry is not None and entry.payload is not None
            if entry.payload.in_arena:
                self.table.pin(entry, worker.conn.conn_id)
            payloads.append(entry.payload)
        creation = spec.kind == p.ACTOR_CREATION and rec.actor is not None
        options = rec.actor.options if creation and rec.actor else None
        attempt = rec.actor.restarts if creation and rec.actor else rec.attempt
        worker.conn.send(
            p.ExecuteTask(
                spec=spec,
                fn_payload=fn_payload,
                dep_payloads=payloads,
                gpu_ids=gpu_ids,
                retries_left=rec.retries_left,
                actor_options=options,
                attempt=attempt,
            )
        )

    def _finish(
        self,
        rec: TaskRecord,
        results: list[p.Payload],
        contained: list[list[bytes]],
        push: bool,
    ) -> None:
        spec = rec.spec
        owner = self.conns.get(spec.owner) if push else None
        for i, payload in enumerate(results):
            oid = object_id_for(spec.task_id, i)
            entry = self.table.get(oid)
            owner_waits = entry is not None and spec.owner in entry.waiters
            self.objects.sealed(oid, payload, contained[i] if i < len(contained) else [])
            # push small results to the owner before it asks: saves a round trip
            if (
                owner is not None
                and entry is not None
                and payload.data is not None
                and not owner_waits
            ):
                owner.send(p.ObjectAvailable(object_id=oid, payload=payload))
        self.release_holds(spec)

    def release_holds(self, spec: p.TaskSpec) -> None:
        freed: list[ObjectEntry] = []
        for oid in spec.deps:
            self.table.release(oid, freed)
        for oid in spec.nested_refs:
            self.table.release(oid, freed)
        if spec.kind == p.ACTOR_METHOD and spec.actor_id is not None:
            actor = self.actors.actors.get(spec.actor_id)
            if actor is not None:
                self.table.release(actor.cookie, freed)
        self.store.release_all(freed)

    # --- messages ----------------------------------------------------------------------

    def on_register_function(self, conn: ServerConnection, msg: p.RegisterFunction) -> None:
        self.functions[msg.fn_id] = (msg.name, msg.payload)

    def on_submit_task(self, conn: ServerConnection, msg: p.SubmitTask) -> None:
        spec = msg.spec
        spec.owner = conn.conn_id
        for i in range(spec.num_returns):
            entry = self.table.create(object_id_for(spec.task_id, i), conn.conn_id)
            # The owner hears when each result is ready (with small values inline) without
            # asking: its client counts on that and sends no Subscribe for them.
            self.table.add_waiter(entry, conn.conn_id, False)
        rec = TaskRecord(spec, retries_left=spec.max_retries)
        if spec.kind == p.ACTOR_METHOD:
            self.actor_hooks.submit_actor_call(conn, rec)
            return
        self.execute(self.machine.handle(TaskSubmitted(rec, "SubmitTask")))

    def on_task_done(self, conn: ServerConnection, msg: p.TaskDone) -> None:
        allocs = self.objects.pending_allocs.get(conn.conn_id)
        if allocs:
            # Results the worker wrote into the store are this message's now: left in
            # ``pending_allocs``, they were freed when the worker exited (max_calls, a
            # crash), under the refs that still pointed at them.
            for i in range(len(msg.results)):
                allocs.pop(object_id_for(msg.task_id, i), None)
        rec = self.tasks.get(msg.task_id)
        if rec is None and msg.direct_caller:
            self.actor_hooks.direct_done_early(msg)
            return
        if rec is not None:
            self.machine.take_report(rec, msg)
            if rec.spec.kind != p.TASK:
                self.actor_hooks.actor_task_done(rec, msg)
                return
        worker = self.pool.workers.get(conn.conn_id)
        self.execute(self.machine.handle(TaskFinished(rec, worker, msg, "TaskDone")))

    def on_task_started(self, conn: Any, msg: p.TaskStarted) -> None:
        """Calls that have run a while (from a worker, or from the node a task was
        forwarded to): show them RUNNING here, and on the node they came from."""
        for task_id, started in msg.started:
            rec = self.tasks.get(task_id)
            if rec is not None and self.machine.started(rec, started):
                owner = self.conns.get(rec.spec.owner)
                if owner is not None and owner.role == "peer":
                    owner.send(p.TaskStarted(started=[(task_id, started)]))

    def on_blocked(self, conn: ServerConnection, msg: p.Blocked) -> None:
        worker = self.pool.workers.get(conn.conn_id)
        self.execute(self.machine.handle(WorkerBlocked(worker, msg.waiting_on, "Blocked")))

    def on_unblocked(self, conn: ServerConnection, msg: p.Unblocked) -> None:
        worker = self.pool.workers.get(conn.conn_id)
        self.execute(self.machine.handle(WorkerUnblocked(worker, "Unblocked")))

    def on_log_lines(self, conn: ServerConnection, msg: p.LogLines) -> None:
        rec = self.tasks.get(msg.task_id)
        owner = self.conns.get(rec.spec.owner) if rec is not None else None
        if owner is not None:
            owner.send(msg)
        else:
            stream = sys.stdout if msg.stream == 1 else sys.stderr
            stream.write(msg.text)

    # --- events from the other components ----------------------------------------------

    def dispatch(self, stimulus_id: str = "dispatch") -> None:
        """Resources or workers came back: run what fits."""
        self.execute(self.machine.handle(WorkerIdle(stimulus_id)))

    def deps_ready(self, object_id: bytes) -> None:
        self.execute(self.machine.handle(DepsReady(object_id, "sealed")))

    def worker_lost(self, worker: WorkerState) -> None:
        code = self.pool.processes.exit_code(worker.pid)
        self.execute(self.machine.handle(WorkerLost(worker, code, "worker-lost")))

    def worker_never_came(self) -> None:
        """A worker process exited before it said hello: start another if the pool needs."""
        machine = self.machine
        self.execute(machine.run("worker-exited", machine.maintain_pool))
        self.dispatch("worker-exited")

    def node_lost(self, node_id: str, lost: list[TaskRecord]) -> None:
        self.execute(self.machine.handle(NodeLost(node_id, lost, "link-lost")))

    def cancel(self, task_ids: list[bytes], force: bool, recursive: bool, why: str) -> None:
        self.execute(self.machine.handle(CancelRequested(task_ids, force, recursive, why)))

    def actor_lost(self, record: ActorRecord, exit_code: int | None, cause: str | None) -> None:
        self.execute(self.machine.handle(ActorLost(record, exit_code, cause, "actor-lost")))

    # --- transitions the actors component asks for -------------------------------------

    def track(self, rec: TaskRecord) -> None:
        self.machine.track(rec)

    def take_report(self, rec: TaskRecord, msg: p.TaskDone) -> None:
        self.machine.take_report(rec, msg)

    def record_done(self, rec: TaskRecord, results: list[p.Payload]) -> None:
        self.machine.record_done(rec, results)

    def enqueue(self, rec: TaskRecord) -> None:
        self.execute(self.machine.run("enqueue", self.machine.enqueue, rec))

    def send_task(self, rec: TaskRecord, worker: WorkerState, gpu_ids: list[int]) -> None:
        self.execute(self.machine.run("actor-call", self.machine.send, rec, worker, gpu_ids))

    def finish(
        self,
        rec: TaskRecord,
        results: list[p.Payload],
        contained: list[list[bytes]],
        push: bool = True,
    ) -> None:
        machine = self.machine
        self.execute(machine.run("finish", machine.finish, rec, results, contained, push))

    def fail(self, rec: TaskRecord, error: BaseException) -> None:
        self.execute(self.machine.run("fail", self.machine.fail, rec, error))

    def schedule_creation(self, record: ActorRecord, rec: TaskRecord) -> None:
        machine = self.machine
        self.execute(machine.run("create-actor", machine.actors.schedule_creation, record, rec))

    def creation_done(self, rec: TaskRecord, results: list[p.Payload]) -> None:
        machine = self.machine
        self.execute(machine.run("creation-done", machine.actors.creation_done, rec, results))

    def drop_creation(self, actor_id: bytes) -> None:
        machine = self.machine
        self.execute(machine.run("actor-dead", machine.actors.drop_creation, actor_id))

    def drop_call(self, rec: TaskRecord, error: BaseException) -> None:
        self.execute(self.machine.run("actor-dead", self.machine.actors.drop_call, rec, error))

    def direct_call(self, rec: TaskRecord, worker: WorkerState | None, when: float) -> None:
        self.machine.actors.direct_call(rec, worker, when)

    def group_removed(self, keys: set[str], error: BaseException, why: str) -> None:
        machine = self.machine
        self.execute(machine.run("group-removed", machine.group_removed, keys, error, why))

    def remote_done(
        self, rec: TaskRecord, results: list[p.Payload], contained: list[list[bytes]]
    ) -> None:
        machine = self.machine
        self.execute(machine.run("remote-done", machine.remote_done, rec, results, contained))

    def routed(self, rec: TaskRecord) -> None:
        self.machine.actors.routed(rec)

    def calls_lost(self, record: ActorRecord, recs: list[TaskRecord], cause: str) -> None:
        machine = self.machine
        self.execute(machine.run("calls-lost", machine.actors.calls_lost, record, recs, cause))
