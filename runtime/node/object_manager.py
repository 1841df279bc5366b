"""The node manager's object handlers: puts, seals, deliveries, references.

A component of the node manager (:mod:`manager`); everything runs on its event loop. It
ties the object table to connections: who is told when an object is sealed, who pins
which range. Memory (allocation, spilling, freeing) is :mod:`object_store`'s; values that
cross machines go through :mod:`transfer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..common import protocol as p
from ..common.exceptions import ObjectStoreFullError
from ..common.serialization import serialize
from .object_store import ObjectStore
from .objects import ObjectEntry
from .transfer import CHUNKED, Transfers, should_chunk

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .feed import ChangeFeed


def _unwired(object_id: bytes) -> None:
    raise RuntimeError("ObjectManager.deps_ready was not wired by the node manager")


class ObjectManager:
    """Object handlers of a node manager; see the module docstring."""

    def __init__(
        self,
        store: ObjectStore,
        conns: dict[int, ServerConnection],
        feed: ChangeFeed,
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.store = store
        self.objects = store.objects
        self.waiting_on = store.waiting_on
        self.conns = conns
        self.feed = feed
        self.spawn = spawn
        self.transfers = Transfers(store, self.sealed, spawn)
        # results a worker is writing into the store, by connection: freed if it dies
        self.pending_allocs: dict[int, dict[bytes, p.Payload]] = {}
        # An object tasks wait for was sealed: the tasks component queues those ready.
        self.deps_ready: Callable[[bytes], None] = _unwired

    def on_put_inline(self, conn: ServerConnection, msg: p.PutInline) -> None:
        self.objects.create(msg.object_id, conn.conn_id)
        self.transfers.store_put(msg)

    async def on_create_object(self, conn: ServerConnection, msg: p.CreateObject) -> None:
        try:
            payload = await self.store.allocate(msg.object_id, msg.size)
        except ObjectStoreFullError as err:
            conn.send(
                p.ObjectCreated(req_id=msg.req_id, payload=None, error=serialize(err).to_bytes())
            )
            return
        self.pending_allocs.setdefault(conn.conn_id, {})[msg.object_id] = payload
        conn.send(p.ObjectCreated(req_id=msg.req_id, payload=payload))

    def on_seal_object(self, conn: ServerConnection, msg: p.SealObject) -> None:
        self.pending_allocs.get(conn.conn_id, {}).pop(msg.object_id, None)
        self.objects.create(msg.object_id, conn.conn_id)
        self.sealed(msg.object_id, msg.payload, msg.contained)

    def sealed(self, object_id: bytes, payload: p.Payload, contained: list[bytes]) -> None:
        entry = self.objects.seal(object_id, payload, contained)
        if entry is None:  # nobody holds a ref any more
            self.store.release_payload(payload)
            return
        if self.feed.subscribers:
            self.feed.touch("objects", object_id.hex())
        for conn_id, want_value in entry.waiters.items():
            conn = self.conns.get(conn_id)
            if conn is not None:
                self.deliver(conn, entry, want_value)
        entry.waiters.clear()
        for fut in self.store.seal_waiters.pop(object_id, ()):
            if not fut.done():
                fut.set_result(None)
        if object_id in self.waiting_on:
            self.deps_ready(object_id)

    def deliver(self, conn: ServerConnection, entry: ObjectEntry, want_value: bool) -> None:
        payload = entry.payload
        assert payload is not None
        if payload.data is None and not want_value:
            conn.send(p.ObjectAvailable(object_id=entry.object_id, payload=None))
            return
        if entry.contains and want_value and conn.role == "peer":
            self.spawn(self._deliver_to_peer(conn, entry))
            return
        if payload.data is None and getattr(conn, "remote", False):
            # no shared memory across machines: send the bytes themselves
            self.spawn(self._deliver_copy(conn, entry.object_id, payload))
            return
        if payload.in_arena:
            self.objects.pin(entry, conn.conn_id)
        conn.send(p.ObjectAvailable(object_id=entry.object_id, payload=payload))

    async def _deliver_to_peer(self, conn: ServerConnection, entry: ObjectEntry) -> None:
        """A value with refs inside, for another node (a forwarded task's result).

        That node hands the value to its own processes, who will ask it for the objects
        the refs name: put those there first, children first, then the value with the
        list of refs it contains. Objects not sealed yet (``return g.remote()``) follow
        when they are, held here until then; the peer knows them as arriving meanwhile.
        """
        later = []
        for oid in self.transfers.closure(entry.contains):
            child = self.objects.get(oid)
            if child is None:
                continue
            if child.payload is None:
                self.objects.hold(oid)  # the peer may drop the container before it seals
                later.append(oid)
                continue
            try:
                await self.transfers.push_value(conn.send, conn.drain, child)
            except ConnectionError:
                return
        payload = entry.payload
        if self.objects.get(entry.object_id) is entry and payload is not None:
            if payload.data is None:
                await self._deliver_copy(conn, entry.object_id, payload, list(entry.contains))
            else:
                conn.send(
                    p.ObjectAvailable(
                        object_id=entry.object_id, payload=payload, contained=list(entry.contains)
                    )
                )
        for oid in later:
            self.spawn(self._push_when_sealed(conn, oid))

    async def _push_when_sealed(self, conn: ServerConnection, object_id: bytes) -> None:
        """Put an object on a peer once it is sealed here, then drop our hold on it."""
        try:
            await self.store.when_sealed(object_id)
            for oid in self.transfers.closure([object_id]):  # its own contents are known now
                child = self.objects.get(oid)
                if child is not None and child.payload is not None and not conn.closed:
                    await self.transfers.push_value(conn.send, conn.drain, child, announced=True)
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            freed: list[ObjectEntry] = []
            self.objects.release(object_id, freed)
            for gone in freed:
                self.store.release_memory(gone)

    async def _deliver_copy(
        self,
        conn: ServerConnection,
        oid: bytes,
        payload: p.Payload,
        contained: list[bytes] | None = None,
    ) -> None:
        contained = contained or []
        entry = self.objects.get(oid)
        if entry is None:
            return
        if should_chunk(payload.size):
            try:
                await self.transfers.send_stored(conn.send, conn.drain, oid, payload)
            except ConnectionError:
                return
            chunked = p.Payload(
                offset=CHUNKED, size=payload.size, error=payload.error, type_name=payload.type_name
            )
            conn.send(p.ObjectAvailable(object_id=oid, payload=chunked, contained=contained))
            return
        self.objects.pin(entry, conn.conn_id)  # keep the range while we copy it out
        try:
            data = await self.transfers.payload_bytes(payload)
        finally:
            reclaimed = self.objects.unpin(oid, conn.conn_id, 1)
            if reclaimed is not None:
                self.store.release_memory(reclaimed)
        conn.send(
            p.ObjectAvailable(
                object_id=oid,
                payload=p.Payload(
                    data=data, size=len(data), error=payload.error, type_name=payload.type_name
                ),
                contained=contained,
            )
        )

    def on_subscribe(self, conn: ServerConnection, msg: p.Subscribe) -> None:
        for oid in msg.object_ids:
            entry = self.objects.get(oid)
            if entry is None:
                continue
            if entry.payload is not None:
                self.deliver(conn, entry, msg.want_value)
            else:
                self.objects.add_waiter(entry, conn.conn_id, msg.want_value)

    def on_ref_update(self, conn: ServerConnection, msg: p.RefUpdate) -> None:
        if self.feed.subscribers:
            for oid in msg.add + msg.remove:
                self.feed.touch("objects", oid.hex())
        for oid in msg.add:
            self.objects.add_ref(oid, conn.conn_id)
        if msg.remove:
            freed: list[ObjectEntry] = []
            for oid in msg.remove:
                self.objects.remove_ref(oid, conn.conn_id, freed)
            for entry in freed:
                self.store.release_memory(entry)

    def on_unpin(self, conn: ServerConnection, msg: p.Unpin) -> None:
        for oid, n in msg.counts:
            entry = self.objects.unpin(oid, conn.conn_id, n)
            if entry is not None:
                self.store.release_memory(entry)
