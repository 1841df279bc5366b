"""The object side of :class:`core.CoreClient` (a mixin of it): putting values, the cache
of values and arena mappings this process holds, and waiting for objects (``get``,
``wait``, futures).

Runs on the caller's thread; the reader thread fills the tables (``CoreClient._on_object``).
One lock (the client's ``_lock``) guards every table; see ``core.py``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..common import protocol as p
from ..common.exceptions import GetTimeoutError, RayError, RaySystemError
from ..common.ids import new_task_id, object_id_for
from ..common.interrupts import HELD, guarded, release
from ..common.serialization import SerializedObject, deserialize, serialize, type_name
from ..common.store import Arena, map_file_readonly, map_file_writable
from .lanes import LaneTable
from .object_ref import ObjectRef

if TYPE_CHECKING:
    from .generators import StreamState

FETCH_AFTER = 0.005
"""How long a blocked get/wait waits for pushed results before asking for their values."""


@dataclass(slots=True)
class MappedObject:
    """An arena object this process maps: deliveries (pins) held and live views."""

    payload: p.Payload
    pins: int = 0
    views: int = 0


class ObjectCache:
    """Objects of a :class:`core.CoreClient`; see the module docstring."""

    role: str
    remote: bool
    closed: bool
    arena: Arena | None
    lanes: LaneTable
    _lock: threading.Lock
    _cond: threading.Condition
    _req_ids: Any
    _local_refs: dict[bytes, int]
    _dead_views: deque[bytes]
    _values: dict[bytes, p.Payload]
    _mapped: dict[bytes, MappedObject]
    _ready: set[bytes]
    _requested: dict[bytes, bool]
    # One list per blocked wait: the reader threads append every object that arrives,
    # so a wait looks at what came instead of at everything it still waits for.
    _arrivals: list[list[bytes]]
    _futures: dict[bytes, list[concurrent.futures.Future[Any]]]
    _streams: dict[bytes, StreamState]
    _written_upto: int
    objects_received: int

    if TYPE_CHECKING:

        def send(self, *msgs: object) -> None: ...
        def request(self, msg: Any) -> Any: ...
        def _new_owned_ref(self, oid: bytes) -> ObjectRef: ...
        def _release_mapping(self, oid: bytes, m: MappedObject) -> None: ...

    def put(self, value: Any) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError(
                "put() of an ObjectRef is not allowed: the ref already names a stored "
                "object. Pass the ref itself, or wrap it in a list to store a ref."
            )
        return self.put_serialized(serialize(value))

    @guarded
    def put_serialized(self, so: SerializedObject) -> ObjectRef:
        """Store ``so`` as a new object owned here. One step for an interrupt: an object
        allocated in the store but never sealed would hold its room until this process
        disconnects (see ``common/interrupts.py``)."""
        try:
            oid = object_id_for(new_task_id(), 0)
            if so.size < p.INLINE_LIMIT or self.remote:
                data = so.to_bytes()
                ref = self._new_owned_ref(oid)
                with self._lock:
                    self._values[oid] = p.Payload(data=data, size=len(data), type_name=so.type_name)
                self.send(
                    p.PutInline(
                        object_id=oid, data=data, contained=so.contained, type_name=so.type_name
                    )
                )
                return ref
            payload = self.write_object(oid, so)
            ref = self._new_owned_ref(oid)
            self.send(p.SealObject(object_id=oid, payload=payload, contained=so.contained))
            return ref
        finally:
            if HELD:
                # not kept alive by the frame in the interrupt's traceback
                with contextlib.suppress(UnboundLocalError):
                    del ref
                release()

    def put_error(self, error: BaseException) -> ObjectRef:
        """Store ``error`` as a failed object: ``get`` of the ref raises it."""
        oid = object_id_for(new_task_id(), 0)
        data = serialize(error).to_bytes()
        payload = p.Payload(data=data, size=len(data), error=True, type_name=type_name(error))
        ref = self._new_owned_ref(oid)
        with self._lock:
            self._values[oid] = payload
        self.send(p.SealObject(object_id=oid, payload=payload, contained=[]))
        return ref

    def wait_until(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        """Block until ``ready()`` (called with the lock held) is true; False on timeout.

        Woken whenever an object arrives. A worker lends its CPU while it waits, as in
        ``get``, so the tasks it waits for can run.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        blocked = False
        try:
            while True:
                with self._lock:
                    while not ready():
                        if self.closed:
                            raise RaySystemError(
                                "lost the connection to the jupyter_ray node manager; call "
                                "jupyter_ray.shutdown() and jupyter_ray.init() again"
                            )
                        if self.role == "worker" and not blocked:
                            break
                        left = 1.0 if deadline is None else deadline - time.monotonic()
                        if left <= 0:
                            return False
                        self._cond.wait(min(left, 1.0))
                    else:
                        return True
                blocked = True
                self.send(p.Blocked())
        finally:
            if blocked:
                self.send(p.Unblocked())

    def write_object(self, oid: bytes, so: SerializedObject) -> p.Payload:
        """Allocate room in the node's store and copy ``so`` there (not yet sealed)."""
        reply = self.request(
            p.CreateObject(req_id=next(self._req_ids), object_id=oid, size=so.size)
        )
        if reply.payload is None:
            err = deserialize(memoryview(reply.error))
            raise err
        payload: p.Payload = reply.payload
        payload.type_name = so.type_name
        if payload.path is not None:
            view = map_file_writable(payload.path, payload.size)
            try:
                so.write_into(view)
            finally:
                view.release()
        else:
            assert self.arena is not None
            # Populate only what this process never wrote: mapped pages gain nothing
            # from it, and walking them costs ~7 ms per 100 MiB.
            end = payload.offset + payload.size
            if end > self._written_upto:
                start = max(payload.offset, self._written_upto)
                self.arena.populate(start, end - start)
                self._written_upto = end
            with self.arena.view[payload.offset : payload.offset + payload.size] as view:
                so.write_into(view)
        return payload

    @guarded
    def subscribe(self, oids: list[bytes], want_value: bool, *msgs: object) -> None:
        """Ask the node for ``oids``' values (or readiness), then send ``msgs``: marked as
        asked for and asked in one step, which an interrupt does not split (a mark whose
        ask never went out would leave a later get waiting for an answer that never
        comes; see ``common/interrupts.py``)."""
        try:
            if oids:
                with self._lock:
                    requested = self._requested
                    for oid in oids:
                        requested[oid] = want_value
                msgs = (p.Subscribe(object_ids=oids, want_value=want_value), *msgs)
            if msgs:
                self.send(*msgs)
        finally:
            if HELD:
                release()

    def _has_value(self, oid: bytes) -> bool:
        return oid in self._values or oid in self._mapped

    def _await_objects(
        self,
        ids: list[bytes],
        count: int,
        timeout: float | None,
        want_value: bool,
        fetch: bool = False,
        fail_fast: bool = False,
    ) -> list[bytes]:
        """Block until ``count`` of ``ids`` are available; returns the available ones.

        ``want_value``: available means the value is here, else that it is ready.
        ``fetch``: ask for the values either way (``wait(fetch_local=True)``).
        ``fail_fast``: return as soon as one value here is an error (``get`` raises the
        first error it knows of, as Ray does, instead of waiting for the others).
        The available ones come in the order they became available, not in that of ``ids``.

        The node tells an owner unasked when its task results are ready, large ones as
        readiness only. A caller still blocked after ``FETCH_AFTER`` asks for the values
        of those too, so that a large result arrives mapped the moment it is sealed
        instead of costing a round trip after; quick small results never pay for it.
        """
        have = self._has_value if want_value else self._is_ready
        ask_value = want_value or fetch
        requested = self._requested
        worker = self.role == "worker"
        blocked = False
        now = time.monotonic()
        upgrade_at = now + FETCH_AFTER if ask_value else None
        deadline = None if timeout is None else now + timeout
        ready: list[bytes] = []
        pending: dict[bytes, int] = {}  # not here yet: how many times ``ids`` lists it
        for oid in ids:
            pending[oid] = pending.get(oid, 0) + 1
        failed = False
        # Subscribe once per object, and only for what no answer is on its way for: a
        # draining ``wait`` blocks again and again on the same refs, and asking each time
        # made the node answer each time (89,201 messages for a 500-task drain). An answer
        # that brought readiness but not the value we want takes the id out of
        # ``_requested``, so it is asked for again.
        ask: list[bytes] = []
        # What to look at: every id first, then what the reader threads append as it
        # arrives. Looking only at what came since the last wake-up keeps a get of N
        # results O(N); rescanning everything still missing each time was O(N^2).
        # Registered (under the lock) before the lock is first let go, so nothing that
        # arrives meanwhile is missed; never, when everything is here at the first look.
        arrived = list(pending)
        registered = False
        try:
            while True:
                with self._lock:
                    while True:
                        if arrived:
                            for oid in arrived:
                                n = pending.get(oid)
                                if n is None:
                                    continue
                                if have(oid):
                                    del pending[oid]
                                    ready += [oid] * n
                                    if fail_fast and not failed:
                                        failed = self._is_error(oid)
                                elif oid not in requested:
                                    ask.append(oid)
                            arrived.clear()
                        if len(ready) >= count or failed:
                            if registered:
                                self._arrivals.remove(arrived)
                                registered = False
                            return ready  # (at once for no ids at all)
                        if not registered:
                            self._arrivals.append(arrived)
                            registered = True
                        if upgrade_at is not None and time.monotonic() >= upgrade_at:
                            upgrade_at = None
                            ask += [oid for oid in pending if requested.get(oid) is False]
                        if ask or (worker and not blocked):
                            break
                        if self.closed:
                            raise RaySystemError(
                                "lost the connection to the jupyter_ray node manager; call "
                                "jupyter_ray.shutdown() and jupyter_ray.init() again"
                            )
                        step = 1.0
                        if upgrade_at is not None:
                            step = max(upgrade_at - time.monotonic(), 0.0)
                        if deadline is None:
                            self._cond.wait(step)
                        else:
                            left = deadline - time.monotonic()
                            if left <= 0:
                                return ready
                            self._cond.wait(min(left, step))
                msgs: list[object] = []
                if worker and not blocked:
                    # a worker about to block lends its CPU, so nested tasks can run
                    with self._lock:
                        missing = list(pending)
                    msgs.append(p.Blocked(waiting_on=missing))
                    blocked = True
                asking, ask = ask, []
                self.subscribe(asking, ask_value, *msgs)
        finally:
            if registered:  # a timeout, a lost connection, an interrupt
                with self._lock:
                    self._arrivals.remove(arrived)
            if blocked:
                self.send(p.Unblocked())

    def _is_error(self, oid: bytes) -> bool:
        """True when the value here is an error (a failed task's). Caller holds ``_lock``."""
        payload = self._values.get(oid)
        if payload is None:
            m = self._mapped.get(oid)
            return m is not None and m.payload.error
        return payload.error

    def _is_ready(self, oid: bytes) -> bool:
        return oid in self._ready or oid in self._values or oid in self._mapped

    def wait_ready(
        self,
        refs: list[ObjectRef],
        num_returns: int,
        timeout: float | None,
        fetch_local: bool = True,
    ) -> set[bytes]:
        """Ids of the refs that are ready. With ``fetch_local``, also ask (without waiting)
        for the values of the ready ones that only readiness came for: a ``get`` that
        follows a ``wait`` then finds them mapped instead of making a round trip."""
        ids = [r.binary() for r in refs]
        ready = self._await_objects(ids, num_returns, timeout, False, fetch_local)
        if fetch_local:
            with self._lock:
                fetch = [
                    oid
                    for oid in ready
                    if not self._has_value(oid) and self._requested.get(oid) is not True
                ]
            if fetch:
                self.subscribe(fetch, True)
        return set(ready)

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list[Any]:
        ids = [r.binary() for r in refs]
        ready = self._await_objects(ids, len(ids), timeout, want_value=True, fail_fast=True)
        if len(ready) < len(ids):
            with self._lock:
                failed = next((oid for oid in ready if self._is_error(oid)), None)
            if failed is not None:
                self._materialize(failed)  # raises the error it holds
            raise GetTimeoutError(
                f"get() timed out after {timeout} s with {len(ids) - len(ready)} of "
                f"{len(ids)} objects not ready. Raise timeout, or use wait() to take the "
                "ones that are ready."
            )
        return [self._materialize(oid) for oid in ids]

    def _materialize(self, oid: bytes) -> Any:
        with self._lock:
            payload = self._values.get(oid)
            m = self._mapped.get(oid) if payload is None else None
            if m is not None:
                m.views += 1  # guard while we deserialize
        if payload is not None:
            return self.load_payload(payload)
        if m is None:
            raise RaySystemError(f"object {oid.hex()} vanished from the local cache")
        try:
            return self._load_arena(oid, m.payload)
        finally:
            self._dead_views.append(oid)

    def load_payload(self, payload: p.Payload) -> Any:
        """Deserialize an inline or file payload; raise it when it holds an error."""
        if payload.data is not None:
            value = deserialize(memoryview(payload.data))
        else:
            assert payload.path is not None
            value = deserialize(map_file_readonly(payload.path, payload.size))
        if payload.error:
            if isinstance(value, RayError) and hasattr(value, "as_instanceof_cause"):
                value = value.as_instanceof_cause()
            raise value
        return value

    def _load_arena(self, oid: bytes, payload: p.Payload) -> Any:
        base = payload.offset
        assert self.arena is not None
        mm = self.arena._mmap
        assert mm is not None

        def tracked(pos: int, size: int) -> memoryview:
            region = (ctypes.c_char * size).from_buffer(mm, base + pos)
            with self._lock:
                self._mapped[oid].views += 1
            weakref.finalize(region, self._dead_views.append, oid)
            return memoryview(region).cast("B").toreadonly()

        with self.arena.view[base : base + payload.size] as view:
            return deserialize(view, tracked)

    def adopt_arena_payload(self, oid: bytes, payload: p.Payload) -> None:
        """Record an arena delivery that came inside a task (the node pinned it for us)."""
        with self._lock:
            m = self._mapped.get(oid)
            if m is None:
                m = self._mapped[oid] = MappedObject(payload)
            m.pins += 1

    def load_arg(self, oid: bytes, payload: p.Payload) -> Any:
        """Value of a task argument delivered with the task."""
        if payload.in_arena:
            self.adopt_arena_payload(oid, payload)
            with self._lock:
                m = self._mapped[oid]
                m.views += 1
            try:
                return self._load_arena(oid, payload)
            finally:
                self._dead_views.append(oid)
        return self.load_payload(payload)

    def future_of(self, ref: ObjectRef) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        oid = ref.binary()
        with self._lock:
            if self._has_value(oid):
                ready = True
            else:
                ready = False
                self._futures.setdefault(oid, []).append(fut)
                ask = self._requested.get(oid) is not True
        if ready:
            self._complete_future(oid, fut)
        elif ask:
            self.subscribe([oid], True)
        # keep the ref alive until the future completes
        fut.add_done_callback(_KeepAlive(ref))
        return fut

    def _complete_future(self, oid: bytes, fut: concurrent.futures.Future[Any]) -> None:
        if not fut.set_running_or_notify_cancel():
            return  # cancelled meanwhile (an asyncio task awaiting the ref was cancelled)
        try:
            fut.set_result(self._materialize(oid))
        except BaseException as err:
            fut.set_exception(err)

    def readiness(self, refs: list[ObjectRef]) -> tuple[int, int]:
        """(ready, failed) among ``refs``, from what this process already knows: no
        message is sent (progress bars call it while the main thread waits)."""
        with self._lock:
            ready = [r._id for r in refs if self._is_ready(r._id)]
            failed = sum(1 for oid in ready if self._is_error(oid))
        return len(ready), failed


class _KeepAlive:
    """A done-callback that holds a ref until its future completes."""

    __slots__ = ("ref",)

    def __init__(self, ref: ObjectRef) -> None:
        self.ref: ObjectRef | None = ref

    def __call__(self, fut: concurrent.futures.Future[Any]) -> None:
        self.ref = None
