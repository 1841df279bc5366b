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
import contextlib
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
from .direct import Lane, LaneTable, connect_lane
from .exceptions import GetTimeoutError, RayError, RaySystemError
from .ids import new_task_id, object_id_for
from .object_ref import ObjectRef
from .serialization import SerializedObject, deserialize, serialize
from .store import Arena, map_file_readonly, map_file_writable

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05
SUBMITTED_BY_KEPT = 10_000
"""Nested tasks a worker remembers the submitter of, for their output (oldest dropped)."""
FETCH_AFTER = 0.005
"""How long a blocked get/wait waits for pushed results before asking for their values."""


class Dep:
    """Placeholder for a top-level ObjectRef argument; replaced by its value in the worker."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        return (Dep, (self.index,))


@dataclass(slots=True)
class _Mapped:
    """An arena object this process maps: deliveries (pins) held and live views."""

    payload: p.Payload
    pins: int = 0
    views: int = 0


class CoreClient:
    """A process's connection to its node manager; see the module docstring."""

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
        with self._lock:
            self.objects_received += 1
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

    # --- functions and tasks ---------------------------------------------------------

    def submit(
        self,
        fn_id: bytes,
        fn_payload: bytes | None,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        num_returns: int,
        resources: dict[str, float],
        max_retries: int,
        retry_exceptions: bool | bytes,
        max_calls: int,
        actor_id: bytes | None = None,
        method: str = "",
        runtime_env: dict[str, Any] | None = None,
        concurrency_group: str | None = None,
    ) -> list[ObjectRef]:
        """Submit a task (or an actor method call); returns refs to its results."""
        blob, deps, nested, keep = self._serialize_args(args, kwargs)
        task_id = new_task_id()
        ctx = context.current_task()
        cell = context.current_cell()
        spec = p.TaskSpec(
            task_id,
            name,
            fn_id,
            blob,
            deps,
            nested,
            num_returns,
            resources,
            max_retries,
            retry_exceptions,
            max_calls,
            parent_task=ctx.task_id if ctx is not None else None,
            cell_id=cell[0],
            cell_execution_count=cell[1],
            job_id=context.current_job_id(),
            namespace=context.current_namespace(),
            kind=p.TASK if actor_id is None else p.ACTOR_METHOD,
            actor_id=actor_id,
            method=method,
            runtime_env=runtime_env,
            concurrency_group=concurrency_group,
        )
        refs = [self._new_owned_ref(object_id_for(task_id, i)) for i in range(num_returns)]
        if ctx is not None:  # a nested task: its output goes up through its parent's owner
            submitted_by = self._submitted_by
            submitted_by[task_id] = ctx.task_id
            if len(submitted_by) > SUBMITTED_BY_KEPT:
                submitted_by.popitem(last=False)
        lanes = actor_id is not None and not self.remote
        if (
            lanes
            and num_returns == 1
            and not deps
            and not nested
            and method != "__ray_terminate__"
            and self._send_direct(spec)
        ):
            return refs
        msgs: list[object] = []
        if fn_payload is not None and fn_id not in self._registered:
            msgs.append(p.RegisterFunction(fn_id, name, fn_payload))
            self._registered.add(fn_id)
        msgs.append(p.SubmitTask(spec))
        with self._lock:
            # The node manager tells the owner when each result is ready, with the value
            # when it is small, unasked: a get() right after a submit sends nothing more.
            for ref in refs:
                self._requested[ref.binary()] = False
            if lanes:
                assert actor_id is not None
                lane = self.lanes.lane(actor_id)
                spec.after = lane.after()
                self.lanes.routed_call(lane, refs[0] if refs else None)
        self.send(*msgs)
        del keep  # large arguments put for this task: the task now holds them
        return refs

    def _send_direct(self, spec: p.TaskSpec) -> bool:
        """Send an actor call on its lane (see direct.py); False: use the node."""
        with self._lock:
            lane = self.lanes.lanes.get(spec.actor_id or b"")
            if lane is None:
                return False
            worker_id, path = lane.worker_id, lane.path
            if worker_id is None or path is None or lane.routed or lane.untracked:
                return False
        assert self.welcome is not None
        oid = object_id_for(spec.task_id, 0)
        entry = (spec, worker_id)
        with lane.send_lock:
            conn = lane.conn
            if conn is None or lane.seq_worker != worker_id:
                if conn is not None:
                    conn.close()
                conn = connect_lane(
                    path,
                    self.welcome.conn_id,
                    lambda msg: self._on_lane_message(lane, msg),
                    lambda: self._on_lane_closed(lane, worker_id),
                )
                lane.conn, lane.seq, lane.seq_worker = conn, 0, worker_id
                if conn is None:
                    with self._lock:
                        if lane.worker_id == worker_id:
                            lane.worker_id = None
                    return False
            spec.owner = self.welcome.conn_id
            with self._lock:
                # before the send: the answer may come back before it returns
                lane.open.add(oid)
                self._requested[oid] = True
                self.lanes.unannounced.append(entry)
            try:
                conn.send(p.DirectCall(spec, lane.seq + 1))
            except (ConnectionError, OSError):
                with self._lock:
                    lane.open.discard(oid)
                    self._requested.pop(oid, None)
                    self.lanes.unannounced.remove(entry)
                    if lane.worker_id == worker_id:
                        lane.worker_id = None
                return False
            lane.seq += 1
        return True

    def _on_lane_message(self, lane: Lane, msg: Any) -> None:
        """Reader thread of a lane: an actor worker's answer, or a call's output."""
        if type(msg) is p.DirectResult:
            oid = object_id_for(msg.task_id, 0)
            with self._lock:
                lane.open.discard(oid)
            # a value, or (None) "done; the value is with the node": as if the node said so
            self._on_object(p.ObjectAvailable(oid, msg.payload))
        elif type(msg) is p.LogLines:
            self._show_log(msg)
        else:
            log.warning("unexpected message on an actor lane: %r", type(msg))

    def _on_lane_closed(self, lane: Lane, worker_id: str) -> None:
        """The actor's worker went away: ask the node about the calls still out."""
        with self._lock:
            if lane.worker_id == worker_id:
                lane.worker_id = None
            if lane.seq_worker != worker_id:
                return  # an older lane; the current one has its own calls
            conn, lane.conn = lane.conn, None
            waiting = [oid for oid in lane.open if oid in self._local_refs]
            lane.open.clear()
            for oid in waiting:
                self._requested[oid] = False
            self.lanes.forget_if_idle(lane)
        if conn is not None:
            conn.close()
        if waiting and not self.closed:
            with contextlib.suppress(ConnectionError, OSError):
                self.send(p.Subscribe(waiting, False))

    def create_actor(
        self,
        cls_id: bytes,
        cls_payload: bytes,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        resources: dict[str, float],
        options: p.ActorOptions,
        runtime_env: dict[str, Any] | None = None,
    ) -> tuple[p.ActorInfo, ObjectRef]:
        """Create an actor; returns its info and a counted ref to its cookie (the handle)."""
        blob, deps, nested, keep = self._serialize_args(args, kwargs)
        task_id = new_task_id()
        ctx = context.current_task()
        cell = context.current_cell()
        spec = p.TaskSpec(
            task_id,
            name,
            cls_id,
            blob,
            deps,
            nested,
            1,
            resources,
            0,
            False,
            0,
            parent_task=ctx.task_id if ctx is not None else None,
            cell_id=cell[0],
            cell_execution_count=cell[1],
            job_id=context.current_job_id(),
            namespace=context.current_namespace(),
            kind=p.ACTOR_CREATION,
            actor_id=task_id,
            runtime_env=runtime_env,
        )
        if cls_id not in self._registered:
            self.send(p.RegisterFunction(cls_id, name, cls_payload))
            self._registered.add(cls_id)
        reply = self.request(p.CreateActor(next(self._req_ids), spec, options))
        del keep
        if reply.error is not None:
            raise ValueError(reply.error)
        info: p.ActorInfo = reply.info
        if reply.existed:
            return info, ObjectRef(info.cookie, self)
        return info, self._new_owned_ref(info.cookie)

    def _serialize_args(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[bytes, list[bytes], list[bytes], list[ObjectRef]]:
        if not args and not kwargs:
            return _NO_ARGS, [], [], []  # a call without arguments: nothing to pickle
        deps: list[bytes] = []
        keep: list[ObjectRef] = []

        def swap(value: Any) -> Any:
            if isinstance(value, ObjectRef):
                deps.append(value.binary())
                return Dep(len(deps) - 1)
            return value

        new_args = tuple(swap(a) for a in args)
        new_kwargs = {k: swap(v) for k, v in kwargs.items()} if kwargs else {}
        so = serialize((new_args, new_kwargs))
        if so.size >= p.INLINE_LIMIT:
            # Too big to travel in the task message: put large arguments in the store.
            def promote(value: Any) -> Any:
                if isinstance(value, Dep):
                    return value
                part = serialize(value)
                if part.size < p.INLINE_LIMIT // 4:
                    return value
                ref = self.put_serialized(part)
                keep.append(ref)
                deps.append(ref.binary())
                return Dep(len(deps) - 1)

            new_args = tuple(promote(a) for a in new_args)
            new_kwargs = {k: promote(v) for k, v in new_kwargs.items()}
            so = serialize((new_args, new_kwargs))
        return so.to_bytes(), deps, so.contained, keep

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
                    msgs.append(p.Blocked())
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


_NO_ARGS = serialize(((), {})).to_bytes()
"""The serialized arguments of a call that has none (the worker checks for it too)."""


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
