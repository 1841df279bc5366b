"""The node's task state machine, driven by events alone: no sockets, no processes.

Every event goes through ``step``, which checks the machine's invariants after it
(``TaskStateMachine.validate``), as a dask test fixture does with ``validate_state``.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import signal
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest
from jupyter_ray.runtime.common import protocol as p
from jupyter_ray.runtime.common.exceptions import (
    RayActorError,
    TaskCancelledError,
    WorkerCrashedError,
)
from jupyter_ray.runtime.common.ids import object_id_for
from jupyter_ray.runtime.common.serialization import deserialize
from jupyter_ray.runtime.node.actors import ALIVE, DEAD, RESTARTING, ActorRecord
from jupyter_ray.runtime.node.cluster import Membership
from jupyter_ray.runtime.node.feed import ChangeFeed
from jupyter_ray.runtime.node.history import TaskHistory
from jupyter_ray.runtime.node.objects import ObjectTable
from jupyter_ray.runtime.node.records import TaskRecord, TaskStatus
from jupyter_ray.runtime.node.scheduler import ReadyQueue, ResourceLedger
from jupyter_ray.runtime.node.task_events import (
    ActorDead,
    CancelRequested,
    CancelRunning,
    DepsReady,
    Finish,
    KillWorker,
    ReleaseHolds,
    ReleasePayloads,
    SendTask,
    StartWorkers,
    TaskFinished,
    TaskSubmitted,
    UnqueueActorCall,
    WorkerBlocked,
    WorkerIdle,
    WorkerLost,
    WorkerUnblocked,
)
from jupyter_ray.runtime.node.task_machine import TaskStateMachine
from jupyter_ray.runtime.node.worker_pool import WorkerPool

_ids = itertools.count(1)


class Node:
    """A state machine on a node with ``cpus`` CPUs and ``workers`` idle workers."""

    def __init__(self, cpus: float = 2, workers: int = 2) -> None:
        self.ledger = ResourceLedger({"CPU": cpus})
        self.ready = ReadyQueue()
        self.objects = ObjectTable()
        self.history = TaskHistory(100)
        self.pool = WorkerPool("/nonexistent.sock", "/tmp/logs", {}, int(cpus), asyncio.Event())
        self.machine = TaskStateMachine(
            "node-1",
            self.ledger,
            self.ready,
            self.objects,
            {},
            self.pool,
            Membership("node-1", self.ledger, {}, None, dict),
            {},
            self.history,
            ChangeFeed(),
            True,
            lambda conn_id: 1000 + conn_id,
        )
        groups = SimpleNamespace(
            groups={}, pending_groups=[], reserve_fitting=list, group_gpu_ids=lambda d: []
        )
        self.machine.wire(groups)
        self.machine.story = deque(maxlen=100)
        self.sent: list[Any] = []
        for _ in range(workers):
            self.add_worker()

    def add_worker(self) -> Any:
        n = next(_ids)
        conn = SimpleNamespace(conn_id=n, pid=n, send=self.sent.append)
        return self.pool.joined(conn, 4000 + n, f"w{n}")

    def step(self, event: Any) -> list[Any]:
        out = self.machine.handle(event)
        self.machine.validate()
        return out

    def submit(self, name: str = "f", deps: list[bytes] | None = None, **kw: Any) -> TaskRecord:
        spec = task_spec(name, deps or [], **kw)
        for i in range(spec.num_returns):
            self.objects.create(object_id_for(spec.task_id, i), spec.owner)
        rec = TaskRecord(spec, retries_left=spec.max_retries)
        self.last = self.step(TaskSubmitted(rec, "test-submit"))
        return rec

    def done(self, rec: TaskRecord, **kw: Any) -> list[Any]:
        worker = rec.worker
        msg = p.TaskDone(rec.spec.task_id, [payload(b"ok")], [[]], **kw)
        self.machine.take_report(rec, msg)
        return self.step(TaskFinished(rec, worker, msg, "test-done"))

    def lose(self, worker: Any) -> list[Any]:
        """The worker's connection dropped: the shell takes it out of the pool first."""
        assert self.pool.lost(worker.conn.conn_id) is worker
        return self.step(WorkerLost(worker, -9, "test-worker-lost"))

    def seal(self, oid: bytes) -> list[Any]:
        """An argument was sealed (ObjectManager.sealed tells the machine so)."""
        self.objects.seal(oid, payload(b"arg"), [])
        return self.step(DepsReady(oid, "test-sealed"))


def task_spec(
    name: str,
    deps: list[bytes],
    cpus: float = 1,
    max_retries: int = 0,
    kind: int = p.TASK,
    actor_id: bytes | None = None,
    owner: int = 7,
    task_id: bytes | None = None,
    parent: bytes | None = None,
    resources: dict[str, float] | None = None,
) -> p.TaskSpec:
    task_id = task_id or next(_ids).to_bytes(16, "big")
    return p.TaskSpec(
        task_id,
        name,
        b"fn",
        b"",
        deps,
        [],
        1,
        resources if resources is not None else ({"CPU": cpus} if cpus else {}),
        max_retries,
        False,
        0,
        parent_task=parent,
        owner=owner,
        kind=kind,
        actor_id=actor_id,
    )


def payload(data: bytes) -> p.Payload:
    return p.Payload(data=data, size=len(data))


def of(kind: type, instructions: list[Any]) -> list[Any]:
    return [i for i in instructions if type(i) is kind]


def error_of(finish: Finish) -> BaseException:
    assert finish.results[0].error
    data = finish.results[0].data
    assert data is not None
    return deserialize(memoryview(data))


# --- dispatch --------------------------------------------------------------------------


def test_dispatch_runs_what_fits_and_queues_the_rest() -> None:
    node = Node(cpus=2, workers=2)
    a, b, c = node.submit("a"), node.submit("b"), node.submit("c")
    assert a.state is b.state is TaskStatus.SCHEDULED
    assert c.state is TaskStatus.PENDING_RESOURCES
    assert a.worker is not b.worker and a.worker is not None
    assert a.times.keys() >= {TaskStatus.PENDING_ARGS, TaskStatus.SCHEDULED}
    out = node.done(a, started=1.0, ended=2.0)
    finish = of(Finish, out)
    assert [f.rec for f in finish] == [a]
    assert [(s.rec, s.worker) for s in of(SendTask, out)] == [(c, a.worker)]
    assert a.state is TaskStatus.FINISHED and a.spec.task_id not in node.machine.tasks
    assert node.history.get(a.spec.task_id.hex()).state == "FINISHED"  # a plain string


def test_a_task_waits_for_its_arguments_then_runs() -> None:
    node = Node()
    arg = object_id_for(b"\x01" * 16, 0)
    node.objects.create(arg, 7)
    rec = node.submit("g", deps=[arg])
    assert rec.state is TaskStatus.PENDING_ARGS and rec.missing == 1
    assert not of(SendTask, node.last)
    out = node.seal(arg)
    assert [s.rec for s in of(SendTask, out)] == [rec]


def test_dispatch_starts_workers_only_for_what_fits() -> None:
    node = Node(cpus=4, workers=0)
    recs = [node.submit(f"t{i}") for i in range(6)]
    starts = [s.count for s in of(StartWorkers, node.last)]
    assert node.pool.starting == 4 and sum(s for s in starts) <= 4
    worker = node.add_worker()
    out = node.step(WorkerIdle("test-hello"))
    assert [s.worker for s in of(SendTask, out)] == [worker]
    assert recs[0].state is TaskStatus.SCHEDULED


# --- retries ---------------------------------------------------------------------------


def test_a_task_whose_worker_dies_is_retried_then_fails_when_retries_run_out() -> None:
    node = Node(cpus=1, workers=1)
    rec = node.submit("crashy", max_retries=1)
    first = rec.worker
    assert first is not None
    out = node.lose(first)
    assert rec.attempt == 1 and rec.retries_left == 0
    assert [s.count for s in of(StartWorkers, out)] == [1], "a replacement, for the pool"
    assert rec.state is TaskStatus.PENDING_RESOURCES and not of(SendTask, out)
    second = node.add_worker()
    out = node.step(WorkerIdle("test-hello"))
    assert [(s.rec, s.worker) for s in of(SendTask, out)] == [(rec, second)]
    out = node.lose(second)
    (finish,) = of(Finish, out)
    assert finish.rec is rec and rec.state is TaskStatus.FAILED
    err = error_of(finish)
    assert isinstance(err, WorkerCrashedError) and "after 2 attempts" in str(err)
    assert node.ledger.available["CPU"] == 1


def test_retry_exceptions_requeues_and_drops_the_attempt_results() -> None:
    node = Node(cpus=1, workers=1)
    rec = node.submit("flaky", max_retries=2)
    out = node.done(rec, retry=True)
    assert of(ReleasePayloads, out) and not of(Finish, out)
    assert rec.attempt == 1 and rec.state is TaskStatus.SCHEDULED


# --- cancel ----------------------------------------------------------------------------


def test_cancel_of_pending_tasks_fails_them_at_once() -> None:
    node = Node(cpus=1, workers=1)
    node.submit("busy")
    queued = node.submit("queued")
    arg = object_id_for(b"\x02" * 16, 0)
    node.objects.create(arg, 7)
    waiting = node.submit("waiting", deps=[arg])
    out = node.step(CancelRequested([queued.spec.task_id], False, True, "test-cancel"))
    (finish,) = of(Finish, out)
    assert isinstance(error_of(finish), TaskCancelledError)
    assert queued.state is TaskStatus.CANCELLED and not node.ready
    out = node.step(CancelRequested([waiting.spec.task_id], False, True, "test-cancel"))
    assert waiting.state is TaskStatus.CANCELLED
    assert not node.machine.waiting_on.get(arg)


def test_cancel_of_a_running_task_interrupts_it_or_kills_its_worker() -> None:
    node = Node(cpus=2, workers=2)
    soft, hard = node.submit("soft"), node.submit("hard")
    out = node.step(CancelRequested([soft.spec.task_id], False, False, "test-cancel"))
    assert [(c.worker, c.task_id) for c in of(CancelRunning, out)] == [
        (soft.worker, soft.spec.task_id)
    ]
    assert soft.state is TaskStatus.SCHEDULED  # until its worker reports
    worker = hard.worker
    out = node.step(CancelRequested([hard.spec.task_id], True, False, "test-cancel"))
    assert [(k.worker, k.sig) for k in of(KillWorker, out)] == [(worker, signal.SIGKILL)]
    out = node.lose(worker)  # the kill lands: cancelled, not retried
    (finish,) = of(Finish, out)
    assert isinstance(error_of(finish), TaskCancelledError)
    assert hard.state is TaskStatus.CANCELLED


def test_cancel_is_recursive_children_first() -> None:
    node = Node(cpus=2, workers=2)
    parent = node.submit("parent")
    child = node.submit("child", parent=parent.spec.task_id)
    queued = node.submit("grandchild", parent=child.spec.task_id)
    other = node.submit("other")
    out = node.step(CancelRequested([parent.spec.task_id], False, True, "test-cancel"))
    assert [c.task_id for c in of(CancelRunning, out)] == [
        child.spec.task_id,
        parent.spec.task_id,
    ]
    assert queued.state is TaskStatus.CANCELLED
    assert [f.rec for f in of(Finish, out)] == [queued]
    assert other.state is TaskStatus.PENDING_RESOURCES


def test_cancel_leaves_a_running_actor_call_in_no_queue() -> None:
    """The guard compared a state with "running" (lower case): always true."""
    node = Node()
    record = actor(node, max_restarts=0)
    running = call(node, record)
    node.machine.run("test", node.machine.send, running, record.worker, [])
    node.machine.started(running, 1.0)
    queued = call(node, record)
    out = node.step(CancelRequested([running.spec.task_id], False, False, "test-cancel"))
    assert not of(UnqueueActorCall, out)
    assert [c.task_id for c in of(CancelRunning, out)] == [running.spec.task_id]
    out = node.step(CancelRequested([queued.spec.task_id], False, False, "test-cancel"))
    assert [u.rec for u in of(UnqueueActorCall, out)] == [queued]
    assert queued.state is TaskStatus.CANCELLED


# --- actors ----------------------------------------------------------------------------


def actor(node: Node, max_restarts: int) -> ActorRecord:
    """An actor whose creation ran on one of the node's workers, alive now."""
    actor_id = next(_ids).to_bytes(16, "big")
    spec = task_spec("A", [], kind=p.ACTOR_CREATION, actor_id=actor_id, task_id=actor_id)
    options = p.ActorOptions("A", b"", max_restarts=max_restarts)
    record = ActorRecord(actor_id, object_id_for(actor_id, 0), spec, options, 7)
    out = node.machine.run("test", node.machine.actors.schedule_creation, record, TaskRecord(spec))
    node.machine.validate()
    (send,) = of(SendTask, out)
    assert record.worker is send.worker and send.worker.actor is record
    # what ActorManager does with the creation's report
    creation = node.machine.tasks[actor_id]
    out = node.machine.run("test", node.machine.actors.creation_done, creation, [payload(b"")])
    assert [h.spec for h in of(ReleaseHolds, out)] == [spec]
    assert creation.state is TaskStatus.FINISHED and actor_id not in node.machine.tasks
    if record.grant is not None:
        node.ledger.release(record.grant)
        record.grant = None
    record.state = ALIVE
    return record


def call(node: Node, record: ActorRecord, retries: int = 0) -> TaskRecord:
    spec = task_spec("A.m", [], cpus=0, kind=p.ACTOR_METHOD, actor_id=record.actor_id)
    rec = TaskRecord(spec, retries_left=retries)
    rec.actor = record
    node.machine.track(rec)
    record.queues.setdefault(spec.owner, deque()).append(rec)
    return rec


def test_an_actor_restarts_and_its_calls_are_retried_while_allowed() -> None:
    node = Node(cpus=2, workers=2)
    record = actor(node, max_restarts=1)
    first = record.worker
    retried, lost = call(node, record, retries=1), call(node, record, retries=0)
    for rec in (retried, lost):
        record.queues[7].remove(rec)
        node.machine.run("test", node.machine.send, rec, first, [])
        record.inflight[rec.spec.task_id] = rec
    out = node.lose(first)
    assert record.state is RESTARTING and record.restarts == 1
    assert list(record.queues[7]) == [retried] and retried.attempt == 1
    (failed,) = of(Finish, out)
    assert failed.rec is lost and isinstance(error_of(failed), RayActorError)
    (creation,) = [s for s in of(SendTask, out) if s.rec.spec.kind == p.ACTOR_CREATION]
    assert creation.worker is not first and record.worker is creation.worker
    # the second death is one too many
    node.machine.run(
        "test", node.machine.actors.creation_done, node.machine.tasks[record.actor_id], []
    )
    record.state = ALIVE
    out = node.lose(record.worker)
    assert [d.record for d in of(ActorDead, out)] == [record]
    assert record.restarts == 1 and record.state is not DEAD  # ActorDead does that


def test_an_actor_killed_for_good_is_not_restarted() -> None:
    node = Node()
    record = actor(node, max_restarts=-1)
    record.no_restart = True
    out = node.lose(record.worker)
    (dead,) = of(ActorDead, out)
    assert "killed" in dead.cause and record.restarts == 0


@pytest.mark.parametrize("n", [1, 50])
def test_validate_holds_through_a_burst(n: int) -> None:
    node = Node(cpus=2, workers=2)
    recs = [node.submit(f"t{i}") for i in range(n)]
    while any(r.state is not TaskStatus.FINISHED for r in recs):
        running = [r for r in recs if r.state is TaskStatus.SCHEDULED]
        node.done(running[0])
    assert node.ledger.available["CPU"] == 2 and not node.ready
    assert len(node.machine.story or ()) > 0


def test_an_actor_that_dies_before_its_creation_ran_drops_it() -> None:
    node = Node(cpus=1, workers=1)
    node.submit("busy")
    actor_id = next(_ids).to_bytes(16, "big")
    spec = task_spec("B", [], kind=p.ACTOR_CREATION, actor_id=actor_id, task_id=actor_id)
    record = ActorRecord(actor_id, object_id_for(actor_id, 0), spec, p.ActorOptions("B", b""), 7)
    node.machine.run("test", node.machine.actors.schedule_creation, record, TaskRecord(spec))
    node.machine.validate()
    assert node.machine.tasks[actor_id].state is TaskStatus.PENDING_RESOURCES
    out = node.machine.run("test", node.machine.actors.drop_creation, actor_id)
    node.machine.validate()
    assert actor_id not in node.machine.tasks and not node.ready and of(ReleaseHolds, out)


def test_removing_a_group_kills_what_runs_in_it_and_fails_what_waits() -> None:
    node = Node(cpus=4, workers=2)
    node.ledger.add({"CPU_group_g": 2.0})
    running = node.submit("running", resources={"CPU_group_g": 1.0})
    waiting = node.submit("waiting", resources={"CPU_group_g": 2.0})  # only 1 left
    outside = node.submit("outside")
    assert running.state is TaskStatus.SCHEDULED and outside.state is TaskStatus.SCHEDULED
    assert waiting.state is TaskStatus.PENDING_RESOURCES
    worker = running.worker
    error = RuntimeError("the group is gone")
    out = node.machine.run("test", node.machine.group_removed, {"CPU_group_g"}, error, "why")
    node.machine.validate()
    assert [f.rec for f in of(Finish, out)] == [running, waiting]
    assert [k.worker for k in of(KillWorker, out)] == [worker]
    assert worker is not None and worker.task is None and not node.ready
    assert outside.state is TaskStatus.SCHEDULED


def test_state_records_carry_plain_strings() -> None:
    """TaskState goes to clients (pickled) and to the Lab extension (JSON): no enums."""
    node = Node()
    rec = node.submit("f")
    node.done(rec, started=1.0, ended=2.0)
    record = node.history.get(rec.spec.task_id.hex())
    assert type(record.state) is str and record.state == "FINISHED"
    assert all(type(k) is str for k in record.times)
    assert set(record.times) == {
        "PENDING_ARGS",
        "PENDING_RESOURCES",
        "SCHEDULED",
        "RUNNING",
        "FINISHED",
    }
    assert b"TaskStatus" not in pickle.dumps(record)


def test_a_blocked_worker_lends_its_cpu_until_it_is_unblocked() -> None:
    node = Node(cpus=1, workers=2)
    parent = node.submit("parent")
    child = node.submit("child")
    assert child.state is TaskStatus.PENDING_RESOURCES
    worker = parent.worker
    out = node.step(WorkerBlocked(worker, [object_id_for(child.spec.task_id, 0)], "test-blocked"))
    assert [s.rec for s in of(SendTask, out)] == [child]
    assert worker is not None and worker.lent_cpus == 1
    node.done(child)
    node.step(WorkerUnblocked(worker, "test-unblocked"))
    assert worker.lent_cpus == 0 and node.ledger.available["CPU"] == 0
    node.done(parent)
    assert node.ledger.available["CPU"] == 1


def test_a_worker_blocked_on_ready_objects_lends_nothing() -> None:
    node = Node(cpus=1, workers=2)
    parent = node.submit("parent")
    ready = object_id_for(b"\x03" * 16, 0)
    node.objects.create(ready, 7)
    node.objects.seal(ready, payload(b"v"), [])
    node.step(WorkerBlocked(parent.worker, [ready], "test-blocked"))
    assert parent.worker is not None and parent.worker.lent_cpus == 0
