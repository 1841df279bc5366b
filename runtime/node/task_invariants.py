"""The invariants of the task state machine (:mod:`task_machine`): what its tables must
agree on between two events. Checked by the unit tests after every event and by the
``validate`` query (so at the end of every process-level test).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..common import protocol as p
from ..common.labels import MARKER
from .records import TaskRecord, TaskStatus

if TYPE_CHECKING:
    from .scheduler import ReadyQueue
    from .task_events import Workers

PENDING_ARGS = TaskStatus.PENDING_ARGS
PENDING_RESOURCES = TaskStatus.PENDING_RESOURCES
SCHEDULED = TaskStatus.SCHEDULED
RUNNING = TaskStatus.RUNNING


def check_tasks(
    tasks: dict[bytes, TaskRecord],
    ready: ReadyQueue,
    waiting_on: dict[bytes, list[TaskRecord]],
    pool: Workers,
) -> None:
    """Raise AssertionError where the task table, the ready queue, the waiting lists and
    the pool disagree."""
    queued: dict[int, TaskRecord] = {}
    for demand, queue in ready.shapes():
        for item in queue:
            assert isinstance(item, TaskRecord)
            assert id(item) not in queued, f"{item.spec.name} is queued twice"
            queued[id(item)] = item
            assert item.state is PENDING_RESOURCES, (item.spec.name, item.state)
            assert tasks.get(item.spec.task_id) is item, "a queued task is untracked"
            assert item.spec.resources == demand or any(k.startswith(MARKER) for k in demand), (
                "queued under another shape"
            )
    for task_id, rec in tasks.items():
        spec = rec.spec
        assert spec.task_id == task_id
        assert isinstance(rec.state, TaskStatus)
        plain = spec.kind != p.ACTOR_METHOD
        if rec.state is PENDING_ARGS and plain:
            waits = sum(waiting_on.get(oid, []).count(rec) for oid in set(spec.deps))
            assert rec.missing > 0, f"{spec.name} waits for no argument"
            assert waits == rec.missing, (spec.name, waits, rec.missing)
        if rec.state is PENDING_RESOURCES and plain:
            assert id(rec) in queued, f"{spec.name} is PENDING_RESOURCES but not queued"
        if rec.state in (SCHEDULED, RUNNING) and plain and rec.node_id is None:
            worker = rec.worker
            assert worker is not None, f"{spec.name} runs nowhere"
            if spec.kind == p.TASK:
                assert worker.task is rec, f"{spec.name}'s worker runs something else"
                assert rec.grant is not None, f"{spec.name} runs without resources"
    for waiters in waiting_on.values():
        for rec in waiters:
            assert rec.missing > 0, f"{rec.spec.name} waits with nothing missing"
    idle = pool.idle
    assert len({id(w) for w in idle}) == len(idle), "a worker is idle twice"
    for worker in idle:
        assert worker.task is None and worker.actor is None, "a busy worker is idle"
        assert not worker.exiting, "an exiting worker is idle"
    for worker in pool.workers.values():
        task = worker.task
        if task is not None:
            assert tasks.get(task.spec.task_id) is task, "a worker runs a lost task"
    assert pool.starting >= 0
