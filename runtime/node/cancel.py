"""Cancelling tasks: one, a notebook cell's, a driver's that left (a component
of the node manager; every method runs on its event loop).

A task still waiting (for its arguments, or for resources) is failed with
``TaskCancelledError`` at once; a running one gets ``CancelTask`` in its worker (a signal
on the main thread, a flag or ``Task.cancel`` for an actor's other threads and loops), or
with ``force`` its worker is killed; one forwarded to another node gets the cancel there.
Children go first, found in one pass over the task table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import protocol as p
from ..exceptions import TaskCancelledError
from ..ids import object_id_for, task_id_of
from .records import TaskStatus

if TYPE_CHECKING:
    from ..transport import ServerConnection
    from .actor_manager import ActorManager
    from .peers import Peers
    from .scheduler import ReadyQueue
    from .tasks import Tasks
    from .worker_pool import WorkerPool


class Cancellation:
    """Cancel handlers of the node manager; see the module docstring."""

    def __init__(
        self,
        tasks: Tasks,
        ready: ReadyQueue,
        peers: Peers,
        actors: ActorManager,
        pool: WorkerPool,
    ) -> None:
        self.tasks = tasks
        self.ready = ready
        self.peers = peers
        self.actors = actors
        self.pool = pool

    def drop_tasks_of(self, conn: ServerConnection) -> None:
        """A driver left: nobody will ever ask for its tasks' results, so its tasks (and
        theirs) are cancelled, as Ray ends a job's tasks when its driver exits. Waiting
        ones would otherwise hold their place in the queue for ever."""
        mine = [
            rec.spec.task_id
            for rec in self.tasks.tasks.values()
            if rec.spec.owner == conn.conn_id and rec.spec.kind == p.TASK
        ]
        self._cancel_many(mine, force=False, recursive=True)

    def on_cancel(self, conn: ServerConnection, msg: p.CancelRequest) -> None:
        self._cancel(task_id_of(msg.object_id), msg.force, msg.recursive)

    def on_cancel_cell(self, conn: ServerConnection, msg: p.CancelCell) -> None:
        """Cancel the cell's tasks and their children; actors it created live on.

        Nested tasks carry the cell and job of the task that submitted them, so they
        match too; tasks forwarded to other nodes get the cancel there (``_cancel``).
        With a ``req_id`` the driver hears how many live tasks were cancelled (the
        kernel says so in the KeyboardInterrupt it raises).
        """
        matching = [
            rec.spec.task_id
            for rec in self.tasks.tasks.values()
            if rec.spec.cell_id == msg.cell_id
            and rec.spec.job_id == msg.job_id
            and rec.spec.kind != p.ACTOR_CREATION
        ]
        self._cancel_many(matching, msg.force, recursive=True)
        if msg.req_id:
            conn.send(p.QueryReply(msg.req_id, len(matching)))

    def _cancel(self, task_id: bytes, force: bool, recursive: bool) -> None:
        self._cancel_many([task_id], force, recursive)

    def _cancel_many(self, task_ids: list[bytes], force: bool, recursive: bool) -> None:
        """Cancel these tasks, and with ``recursive`` the tasks they started, children
        first. The children are found with one pass over the tasks, whatever the count
        (a pass per task made cancelling a driver's 60,000 tasks take minutes)."""
        if recursive:
            children: dict[bytes, list[bytes]] = {}
            for rec in self.tasks.tasks.values():
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
            for rec in (self.tasks.tasks.get(task_id) for task_id in task_ids)
            if rec is not None
            and rec.state == TaskStatus.PENDING_RESOURCES
            and rec.spec.kind != p.ACTOR_METHOD
        ]
        if len(queued) > 1:
            self.ready.remove_all(list(queued))
        dequeued = {id(rec) for rec in queued} if len(queued) > 1 else set()
        for task_id in task_ids:
            self._cancel_one(task_id, force, recursive, dequeued)

    def _cancel_one(self, task_id: bytes, force: bool, recursive: bool, dequeued: set[int]) -> None:
        rec = self.tasks.tasks.get(task_id)
        if rec is None:
            return
        rec.cancelled = True
        error = TaskCancelledError(rec.spec.name)
        if rec.spec.kind == p.ACTOR_METHOD and rec.state is not TaskStatus.RUNNING:
            self.actors.unqueue_actor_call(rec)
        if rec.state == TaskStatus.PENDING_ARGS:
            self.tasks.unwait(rec)
            self.tasks.fail(rec, error)
        elif rec.state == TaskStatus.PENDING_RESOURCES:
            if rec.spec.kind != p.ACTOR_METHOD and id(rec) not in dequeued:
                self.ready.remove(rec)
            self.tasks.fail(rec, error)
        elif spec_id_forwarded := self.peers.forwarded.get(task_id):
            spec_id_forwarded.link.send(
                p.CancelRequest(object_id_for(task_id, 0), force, recursive)
            )
        elif rec.worker is not None:
            if force:
                rec.force_cancel = True
                self.pool.kill(rec.worker)
            else:
                rec.worker.conn.send(p.CancelTask(task_id, False))
