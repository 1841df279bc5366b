"""The node manager's object table: where each object is and who still needs it.

Plain bookkeeping, driven by messages and by unit tests. An object stays alive while any
of these hold it:

- a process with at least one live ``ObjectRef`` to it (``refs``; processes report only
  0<->1 transitions of their local count),
- a task in flight that takes it as an argument, or another live object that contains a
  ref to it (``holds``).

A freed object's memory is reused only once no process maps it any more (``pins``: each
delivery of an arena location to a process counts one pin until that process reports its
views gone). So data a user still references or still reads is never lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..common.protocol import Payload


@dataclass(slots=True)
class ObjectEntry:
    object_id: bytes
    owner: int
    payload: Payload | None = None  # None until the producing task finishes
    refs: set[int] = field(default_factory=set)
    holds: int = 0
    contained_in: int = 0  # the part of ``holds`` that comes from containing objects
    pins: dict[int, int] = field(default_factory=dict)
    contains: list[bytes] = field(default_factory=list)
    # conn id -> wants the value (not just readiness); one entry per process, so a
    # process that subscribes again is still answered once
    waiters: dict[int, bool] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    freed: bool = False
    spilling: bool = False

    @property
    def ready(self) -> bool:
        return self.payload is not None

    @property
    def pinned(self) -> bool:
        return bool(self.pins)


class ObjectTable:
    """All objects known to one node manager, keyed by object id."""

    def __init__(self) -> None:
        self.entries: dict[bytes, ObjectEntry] = {}
        self.zombies: dict[bytes, ObjectEntry] = {}  # freed but still mapped somewhere

    def __contains__(self, object_id: bytes) -> bool:
        return object_id in self.entries

    def get(self, object_id: bytes) -> ObjectEntry | None:
        return self.entries.get(object_id)

    def create(self, object_id: bytes, owner: int) -> ObjectEntry:
        """Register an object the owner holds a ref to (a task return or a put)."""
        entry = self.entries.get(object_id)
        if entry is None:
            entry = self.entries[object_id] = ObjectEntry(object_id, owner)
        entry.refs.add(owner)
        return entry

    def seal(
        self, object_id: bytes, payload: Payload, contained: list[bytes]
    ) -> ObjectEntry | None:
        """Record the value; returns the entry, or None if nobody wants it any more."""
        entry = self.entries.get(object_id)
        if entry is None:
            return None
        entry.payload = payload
        for child in entry.contains:  # sealed again (an actor restart): drop old holds
            c = self.entries.get(child)
            if c is not None:
                c.holds -= 1
                c.contained_in -= 1
        for child in contained:
            c = self.entries.get(child)
            if c is not None:
                c.holds += 1
                c.contained_in += 1
        entry.contains = list(contained)
        return entry

    def arriving(self, object_id: bytes) -> ObjectEntry:
        """An object another node sends because a value coming here contains a ref to
        it: no process holds it yet; the containing value will, once sealed."""
        entry = self.entries.get(object_id)
        if entry is None:
            entry = self.entries[object_id] = ObjectEntry(object_id, owner=0)
        return entry

    def add_ref(self, object_id: bytes, conn: int) -> None:
        entry = self.entries.get(object_id)
        if entry is None:
            # A ref to an object this node never saw (for example unpickled from disk):
            # track it so the process can wait; it never becomes ready.
            entry = self.entries[object_id] = ObjectEntry(object_id, owner=0)
        entry.refs.add(conn)

    def remove_ref(self, object_id: bytes, conn: int, freed: list[ObjectEntry]) -> None:
        entry = self.entries.get(object_id)
        if entry is None:
            return
        entry.refs.discard(conn)
        self._maybe_free(entry, freed)

    def add_waiter(self, entry: ObjectEntry, conn: int, want_value: bool) -> bool:
        """Note that ``conn`` waits for an unsealed object; False if nothing changed.

        A process that asks twice is answered once, with the value if either ask wanted it.
        """
        prev = entry.waiters.get(conn)
        if prev is True or prev is want_value:
            return False
        entry.waiters[conn] = want_value
        return True

    def hold(self, object_id: bytes) -> None:
        entry = self.entries.get(object_id)
        if entry is not None:
            entry.holds += 1

    def release(self, object_id: bytes, freed: list[ObjectEntry]) -> None:
        entry = self.entries.get(object_id)
        if entry is None:
            return
        entry.holds -= 1
        self._maybe_free(entry, freed)

    def pin(self, entry: ObjectEntry, conn: int) -> None:
        entry.pins[conn] = entry.pins.get(conn, 0) + 1

    def unpin(self, object_id: bytes, conn: int, n: int) -> ObjectEntry | None:
        """Drop ``n`` pins; returns a zombie entry whose memory can now be reused."""
        entry = self.entries.get(object_id) or self.zombies.get(object_id)
        if entry is None:
            return None
        left = entry.pins.get(conn, 0) - n
        if left > 0:
            entry.pins[conn] = left
        else:
            entry.pins.pop(conn, None)
        if entry.freed and not entry.pins:
            self.zombies.pop(object_id, None)
            return entry
        return None

    def drop_connection(self, conn: int, freed: list[ObjectEntry]) -> list[ObjectEntry]:
        """A process exited: forget its refs and pins. Returns zombies now reclaimable."""
        reclaim: list[ObjectEntry] = []
        for entry in list(self.entries.values()):
            entry.pins.pop(conn, None)
            if entry.waiters:
                entry.waiters.pop(conn, None)
            if conn in entry.refs:
                entry.refs.discard(conn)
                self._maybe_free(entry, freed)
        for oid, entry in list(self.zombies.items()):
            entry.pins.pop(conn, None)
            if not entry.pins:
                del self.zombies[oid]
                reclaim.append(entry)
        return reclaim

    def _maybe_free(self, entry: ObjectEntry, freed: list[ObjectEntry]) -> None:
        stack = [entry]
        while stack:
            e = stack.pop()
            if e.refs or e.holds > 0 or e.freed:
                continue
            e.freed = True
            del self.entries[e.object_id]
            if e.pins:
                self.zombies[e.object_id] = e
            else:
                freed.append(e)
            for child_id in e.contains:
                child = self.entries.get(child_id)
                if child is not None:
                    child.holds -= 1
                    child.contained_in -= 1
                    stack.append(child)

    def validate(self) -> None:
        """Raise AssertionError if the table is inconsistent (used by test fixtures)."""
        for oid, e in self.entries.items():
            assert oid == e.object_id
            assert not e.freed
            assert e.holds >= 0, (oid.hex(), e.holds)
            assert e.refs or e.holds > 0, f"{oid.hex()} is unreferenced but not freed"
        for oid, e in self.zombies.items():
            assert e.freed and e.pins, oid.hex()
