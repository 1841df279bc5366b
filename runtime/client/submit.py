"""Submitting tasks, actors and actor calls: the client side (a mixin of ``CoreClient``).

``submit`` serializes a call's arguments once (top-level refs become :class:`Dep`
placeholders, large arguments go to the store first), builds its ``TaskSpec`` and sends
it: through the node manager, or straight to the actor's worker on a direct lane (see
``lanes.py``) when the call qualifies. Streaming generator calls register their
``StreamState`` here before the task leaves (see ``generators.py``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..common import protocol as p
from ..common.ids import new_task_id, object_id_for
from ..common.interrupts import HELD, guarded, release
from ..common.serialization import SerializedObject, serialize
from . import context
from .lanes import Lane, LaneTable, connect_lane
from .object_ref import ObjectRef

if TYPE_CHECKING:
    from .generators import StreamState

log = logging.getLogger(__name__)

SUBMITTED_BY_KEPT = 10_000
"""Nested tasks a worker remembers the submitter of, for their output (oldest dropped)."""


class Dep:
    """Placeholder for a top-level ObjectRef argument; replaced by its value in the worker."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        return (Dep, (self.index,))


_NO_ARGS = serialize(((), {})).to_bytes()
"""The serialized arguments of a call that has none (the worker checks for it too)."""


class TaskSubmitter:
    """Task and actor submission of a :class:`core.CoreClient`; see the module docstring."""

    _lock: threading.Lock
    _local_refs: dict[bytes, int]
    _requested: dict[bytes, bool]
    _registered: set[bytes]
    _streams: dict[bytes, StreamState]
    _submitted_by: OrderedDict[bytes, bytes]
    _req_ids: Any
    lanes: LaneTable
    remote: bool
    closed: bool
    welcome: p.Welcome | None

    if TYPE_CHECKING:

        def send(self, *msgs: object) -> None: ...
        def request(self, msg: Any) -> Any: ...
        def _new_owned_ref(self, oid: bytes) -> ObjectRef: ...
        def put_serialized(self, so: SerializedObject) -> ObjectRef: ...
        def _on_object(self, msg: p.ObjectAvailable) -> None: ...
        def _show_log(self, msg: p.LogLines) -> None: ...

    @guarded
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
        generator: int = 0,
        stream: StreamState | None = None,
        capture_group: bytes | None = None,
    ) -> list[ObjectRef]:
        """Submit a task (or an actor method call); returns refs to its results.

        ``generator``: a generator task (see client/generators.py); ``stream``: the state that
        receives a streaming task's items, registered here before the task is sent.
        """
        try:
            ctx = context.current_task()
            spec, keep = self._new_spec(
                ctx,
                name,
                args,
                kwargs,
                fn_id=fn_id,
                num_returns=num_returns,
                resources=resources,
                max_retries=max_retries,
                retry_exceptions=retry_exceptions,
                max_calls=max_calls,
                kind=p.TASK if actor_id is None else p.ACTOR_METHOD,
                actor_id=actor_id,
                method=method,
                runtime_env=runtime_env,
                concurrency_group=concurrency_group,
                generator=generator,
                capture_group=capture_group,
            )
            task_id = spec.task_id
            refs = [self._new_owned_ref(object_id_for(task_id, i)) for i in range(num_returns)]
            if stream is not None:
                stream.end = refs[0]
                with self._lock:
                    self._streams[task_id] = stream
            if ctx is not None:  # a nested task: its output goes up through its parent's owner
                submitted_by = self._submitted_by
                submitted_by[task_id] = ctx.task_id
                if len(submitted_by) > SUBMITTED_BY_KEPT:
                    submitted_by.popitem(last=False)
            lanes = actor_id is not None and not self.remote
            if (
                lanes
                and num_returns == 1
                and not spec.deps
                and not spec.nested_refs
                and not generator  # (items go through the node, which owns their objects)
                and not retry_exceptions  # (a retry is the node's decision)
                and method != "__ray_terminate__"
                and self._send_direct(spec)
            ):
                return refs
            msgs: list[object] = []
            if fn_payload is not None and fn_id not in self._registered:
                msgs.append(p.RegisterFunction(fn_id=fn_id, name=name, payload=fn_payload))
                self._registered.add(fn_id)
            msgs.append(p.SubmitTask(spec=spec))
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
        finally:
            if HELD:
                # not kept alive by the frame in the interrupt's traceback
                with contextlib.suppress(UnboundLocalError):
                    del refs
                release()

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        """Ask the node to kill an actor. This caller forgets the actor's lane first, so
        its later calls go through the node, behind the kill, and none is answered by
        the process the kill ends. (After a restarting kill, a call the node passed to
        the old process before it saw it die fails, or with ``max_task_retries`` runs
        again on the new one, which gets a lane again once the node passes it a call.)"""
        with self._lock:
            lane = self.lanes.lanes.get(actor_id)
            if lane is not None:
                lane.worker_id = lane.path = None
        self.send(p.KillActor(actor_id=actor_id, no_restart=no_restart))

    def _send_direct(self, spec: p.TaskSpec) -> bool:
        """Send an actor call on its lane (see lanes.py); False: use the node."""
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
                conn.send(p.DirectCall(spec=spec, seq=lane.seq + 1))
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
            self._on_object(p.ObjectAvailable(object_id=oid, payload=msg.payload))
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
                self.send(p.Subscribe(object_ids=waiting, want_value=False))

    @guarded
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
        capture_group: bytes | None = None,
    ) -> tuple[p.ActorInfo, ObjectRef]:
        """Create an actor; returns its info and a counted ref to its cookie (the handle).
        One step for an interrupt: an actor the node made but this process never got a
        handle to would hold its resources with nobody to kill it."""
        try:
            spec, keep = self._new_spec(
                context.current_task(),
                name,
                args,
                kwargs,
                fn_id=cls_id,
                num_returns=1,
                resources=resources,
                max_retries=0,
                retry_exceptions=False,
                max_calls=0,
                kind=p.ACTOR_CREATION,
                runtime_env=runtime_env,
                capture_group=capture_group,
            )
            spec.actor_id = spec.task_id  # an actor is known by its creation task's id
            if cls_id not in self._registered:
                self.send(p.RegisterFunction(fn_id=cls_id, name=name, payload=cls_payload))
                self._registered.add(cls_id)
            reply = self.request(
                p.CreateActor(req_id=next(self._req_ids), spec=spec, options=options)
            )
            del keep
            if reply.error is not None:
                raise ValueError(reply.error)
            info: p.ActorInfo = reply.info
            if reply.existed:
                return info, ObjectRef(info.cookie, self)  # type: ignore[arg-type]
            return info, self._new_owned_ref(info.cookie)
        finally:
            if HELD:
                release()

    def _new_spec(
        self,
        ctx: context.TaskContext | None,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        fn_id: bytes,
        num_returns: int,
        resources: dict[str, float],
        max_retries: int,
        retry_exceptions: bool | bytes,
        max_calls: int,
        kind: int,
        actor_id: bytes | None = None,
        method: str = "",
        runtime_env: dict[str, Any] | None = None,
        concurrency_group: str | None = None,
        generator: int = 0,
        capture_group: bytes | None = None,
    ) -> tuple[p.TaskSpec, list[ObjectRef]]:
        """A new task's spec, for a task, an actor call or an actor's creation: a fresh
        id, the arguments serialized, and the caller's task (``ctx``), cell, job and
        namespace stamped on it; with the refs to keep until it is sent.

        (Each field is spelled out, not passed on as ``**fields``: building and merging
        that dict cost the driver 6% of its instructions per sync task, 249k against 235k
        measured with cachegrind.)"""
        blob, deps, nested, keep = self._serialize_args(args, kwargs)
        cell_id, count, job_id, namespace = context.stamp(ctx)
        spec = p.TaskSpec(
            task_id=new_task_id(),
            name=name,
            fn_id=fn_id,
            args=blob,
            deps=deps,
            nested_refs=nested,
            num_returns=num_returns,
            resources=resources,
            max_retries=max_retries,
            retry_exceptions=retry_exceptions,
            max_calls=max_calls,
            parent_task=ctx.task_id if ctx is not None else None,
            cell_id=cell_id,
            cell_execution_count=count,
            job_id=job_id,
            namespace=namespace,
            kind=kind,
            actor_id=actor_id,
            method=method,
            runtime_env=runtime_env,
            concurrency_group=concurrency_group,
            generator=generator,
            capture_group=capture_group,
        )
        return spec, keep

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
