"""The task state machine's transitions of actors' tasks: creations (the first, a
restart's), calls that die with their actor's process, direct and routed calls.

Part of :class:`task_machine.TaskStateMachine` (``machine.actors``), sans-IO like it:
it changes the machine's tables through :class:`task_events.Core` and appends the
machine's instructions.
"""

from __future__ import annotations

from collections import deque

from ..common import protocol as p
from ..common.exceptions import ActorDiedError, RayActorError
from .actors import DEAD, RESTARTING, ActorRecord
from .records import TaskRecord, TaskStatus, WorkerState
from .task_events import ActorDead, Core, ReleaseHolds

PENDING_ARGS = TaskStatus.PENDING_ARGS
PENDING_RESOURCES = TaskStatus.PENDING_RESOURCES
SCHEDULED = TaskStatus.SCHEDULED


def actor_death_error(record: ActorRecord, cause: str | None = None) -> BaseException:
    return ActorDiedError(
        f"The actor {record.options.class_name} ({record.actor_id.hex()[:12]}) is dead: "
        f"{cause or record.death_cause}.",
        cause=record.death_error,
    )


class ActorTransitions:
    """Transitions of actors' creation tasks and calls; see the module docstring."""

    def __init__(self, machine: Core) -> None:
        self.m = machine

    def schedule_creation(self, record: ActorRecord, rec: TaskRecord) -> None:
        """Queue an actor's creation task (the first, or a restart's)."""
        rec.actor = record
        rec.retries_left = 0
        self.m.track(rec)
        if rec.missing == 0:
            self.m.enqueue(rec)

    def creation_done(self, rec: TaskRecord, results: list[p.Payload]) -> None:
        """An actor's creation task ended (here, or on the node that hosts the actor)."""
        if self.m.tasks.get(rec.spec.task_id) is rec:
            del self.m.tasks[rec.spec.task_id]
        self.m.record_done(rec, results)
        self.m.out.append(ReleaseHolds(rec.spec))
        record = rec.actor
        if record is not None and record.grant is not None and not record.options.hold_resources:
            # Placement needs the resources; a running actor holds none unless asked to.
            self.m.ledger.release(record.grant)
            record.grant = None

    def drop_creation(self, actor_id: bytes) -> None:
        """The actor died before its creation task ended: drop that attempt."""
        creation = self.m.tasks.get(actor_id)
        if creation is None or creation.spec.kind != p.ACTOR_CREATION:
            return
        del self.m.tasks[actor_id]
        if creation.state is PENDING_RESOURCES:
            self.m.ready.remove(creation)
        elif creation.state is PENDING_ARGS:
            self.m.unwait(creation)
        self.m.out.append(ReleaseHolds(creation.spec))

    def drop_call(self, rec: TaskRecord, error: BaseException) -> None:
        """A call still queued in its actor, which died: it fails."""
        self.m.unwait(rec)
        self.m.fail(rec, error)

    def direct_call(self, rec: TaskRecord, worker: WorkerState | None, when: float) -> None:
        """A call its caller sent straight to the actor's worker (see direct.py)."""
        if worker is not None:
            rec.worker = worker
            rec.worker_pid = worker.pid
        self.m.mark(rec, SCHEDULED, when or None)

    def process_lost(self, record: ActorRecord, exit_code: int | None, cause: str | None) -> None:
        """The actor's process died, or (``cause`` given) the node hosting it: restart it
        while ``max_restarts`` allows, its calls in flight retried per their retries."""
        self.m.feed.touch("actors", record.actor_id.hex())
        if record.grant is not None:
            self.m.ledger.release(record.grant)
            record.grant = None
        record.worker = None
        inflight = list(record.inflight.values())
        record.inflight.clear()
        creation = self.m.tasks.get(record.actor_id)
        if creation is not None and creation.spec.kind == p.ACTOR_CREATION:
            self.m.tasks.pop(record.actor_id, None)
            self.m.out.append(ReleaseHolds(creation.spec))
        if record.state == DEAD:
            return
        if record.exiting_reason:
            cause = record.exiting_reason
        elif record.no_restart:
            cause = record.death_cause or "it was killed with jupyter_ray.kill()"
        elif cause is None:
            code = f" with exit code {exit_code}" if exit_code is not None else ""
            cause = f"its worker process (pid {record.pid}) died{code}"
        limit = record.options.max_restarts
        can_restart = not record.no_restart and not record.exiting_reason
        can_restart = can_restart and (limit < 0 or record.restarts < limit)
        if not can_restart:
            for rec in inflight:
                self.m.fail(rec, actor_death_error(record, cause))
            self.m.out.append(ActorDead(record, cause))
            return
        record.state = RESTARTING
        record.restarts += 1
        self.calls_lost(record, inflight, cause)
        self.schedule_creation(record, TaskRecord(record.spec))

    def calls_lost(self, record: ActorRecord, recs: list[TaskRecord], cause: str) -> None:
        """Calls that died with the actor's process: queue them again, at the front of
        their callers' queues, while ``max_task_retries`` allows; fail the others."""
        for rec in reversed(recs):
            if rec.retries_left > 0:
                rec.retries_left -= 1
                rec.attempt += 1
                rec.state = PENDING_RESOURCES
                record.queues.setdefault(rec.spec.owner, deque()).appendleft(rec)
            else:
                self.m.fail(
                    rec,
                    RayActorError(
                        f"The actor {record.options.class_name} died while running "
                        f"{rec.spec.name}(): {cause}. It is restarting; the call was not "
                        "retried because max_task_retries is 0."
                    ),
                )

    def routed(self, rec: TaskRecord) -> None:
        """An actor call released to the node its actor lives on (or its owner's)."""
        self.m.mark(rec, SCHEDULED)
