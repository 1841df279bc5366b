"""The node's side of generator tasks: each value a worker yields becomes an object.

A mixin of :class:`manager.NodeManager`, on its event loop. The owner's and the worker's
sides are in :mod:`jupyter_ray.runtime.generators`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import protocol as p
from ..ids import object_id_for

if TYPE_CHECKING:
    from ..transport import ServerConnection
    from .manager import TaskRecord
    from .objects import ObjectEntry, ObjectTable


class GeneratorItems:
    """The node manager's handler for yielded values (a mixin of ``NodeManager``)."""

    if TYPE_CHECKING:
        tasks: dict[bytes, TaskRecord]
        objects: ObjectTable
        conns: dict[int, ServerConnection]
        pending_allocs: dict[int, dict[bytes, p.Payload]]

        def _sealed(self, object_id: bytes, payload: p.Payload, contained: list[bytes]) -> None: ...
        def _release_payload(self, payload: p.Payload) -> None: ...

    def on_generator_item(self, conn: ServerConnection, msg: p.GeneratorItem) -> None:
        oid = object_id_for(msg.task_id, msg.index)
        allocs = self.pending_allocs.get(conn.conn_id)
        if allocs:
            allocs.pop(oid, None)  # the item's now, not the worker's
        rec = self.tasks.get(msg.task_id)
        owner = rec.spec.owner if rec is not None else 0
        if rec is None or rec.cancelled or msg.index <= rec.items or owner not in self.conns:
            # a retried generator's items seen before, or nobody to hand it to
            self._release_payload(msg.payload)
            return
        rec.items = msg.index
        entry: ObjectEntry = self.objects.create(oid, owner)
        self.objects.add_waiter(entry, owner, False)  # pushed to the owner when sealed
        self._sealed(oid, msg.payload, msg.contained)
