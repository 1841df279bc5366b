"""Tasks on one node: submission, arguments, the ready queue, dispatch to workers,
results, retries (a component of the node manager, on its event loop).

A task is *tracked* from its submission (its arguments held, its missing ones counted),
*queued* by resource shape once they are ready, *dispatched* when the ledger has room and
an idle worker can take it (or *forwarded* to a node that has room), and *finished* when
its worker reports: its results sealed, pushed to its owner, its arguments released. A
worker that dies mid-task has its task queued again while ``max_retries`` lasts. Actor
creations and calls go through the same records; what is particular to them is
:mod:`actor_manager`'s, reached through :class:`ActorHooks`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .. import protocol as p
from ..exceptions import TaskCancelledError, WorkerCrashedError
from ..ids import object_id_for
from ..labels import MARKER, choose, describe
from .records import TaskRecord, TaskStatus, WorkerState, error_payload, uses_group_gpu
from .state_view import task_state

if TYPE_CHECKING:
    from ..feed import ChangeFeed
    from ..transport import ServerConnection
    from .actors import ActorDirectory, ActorRecord
    from .cluster import Membership
    from .history import TaskHistory
    from .object_manager import ObjectManager
    from .objects import ObjectEntry
    from .scheduler import Grant, ReadyQueue, ResourceLedger
    from .worker_pool import WorkerPool

log = logging.getLogger("jupyter_ray.node")


class ActorHooks(Protocol):
    """What the tasks component asks of the actors component (:mod:`actor_manager`)."""

    def submit_actor_call(self, conn: ServerConnection, rec: TaskRecord) -> None: ...
    def pump_actor(self, record: ActorRecord) -> None: ...
    def place_actor(self, record: ActorRecord, worker: WorkerState, grant: Grant) -> None: ...
    def actor_task_done(self, rec: TaskRecord, msg: p.TaskDone) -> None: ...
    def direct_done_early(self, msg: p.TaskDone) -> None: ...
    def actor_process_lost(
        self, record: ActorRecord, exit_code: int | None, cause: str | None = None
    ) -> None: ...


class GroupHooks(Protocol):
    """What the tasks component asks of the placement groups (:mod:`placement_groups`)."""

    def reserve_groups(self, dispatch: bool = True) -> bool: ...
    def group_gpu_ids(self, demand: dict[str, float]) -> list[int]: ...


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
        conns: dict[int, ServerConnection],
        actors: ActorDirectory,
        history: TaskHistory,
        feed: ChangeFeed,
        recording: bool,
        groups: dict[bytes, Any],
        pending_groups: list[Any],
    ) -> None:
        self.node_id = node_id
        self.ledger = ledger
        self.ready = ready
        self.objects = objects
        self.table = objects.objects
        self.store = objects.store
        self.pool = pool
        self.membership = membership
        self.cluster = membership.cluster
        self.conns = conns
        self.actors = actors
        self.history = history
        self.feed = feed
        self.recording = recording  # False: no times, no history (benchmarks)
        self.groups = groups
        self.pending_groups = pending_groups
        self.tasks: dict[bytes, TaskRecord] = {}
        self.waiting_on = objects.waiting_on  # object id -> tasks that wait for it
        self.functions: dict[bytes, tuple[str, bytes]] = {}
        self._warned_infeasible: set[tuple[tuple[str, float], ...]] = set()

    def wire(
        self,
        actor_hooks: ActorHooks,
        group_hooks: GroupHooks,
        forward: Callable[[TaskRecord, str], None],
    ) -> None:
        """Connect the components above this one (they are built after it)."""
        self.actor_hooks = actor_hooks
        self.group_hooks = group_hooks
        self.forward = forward

    def pid_of(self, conn_id: int) -> int:
        conn = self.conns.get(conn_id)
        return conn.pid if conn is not None else 0

    def mark(self, rec: TaskRecord, state: TaskStatus, when: float | None = None) -> None:
        """Record a task's state transition, for the state API and the feed."""
        rec.state = state
        if not self.recording:
            return
        rec.times[state] = when if when is not None else time.time()
        if self.feed.subscribers:
            self.feed.touch("tasks", rec.spec.task_id.hex())

    # --- submission --------------------------------------------------------------------

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
        self.track(rec)
        if rec.missing == 0:
            self.enqueue(rec)

    def track(self, rec: TaskRecord) -> None:
        """Hold the task's arguments and note which are not ready yet."""
        spec = rec.spec
        for oid in spec.deps:
            self.table.hold(oid)
        for oid in spec.nested_refs:
            self.table.hold(oid)
        self.tasks[spec.task_id] = rec
        self.history.submitted += 1
        rec.owner_pid = self.pid_of(spec.owner)
        self.mark(rec, TaskStatus.PENDING_ARGS)
        for oid in spec.deps:
            entry = self.table.get(oid)
            if entry is None or entry.payload is None:
                rec.missing += 1
                self.waiting_on.setdefault(oid, []).append(rec)

    def deps_ready(self, rec: TaskRecord) -> None:
        if rec.spec.kind == p.ACTOR_METHOD:
            if rec.actor is not None:
                self.actor_hooks.pump_actor(rec.actor)
        else:
            self.enqueue(rec)

    def enqueue(self, rec: TaskRecord) -> None:
        self.mark(rec, TaskStatus.PENDING_RESOURCES)
        demand = rec.spec.resources
        if not self.ledger.feasible(demand) and not self.membership.feasible_somewhere(demand):
            self._infeasible(rec)
            demand = rec.spec.resources
        self.ready.push(demand, rec)
        self.dispatch()

    def _infeasible(self, rec: TaskRecord) -> None:
        """No node could ever run it: take the fallback of a label selector that names a
        node that can (see labels.py), else tell the owner once why it waits."""
        demand = rec.spec.resources
        markers = [k for k in demand if k.startswith(MARKER)]
        if markers:
            nodes = [self.ledger.labels] + [v.labels for v in self.membership.peers()]
            demand = {(choose(k, nodes) if k in markers else k): v for k, v in demand.items()}
            rec.spec.resources = demand
            if self.ledger.feasible(demand) or self.membership.feasible_somewhere(demand):
                return
        key = tuple(sorted(demand.items()))
        if key in self._warned_infeasible:
            return
        self._warned_infeasible.add(key)
        wanted = {k: v for k, v in demand.items() if not k.startswith(MARKER)}
        text = (
            f"{rec.spec.name} needs {wanted}, more than this cluster has "
            f"({self.ledger.total}); it waits until such resources are added. "
            "Lower its num_cpus/num_gpus/resources, or cancel it."
        )
        for marker in markers:
            text = (
                f"{rec.spec.name} asks for a node with {describe(marker)}, and no live node "
                "has such labels (nodes get labels from 'jupyter-ray start --labels k=v' or "
                "init(labels=...)); it waits until one joins. Change the selector, add a "
                "fallback_strategy, or cancel it."
            )
        log.warning(text)
        owner = self.conns.get(rec.spec.owner)
        if owner is not None:
            owner.send(p.DriverWarning(text))

    # --- dispatch ----------------------------------------------------------------------

    def dispatch(self) -> None:
        """Run what the ledger and the idle workers allow; forward what fits elsewhere;
        start workers for the rest."""
        if self.pending_groups:
            self.group_hooks.reserve_groups(dispatch=False)  # resources may have come back
        if not self.ready:
            return
        want_workers = 0
        for demand, queue in self.ready.shapes():
            gpu = demand.get("GPU", 0.0) > 0 or (bool(self.groups) and uses_group_gpu(demand))
            while queue:
                if not self.ledger.fits(demand):
                    break
                worker = self.pool.take_idle(gpu)
                if worker is None:
                    want_workers += min(len(queue), self.ledger.how_many_fit(demand))
                    break
                grant = self.ledger.acquire(demand)
                assert grant is not None
                if self.groups and not grant.gpu_ids:
                    grant.gpu_ids = self.group_hooks.group_gpu_ids(demand)  # its bundle's
                rec = self.ready.popleft(queue)
                assert isinstance(rec, TaskRecord)
                self._run(rec, worker, grant)
        if self.cluster:
            self._spill_to_peers()
        if want_workers:
            self.pool.grow(want_workers)

    def _spill_to_peers(self) -> None:
        """Forward queued tasks that cannot run here now to nodes that have room."""
        for demand, queue in self.ready.shapes():
            if self.ledger.fits(demand):
                continue  # it will run here once a worker is free
            while queue:
                rec = queue[0]
                assert isinstance(rec, TaskRecord)
                if rec.spec.generator:
                    break  # its values go to its owner here: it runs on this node
                node_id = self.membership.place_elsewhere(demand)
                if node_id is None:
                    break
                self.ready.popleft(queue)
                self.forward(rec, node_id)

    def _run(self, rec: TaskRecord, worker: WorkerState, grant: Grant) -> None:
        rec.grant = grant
        if rec.spec.kind == p.ACTOR_CREATION:
            assert rec.actor is not None
            self.actor_hooks.place_actor(rec.actor, worker, grant)
        else:
            worker.task = rec
        self.send_task(rec, worker, grant.gpu_ids)

    def send_task(self, rec: TaskRecord, worker: WorkerState, gpu_ids: list[int]) -> None:
        spec = rec.spec
        self.mark(rec, TaskStatus.SCHEDULED)
        rec.worker = worker
        rec.worker_pid = worker.pid
        rec.node_id = None
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
            p.ExecuteTask(spec, fn_payload, payloads, gpu_ids, rec.retries_left, options, attempt)
        )

    # --- reports from workers ----------------------------------------------------------

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
            self.take_report(rec, msg)
            if rec.spec.kind != p.TASK:
                self.actor_hooks.actor_task_done(rec, msg)
                return
        worker = self.pool.workers.get(conn.conn_id)
        if worker is not None and worker.actor is None:
            self.pool.free(worker, exiting=msg.exit_after)
        if rec is None:
            self.store.release_payloads(msg.results)
            return
        if rec.grant is not None:
            self.ledger.release(rec.grant)
            rec.grant = None
        if msg.retry and rec.retries_left > 0 and not rec.cancelled:
            rec.retries_left -= 1
            rec.attempt += 1
            self.store.release_payloads(msg.results)
            self.enqueue(rec)
        else:
            self.finish(rec, msg.results, msg.contained)
        self.dispatch()

    def take_report(self, rec: TaskRecord, msg: p.TaskDone) -> None:
        """Record what a worker's report says of a task: start, end, error."""
        if msg.started:
            self.mark(rec, TaskStatus.RUNNING, msg.started)
        rec.error_type = msg.error_type
        rec.error_message = msg.error_message
        rec.ended = msg.ended

    def on_task_started(self, conn: Any, msg: p.TaskStarted) -> None:
        """Calls that have run a while (from a worker, or from the node a task was
        forwarded to): show them RUNNING here, and on the node they came from."""
        for task_id, started in msg.started:
            rec = self.tasks.get(task_id)
            if rec is not None and rec.state == TaskStatus.SCHEDULED:
                self.mark(rec, TaskStatus.RUNNING, started)
                owner = self.conns.get(rec.spec.owner)
                if owner is not None and owner.role == "peer":
                    owner.send(p.TaskStarted([(task_id, started)]))

    def on_blocked(self, conn: ServerConnection, msg: p.Blocked) -> None:
        worker = self.pool.workers.get(conn.conn_id)
        if msg.waiting_on and all(
            (entry := self.table.get(oid)) is not None and entry.payload is not None
            for oid in msg.waiting_on
        ):
            return  # everything is ready: the worker will not wait long
        if worker is not None and worker.task is not None and worker.task.grant is not None:
            worker.lent_cpus = self.ledger.lend_cpu(worker.task.grant)
            self.dispatch()

    def on_unblocked(self, conn: ServerConnection, msg: p.Unblocked) -> None:
        worker = self.pool.workers.get(conn.conn_id)
        if worker is not None and worker.lent_cpus:
            self.ledger.reclaim_cpu(worker.lent_cpus)
            worker.lent_cpus = 0.0

    def on_log_lines(self, conn: ServerConnection, msg: p.LogLines) -> None:
        rec = self.tasks.get(msg.task_id)
        owner = self.conns.get(rec.spec.owner) if rec is not None else None
        if owner is not None:
            owner.send(msg)
        else:
            stream = sys.stdout if msg.stream == 1 else sys.stderr
            stream.write(msg.text)

    # --- the end of a task -------------------------------------------------------------

    def finish(
        self,
        rec: TaskRecord,
        results: list[p.Payload],
        contained: list[list[bytes]],
        push: bool = True,
    ) -> None:
        spec = rec.spec
        self.tasks.pop(spec.task_id, None)
        self.record_done(rec, results)
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
                owner.send(p.ObjectAvailable(oid, payload))
        self.release_holds(spec)

    def record_done(self, rec: TaskRecord, results: list[p.Payload]) -> None:
        """Move a finished task to the history, in its final state."""
        if rec.cancelled or rec.error_type == "TaskCancelledError":
            state = TaskStatus.CANCELLED
        elif rec.error_type is not None or any(r.error for r in results):
            state = TaskStatus.FAILED
        else:
            state = TaskStatus.FINISHED
        self.mark(rec, state, rec.ended or None)
        if not self.recording:
            return
        gone = self.history.add(task_state(rec, self.node_id))
        if gone is not None and self.feed.subscribers:
            self.feed.gone("tasks", gone.task_id)

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

    def fail(self, rec: TaskRecord, error: BaseException) -> None:
        rec.error_type = type(error).__name__
        rec.error_message = str(error)[:1000]
        rec.ended = 0.0
        self.finish(rec, [error_payload(error)] * rec.spec.num_returns, [])

    def unwait(self, rec: TaskRecord) -> None:
        """Stop waiting for the arguments of a task that is dropped before it runs."""
        for oid in rec.spec.deps:
            waiters = self.waiting_on.get(oid)
            if waiters and rec in waiters:
                waiters.remove(rec)

    # --- workers that die --------------------------------------------------------------

    def worker_lost(self, worker: WorkerState) -> None:
        """A worker's connection dropped: retry its task while ``max_retries`` lasts."""
        rec = worker.task
        code = self.pool.processes.exit_code(worker.pid)
        if worker.actor is not None:
            self.actor_hooks.actor_process_lost(worker.actor, code)
        elif rec is not None:
            if rec.grant is not None:
                self.ledger.release(rec.grant)
                rec.grant = None
            rec.worker = None
            if rec.cancelled:
                self.fail(rec, TaskCancelledError(rec.spec.name))
            elif rec.retries_left > 0:
                rec.retries_left -= 1
                rec.attempt += 1
                self.enqueue(rec)
            else:
                tries = rec.spec.max_retries + 1
                self.fail(
                    rec,
                    WorkerCrashedError(
                        f"The worker (pid {worker.pid}) running {rec.spec.name}() died"
                        f"{f' with exit code {code}' if code is not None else ''} after "
                        f"{tries} attempt{'s' if tries > 1 else ''}. Its log is in "
                        f"{self.pool.logs_dir}. If the task runs out of memory or crashes "
                        "the interpreter, fix that or raise max_retries."
                    ),
                )
        # Also after a max_calls exit; retiring surplus idle workers leaves pool_size.
        self.pool.maintain()
        self.dispatch()
