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

from ..common import protocol as p
from ..common.ids import task_id_of

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .tasks import Tasks


class Cancellation:
    """Cancel handlers of the node manager: which tasks a message means; what happens to
    each is the task state machine's (:mod:`task_machine`)."""

    def __init__(self, tasks: Tasks) -> None:
        self.tasks = tasks

    def drop_tasks_of(self, conn: ServerConnection) -> None:
        """A driver left: nobody will ever ask for its tasks' results, so its tasks (and
        theirs) are cancelled, as Ray ends a job's tasks when its driver exits. Waiting
        ones would otherwise hold their place in the queue for ever."""
        mine = [
            rec.spec.task_id
            for rec in self.tasks.tasks.values()
            if rec.spec.owner == conn.conn_id and rec.spec.kind == p.TASK
        ]
        self.tasks.cancel(mine, force=False, recursive=True, why="driver-left")

    def on_cancel(self, conn: ServerConnection, msg: p.CancelRequest) -> None:
        self.tasks.cancel([task_id_of(msg.object_id)], msg.force, msg.recursive, "CancelRequest")

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
        self.tasks.cancel(matching, msg.force, recursive=True, why="CancelCell")
        if msg.req_id:
            conn.send(p.QueryReply(req_id=msg.req_id, data=len(matching)))
