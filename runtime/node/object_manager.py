"""The node manager's object handlers: puts, seals, deliveries, references, spilling.

A mixin of :class:`manager.NodeManager`; everything runs on its event loop, with file I/O
on executor threads. The bookkeeping itself is :class:`objects.ObjectTable` (counts,
holds, pins) and :class:`store.Allocator` (arena ranges); this is the shell that ties
them to connections: who is told when an object is sealed, who pins which range, and
what is spilled to make room.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING, Any

from .. import protocol as p
from ..exceptions import ObjectStoreFullError
from ..serialization import serialize
from ..state_schema import PENDING_ARGS
from ..store import Allocator, Arena, aligned, create_file, write_file
from .objects import ObjectEntry, ObjectTable
from .transfer import CHUNKED, should_chunk

if TYPE_CHECKING:
    from ..feed import ChangeFeed
    from ..transport import ServerConnection
    from .actors import ActorDirectory, ActorRecord
    from .manager import TaskRecord


class ObjectManager:
    """Object handlers of a node manager; see the module docstring."""

    objects: ObjectTable
    arena: Arena
    alloc: Allocator
    actors: ActorDirectory
    conns: dict[int, ServerConnection]
    feed: ChangeFeed
    waiting_on: dict[bytes, list[TaskRecord]]
    pending_allocs: dict[int, dict[bytes, p.Payload]]
    spill_dir: str
    spilled_bytes: int
    seal_waiters: dict[bytes, list[asyncio.Future[None]]]

    if TYPE_CHECKING:

        def _spawn(self, coro: Any) -> None: ...
        def _deps_ready(self, rec: TaskRecord) -> None: ...
        def _handles_gone(self, record: ActorRecord) -> None: ...
        def store_put(self, msg: p.PutInline) -> None: ...
        def closure(self, roots: list[bytes]) -> list[bytes]: ...
        async def payload_bytes(self, payload: p.Payload) -> bytes: ...
        async def push_value(
            self, send: Any, drain: Any, entry: ObjectEntry, announced: bool = ...
        ) -> None: ...
        async def send_stored(
            self, send: Any, drain: Any, object_id: bytes, payload: p.Payload
        ) -> None: ...

    def on_put_inline(self, conn: ServerConnection, msg: p.PutInline) -> None:
        self.objects.create(msg.object_id, conn.conn_id)
        self.store_put(msg)

    async def on_create_object(self, conn: ServerConnection, msg: p.CreateObject) -> None:
        try:
            payload = await self._allocate(msg.object_id, msg.size)
        except ObjectStoreFullError as err:
            conn.send(p.ObjectCreated(msg.req_id, None, serialize(err).to_bytes()))
            return
        self.pending_allocs.setdefault(conn.conn_id, {})[msg.object_id] = payload
        conn.send(p.ObjectCreated(msg.req_id, payload))

    def on_seal_object(self, conn: ServerConnection, msg: p.SealObject) -> None:
        self.pending_allocs.get(conn.conn_id, {}).pop(msg.object_id, None)
        self.objects.create(msg.object_id, conn.conn_id)
        self._sealed(msg.object_id, msg.payload, msg.contained)

    def _sealed(self, object_id: bytes, payload: p.Payload, contained: list[bytes]) -> None:
        entry = self.objects.seal(object_id, payload, contained)
        if entry is None:  # nobody holds a ref any more
            self._release_payload(payload)
            return
        if self.feed.subscribers:
            self.feed.touch("objects", object_id.hex())
        for conn_id, want_value in entry.waiters.items():
            conn = self.conns.get(conn_id)
            if conn is not None:
                self._deliver(conn, entry, want_value)
        entry.waiters.clear()
        for fut in self.seal_waiters.pop(object_id, ()):
            if not fut.done():
                fut.set_result(None)
        for rec in self.waiting_on.pop(object_id, ()):
            rec.missing -= 1
            if rec.missing == 0 and rec.state == PENDING_ARGS:
                self._deps_ready(rec)

    def when_sealed(self, object_id: bytes) -> asyncio.Future[None]:
        """Resolves when the object is sealed here; cancelled if it is freed first."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.seal_waiters.setdefault(object_id, []).append(fut)
        return fut

    def _deliver(self, conn: ServerConnection, entry: ObjectEntry, want_value: bool) -> None:
        payload = entry.payload
        assert payload is not None
        if payload.data is None and not want_value:
            conn.send(p.ObjectAvailable(entry.object_id, None))
            return
        if entry.contains and want_value and conn.role == "peer":
            self._spawn(self._deliver_to_peer(conn, entry))
            return
        if payload.data is None and getattr(conn, "remote", False):
            # no shared memory across machines: send the bytes themselves
            self._spawn(self._deliver_copy(conn, entry.object_id, payload))
            return
        if payload.in_arena:
            self.objects.pin(entry, conn.conn_id)
        conn.send(p.ObjectAvailable(entry.object_id, payload))

    async def _deliver_to_peer(self, conn: ServerConnection, entry: ObjectEntry) -> None:
        """A value with refs inside, for another node (a forwarded task's result).

        That node hands the value to its own processes, who will ask it for the objects
        the refs name: put those there first, children first, then the value with the
        list of refs it contains. Objects not sealed yet (``return g.remote()``) follow
        when they are, held here until then; the peer knows them as arriving meanwhile.
        """
        later = []
        for oid in self.closure(entry.contains):
            child = self.objects.get(oid)
            if child is None:
                continue
            if child.payload is None:
                self.objects.hold(oid)  # the peer may drop the container before it seals
                later.append(oid)
                continue
            try:
                await self.push_value(conn.send, conn.drain, child)
            except ConnectionError:
                return
        payload = entry.payload
        if self.objects.get(entry.object_id) is entry and payload is not None:
            if payload.data is None:
                await self._deliver_copy(conn, entry.object_id, payload, list(entry.contains))
            else:
                conn.send(p.ObjectAvailable(entry.object_id, payload, list(entry.contains)))
        for oid in later:
            self._spawn(self._push_when_sealed(conn, oid))

    async def _push_when_sealed(self, conn: ServerConnection, object_id: bytes) -> None:
        """Put an object on a peer once it is sealed here, then drop our hold on it."""
        try:
            await self.when_sealed(object_id)
            for oid in self.closure([object_id]):  # its own contents are known now
                child = self.objects.get(oid)
                if child is not None and child.payload is not None and not conn.closed:
                    await self.push_value(conn.send, conn.drain, child, announced=True)
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            freed: list[ObjectEntry] = []
            self.objects.release(object_id, freed)
            for gone in freed:
                self._release_memory(gone)

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
                await self.send_stored(conn.send, conn.drain, oid, payload)
            except ConnectionError:
                return
            chunked = p.Payload(
                offset=CHUNKED, size=payload.size, error=payload.error, type_name=payload.type_name
            )
            conn.send(p.ObjectAvailable(oid, chunked, contained))
            return
        self.objects.pin(entry, conn.conn_id)  # keep the range while we copy it out
        try:
            data = await self.payload_bytes(payload)
        finally:
            reclaimed = self.objects.unpin(oid, conn.conn_id, 1)
            if reclaimed is not None:
                self._release_memory(reclaimed)
        conn.send(
            p.ObjectAvailable(
                oid,
                p.Payload(
                    data=data, size=len(data), error=payload.error, type_name=payload.type_name
                ),
                contained,
            )
        )

    def on_subscribe(self, conn: ServerConnection, msg: p.Subscribe) -> None:
        for oid in msg.object_ids:
            entry = self.objects.get(oid)
            if entry is None:
                continue
            if entry.payload is not None:
                self._deliver(conn, entry, msg.want_value)
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
                self._release_memory(entry)

    def on_unpin(self, conn: ServerConnection, msg: p.Unpin) -> None:
        for oid, n in msg.counts:
            entry = self.objects.unpin(oid, conn.conn_id, n)
            if entry is not None:
                self._release_memory(entry)

    def _release_memory(self, entry: ObjectEntry) -> None:
        for fut in self.seal_waiters.pop(entry.object_id, ()):
            fut.cancel()
        if self.feed.subscribers:
            self.feed.gone("objects", entry.object_id.hex())
        actor = self.actors.by_cookie.get(entry.object_id)
        if actor is not None:
            self._handles_gone(actor)
        if entry.payload is not None and not entry.spilling:
            self._release_payload(entry.payload)
        entry.payload = None
        for rec in self.waiting_on.pop(entry.object_id, ()):
            # cannot happen for live tasks (they hold their args); keep counts honest
            rec.missing -= 1

    def _release_payload(self, payload: p.Payload) -> None:
        if payload.data is not None:
            return
        if payload.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(payload.path)
            if payload.offset == -2:  # spilled
                self.spilled_bytes -= payload.size
            return
        self.alloc.free(payload.offset, payload.size)

    async def _allocate(self, object_id: bytes, size: int) -> p.Payload:
        offset = self.alloc.alloc(size)
        if offset is None and aligned(size) <= self.alloc.capacity:
            await self._make_room(size)
            offset = self.alloc.alloc(size)
        if offset is not None:
            return p.Payload(offset=offset, size=size)
        # Larger than the arena, or everything left is in use: give it a file of its own.
        path = os.path.join(self.spill_dir, object_id.hex() + ".obj")
        try:
            create_file(path, size)
        except OSError as err:
            raise ObjectStoreFullError(
                f"Cannot store an object of {size} bytes: the shared-memory store "
                f"({self.alloc.capacity} bytes) is full and creating {path} failed ({err}). "
                "Free references you no longer need (del ref), or start with a larger "
                "object_store_memory and more free disk for spilling."
            ) from err
        return p.Payload(path=path, size=size, offset=-3)

    async def _make_room(self, size: int) -> None:
        """Spill unpinned objects, oldest first, until ``size`` bytes fit (or none left)."""
        loop = asyncio.get_running_loop()
        victims = sorted(
            (
                e
                for e in self.objects.entries.values()
                if e.payload is not None and e.payload.in_arena and not e.pins and not e.spilling
            ),
            key=lambda e: e.created,
        )
        for entry in victims:
            if self.alloc.largest_free() >= aligned(size):
                return
            payload = entry.payload
            if payload is None or entry.pins or entry.freed:
                continue
            entry.spilling = True
            path = os.path.join(self.spill_dir, entry.object_id.hex() + ".spill")
            view = self.arena.view[payload.offset : payload.offset + payload.size]
            try:
                await loop.run_in_executor(None, write_file, path, view)
            finally:
                view.release()
                entry.spilling = False
            if entry.freed or entry.pins:
                # freed or mapped while we wrote: keep the arena copy, drop the file
                os.unlink(path)
                if entry.freed and entry.object_id not in self.objects.zombies:
                    self._release_payload(payload)
                continue
            self.alloc.free(payload.offset, payload.size)
            entry.payload = p.Payload(
                path=path, size=payload.size, offset=-2, type_name=payload.type_name
            )
            self.spilled_bytes += payload.size
