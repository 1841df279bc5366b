"""The node's object memory: the arena's ranges, files for what does not fit, spilling,
and freeing what no reference needs any more.

A component of the node manager (:mod:`manager`); everything runs on its event loop,
with file I/O on executor threads. The bookkeeping itself is :class:`objects.ObjectTable`
(counts, holds, pins) and :class:`store.Allocator` (arena ranges); who is told when an
object is sealed is :mod:`object_manager`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..common import protocol as p
from ..common.exceptions import ObjectStoreFullError
from ..common.store import Allocator, Arena, aligned, create_file, write_file
from .objects import ObjectEntry, ObjectTable

if TYPE_CHECKING:
    from .actors import ActorDirectory, ActorRecord
    from .feed import ChangeFeed
    from .records import TaskRecord


def _unwired(record: ActorRecord) -> None:
    raise RuntimeError("ObjectStore.handles_gone was not wired by the node manager")


def _unwired_waiters(object_id: bytes) -> None:
    raise RuntimeError("ObjectStore.forget_waiters was not wired by the node manager")


class ObjectStore:
    """Memory of the node's objects; see the module docstring."""

    def __init__(
        self,
        objects: ObjectTable,
        arena: Arena,
        alloc: Allocator,
        spill_dir: str,
        feed: ChangeFeed,
        actors: ActorDirectory,
        waiting_on: dict[bytes, list[TaskRecord]],
    ) -> None:
        self.objects = objects
        self.arena = arena
        self.alloc = alloc
        self.spill_dir = spill_dir
        self.feed = feed
        self.actors = actors
        self.waiting_on = waiting_on
        self.spilled_bytes = 0
        self.seal_waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        # An actor's cookie was freed: the actors component stops the actor.
        self.handles_gone: Callable[[ActorRecord], None] = _unwired
        # An object tasks waited for was freed: the task state machine forgets them.
        self.forget_waiters: Callable[[bytes], None] = _unwired_waiters

    def when_sealed(self, object_id: bytes) -> asyncio.Future[None]:
        """Resolves when the object is sealed here; cancelled if it is freed first."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.seal_waiters.setdefault(object_id, []).append(fut)
        return fut

    def release_all(self, entries: list[ObjectEntry]) -> None:
        for entry in entries:
            self.release_memory(entry)

    def release_memory(self, entry: ObjectEntry) -> None:
        """The table freed ``entry``: give its memory back, stop its actor if a cookie."""
        for fut in self.seal_waiters.pop(entry.object_id, ()):
            fut.cancel()
        if self.feed.subscribers:
            self.feed.gone("objects", entry.object_id.hex())
        actor = self.actors.by_cookie.get(entry.object_id)
        if actor is not None:
            self.handles_gone(actor)
        if entry.payload is not None and not entry.spilling:
            self.release_payload(entry.payload)
        entry.payload = None
        if entry.object_id in self.waiting_on:
            self.forget_waiters(entry.object_id)

    def release_payload(self, payload: p.Payload) -> None:
        if payload.data is not None:
            return
        if payload.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(payload.path)
            if payload.offset == -2:  # spilled
                self.spilled_bytes -= payload.size
            return
        self.alloc.free(payload.offset, payload.size)

    def release_payloads(self, payloads: list[p.Payload]) -> None:
        for payload in payloads:
            self.release_payload(payload)

    async def allocate(self, object_id: bytes, size: int) -> p.Payload:
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
                    self.release_payload(payload)
                continue
            self.alloc.free(payload.offset, payload.size)
            entry.payload = p.Payload(
                path=path, size=payload.size, offset=-2, type_name=payload.type_name
            )
            self.spilled_bytes += payload.size
