"""The node's side of generator tasks: each value a worker yields becomes an object.

A component of the node manager (:mod:`manager`), on its event loop. The owner's and the
worker's sides are in :mod:`jupyter_ray.runtime.generators`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..common import protocol as p
from ..common.ids import object_id_for

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .object_manager import ObjectManager
    from .records import TaskRecord


class GeneratorItems:
    """The node manager's handler for yielded values."""

    def __init__(
        self,
        tasks: dict[bytes, TaskRecord],
        objects: ObjectManager,
        conns: dict[int, ServerConnection],
    ) -> None:
        self.tasks = tasks
        self.objects = objects
        self.table = objects.objects
        self.conns = conns

    def on_generator_item(self, conn: ServerConnection, msg: p.GeneratorItem) -> None:
        oid = object_id_for(msg.task_id, msg.index)
        allocs = self.objects.pending_allocs.get(conn.conn_id)
        if allocs:
            allocs.pop(oid, None)  # the item's now, not the worker's
        rec = self.tasks.get(msg.task_id)
        owner = rec.spec.owner if rec is not None else 0
        if rec is None or rec.cancelled or msg.index <= rec.items or owner not in self.conns:
            # a retried generator's items seen before, or nobody to hand it to
            self.objects.store.release_payload(msg.payload)
            return
        rec.items = msg.index
        entry = self.table.create(oid, owner)
        self.table.add_waiter(entry, owner, False)  # pushed to the owner when sealed
        self.objects.sealed(oid, msg.payload, msg.contained)
