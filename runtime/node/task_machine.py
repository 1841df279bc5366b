"""The node's task state machine: every transition of a ``TaskRecord``, without I/O.

Events come in (a task was submitted, its arguments are ready, a worker is idle, a task
is done, a worker or a node was lost, a cancel was asked for, an actor's process died),
each with a *stimulus id* that names what caused it; instructions go out (send this task
to that worker, start workers, kill a process, forward a task to a node, finish a task
with these results...). The machine changes only its tables: the task table, the ready
queue, the resource ledger, the pool's idle list and counters, the records. The tasks
component (:mod:`tasks`) turns messages into events and instructions into I/O, on the
node manager's event loop; a unit test drives the machine alone and calls
:meth:`TaskStateMachine.validate` after every event (``tests/runtime``).

Modelled on dask distributed's ``worker_state_machine.py``. Instructions are slotted
dataclasses, read in one loop by the shell; events that happen for every task
(submitted, done) cost one small object each.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..common import protocol as p
from ..common.exceptions import TaskCancelledError, WorkerCrashedError
from ..common.labels import MARKER, choose, describe
from .actor_transitions import ActorTransitions
from .actors import ActorRecord
from .records import TaskRecord, TaskStatus, WorkerState, error_payload, uses_group_gpu
from .state_view import task_state
from .task_events import (
    ActorDead,
    ActorLost,
    CancelRequested,
    CancelRunning,
    DepsReady,
    Event,
    Finish,
    Forward,
    ForwardCancel,
    Groups,
    GroupsReserved,
    Instruction,
    KillWorker,
    NodeLost,
    Placement,
    PumpActor,
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
    Workers,
    WorkerUnblocked,
)
from .task_invariants import check_tasks

if TYPE_CHECKING:
    from .feed import ChangeFeed
    from .history import TaskHistory
    from .objects import ObjectTable
    from .records import Forwarded
    from .scheduler import Grant, ReadyQueue, ResourceLedger

log = logging.getLogger("jupyter_ray.node")

MAX_WORKERS = 256

PENDING_ARGS = TaskStatus.PENDING_ARGS
PENDING_RESOURCES = TaskStatus.PENDING_RESOURCES
SCHEDULED = TaskStatus.SCHEDULED
RUNNING = TaskStatus.RUNNING


class TaskStateMachine:
    """Every ``TaskRecord`` transition of one node; see the module docstring."""

    def __init__(
        self,
        node_id: str,
        ledger: ResourceLedger,
        ready: ReadyQueue,
        objects: ObjectTable,
        waiting_on: dict[bytes, list[TaskRecord]],
        workers: Workers,
        placement: Placement,
        forwarded: dict[bytes, Forwarded],
        history: TaskHistory,
        feed: ChangeFeed,
        recording: bool,
        pid_of: Callable[[int], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_id = node_id
        self.ledger = ledger
        self.ready = ready
        self.objects = objects
        self.waiting_on = waiting_on  # object id -> tasks waiting for it
        self.pool = workers
        self.placement = placement
        self.cluster = placement.cluster
        self.forwarded = forwarded  # tasks sent to other nodes (the peers component's)
        self.history = history
        self.feed = feed
        self.recording = recording  # False: no times, no history (benchmarks)
        self.pid_of = pid_of  # the pid of a connection (0: gone)
        self.clock = clock
        self.tasks: dict[bytes, TaskRecord] = {}
        self.warned_infeasible: set[tuple[tuple[str, float], ...]] = set()
        # (task id, new state, stimulus id), the last transitions, when someone traces
        self.story: deque[tuple[bytes, TaskStatus, str]] | None = None
        self.out: list[Instruction] = []
        self.actors = ActorTransitions(self)  # actors' creations and calls
        self._stimulus = ""
        self._handlers: dict[type, Callable[[Any], None]] = {
            TaskSubmitted: self._on_submitted,
            DepsReady: self._on_deps_ready,
            WorkerIdle: self._on_worker_idle,
            WorkerBlocked: self._on_blocked,
            WorkerUnblocked: self._on_unblocked,
            TaskFinished: self._on_task_finished,
            WorkerLost: self._on_worker_lost,
            CancelRequested: self._on_cancel,
            NodeLost: self._on_node_lost,
            ActorLost: self._on_actor_lost,
        }

    def wire(self, groups: Groups) -> None:
        """Connect the placement groups (built after the machine)."""
        self.groups = groups
        self.group_table = groups.groups
        self.pending_groups = groups.pending_groups

    # --- the interface -----------------------------------------------------------------

    def handle(self, event: Event) -> list[Instruction]:
        """Apply one event; the instructions the shell must carry out, in order."""
        out = self.out = []
        self._stimulus = event.stimulus_id
        self._handlers[type(event)](event)
        return out

    def run(self, stimulus_id: str, step: Callable[..., None], *args: Any) -> list[Instruction]:
        """Apply one transition the actors component asks for (``step`` is a method of
        this machine); the instructions it produced."""
        out = self.out = []
        self._stimulus = stimulus_id
        step(*args)
        return out

    def mark(self, rec: TaskRecord, state: TaskStatus, when: float | None = None) -> None:
        """Record a task's state transition, for the state API and the feed."""
        rec.state = state
        if self.story is not None:
            self.story.append((rec.spec.task_id, state, self._stimulus))
        if not self.recording:
            return
        rec.times[state] = when if when is not None else self.clock()
        if self.feed.subscribers:
            self.feed.touch("tasks", rec.spec.task_id.hex())

    # --- events ------------------------------------------------------------------------

    def _on_submitted(self, ev: TaskSubmitted) -> None:
        self.track(ev.rec)
        if ev.rec.missing == 0:
            self.enqueue(ev.rec)

    def _on_deps_ready(self, ev: DepsReady) -> None:
        for rec in self.waiting_on.pop(ev.object_id, ()):
            rec.missing -= 1
            if rec.missing == 0 and rec.state is PENDING_ARGS:
                if rec.spec.kind == p.ACTOR_METHOD:
                    if rec.actor is not None:
                        self.out.append(PumpActor(rec.actor))
                else:
                    self.enqueue(rec)

    def _on_worker_idle(self, ev: WorkerIdle) -> None:
        self.dispatch()

    def _on_blocked(self, ev: WorkerBlocked) -> None:
        objects = self.objects
        if ev.waiting_on and all(
            (entry := objects.get(oid)) is not None and entry.payload is not None
            for oid in ev.waiting_on
        ):
            return  # everything is ready: the worker will not wait long
        worker = ev.worker
        if worker is not None and worker.task is not None and worker.task.grant is not None:
            worker.lent_cpus = self.ledger.lend_cpu(worker.task.grant)
            self.dispatch()

    def _on_unblocked(self, ev: WorkerUnblocked) -> None:
        worker = ev.worker
        if worker is not None and worker.lent_cpus:
            self.ledger.reclaim_cpu(worker.lent_cpus)
            worker.lent_cpus = 0.0

    def _on_task_finished(self, ev: TaskFinished) -> None:
        rec, worker, msg = ev.rec, ev.worker, ev.msg
        if worker is not None and worker.actor is None:
            self.pool.free(worker, exiting=msg.exit_after)
        if rec is None:
            self.out.append(ReleasePayloads(msg.results))
            return
        if rec.grant is not None:
            self.ledger.release(rec.grant)
            rec.grant = None
        if msg.retry and rec.retries_left > 0 and not rec.cancelled:
            rec.retries_left -= 1
            rec.attempt += 1
            self.out.append(ReleasePayloads(msg.results))
            self.enqueue(rec)
        else:
            self.finish(rec, msg.results, msg.contained)
        self.dispatch()

    def _on_worker_lost(self, ev: WorkerLost) -> None:
        worker, code = ev.worker, ev.exit_code
        rec = worker.task
        if worker.actor is not None:
            self.actors.process_lost(worker.actor, code, None)
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
        self.maintain_pool()
        self.dispatch()

    def _on_node_lost(self, ev: NodeLost) -> None:
        for rec in ev.lost:
            if rec.actor is not None:
                continue  # actor creations and calls: see ActorLost
            if rec.retries_left > 0 and not rec.cancelled:
                rec.retries_left -= 1
                rec.attempt += 1
                log.warning("node %s died; retrying %s elsewhere", ev.node_id, rec.spec.name)
                self.enqueue(rec)
            else:
                self.fail(
                    rec,
                    WorkerCrashedError(
                        f"The node {ev.node_id} running {rec.spec.name}() died, and no "
                        "retries were left (max_retries)."
                    ),
                )

    def _on_actor_lost(self, ev: ActorLost) -> None:
        self.actors.process_lost(ev.record, ev.exit_code, ev.cause)

    # --- submission and the queue ------------------------------------------------------

    def track(self, rec: TaskRecord) -> None:
        """Hold the task's arguments and note which are not ready yet."""
        spec = rec.spec
        objects = self.objects
        for oid in spec.deps:
            objects.hold(oid)
        for oid in spec.nested_refs:
            objects.hold(oid)
        self.tasks[spec.task_id] = rec
        self.history.submitted += 1
        rec.owner_pid = self.pid_of(spec.owner)
        self.mark(rec, PENDING_ARGS)
        for oid in spec.deps:
            entry = objects.get(oid)
            if entry is None or entry.payload is None:
                rec.missing += 1
                self.waiting_on.setdefault(oid, []).append(rec)

    def enqueue(self, rec: TaskRecord) -> None:
        self.mark(rec, PENDING_RESOURCES)
        demand = rec.spec.resources
        if not self.ledger.feasible(demand) and not self.placement.feasible_somewhere(demand):
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
            nodes = [self.ledger.labels] + [v.labels for v in self.placement.peers()]
            demand = {(choose(k, nodes) if k in markers else k): v for k, v in demand.items()}
            rec.spec.resources = demand
            if self.ledger.feasible(demand) or self.placement.feasible_somewhere(demand):
                return
        key = tuple(sorted(demand.items()))
        if key in self.warned_infeasible:
            return
        self.warned_infeasible.add(key)
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
        self.out.append(Warn(rec.spec.owner, text))

    def forget_waiters(self, object_id: bytes) -> None:
        """The object was freed unsealed (never for a live task's argument: it holds it)."""
        for rec in self.waiting_on.pop(object_id, ()):
            rec.missing -= 1  # keep counts honest

    def unwait(self, rec: TaskRecord) -> None:
        """Stop waiting for the arguments of a task that is dropped before it runs."""
        for oid in rec.spec.deps:
            waiters = self.waiting_on.get(oid)
            if waiters and rec in waiters:
                waiters.remove(rec)

    # --- dispatch ----------------------------------------------------------------------

    def dispatch(self) -> None:
        """Run what the ledger and the idle workers allow; forward what fits elsewhere;
        start workers for the rest."""
        if self.pending_groups:
            reserved = self.groups.reserve_fitting()  # resources may have come back
            if reserved:
                self.out.append(GroupsReserved(reserved))
        if not self.ready:
            return
        ledger, ready, pool = self.ledger, self.ready, self.pool
        want_workers = 0
        for demand, queue in ready.shapes():
            gpu = demand.get("GPU", 0.0) > 0 or (bool(self.group_table) and uses_group_gpu(demand))
            while queue:
                if not ledger.fits(demand):
                    break
                worker = pool.take_idle(gpu)
                if worker is None:
                    want_workers += min(len(queue), ledger.how_many_fit(demand))
                    break
                grant = ledger.acquire(demand)
                assert grant is not None
                if self.group_table and not grant.gpu_ids:
                    grant.gpu_ids = self.groups.group_gpu_ids(demand)  # its bundle's
                rec = ready.popleft(queue)
                assert isinstance(rec, TaskRecord)
                self._run(rec, worker, grant)
        if self.cluster:
            self._spill_to_peers()
        if want_workers:
            room = MAX_WORKERS - len(pool.workers) - pool.starting
            self.start_workers(min(want_workers - pool.starting, room, 4))

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
                node_id = self.placement.place_elsewhere(demand)
                if node_id is None:
                    break
                self.ready.popleft(queue)
                self.forward(rec, node_id)

    def forward(self, rec: TaskRecord, node_id: str) -> None:
        self.mark(rec, SCHEDULED)
        rec.worker_pid = None
        rec.node_id = node_id
        self.out.append(Forward(rec, node_id))

    def _run(self, rec: TaskRecord, worker: WorkerState, grant: Grant) -> None:
        rec.grant = grant
        if rec.spec.kind == p.ACTOR_CREATION:
            assert rec.actor is not None
            self._place_actor(rec.actor, worker, grant)
        else:
            worker.task = rec
        self.send(rec, worker, grant.gpu_ids)

    def send(self, rec: TaskRecord, worker: WorkerState, gpu_ids: list[int]) -> None:
        """The task goes to ``worker`` (an actor call: to its actor's worker)."""
        self.mark(rec, SCHEDULED)
        rec.worker = worker
        rec.worker_pid = worker.pid
        rec.node_id = None
        self.out.append(SendTask(rec, worker, gpu_ids))

    def _place_actor(self, record: ActorRecord, worker: WorkerState, grant: Grant) -> None:
        """The creation task got resources and a worker: dedicate the worker."""
        worker.actor = record
        worker.task = None
        record.worker = worker
        record.pid = worker.pid
        record.grant = grant
        self.feed.touch("actors", record.actor_id.hex())
        self.maintain_pool()

    def start_workers(self, count: int) -> None:
        if count > 0:
            self.pool.starting += count
            self.out.append(StartWorkers(count))

    def maintain_pool(self) -> None:
        """Keep ``pool_size`` task workers (actors' dedicated workers do not count)."""
        pool = self.pool
        if pool.stopping_now():
            return
        have = sum(1 for w in pool.workers.values() if w.actor is None and not w.exiting)
        self.start_workers(pool.pool_size - have - pool.starting)

    # --- the end of a task -------------------------------------------------------------

    def take_report(self, rec: TaskRecord, msg: p.TaskDone) -> None:
        """Record what a worker's report says of a task: start, end, error."""
        if msg.started:
            self.mark(rec, RUNNING, msg.started)
        rec.error_type = msg.error_type
        rec.error_message = msg.error_message
        rec.ended = msg.ended

    def started(self, rec: TaskRecord, when: float) -> bool:
        """The task has run a while; False if it was not waiting to be reported."""
        if rec.state is not SCHEDULED:
            return False
        self.mark(rec, RUNNING, when)
        return True

    def finish(
        self,
        rec: TaskRecord,
        results: list[p.Payload],
        contained: list[list[bytes]],
        push: bool = True,
    ) -> None:
        self.tasks.pop(rec.spec.task_id, None)
        self.record_done(rec, results)
        self.out.append(Finish(rec, results, contained, push))

    def remote_done(
        self, rec: TaskRecord, results: list[p.Payload], contained: list[list[bytes]]
    ) -> None:
        """Every result of a task forwarded to another node came back."""
        rec.ended = self.clock()
        if any(r.error for r in results):
            rec.error_type = rec.error_type or "RemoteTaskError"
        if rec.actor is not None:
            rec.actor.inflight.pop(rec.spec.task_id, None)
        self.finish(rec, results, contained)
        self.dispatch()

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

    def fail(self, rec: TaskRecord, error: BaseException) -> None:
        rec.error_type = type(error).__name__
        rec.error_message = str(error)[:1000]
        rec.ended = 0.0
        self.finish(rec, [error_payload(error)] * rec.spec.num_returns, [])

    # --- cancelling --------------------------------------------------------------------

    def _on_cancel(self, ev: CancelRequested) -> None:
        """Cancel these tasks, and with ``recursive`` the tasks they started, children
        first. The children are found with one pass over the tasks, whatever the count
        (a pass per task made cancelling a driver's 60,000 tasks take minutes)."""
        task_ids = ev.task_ids
        if ev.recursive:
            children: dict[bytes, list[bytes]] = {}
            for rec in self.tasks.values():
                if rec.spec.parent_task is not None:
                    children.setdefault(rec.spec.parent_task, []).append(rec.spec.task_id)
            order: list[bytes] = []
            seen: set[bytes] = set()
            stack = [(task_id, False) for task_id in reversed(task_ids)]
            while stack:  # depth first, each task after its children
                task_id, expanded = stack.pop()
                if expanded:
                    order.append(task_id)
                elif task_id not in seen:
                    seen.add(task_id)
                    stack.append((task_id, True))
                    stack += [(c, False) for c in children.get(task_id, ())]
            task_ids = order
        queued = [
            rec
            for rec in (self.tasks.get(task_id) for task_id in task_ids)
            if rec is not None
            and rec.state is PENDING_RESOURCES
            and rec.spec.kind != p.ACTOR_METHOD
        ]
        if len(queued) > 1:
            self.ready.remove_all(list(queued))
        dequeued = {id(rec) for rec in queued} if len(queued) > 1 else set()
        for task_id in task_ids:
            self._cancel_one(task_id, ev.force, ev.recursive, dequeued)

    def _cancel_one(self, task_id: bytes, force: bool, recursive: bool, dequeued: set[int]) -> None:
        rec = self.tasks.get(task_id)
        if rec is None:
            return
        rec.cancelled = True
        error = TaskCancelledError(rec.spec.name)
        if rec.spec.kind == p.ACTOR_METHOD and rec.state is not RUNNING:
            # still in its actor's queue, unless sent (a running call never is)
            self.out.append(UnqueueActorCall(rec))
        if rec.state is PENDING_ARGS:
            self.unwait(rec)
            self.fail(rec, error)
        elif rec.state is PENDING_RESOURCES:
            if rec.spec.kind != p.ACTOR_METHOD and id(rec) not in dequeued:
                self.ready.remove(rec)
            self.fail(rec, error)
        elif task_id in self.forwarded:
            self.out.append(ForwardCancel(task_id, force, recursive))
        elif rec.worker is not None:
            if force:
                rec.force_cancel = True
                self.out.append(KillWorker(rec.worker, signal.SIGKILL))
            else:
                self.out.append(CancelRunning(rec.worker, task_id))

    # --- placement groups --------------------------------------------------------------

    def group_removed(self, keys: set[str], error: BaseException, why: str) -> None:
        """A placement group went away (its resources are ``keys``): kill what runs in it,
        fail what waits for it."""
        for worker in list(self.pool.workers.values()):
            task = worker.task
            if task is not None and task.grant is not None and keys & set(task.grant.demand):
                worker.task = None
                self.ledger.release(task.grant)
                task.grant = None
                self.fail(task, error)
                self.out.append(KillWorker(worker, signal.SIGKILL))
            actor = worker.actor
            if actor is not None and keys & set(actor.spec.resources):  # placed in the group
                actor.no_restart = True
                actor.death_cause = f"its placement group is gone: {why}"
                self.out.append(KillWorker(worker, signal.SIGKILL))
        for demand, queue in self.ready.shapes():
            if keys & set(demand):
                while queue:
                    waiting = self.ready.popleft(queue)
                    assert isinstance(waiting, TaskRecord)
                    if waiting.actor is not None and waiting.spec.actor_id == waiting.spec.task_id:
                        waiting.actor.no_restart = True  # its creation waited for the group
                        cause = f"its placement group is gone: {why}"
                        self.out.append(ActorDead(waiting.actor, cause))
                    else:
                        self.fail(waiting, error)

    # --- invariants --------------------------------------------------------------------

    def validate(self) -> None:
        """Check the machine's tables agree with each other; raises AssertionError."""
        check_tasks(self.tasks, self.ready, self.waiting_on, self.pool)
