"""The client side of the runtime, shared by drivers and workers.

``CoreClient`` owns one connection to the node manager. Calls such as ``get`` run on the
caller's thread and send directly; a reader thread receives values, replies and (in
workers) tasks. A small flusher thread sends reference-count changes that pile up while
the process is otherwise quiet, so freed objects do not linger.

Locking: one lock (``_lock``) guards all tables. ``ObjectRef.__del__`` and view
finalizers never take it: they append to lock-free deques drained under the lock, since
garbage collection may run them on any thread at any moment.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import itertools
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import auth, context
from . import protocol as p
from .direct import LaneTable
from .exceptions import GetTimeoutError, RayError, RaySystemError
from .generators import StreamState
from .ids import TASK_ID_SIZE, new_task_id, object_id_for
from .object_ref import ObjectRef
from .serialization import SerializedObject, deserialize, serialize, type_name
from .store import Arena, map_file_readonly, map_file_writable
from .submit import TaskSubmitter

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05
FETCH_AFTER = 0.005
"""How long a blocked get/wait waits for pushed results before asking for their values."""


@dataclass(slots=True)
class _Mapped:
    """An arena object this process maps: deliveries (pins) held and live views."""

    payload: p.Payload
    pins: int = 0
    views: int = 0


class CoreClient(TaskSubmitter):
    """A process's connection to its node manager; see the module docstring (submitting
    tasks, actors and actor calls: :class:`submit.TaskSubmitter`)."""

    def __init__(
        self,
        address: str | tuple[str, int],
        role: str,
        worker_id: str = "",
        owns_node: bool = False,
        token: str | None = None,
    ) -> None:
        """Connect to a node manager: a Unix socket path, or (host, port) over TCP.

        Over TCP there is no shared memory: every object travels inside messages.
        """
        from .transport import ClientConnection

        self.role = role
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._local_refs: dict[bytes, int] = {}
        self.dead_refs: deque[bytes] = deque()
        self._dead_views: deque[bytes] = deque()
        self._pending_add: set[bytes] = set()
        self._pending_remove: set[bytes] = set()
        self._pending_unpin: dict[bytes, int] = {}
        self._values: dict[bytes, p.Payload] = {}
        self._incoming: dict[bytes, bytearray] = {}  # chunked values arriving over TCP
        self._written_upto = 0  # arena offsets below this were written by this process
        self._ready: set[bytes] = set()
        self._requested: dict[bytes, bool] = {}  # asked for, not yet answered: want value?
        self.objects_received = 0  # ObjectAvailable messages, for tests of the wait path
        self._mapped: dict[bytes, _Mapped] = {}
        self._futures: dict[bytes, list[concurrent.futures.Future[Any]]] = {}
        self._streams: dict[bytes, StreamState] = {}  # streaming tasks, by task id
        self._replies: dict[int, list[Any]] = {}
        self._req_ids = itertools.count(1)
        self._registered: set[bytes] = set()
        # In a worker: which of its tasks submitted each task it owns, so that a nested
        # task's output can follow its parent's up to the driver (see _show_log).
        self._submitted_by: OrderedDict[bytes, bytes] = OrderedDict()
        self.lanes = LaneTable()  # direct actor calls (direct.py)
        self._send_lock = threading.Lock()
        self.tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._on_cancel: Callable[[p.CancelTask], None] | None = None
        self._early_cancels: list[p.CancelTask] = []  # came before the handler was set
        self.on_log: Any = None
        self.on_tick: Callable[[], None] | None = None  # run by the flusher thread
        self.closed = False
        self._welcome = threading.Event()
        self.welcome: p.Welcome | None = None
        self.remote = isinstance(address, tuple)
        self._challenge: bytes | None = None
        self._challenged = threading.Event()
        self.conn = ClientConnection(address, self._on_message, self._on_close)
        self.conn.start()
        auth_answer = None
        if self.remote:
            if not self._challenged.wait(30) or self._challenge is None:
                self.conn.close()
                raise ConnectionError(f"{address[0]}:{address[1]} sent no challenge")
            if not token:
                self.conn.close()
                raise ConnectionError(
                    f"connecting to {address[0]}:{address[1]} needs the cluster token: pass "
                    "init(_token=...) or set JUPYTER_RAY_TOKEN (jupyter-ray start --head "
                    "printed it, and stores it in the head's session directory)"
                )
            auth_answer = auth.answer(token, self._challenge)
        self.conn.send(p.Hello(role, os.getpid(), worker_id, owns_node, auth_answer))
        if not self._welcome.wait(30) or self.welcome is None:
            self.conn.close()
            if self.closed:
                raise ConnectionError(
                    "the node manager closed the connection during the handshake (a wrong "
                    "token?); check JUPYTER_RAY_TOKEN or init(_token=...)"
                )
            raise RaySystemError("the node manager did not answer within 30 s")
        self.arena: Arena | None = (
            None if self.remote else Arena(self.welcome.arena_path, self.welcome.arena_size)
        )
        self._flusher = threading.Thread(
            target=self._flush_loop, name="jupyter-ray-flusher", daemon=True
        )
        self._flusher.start()

    # --- connection ------------------------------------------------------------------

    def send(self, *msgs: object) -> None:
        """Send messages, preceded by any pending reference-count changes.

        One sender at a time: what is pending goes out before messages that may depend
        on it (a direct call's announcement before a ``Subscribe`` to its result).
        """
        with self._send_lock:
            with self._lock:
                pending = self._take_ref_changes()
            self.conn.send(*pending, *msgs)

    def set_cancel_handler(self, handler: Callable[[p.CancelTask], None]) -> None:
        """Send ``CancelTask`` messages to ``handler`` (the worker's), on the reader thread.

        A task can be cancelled the moment it reaches a worker that has just connected,
        before the worker set its handler: those cancels are handed over now, not lost.
        """
        with self._lock:
            self._on_cancel = handler
            early, self._early_cancels = self._early_cancels, []
        for msg in early:
            handler(msg)

    def _take_ref_changes(self) -> list[object]:
        """Drain finalizer queues into messages. Caller holds ``_lock``."""
        dead = self.dead_refs
        while dead:
            oid = dead.popleft()
            n = self._local_refs.get(oid, 0) - 1
            if n > 0:
                self._local_refs[oid] = n
                continue
            self._local_refs.pop(oid, None)
            if oid in self._pending_add:
                self._pending_add.discard(oid)
            else:
                self._pending_remove.add(oid)
            self._values.pop(oid, None)
            self._ready.discard(oid)
            self._requested.pop(oid, None)
            m = self._mapped.get(oid)
            if m is not None and m.views == 0:
                self._release_mapping(oid, m)
        views = self._dead_views
        while views:
            oid = views.popleft()
            m = self._mapped.get(oid)
            if m is None:
                continue
            m.views -= 1
            if m.views == 0:
                self._release_mapping(oid, m)
        # direct calls first: the changes below may name their results
        out: list[object] = self.lanes.take_announcements()
        if self._pending_add or self._pending_remove:
            out.append(p.RefUpdate(list(self._pending_add), list(self._pending_remove)))
            self._pending_add = set()
            self._pending_remove = set()
        if self._pending_unpin:
            out.append(p.Unpin(list(self._pending_unpin.items())))
            self._pending_unpin = {}
        return out

    def _release_mapping(self, oid: bytes, m: _Mapped) -> None:
        del self._mapped[oid]
        if m.pins:
            self._pending_unpin[oid] = self._pending_unpin.get(oid, 0) + m.pins

    def _flush_loop(self) -> None:
        while not self.closed:
            time.sleep(FLUSH_INTERVAL)
            try:
                if self.on_tick is not None:
                    self.on_tick()
                if self.dead_refs or self._dead_views or self.lanes.unannounced:
                    self.send()
            except (ConnectionError, OSError):
                return

    def _on_close(self) -> None:
        with self._lock:
            self.closed = True
            self._cond.notify_all()
            for slot in self._replies.values():
                slot[0].set()
        self.tasks.put(None)
        self._challenged.set()
        self._welcome.set()  # wake a constructor still waiting for its welcome

    def _on_message(self, msg: Any) -> None:
        kind = type(msg)
        if kind is p.ObjectAvailable:
            if msg.payload is not None and msg.payload.offset == p.CHUNKED_OFFSET:
                # Over TCP, a large value came as chunks just before (see transfer.py).
                piece = self._incoming.pop(msg.object_id, None)
                msg.payload.data = bytes(piece) if piece is not None else b""
                msg.payload.offset = -1
            self._on_object(msg)
        elif kind is p.ObjectChunk:
            buf = self._incoming.get(msg.object_id)
            if buf is None:
                buf = self._incoming[msg.object_id] = bytearray(msg.total)
            buf[msg.offset : msg.offset + len(msg.data)] = msg.data
        elif kind is p.ExecuteTask:
            self.tasks.put(msg)
        elif kind is p.LogLines:
            self._show_log(msg)
        elif kind is p.Welcome:
            self.welcome = msg
            self._welcome.set()
        elif kind is p.AuthChallenge:
            self._challenge = msg.nonce
            self._challenged.set()
        elif kind is p.QueryReply or kind is p.ObjectCreated or kind is p.ActorCreated:
            slot = self._replies.get(msg.req_id)
            if slot is not None:
                slot[1] = msg
                slot[0].set()
        elif kind is p.ActorEndpoint:
            with self._lock:
                lane = self.lanes.lane(msg.actor_id)
                lane.worker_id = msg.worker_id
                lane.path = msg.path
        elif kind is p.DriverWarning:
            _print_log(p.LogLines(b"", "jupyter_ray warning", os.getpid(), 2, msg.text))
        elif kind is p.CancelTask:
            with self._lock:
                handler = self._on_cancel
                if handler is None:
                    self._early_cancels.append(msg)
            if handler is not None:
                handler(msg)
        else:
            log.warning("unexpected message from the node manager: %r", kind)

    def _show_log(self, msg: p.LogLines) -> None:
        """A task's output: to the Jupyter hook when set, else to this process's streams.

        A worker gets the output of the tasks its tasks submitted (it owns them): that
        goes on up as the output of the submitting task, so it reaches the driver, and in
        a notebook the cell, that the whole tree of tasks works for.
        """
        if self.on_log is not None:
            self.on_log(msg)
            return
        parent = self._submitted_by.get(msg.task_id) if self.role == "worker" else None
        if parent is not None and not self.closed:
            up = p.LogLines(
                parent,
                msg.name,
                msg.pid,
                msg.stream,
                msg.text,
                msg.cell_id,
                msg.cell_execution_count,
            )
            try:
                self.send(up)
                return
            except (ConnectionError, OSError):
                pass
        _print_log(msg)

    def _on_object(self, msg: p.ObjectAvailable) -> None:
        oid = msg.object_id
        payload = msg.payload
        woken: list[concurrent.futures.Future[None]] = []
        with self._lock:
            self.objects_received += 1
            if self._streams:
                stream = self._streams.get(oid[:TASK_ID_SIZE])
                if stream is not None:  # an item of a streaming task, or its end
                    woken = stream.arrived(self, oid)
                    if stream.ended:
                        del self._streams[oid[:TASK_ID_SIZE]]
            if self.lanes.by_routed:
                self.lanes.answered(oid)
            if payload is None:
                if oid in self._local_refs:
                    self._ready.add(oid)
            elif payload.in_arena:
                m = self._mapped.get(oid)
                if m is None:
                    m = self._mapped[oid] = _Mapped(payload)
                m.pins += 1
                if oid not in self._local_refs and m.views == 0:
                    self._release_mapping(oid, m)
            elif oid in self._local_refs and oid not in self._values:
                # The first value wins: values never change, and a direct call's result
                # may also come from the node, even failed there if the actor's process
                # died before it reported the call it had answered.
                self._values[oid] = payload
            self._requested.pop(oid, None)
            self._cond.notify_all()
            futures = self._futures.pop(oid, None)
            if futures and not self._has_value(oid):
                # only readiness came (we had asked for no more): ask for the value now
                self._futures[oid] = futures
                self._requested[oid] = True
                futures = None
                again = True
            else:
                again = False
        if again:
            self.send(p.Subscribe([oid], True))
        if futures:
            for fut in futures:
                self._complete_future(oid, fut)
        for waiter in woken:
            if not waiter.done():
                waiter.set_result(None)

    def request(self, msg: Any) -> Any:
        """Send a message carrying ``req_id`` and wait for the matching reply."""
        slot: list[Any] = [threading.Event(), None]
        self._replies[msg.req_id] = slot
        try:
            self.send(msg)
            while not slot[0].wait(1.0):
                if self.closed:
                    break
            if slot[1] is None:
                raise RaySystemError("lost the connection to the jupyter_ray node manager")
            return slot[1]
        finally:
            self._replies.pop(msg.req_id, None)

    def query(self, what: str, arg: Any = None) -> Any:
        return self.request(p.Query(next(self._req_ids), what, arg)).data

    def close(self) -> None:
        self.closed = True
        self.conn.close()
        self.conn.join(2)
        for lane in list(self.lanes.lanes.values()):
            if lane.conn is not None:
                lane.conn.close()

    # --- references ------------------------------------------------------------------

    def add_local_ref(self, oid: bytes) -> None:
        with self._lock:
            n = self._local_refs.get(oid, 0)
            self._local_refs[oid] = n + 1
            if n == 0:
                if oid in self._pending_remove:
                    self._pending_remove.discard(oid)
                else:
                    self._pending_add.add(oid)

    def _new_owned_ref(self, oid: bytes) -> ObjectRef:
        """A ref to an object the node manager already counts for us (put, task return)."""
        with self._lock:
            n = self._local_refs.get(oid, 0)
            self._local_refs[oid] = n + 1
        return ObjectRef(oid, self, _owned=True)

    # --- objects ---------------------------------------------------------------------

    def put(self, value: Any) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError(
                "put() of an ObjectRef is not allowed: the ref already names a stored "
                "object. Pass the ref itself, or wrap it in a list to store a ref."
            )
        return self.put_serialized(serialize(value))

    def put_serialized(self, so: SerializedObject) -> ObjectRef:
        oid = object_id_for(new_task_id(), 0)
        if so.size < p.INLINE_LIMIT or self.remote:
            data = so.to_bytes()
            ref = self._new_owned_ref(oid)
            with self._lock:
                self._values[oid] = p.Payload(data=data, size=len(data), type_name=so.type_name)
            self.send(p.PutInline(oid, data, so.contained, so.type_name))
            return ref
        payload = self.write_object(oid, so)
        ref = self._new_owned_ref(oid)
        self.send(p.SealObject(oid, payload, so.contained))
        return ref

    def put_error(self, error: BaseException) -> ObjectRef:
        """Store ``error`` as a failed object: ``get`` of the ref raises it."""
        oid = object_id_for(new_task_id(), 0)
        data = serialize(error).to_bytes()
        payload = p.Payload(data=data, size=len(data), error=True, type_name=type_name(error))
        ref = self._new_owned_ref(oid)
        with self._lock:
            self._values[oid] = payload
        self.send(p.SealObject(oid, payload, []))
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
        reply = self.request(p.CreateObject(next(self._req_ids), oid, so.size))
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
        try:
            while True:
                with self._lock:
                    while True:
                        ready: list[bytes] = []
                        # Subscribe once per object, and only for what no answer is on its
                        # way for: a draining ``wait`` blocks again and again on the same
                        # refs, and asking each time made the node answer each time
                        # (89,201 messages for a 500-task drain). An answer that brought
                        # readiness but not the value we want takes the id out of
                        # ``_requested``, so it is asked for again here.
                        ask: list[bytes] = []
                        failed = False
                        for oid in ids:
                            if have(oid):
                                ready.append(oid)
                                if fail_fast and not failed:
                                    failed = self._is_error(oid)
                            elif oid not in requested:
                                ask.append(oid)
                        if len(ready) >= count or failed:
                            return ready
                        if upgrade_at is not None and time.monotonic() >= upgrade_at:
                            upgrade_at = None
                            ask += [oid for oid in ids if requested.get(oid) is False]
                        if ask or (worker and not blocked):
                            for oid in ask:
                                requested[oid] = ask_value
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
                msgs: list[object] = [p.Subscribe(ask, ask_value)] if ask else []
                if worker and not blocked:
                    # a worker about to block lends its CPU, so nested tasks can run
                    with self._lock:
                        missing = [oid for oid in ids if not have(oid)]
                    msgs.append(p.Blocked(missing))
                    blocked = True
                self.send(*msgs)
        finally:
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
                for oid in fetch:
                    self._requested[oid] = True
            if fetch:
                self.send(p.Subscribe(fetch, True))
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
                m = self._mapped[oid] = _Mapped(payload)
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
                if ask:
                    self._requested[oid] = True
        if ready:
            self._complete_future(oid, fut)
        elif ask:
            self.send(p.Subscribe([oid], True))
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

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        self.send(p.CancelRequest(ref.binary(), force, recursive))

    def cancel_cell(self, cell_id: str, force: bool = False, wait: bool = False) -> int | None:
        """Cancel every live task that this driver's notebook cell ``cell_id`` started.

        For the kernel side: interrupting a cell cancels its tasks (and theirs). With
        ``wait``, returns how many live tasks the node cancelled; else None at once.
        """
        job_id = context.current_job_id()
        if job_id is None:
            raise RuntimeError("cancel_cell() is for drivers; call jupyter_ray.init() first")
        if not wait:
            self.send(p.CancelCell(cell_id, job_id, force))
            return None
        count: int = self.request(p.CancelCell(cell_id, job_id, force, next(self._req_ids))).data
        return count

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


def _print_log(msg: p.LogLines) -> None:
    stream = sys.stdout if msg.stream == 1 else sys.stderr
    prefix = f"({msg.name} pid={msg.pid}) "
    text = "".join(prefix + line for line in msg.text.splitlines(keepends=True))
    if not text.endswith("\n"):
        text += "\n"
    try:
        stream.write(text)
        stream.flush()
    except (ValueError, OSError):  # stream closed at interpreter exit
        pass
