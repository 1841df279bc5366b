"""Large values between nodes: sent in chunks, written straight into the receiver's store.

A value that crosses machines cannot be mapped; its bytes must travel. Sent as one
message, a 100 MiB value was copied half a dozen times into fresh memory (the pickle, the
frame, the socket buffer, the receiver's frame buffer, its unpickled bytes, the store),
and every fresh page costs a fault: ~0.2 GiB/s between two nodes on loopback. Cut into
``CHUNK``-sized :class:`ObjectChunk` messages, every buffer on the way is small and
reused, the sender waits for its socket to drain between chunks instead of queueing the
whole value, and the receiver copies each chunk into the store as it arrives.

The message that would have carried the value inline (``PutInline`` with
``chunked=True``, or ``ObjectAvailable`` with a payload whose offset is
:data:`CHUNKED`) follows its last chunk on the same connection; its handler awaits
:meth:`Assembler.take`. Everything here runs on the node manager's event loop;
:class:`Transfers` is the node manager's component that uses it.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..common import protocol as p
from ..common.exceptions import ObjectStoreFullError
from ..common.store import map_file_readonly

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .object_store import ObjectStore
    from .objects import ObjectEntry

log = logging.getLogger("jupyter_ray.node")

CHUNK = 4 << 20
"""Bytes per chunk: big enough that per-message costs vanish, small enough that every
buffer on the way is reused memory (glibc keeps freed blocks of this size)."""

CHUNKED = p.CHUNKED_OFFSET
"""``Payload.offset`` of a value that arrived in chunks just before the message."""


def should_chunk(size: int) -> bool:
    return size > CHUNK


async def send_value(
    send: Callable[[object], None],
    drain: Callable[[], Awaitable[None]],
    object_id: bytes,
    view: memoryview,
) -> None:
    """Send a stored value as chunks, waiting for the socket to drain after each one.

    The caller sends the message that refers to the value afterwards, on the same
    connection, and keeps ``view``'s memory from being reused until this returns.
    """
    total = len(view)
    for offset in range(0, total, CHUNK):
        # A PickleBuffer is pickled straight from the store: one copy fewer than bytes().
        piece = pickle.PickleBuffer(view[offset : offset + CHUNK])
        send(p.ObjectChunk(object_id=object_id, offset=offset, total=total, data=piece))  # type: ignore[arg-type]
        await drain()


@dataclass(eq=False)
class _Incoming:
    object_id: bytes
    total: int
    source: int  # connection the chunks come from
    pending: list[p.ObjectChunk] = field(default_factory=list)
    payload: p.Payload | None = None
    buffer: bytearray | None = None  # only when the store refused the value
    received: int = 0
    done: asyncio.Future[p.Payload] = field(
        default_factory=lambda: asyncio.get_event_loop().create_future()
    )
    task: asyncio.Task[None] | None = None


class Assembler:
    """Puts the chunks of incoming values together in this node's store.

    ``allocate(object_id, size)`` reserves room (arena or file, as for a local put);
    ``write(payload, offset, data)`` copies one chunk there (the arena synchronously, a
    file on an executor); ``release(payload)`` frees a reservation whose value will
    never arrive because its connection went away.
    """

    def __init__(
        self,
        allocate: Callable[[bytes, int], Awaitable[p.Payload]],
        write: Callable[[p.Payload, int, bytes], Awaitable[None] | None],
        release: Callable[[p.Payload], None],
    ) -> None:
        self._allocate = allocate
        self._write = write
        self._release = release
        self._incoming: dict[bytes, _Incoming] = {}

    def __len__(self) -> int:
        return len(self._incoming)

    def feed(self, source: int, chunk: p.ObjectChunk) -> None:
        """Take one chunk (called by a message handler; never blocks)."""
        inc = self._incoming.get(chunk.object_id)
        if inc is None:
            inc = _Incoming(chunk.object_id, chunk.total, source)
            self._incoming[chunk.object_id] = inc
        payload = inc.payload
        if inc.task is None and payload is not None and payload.path is None:
            # The common case once room is reserved in the arena: copy now, in order.
            self._put(inc, chunk)
            return
        inc.pending.append(chunk)
        if inc.task is None:
            inc.task = asyncio.ensure_future(self._pump(inc))

    def take(self, object_id: bytes) -> asyncio.Future[p.Payload]:
        """The stored value, once its last chunk is written; the caller owns it then."""
        # Every chunk came before the message that asks, so the entry can go now: only
        # local writes may still be under way, and they complete the future.
        inc = self._incoming.pop(object_id, None)
        if inc is None:
            future: asyncio.Future[p.Payload] = asyncio.get_event_loop().create_future()
            future.set_exception(
                KeyError(f"no chunks arrived for object {object_id.hex()} on this node")
            )
            return future
        return inc.done

    def drop_source(self, source: int) -> None:
        """A connection closed: forget what it was sending, and free the room reserved."""
        for oid, inc in list(self._incoming.items()):
            if inc.source != source:
                continue
            del self._incoming[oid]
            if inc.task is not None:
                inc.task.cancel()
            if inc.payload is not None:
                self._release(inc.payload)
            if not inc.done.done():
                inc.done.set_exception(ConnectionError("the sender went away mid-transfer"))
                inc.done.exception()  # retrieved: a drop nobody awaits is not an error

    async def _pump(self, inc: _Incoming) -> None:
        """Reserve room if not done yet, then write queued chunks in order."""
        try:
            if inc.payload is None:
                try:
                    inc.payload = await self._allocate(inc.object_id, inc.total)
                except ObjectStoreFullError:
                    # Neither the store nor the disk has room: keep it in this process.
                    inc.payload = p.Payload(data=b"", size=inc.total)
                    inc.buffer = bytearray(inc.total)
            while inc.pending:
                chunk = inc.pending.pop(0)
                pending = self._put(inc, chunk)
                if pending is not None:
                    await pending
        finally:
            inc.task = None

    def _put(self, inc: _Incoming, chunk: p.ObjectChunk) -> Awaitable[None] | None:
        payload = inc.payload
        assert payload is not None
        if inc.buffer is not None:
            inc.buffer[chunk.offset : chunk.offset + len(chunk.data)] = chunk.data
            pending = None
        else:
            pending = self._write(payload, chunk.offset, chunk.data)
        inc.received += len(chunk.data)
        if inc.received >= inc.total:
            if inc.buffer is not None:
                payload.data = bytes(inc.buffer)
            if pending is None:
                self._complete(inc)
            else:
                return _then(pending, lambda: self._complete(inc))
        return pending

    def _complete(self, inc: _Incoming) -> None:
        assert inc.payload is not None
        if not inc.done.done():
            inc.done.set_result(inc.payload)


async def _then(first: Awaitable[None], after: Callable[[], None]) -> None:
    await first
    after()


TRANSFER_PIN = -1
"""The pseudo connection that pins a value while its chunks are being sent."""


class Transfers:
    """Values between nodes, and puts from other machines (a component of the node
    manager, on its loop): chunks in and out, the bytes of stored values, and sealing
    what arrives through ``sealed``."""

    def __init__(
        self,
        store: ObjectStore,
        sealed: Callable[[bytes, p.Payload, list[bytes]], None],
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.store = store
        self.objects = store.objects
        self.arena = store.arena
        self.sealed = sealed
        self.spawn = spawn
        self.assembler = Assembler(store.allocate, self.write_chunk, store.release_payload)

    def write_chunk(self, payload: p.Payload, offset: int, data: bytes) -> Awaitable[None] | None:
        if payload.path is not None:
            loop = asyncio.get_running_loop()
            return loop.run_in_executor(None, _write_at, payload.path, offset, data)
        start = payload.offset + offset
        self.arena.view[start : start + len(data)] = data
        return None

    def on_object_chunk(self, conn: ServerConnection, msg: p.ObjectChunk) -> None:
        """A piece of a value another node (or a remote driver) is putting here."""
        if msg.offset == 0:
            # Known from the first chunk on, so that a task that needs it and arrives
            # before the value is complete waits for it instead of missing it.
            self.objects.create(msg.object_id, conn.conn_id)
        self.assembler.feed(conn.conn_id, msg)

    async def store_chunked(self, msg: p.PutInline) -> None:
        """Seal a value whose chunks came just before ``msg``."""
        try:
            payload = await self.assembler.take(msg.object_id)
        except (KeyError, ConnectionError) as err:
            log.warning("dropping object %s: %s", msg.object_id.hex(), err)
            return
        payload.type_name = msg.type_name
        self.seal_once(msg, payload)

    def closure(self, roots: list[bytes]) -> list[bytes]:
        """The objects and, recursively, the objects they contain (children first)."""
        seen: set[bytes] = set()
        order: list[bytes] = []

        def visit(oid: bytes) -> None:
            if oid in seen:
                return
            seen.add(oid)
            entry = self.objects.get(oid)
            if entry is not None:
                for child in entry.contains:
                    visit(child)
            order.append(oid)

        for oid in roots:
            visit(oid)
        return order

    async def push_value(
        self,
        send: Callable[[object], None],
        drain: Callable[[], Awaitable[None]],
        entry: ObjectEntry,
        announced: bool = False,
    ) -> None:
        """Put a sealed value on a peer node under the same id (``PutInline``, chunked
        when large); the peer seals it with the same contained refs."""
        stored = entry.payload
        assert stored is not None
        oid, contains, type_name = entry.object_id, list(entry.contains), stored.type_name
        if should_chunk(stored.size) and stored.data is None:
            await self.send_stored(send, drain, oid, stored)
            send(
                p.PutInline(
                    object_id=oid,
                    data=b"",
                    contained=contains,
                    type_name=type_name,
                    chunked=True,
                    announced=announced,
                )
            )
        else:
            data = await self.payload_bytes(stored)
            send(
                p.PutInline(
                    object_id=oid,
                    data=data,
                    contained=contains,
                    type_name=type_name,
                    announced=announced,
                )
            )

    async def drop_chunked(self, object_id: bytes) -> None:
        """Free a value that came in chunks but is not wanted after all."""
        try:
            payload = await self.assembler.take(object_id)
        except (KeyError, ConnectionError):
            return
        self.store.release_payload(payload)

    async def payload_bytes(self, payload: p.Payload) -> bytes:
        """A stored value's bytes (a copy): inline, from a file, or from the arena."""
        if payload.data is not None:
            return payload.data
        if payload.path is not None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, _read_all, payload.path, payload.size)
        return bytes(self.arena.view[payload.offset : payload.offset + payload.size])

    def store_put(self, msg: p.PutInline) -> None:
        """Store and seal a value put here by another process or node (entry exists)."""
        if msg.chunked:
            self.spawn(self.store_chunked(msg))
        elif len(msg.data) >= p.INLINE_LIMIT:
            # A large value sent over TCP: keep it in the store, so that workers here map
            # it instead of receiving it in every message.
            self.spawn(self.store_large(msg))
        else:
            payload = p.Payload(data=msg.data, size=len(msg.data), type_name=msg.type_name)
            self.seal_once(msg, payload)

    def seal_once(self, msg: p.PutInline, payload: p.Payload) -> None:
        """Seal a put value, unless the same object was already put here (a value can
        reach a node twice, inside two results); then the new copy is dropped."""
        entry = self.objects.get(msg.object_id)
        if entry is not None and entry.payload is not None:
            self.store.release_payload(payload)
            return
        self.sealed(msg.object_id, payload, msg.contained)

    async def store_large(self, msg: p.PutInline) -> None:
        payload = await self.store_bytes(msg.object_id, msg.data)
        payload.type_name = msg.type_name
        self.seal_once(msg, payload)

    async def store_bytes(self, object_id: bytes, data: bytes) -> p.Payload:
        """Copy a large value that came in one message into this node's store, so that
        workers here map it instead of receiving it; kept as it is when no room is left."""
        try:
            payload = await self.store.allocate(object_id, len(data))
        except ObjectStoreFullError:
            return p.Payload(data=data, size=len(data))
        write = self.write_chunk(payload, 0, data)
        if write is not None:
            await write
        return payload

    async def send_stored(
        self,
        send: Callable[[object], None],
        drain: Callable[[], Awaitable[None]],
        object_id: bytes,
        payload: p.Payload,
    ) -> None:
        """Send a stored value's bytes as chunks, keeping its memory in place meanwhile.

        Raises ConnectionError when the connection closes before the last chunk.
        """
        entry = self.objects.get(object_id)
        if entry is not None:
            self.objects.pin(entry, TRANSFER_PIN)  # not spilled, its range not reused
        if payload.path is not None:
            view = map_file_readonly(payload.path, payload.size)
        else:
            view = self.arena.view[payload.offset : payload.offset + payload.size]
        try:
            await send_value(send, drain, object_id, view)
        finally:
            view.release()
            if entry is not None:
                reclaimed = self.objects.unpin(object_id, TRANSFER_PIN, 1)
                if reclaimed is not None:
                    self.store.release_memory(reclaimed)


def _read_all(path: str, size: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _write_at(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
