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
import itertools
import logging
import os
import queue
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from ..common import auth
from ..common import protocol as p
from ..common.exceptions import RaySystemError
from ..common.ids import TASK_ID_SIZE
from ..common.interrupts import HELD, guarded, release
from ..common.store import Arena
from ..common.transport import ClientConnection
from . import context
from .generators import StreamState
from .lanes import LaneTable
from .launch import LocalNode
from .object_ref import ObjectRef
from .objects import MappedObject, ObjectCache
from .submit import TaskSubmitter

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05


class CoreClient(TaskSubmitter, ObjectCache):
    """A process's connection to its node manager; see the module docstring (submitting
    tasks, actors and actor calls: :class:`submit.TaskSubmitter`; objects:
    :class:`objects.ObjectCache`)."""

    @classmethod
    def owning(cls, node: LocalNode) -> CoreClient:
        """Connect as the driver that owns ``node``, a node manager this process just
        started (``launch.start_local_node``). When that fails, the node is killed and its
        session folder removed before the error propagates, not left running ownerless."""
        try:
            return cls(node.socket_path, "driver", owns_node=True)
        except BaseException:
            node.proc.kill()
            node.stop()
            raise

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
        self._arrivals: list[list[bytes]] = []  # see ObjectCache._await_objects
        self.objects_received = 0  # ObjectAvailable messages, for tests of the wait path
        self._mapped: dict[bytes, MappedObject] = {}
        self._futures: dict[bytes, list[concurrent.futures.Future[Any]]] = {}
        self._streams: dict[bytes, StreamState] = {}  # streaming tasks, by task id
        self._replies: dict[int, list[Any]] = {}
        self._req_ids = itertools.count(1)
        self._registered: set[bytes] = set()
        # In a worker: which of its tasks submitted each task it owns, so that a nested
        # task's output can follow its parent's up to the driver (see _show_log).
        self._submitted_by: OrderedDict[bytes, bytes] = OrderedDict()
        self.lanes = LaneTable()  # direct actor calls (client/lanes.py)
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
        try:
            self.conn.start()
            auth_answer = None
            if self.remote:
                if not self._challenged.wait(30) or self._challenge is None:
                    raise ConnectionError(f"{address[0]}:{address[1]} sent no challenge")
                if not token:
                    raise ConnectionError(
                        f"connecting to {address[0]}:{address[1]} needs the cluster token: pass "
                        "init(_token=...) or set JUPYTER_RAY_TOKEN (jupyter-ray start --head "
                        "printed it, and stores it in the head's session directory)"
                    )
                auth_answer = auth.answer(token, self._challenge)
            self.conn.send(
                p.Hello(
                    role=role,
                    pid=os.getpid(),
                    worker_id=worker_id,
                    owns_node=owns_node,
                    auth=auth_answer,
                )
            )
            if not self._welcome.wait(30) or self.welcome is None:
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
        except BaseException:  # a failed handshake, an interrupt: no connection left open
            self.conn.close()
            raise

    # --- connection ------------------------------------------------------------------

    @guarded
    def send(self, *msgs: object) -> None:
        """Send messages, preceded by any pending reference-count changes.

        One sender at a time: what is pending goes out before messages that may depend
        on it (a direct call's announcement before a ``Subscribe`` to its result). An
        interrupt waits until all of it is sent (see ``common/interrupts.py``).
        """
        try:
            with self._send_lock:
                with self._lock:
                    pending = self._take_ref_changes()
                self.conn.send(*pending, *msgs)
        finally:
            if HELD:
                release()

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

    # --- reference changes, batched for the node --------------------------------------

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
            out.append(p.RefUpdate(add=list(self._pending_add), remove=list(self._pending_remove)))
            self._pending_add = set()
            self._pending_remove = set()
        if self._pending_unpin:
            out.append(p.Unpin(counts=list(self._pending_unpin.items())))
            self._pending_unpin = {}
        return out

    def _release_mapping(self, oid: bytes, m: MappedObject) -> None:
        del self._mapped[oid]
        if m.pins:
            self._pending_unpin[oid] = self._pending_unpin.get(oid, 0) + m.pins

    # --- the reader and flusher threads -----------------------------------------------

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
            _print_log(
                p.LogLines(
                    task_id=b"",
                    name="jupyter_ray warning",
                    pid=os.getpid(),
                    stream=2,
                    text=msg.text,
                )
            )
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
                task_id=parent,
                name=msg.name,
                pid=msg.pid,
                stream=msg.stream,
                text=msg.text,
                cell_id=msg.cell_id,
                cell_execution_count=msg.cell_execution_count,
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
                    m = self._mapped[oid] = MappedObject(payload)
                m.pins += 1
                if oid not in self._local_refs and m.views == 0:
                    self._release_mapping(oid, m)
            elif oid in self._local_refs and oid not in self._values:
                # The first value wins: values never change, and a direct call's result
                # may also come from the node, even failed there if the actor's process
                # died before it reported the call it had answered.
                self._values[oid] = payload
            self._requested.pop(oid, None)
            for arrived in self._arrivals:
                arrived.append(oid)
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
            self.send(p.Subscribe(object_ids=[oid], want_value=True))
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
        return self.request(p.Query(req_id=next(self._req_ids), what=what, arg=arg)).data

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

    # --- cancelling ----------------------------------------------------------------

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        self.send(p.CancelRequest(object_id=ref.binary(), force=force, recursive=recursive))

    def cancel_cell(self, cell_id: str, force: bool = False, wait: bool = False) -> int | None:
        """Cancel every live task that this driver's notebook cell ``cell_id`` started.

        For the kernel side: interrupting a cell cancels its tasks (and theirs). With
        ``wait``, returns how many live tasks the node cancelled; else None at once.
        """
        job_id = context.current_job_id()
        if job_id is None:
            raise RuntimeError("cancel_cell() is for drivers; call jupyter_ray.init() first")
        if not wait:
            self.send(p.CancelCell(cell_id=cell_id, job_id=job_id, force=force))
            return None
        count: int = self.request(
            p.CancelCell(cell_id=cell_id, job_id=job_id, force=force, req_id=next(self._req_ids))
        ).data
        return count


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
