"""The node manager: worker pool, local scheduler, object directory and store of one node.

Runs as its own process (``python -m jupyter_ray.runtime node``) on one asyncio event
loop; every handler below runs on that loop and none of them blocks it (file I/O for
spilling goes to an executor thread). In the embedded mode that ``init()`` uses, this
process also answers the head's questions for its single node, and it exits when the
driver that started it goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .. import auth, leftovers
from .. import protocol as p
from ..discovery import remove_session, write_session
from ..feed import ChangeFeed
from ..ids import object_id_for, random_id
from ..labels import MARKER, choose, describe, node_labels
from ..serialization import serialize
from ..state_schema import (
    CANCELLED,
    FAILED,
    FINISHED,
    PENDING_ARGS,
    PENDING_RESOURCES,
    RUNNING,
    SCHEDULED,
)
from ..store import Allocator, Arena
from ..telemetry import Telemetry
from ..transport import ServerConnection
from .actor_manager import ACTOR_QUERIES, ActorManager
from .actors import ActorDirectory, ActorRecord
from .cancel import Cancellation
from .cluster import ClusterMember
from .generator_items import GeneratorItems
from .history import TaskHistory
from .jobs import JobTable
from .object_manager import ObjectManager
from .objects import ObjectEntry, ObjectTable
from .placement_groups import PG_QUERIES, PlacementGroupRecord, PlacementGroups
from .processes import SOCKET_NAME, WorkerProcesses, worker_environment
from .scheduler import Grant, ReadyQueue, ResourceLedger
from .state_view import STATE_QUERIES, StateView
from .transfer import NodeTransfers
from .worker_pool import MAX_WORKERS, WorkerPool

log = logging.getLogger("jupyter_ray.node")

SPILL_PREFIX = "jupyter_ray-spill-"

NODE_ID_SIZE = 28  # bytes, as Ray's node ids (56 hex digits)
IDLE_WORKER_TTL = 30.0


@dataclass(slots=True, eq=False)
class WorkerState:
    conn: ServerConnection
    pid: int
    worker_id: str
    functions: set[bytes] = field(default_factory=set)
    task: TaskRecord | None = None
    lent_cpus: float = 0.0
    idle_since: float = field(default_factory=time.monotonic)
    exiting: bool = False
    actor: ActorRecord | None = None  # set while the worker is dedicated to an actor
    # Whether it has run work that used GPUs (None: nothing yet). As in Ray, GPU and CPU
    # work never share a process: a library that opened a GPU keeps it (and its memory)
    # for the life of the process.
    gpu: bool | None = None


@dataclass(slots=True, eq=False)
class TaskRecord:
    spec: p.TaskSpec
    missing: int = 0
    state: str = PENDING_ARGS  # PENDING_ARGS, PENDING_RESOURCES, then SCHEDULED
    times: dict[str, float] = field(default_factory=dict)
    attempt: int = 0
    owner_pid: int = 0
    worker_pid: int | None = None
    node_id: str | None = None  # the node it was forwarded to; None: this one
    error_type: str | None = None
    error_message: str | None = None
    ended: float = 0.0
    worker: WorkerState | None = None
    grant: Grant | None = None
    retries_left: int = 0
    cancelled: bool = False
    force_cancel: bool = False
    actor: ActorRecord | None = None
    items: int = 0  # a streaming generator's: how many values it has reported


class NodeManager(
    ActorManager,
    ObjectManager,
    StateView,
    ClusterMember,
    NodeTransfers,
    PlacementGroups,
    GeneratorItems,
    Cancellation,
    WorkerPool,
):
    """State and handlers of one node; see the module docstring for threading."""

    def __init__(
        self,
        session_dir: str,
        resources: dict[str, float],
        object_store_memory: int,
        embedded: bool = True,
        worker_env: dict[str, str] | None = None,
        task_history: int = 10_000,
        listen: tuple[str, int] | None = None,
        token: str | None = None,
        join: tuple[str, int] | None = None,
        zygote: subprocess.Popen[bytes] | None = None,
        origin: str = "script",
        label: str = "",
        labels: dict[str, str] | None = None,
    ) -> None:
        self.node_id = random_id(NODE_ID_SIZE)
        self.session_dir = session_dir
        self.socket_path = os.path.join(session_dir, SOCKET_NAME)
        self.embedded = embedded
        self.origin = origin
        self.label = label
        self.listen = listen
        self.token = token
        self.tcp_address: str | None = None
        self.init_cluster(is_head=join is None, join=join)
        self.ledger = ResourceLedger(resources, node_labels(self.node_id, resources, labels))
        self.ready = ReadyQueue()
        self.objects = ObjectTable()
        self.arena = Arena(os.path.join(session_dir, "arena"), object_store_memory, create=True)
        self.alloc = Allocator(object_store_memory)
        self.init_transfers()
        # Spill files go to disk, not next to the arena in shared memory.
        self.spill_dir = tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{self.node_id[:8]}-")
        # Held for our whole life, so that a sweep after a SIGKILL finds both directories
        # abandoned and frees the arena's memory (see leftovers.py).
        self._locks = [leftovers.hold(session_dir), leftovers.hold(self.spill_dir)]
        self.logs_dir = os.path.join(session_dir, "logs")
        os.makedirs(self.logs_dir, exist_ok=True)
        self.spilled_bytes = 0
        self.conns: dict[int, ServerConnection] = {}
        self.workers: dict[int, WorkerState] = {}
        self.idle: deque[WorkerState] = deque()
        self.processes = WorkerProcesses(
            self.socket_path, self.logs_dir, worker_environment(worker_env), self._process_exited
        )
        self._early_zygote = zygote
        self.starting = 0
        self._said_hello: set[int] = set()
        self.functions: dict[bytes, tuple[str, bytes]] = {}
        self.actors = ActorDirectory()
        self.history = TaskHistory(max(task_history, 0))
        self.jobs = JobTable()
        self.recording = task_history >= 0  # -1 turns task recording off (benchmarks)
        self.feed = ChangeFeed()
        self.telemetry = Telemetry()
        self.tasks: dict[bytes, TaskRecord] = {}
        self.direct_early: dict[bytes, p.TaskDone] = {}
        self.groups: dict[bytes, PlacementGroupRecord] = {}
        self.pending_groups: list[PlacementGroupRecord] = []
        self.waiting_on: dict[bytes, list[TaskRecord]] = {}
        self.pending_allocs: dict[int, dict[bytes, p.Payload]] = {}
        self.seal_waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self.pool_size = max(1, int(self.ledger.total.get("CPU", 1)))
        self._next_conn = 0
        self._stopping = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self._tcp_server: asyncio.AbstractServer | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self._warned_infeasible: set[tuple[tuple[str, float], ...]] = set()
        self._handlers: dict[type, Any] = {
            p.Hello: self.on_hello,
            p.RegisterFunction: self.on_register_function,
            p.SubmitTask: self.on_submit_task,
            p.PutInline: self.on_put_inline,
            p.ObjectChunk: self.on_object_chunk,
            p.CreateObject: self.on_create_object,
            p.SealObject: self.on_seal_object,
            p.RefUpdate: self.on_ref_update,
            p.Unpin: self.on_unpin,
            p.Subscribe: self.on_subscribe,
            p.Blocked: self.on_blocked,
            p.Unblocked: self.on_unblocked,
            p.CancelRequest: self.on_cancel,
            p.CancelCell: self.on_cancel_cell,
            p.TaskDone: self.on_task_done,
            p.GeneratorItem: self.on_generator_item,
            p.TaskStarted: self.on_task_started,
            p.LogLines: self.on_log_lines,
            p.Query: self.on_query,
            p.Shutdown: self.on_shutdown,
            p.CreateActor: self.on_create_actor,
            p.KillActor: self.on_kill_actor,
            p.ActorExiting: self.on_actor_exiting,
            p.DirectCalls: self.on_direct_calls,
            p.FeedSubscribe: self.on_feed_subscribe,
            p.FeedResync: self.on_feed_resync,
            p.NodeRegister: self.on_node_register,
            p.NodeStatus: self.on_node_status,
            p.JobInfo: self.on_job_info,
        }

    # --- life cycle ------------------------------------------------------------------

    async def serve(self, on_ready: Any = None) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._new_connection, self.socket_path)
        os.chmod(self.socket_path, 0o600)
        if self.listen is not None:
            if not self.token:
                raise ValueError("a node manager that listens on TCP needs a token")
            tcp = await loop.create_server(self._new_tcp_connection, *self.listen)
            host, port = tcp.sockets[0].getsockname()[:2]
            self.tcp_address = f"{host}:{port}"
            self._tcp_server = tcp
        self.processes.start_zygote(self._early_zygote)
        for _ in range(self.pool_size):
            self._start_worker()
        write_session(
            self.node_id,
            self.socket_path,
            self.embedded,
            self.tcp_address,
            os.path.join(self.session_dir, "token") if self.token else None,
            None if self.join is None else f"{self.join[0]}:{self.join[1]}",
            self.origin,
            self.label,
        )
        if on_ready is not None:
            on_ready()
        housekeeping = asyncio.ensure_future(self._housekeeping())
        feed = asyncio.ensure_future(self._feed_loop())
        if self.join is not None:
            self._spawn(self.join_head())
        elif self.listen is not None:
            self._spawn(self.heartbeat_members())
        try:
            await self._stopping.wait()
        finally:
            housekeeping.cancel()
            feed.cancel()
            await self._teardown()

    def _new_connection(self) -> ServerConnection:
        self._next_conn += 1
        conn = ServerConnection(self._next_conn, self._dispatch, self._on_lost)
        self.conns[conn.conn_id] = conn
        return conn

    def _new_tcp_connection(self) -> ServerConnection:
        self._next_conn += 1
        nonce = auth.new_nonce()
        conn = ServerConnection(
            self._next_conn, self._dispatch, self._on_lost, greeting=p.AuthChallenge(nonce)
        )
        conn.nonce = nonce  # type: ignore[attr-defined]
        conn.remote = True  # type: ignore[attr-defined]
        self.conns[conn.conn_id] = conn
        return conn

    async def _teardown(self) -> None:
        remove_session(self.node_id)
        if self._server is not None:
            self._server.close()
        if self._tcp_server is not None:
            self._tcp_server.close()
        for conn in list(self.conns.values()):
            conn.close()
        await self.processes.stop_all()
        self.arena.unlink()
        shutil.rmtree(self.spill_dir, ignore_errors=True)
        shutil.rmtree(self.session_dir, ignore_errors=True)  # ours alone

    async def _feed_loop(self) -> None:
        """Flush the change feed every ``feed.interval`` seconds while anyone listens."""
        while True:
            await asyncio.sleep(self.feed.interval)
            if self.feed.active:
                self.feed.touch("nodes", self.node_id)
                self.feed.flush(self.lookup, self.snapshot)

    async def _housekeeping(self) -> None:
        """Reap exited workers, retire surplus idle ones, sample machine telemetry."""
        loop = asyncio.get_running_loop()
        gpu_tools = shutil.which("nvidia-smi") is not None or _has_module("pynvml")
        ticks = 0
        while True:
            await asyncio.sleep(0.5)
            ticks += 1
            self.processes.reap()
            self.telemetry.refresh_cpu_memory()
            if gpu_tools and ticks % 4 == 0:
                await loop.run_in_executor(None, self.telemetry.read_gpus)
            now = time.monotonic()
            surplus = len(self.workers) - self.pool_size
            for w in list(self.idle):
                if surplus <= 0:
                    break
                if now - w.idle_since > IDLE_WORKER_TTL:
                    self.idle.remove(w)
                    w.exiting = True
                    w.conn.close()
                    surplus -= 1

    # --- plumbing --------------------------------------------------------------------

    def _dispatch(self, conn: ServerConnection, msg: Any) -> None:
        handler = self._handlers.get(type(msg))
        if not conn.accepted and type(msg) is not p.Hello:
            log.warning("conn %d sent %s before hello; closing it", conn.conn_id, type(msg))
            conn.close()
            return
        if handler is None:
            log.warning("conn %d sent an unknown message %s; closing it", conn.conn_id, type(msg))
            conn.close()
            return
        try:
            result = handler(conn, msg)
        except Exception:
            # A malformed message must not take the node down for everyone else.
            log.exception("handling %s from conn %d failed; closing it", type(msg), conn.conn_id)
            conn.close()
            return
        # most handlers return None; iscoroutine(None) is a slow ABC check
        if result is not None and asyncio.iscoroutine(result):
            self._spawn(result)

    def _on_lost(self, conn: ServerConnection) -> None:
        self.conns.pop(conn.conn_id, None)
        self.jobs.connection_lost(conn.conn_id)
        self.feed.unsubscribe(conn.conn_id)
        self.member_lost(conn)
        freed: list[ObjectEntry] = []
        reclaim = self.objects.drop_connection(conn.conn_id, freed)
        for entry in freed + reclaim:
            self._release_memory(entry)
        for payload in self.pending_allocs.pop(conn.conn_id, {}).values():
            self._release_payload(payload)
        self.assembler.drop_source(conn.conn_id)
        self.drop_direct_early(conn.conn_id)
        if self.groups:
            self.groups_owner_gone(conn.conn_id)
        self._owner_gone(conn)
        if conn.role == "driver":
            self._drop_tasks_of(conn)
        worker = self.workers.pop(conn.conn_id, None)
        if worker is not None:
            self._on_worker_lost(worker)
        elif conn.role == "driver" and getattr(conn, "owns_node", False) and self.embedded:
            self._stopping.set()

    # --- connections -----------------------------------------------------------------

    def on_hello(self, conn: ServerConnection, msg: p.Hello) -> None:
        nonce = getattr(conn, "nonce", None)
        if nonce is not None:
            assert self.token is not None
            if msg.role == "worker" or not auth.verify(self.token, nonce, msg.auth):
                log.warning("refused a TCP connection from %s: bad token", conn.peer)
                conn.close()
                return
        conn.accept()
        conn.role = msg.role
        conn.pid = msg.pid
        conn.owns_node = msg.owns_node  # type: ignore[attr-defined]
        conn.send(
            p.Welcome(
                self.node_id,
                self.session_dir,
                self.arena.path,
                self.arena.size,
                conn.conn_id,
                dict(self.ledger.total),
                self.tcp_address,
            )
        )
        if msg.role == "worker":
            self.starting = max(0, self.starting - 1)
            self._said_hello.add(msg.pid)
            worker = WorkerState(conn, msg.pid, msg.worker_id)
            self.workers[conn.conn_id] = worker
            self.idle.append(worker)
            self._dispatch_tasks()

    def on_job_info(self, conn: ServerConnection, msg: p.JobInfo) -> None:
        self.jobs.started(conn.conn_id, msg.job_id, conn.pid, msg.metadata)

    def on_register_function(self, conn: ServerConnection, msg: p.RegisterFunction) -> None:
        self.functions[msg.fn_id] = (msg.name, msg.payload)

    def on_query(self, conn: ServerConnection, msg: p.Query) -> None:
        if msg.what in PG_QUERIES:
            conn.send(p.QueryReply(msg.req_id, self.pg_query(conn, msg.what, msg.arg)))
            return
        if self.query_via_head(conn, msg):
            return
        conn.send(p.QueryReply(msg.req_id, self._answer(msg.what, msg.arg)))

    def _answer(self, what: str, arg: Any) -> Any:
        if what == "cluster_resources":
            return _sum(v.total for v in self.all_views() if v.alive)
        if what == "available_resources":
            free = _sum(v.available for v in self.all_views() if v.alive)
            return {k: v for k, v in free.items() if v > 0}
        if what == "nodes":
            return [self.node_info(v) for v in self.all_views()]
        if what == "store_stats":
            return {
                "capacity": self.alloc.capacity,
                "used": self.alloc.used,
                "spilled": self.spilled_bytes,
                "objects": len(self.objects.entries),
                "zombies": len(self.objects.zombies),
            }
        if what == "workers":
            return [{"pid": w.pid, "busy": w.task is not None} for w in self.workers.values()]
        if what == "worker_pids":  # every worker process started and not yet reaped
            return self.processes.pids()
        if what == "list_jobs":
            return self.jobs.states()
        if what in STATE_QUERIES:
            return self.state_query(what, arg)
        if what in ACTOR_QUERIES:
            return self.actor_query(what, arg)
        if what == "has_object":
            return arg in self.objects
        if what == "validate":
            self.objects.validate()
            self.alloc.check()
            return True
        raise ValueError(f"unknown query {what!r}")

    def node_info(self, view: p.NodeView) -> dict[str, Any]:
        """One entry of ``nodes()``, with Ray's field names."""
        host = view.address.rpartition(":")[0] or "127.0.0.1"
        return {
            "NodeID": view.node_id,
            "Alive": view.alive,
            "NodeManagerAddress": host,
            "NodeManagerHostname": view.stats.get("hostname", ""),
            "NodeManagerPort": view.address.rpartition(":")[2] or None,
            "Resources": dict(view.total),
            "ObjectStoreMemory": view.stats.get("object_store_capacity", 0),
            "IsHead": view.is_head,
            "alive": view.alive,
        }

    def _stats_for_peers(self) -> dict[str, Any]:
        sample = self.telemetry.sample
        return {
            "hostname": socket.gethostname(),
            "cpu_percent": sample.cpu_percent,
            "memory_used": sample.memory_used,
            "memory_total": sample.memory_total,
            "object_store_used": self.alloc.used,
            "object_store_capacity": self.alloc.capacity,
            "object_store_spilled": self.spilled_bytes,
            "num_workers": len(self.workers),
        }

    def on_feed_subscribe(self, conn: ServerConnection, msg: p.FeedSubscribe) -> None:
        self.feed.subscribe(conn, self.snapshot)

    def on_feed_resync(self, conn: ServerConnection, msg: p.FeedResync) -> None:
        self.feed.resync(conn.conn_id, self.snapshot)

    def _mark(self, rec: TaskRecord, state: str, when: float | None = None) -> None:
        """Record a task's state transition, for the state API and the feed."""
        rec.state = state
        if not self.recording:
            return
        rec.times[state] = when if when is not None else time.time()
        if self.feed.subscribers:
            self.feed.touch("tasks", rec.spec.task_id.hex())

    def on_shutdown(self, conn: ServerConnection, msg: p.Shutdown) -> None:
        self._stopping.set()

    # --- plumbing, continued ---------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- tasks -----------------------------------------------------------------------

    def on_submit_task(self, conn: ServerConnection, msg: p.SubmitTask) -> None:
        spec = msg.spec
        spec.owner = conn.conn_id
        for i in range(spec.num_returns):
            entry = self.objects.create(object_id_for(spec.task_id, i), conn.conn_id)
            # The owner hears when each result is ready (with small values inline) without
            # asking: its client counts on that and sends no Subscribe for them.
            self.objects.add_waiter(entry, conn.conn_id, False)
        rec = TaskRecord(spec, retries_left=spec.max_retries)
        if spec.kind == p.ACTOR_METHOD:
            self.submit_actor_call(conn, rec)
            return
        self._track(rec)
        if rec.missing == 0:
            self._enqueue(rec)

    def _track(self, rec: TaskRecord) -> None:
        """Hold the task's arguments and note which are not ready yet."""
        spec = rec.spec
        for oid in spec.deps:
            self.objects.hold(oid)
        for oid in spec.nested_refs:
            self.objects.hold(oid)
        self.tasks[spec.task_id] = rec
        self.history.submitted += 1
        rec.owner_pid = self._pid_of(spec.owner)
        self._mark(rec, PENDING_ARGS)
        for oid in spec.deps:
            entry = self.objects.get(oid)
            if entry is None or entry.payload is None:
                rec.missing += 1
                self.waiting_on.setdefault(oid, []).append(rec)

    def _deps_ready(self, rec: TaskRecord) -> None:
        if rec.spec.kind == p.ACTOR_METHOD:
            if rec.actor is not None:
                self.pump_actor(rec.actor)
        else:
            self._enqueue(rec)

    def _enqueue(self, rec: TaskRecord) -> None:
        self._mark(rec, PENDING_RESOURCES)
        demand = rec.spec.resources
        if not self.ledger.feasible(demand) and not self.feasible_somewhere(demand):
            self._infeasible(rec)
            demand = rec.spec.resources
        self.ready.push(demand, rec)
        self._dispatch_tasks()

    def _infeasible(self, rec: TaskRecord) -> None:
        """No node could ever run it: take the fallback of a label selector that names a
        node that can (see labels.py), else tell the owner once why it waits."""
        demand = rec.spec.resources
        markers = [k for k in demand if k.startswith(MARKER)]
        if markers:
            nodes = [self.ledger.labels] + [v.labels for v in self.peers()]
            demand = {(choose(k, nodes) if k in markers else k): v for k, v in demand.items()}
            rec.spec.resources = demand
            if self.ledger.feasible(demand) or self.feasible_somewhere(demand):
                return
        key = tuple(sorted(demand.items()))
        if key in self._warned_infeasible:
            return
        self._warned_infeasible.add(key)
        wanted = {k: v for k, v in demand.items() if not k.startswith(MARKER)}
        text = (
            f"{rec.spec.name} needs {wanted}, more than this cluster has "
            f"({self.ledger.total}); it waits until such resources are added. "
            "Lower its num_cpus/num_gpus/resources, or cancel it."
        )
        for marker in markers:
            text = (
                f"{rec.spec.name} asks for a node with {describe(marker)}, and no live node "
                "has such labels (nodes get labels from 'jupyter-ray start --labels k=v' or "
                "init(labels=...)); it waits until one joins. Change the selector, add a "
                "fallback_strategy, or cancel it."
            )
        log.warning(text)
        owner = self.conns.get(rec.spec.owner)
        if owner is not None:
            owner.send(p.DriverWarning(text))

    def _dispatch_tasks(self) -> None:
        if self.pending_groups:
            self.reserve_groups(dispatch=False)  # resources may have come back
        if not self.ready:
            return
        want_workers = 0
        for demand, queue in self.ready.shapes():
            gpu = demand.get("GPU", 0.0) > 0 or (bool(self.groups) and _uses_group_gpu(demand))
            while queue:
                if not self.ledger.fits(demand):
                    break
                worker = self._idle_worker(gpu)
                if worker is None:
                    want_workers += min(len(queue), self.ledger.how_many_fit(demand))
                    break
                grant = self.ledger.acquire(demand)
                assert grant is not None
                if self.groups and not grant.gpu_ids:
                    grant.gpu_ids = self.group_gpu_ids(demand)  # GPUs of its bundle
                rec = self.ready.popleft(queue)
                assert isinstance(rec, TaskRecord)
                self._run(rec, worker, grant)
        if self.cluster:
            self._spill_to_peers()
        if want_workers:
            room = MAX_WORKERS - len(self.workers) - self.starting
            for _ in range(min(want_workers - self.starting, room, 4)):
                self._start_worker()

    def _spill_to_peers(self) -> None:
        """Forward queued tasks that cannot run here now to nodes that have room."""
        for demand, queue in self.ready.shapes():
            if self.ledger.fits(demand):
                continue  # it will run here once a worker is free
            while queue:
                rec = queue[0]
                assert isinstance(rec, TaskRecord)
                if rec.spec.generator:
                    break  # its values go to its owner here: it runs on this node
                node_id = self.place_elsewhere(demand, self.ledger.feasible(demand))
                if node_id is None:
                    break
                self.ready.popleft(queue)
                self.forward(rec, node_id)

    def _run(self, rec: TaskRecord, worker: WorkerState, grant: Grant) -> None:
        rec.grant = grant
        if rec.spec.kind == p.ACTOR_CREATION:
            assert rec.actor is not None
            self.place_actor(rec.actor, worker, grant)
        else:
            worker.task = rec
        self._send_task(rec, worker, grant.gpu_ids)

    def _send_task(self, rec: TaskRecord, worker: WorkerState, gpu_ids: list[int]) -> None:
        spec = rec.spec
        self._mark(rec, SCHEDULED)
        rec.worker = worker
        rec.worker_pid = worker.pid
        rec.node_id = None
        fn_payload = None
        if spec.kind != p.ACTOR_METHOD and spec.fn_id not in worker.functions:
            fn_payload = self.functions[spec.fn_id][1]
            worker.functions.add(spec.fn_id)
        payloads: list[p.Payload] = []
        for oid in spec.deps:
            entry = self.objects.get(oid)
            assert entry is not None and entry.payload is not None
            if entry.payload.in_arena:
                self.objects.pin(entry, worker.conn.conn_id)
            payloads.append(entry.payload)
        creation = spec.kind == p.ACTOR_CREATION and rec.actor is not None
        options = rec.actor.options if creation and rec.actor else None
        attempt = rec.actor.restarts if creation and rec.actor else rec.attempt
        worker.conn.send(
            p.ExecuteTask(spec, fn_payload, payloads, gpu_ids, rec.retries_left, options, attempt)
        )

    def on_task_done(self, conn: ServerConnection, msg: p.TaskDone) -> None:
        allocs = self.pending_allocs.get(conn.conn_id)
        if allocs:
            # Results the worker wrote into the store are this message's now: left in
            # ``pending_allocs``, they were freed when the worker exited (max_calls, a
            # crash), under the refs that still pointed at them.
            for i in range(len(msg.results)):
                allocs.pop(object_id_for(msg.task_id, i), None)
        rec = self.tasks.get(msg.task_id)
        if rec is None and msg.direct_caller:
            self.direct_done_early(msg)
            return
        if rec is not None:
            self._take_report(rec, msg)
            if rec.spec.kind != p.TASK:
                self.actor_task_done(rec, msg)
                return
        worker = self.workers.get(conn.conn_id)
        if worker is not None and worker.actor is None:
            self._free_worker(worker, exiting=msg.exit_after)
        if rec is None:
            for payload in msg.results:
                self._release_payload(payload)
            return
        if rec.grant is not None:
            self.ledger.release(rec.grant)
            rec.grant = None
        if msg.retry and rec.retries_left > 0 and not rec.cancelled:
            rec.retries_left -= 1
            rec.attempt += 1
            for payload in msg.results:
                self._release_payload(payload)
            self._enqueue(rec)
        else:
            self._finish(rec, msg.results, msg.contained)
        self._dispatch_tasks()

    def _take_report(self, rec: TaskRecord, msg: p.TaskDone) -> None:
        """Record what a worker's report says of a task: start, end, error."""
        if msg.started:
            self._mark(rec, RUNNING, msg.started)
        rec.error_type = msg.error_type
        rec.error_message = msg.error_message
        rec.ended = msg.ended

    def on_task_started(self, conn: Any, msg: p.TaskStarted) -> None:
        """Calls that have run a while (from a worker, or from the node a task was
        forwarded to): show them RUNNING here, and on the node they came from."""
        for task_id, started in msg.started:
            rec = self.tasks.get(task_id)
            if rec is not None and rec.state == SCHEDULED:
                self._mark(rec, RUNNING, started)
                owner = self.conns.get(rec.spec.owner)
                if owner is not None and owner.role == "peer":
                    owner.send(p.TaskStarted([(task_id, started)]))

    def _finish(
        self,
        rec: TaskRecord,
        results: list[p.Payload],
        contained: list[list[bytes]],
        push: bool = True,
    ) -> None:
        spec = rec.spec
        self.tasks.pop(spec.task_id, None)
        self._record_done(rec, results)
        owner = self.conns.get(spec.owner) if push else None
        for i, payload in enumerate(results):
            oid = object_id_for(spec.task_id, i)
            entry = self.objects.get(oid)
            owner_waits = entry is not None and spec.owner in entry.waiters
            self._sealed(oid, payload, contained[i] if i < len(contained) else [])
            # push small results to the owner before it asks: saves a round trip
            if (
                owner is not None
                and entry is not None
                and payload.data is not None
                and not owner_waits
            ):
                owner.send(p.ObjectAvailable(oid, payload))
        self._release_holds(spec)

    def _record_done(self, rec: TaskRecord, results: list[p.Payload]) -> None:
        """Move a finished task to the history, in its final state."""
        if rec.cancelled or rec.error_type == "TaskCancelledError":
            state = CANCELLED
        elif rec.error_type is not None or any(r.error for r in results):
            state = FAILED
        else:
            state = FINISHED
        self._mark(rec, state, rec.ended or None)
        if not self.recording:
            return
        gone = self.history.add(self.task_state(rec))
        if gone is not None and self.feed.subscribers:
            self.feed.gone("tasks", gone.task_id)

    def _release_holds(self, spec: p.TaskSpec) -> None:
        freed: list[ObjectEntry] = []
        for oid in spec.deps:
            self.objects.release(oid, freed)
        for oid in spec.nested_refs:
            self.objects.release(oid, freed)
        if spec.kind == p.ACTOR_METHOD and spec.actor_id is not None:
            actor = self.actors.actors.get(spec.actor_id)
            if actor is not None:
                self.objects.release(actor.cookie, freed)
        for entry in freed:
            self._release_memory(entry)

    def _fail(self, rec: TaskRecord, error: BaseException) -> None:
        rec.error_type = type(error).__name__
        rec.error_message = str(error)[:1000]
        rec.ended = 0.0
        data = serialize(error).to_bytes()
        payload = p.Payload(data=data, size=len(data), error=True)
        self._finish(rec, [payload] * rec.spec.num_returns, [])

    def on_blocked(self, conn: ServerConnection, msg: p.Blocked) -> None:
        worker = self.workers.get(conn.conn_id)
        if msg.waiting_on and all(
            (entry := self.objects.get(oid)) is not None and entry.payload is not None
            for oid in msg.waiting_on
        ):
            return  # everything is ready: the worker will not wait long
        if worker is not None and worker.task is not None and worker.task.grant is not None:
            worker.lent_cpus = self.ledger.lend_cpu(worker.task.grant)
            self._dispatch_tasks()

    def on_unblocked(self, conn: ServerConnection, msg: p.Unblocked) -> None:
        worker = self.workers.get(conn.conn_id)
        if worker is not None and worker.lent_cpus:
            self.ledger.reclaim_cpu(worker.lent_cpus)
            worker.lent_cpus = 0.0

    def on_log_lines(self, conn: ServerConnection, msg: p.LogLines) -> None:
        rec = self.tasks.get(msg.task_id)
        owner = self.conns.get(rec.spec.owner) if rec is not None else None
        if owner is not None:
            owner.send(msg)
        else:
            stream = sys.stdout if msg.stream == 1 else sys.stderr
            stream.write(msg.text)


# --- process entry point -------------------------------------------------------------


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def _sum(dicts: Any) -> dict[str, float]:
    total: dict[str, float] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _uses_group_gpu(demand: dict[str, float]) -> bool:
    """Whether a demand takes a placement group's GPUs."""
    return any(k.startswith("GPU_group_") and v > 0 for k, v in demand.items())


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def main(argv: list[str] | None = None, zygote: subprocess.Popen[bytes] | None = None) -> None:
    """Run a node manager; ``zygote``: its worker zygote, already started (__main__.py)."""
    parser = argparse.ArgumentParser(description="jupyter_ray node manager (internal)")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--resources", required=True, help="JSON dict of resource totals")
    parser.add_argument("--object-store-memory", type=int, required=True)
    parser.add_argument("--worker-env", default="{}", help="JSON dict added to workers' env")
    parser.add_argument("--task-history", type=int, default=10_000)
    parser.add_argument(
        "--detached", action="store_true", help="run on after drivers leave (started by the CLI)"
    )
    parser.add_argument("--listen", default=None, help="HOST:PORT of the cluster port")
    parser.add_argument("--join", default=None, help="HOST:PORT of the head to join")
    parser.add_argument("--origin", default="script", help="who started it (for the registry)")
    parser.add_argument("--label", default="", help="a hint for people reading the registry")
    parser.add_argument("--labels", default="{}", help="JSON dict of this node's labels")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a notebook must not kill us
    listen = None
    token = None
    if args.listen:
        listen = _host_port(args.listen)
        token = os.environ.get(auth.TOKEN_ENV) or auth.new_token()
        auth.write_token(os.path.join(args.session_dir, "token"), token)
    node = NodeManager(
        args.session_dir,
        json.loads(args.resources),
        args.object_store_memory,
        embedded=not args.detached,
        worker_env=json.loads(args.worker_env),
        task_history=args.task_history,
        listen=listen,
        token=token,
        join=_host_port(args.join) if args.join else None,
        zygote=zygote,
        origin=args.origin,
        label=args.label,
        labels=json.loads(args.labels),
    )

    def ready() -> None:
        # Tell the parent we listen, then send our output to the log file.
        sys.stdout.write(f"READY {node.socket_path} {node.tcp_address or '-'}\n")
        sys.stdout.flush()
        logfd = os.open(
            os.path.join(node.logs_dir, "node.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND
        )
        os.dup2(logfd, 1)
        os.dup2(logfd, 2)
        os.close(logfd)

    loop = asyncio.new_event_loop()
    loop.add_signal_handler(signal.SIGTERM, node._stopping.set)
    try:
        loop.run_until_complete(node.serve(ready))
    finally:
        loop.close()
