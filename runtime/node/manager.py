"""The node manager: worker pool, local scheduler, object directory and store of one node.

Runs as its own process (``python -m jupyter_ray.runtime node``) on one asyncio event
loop; every handler runs on that loop and none of them blocks it (file I/O for spilling
goes to an executor thread). In the embedded mode that ``init()`` uses, this process also
answers the head's questions for its single node, and it exits when the driver that
started it goes away.

This module is the shell: it owns the sockets, builds the tables and the components
(tasks, objects, actors, placement groups, peers, cancellation, state view...), wires
them together, and routes each message type to one component's handler through
``_handlers``. The components never import this module.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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
from typing import Any

from ..common import auth, leftovers
from ..common import protocol as p
from ..common.discovery import remove_session, write_session
from ..common.ids import random_id
from ..common.labels import node_labels
from ..common.store import Allocator, Arena
from ..common.transport import ServerConnection
from .actor_manager import ActorManager
from .actors import ActorDirectory
from .cancel import Cancellation
from .cluster import Membership
from .cluster_actors import ClusterActors
from .feed import ChangeFeed
from .generator_items import GeneratorItems
from .history import TaskHistory
from .jobs import JobTable
from .object_manager import ObjectManager
from .object_store import ObjectStore
from .objects import ObjectEntry, ObjectTable
from .peers import Peers
from .placement_groups import PlacementGroupRecord, PlacementGroups
from .processes import SOCKET_NAME, worker_environment
from .queries import Queries
from .records import Forwarded, TaskRecord
from .scheduler import ReadyQueue, ResourceLedger
from .state_view import StateView
from .tasks import Tasks
from .telemetry import Telemetry
from .worker_pool import WorkerPool

log = logging.getLogger("jupyter_ray.node")

SPILL_PREFIX = "jupyter_ray-spill-"

NODE_ID_SIZE = 28  # bytes, as Ray's node ids (56 hex digits)

OWNER_WAIT_ENV = "JUPYTER_RAY_OWNER_WAIT_S"
"""How long an embedded node manager waits, once ready, for the driver that started it
to connect as its owner (it does at once) before it concludes that driver is gone and
stops; 60 s unless this is set."""


class NodeManager:
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
        self.join = join
        self.tcp_address: str | None = None
        # Spill files go to disk, not next to the arena in shared memory.
        self.spill_dir = tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{self.node_id[:8]}-")
        # Held for our whole life, so that a sweep after a SIGKILL finds both directories
        # abandoned and frees the arena's memory (see leftovers.py).
        self._locks = [leftovers.hold(session_dir), leftovers.hold(self.spill_dir)]
        self.logs_dir = os.path.join(session_dir, "logs")
        os.makedirs(self.logs_dir, exist_ok=True)
        self._early_zygote = zygote
        self._next_conn = 0
        self._stopping = asyncio.Event()
        self._owned = False  # the owner has connected (an embedded node ends with it)
        self._server: asyncio.AbstractServer | None = None
        self._tcp_server: asyncio.AbstractServer | None = None
        self._background: set[asyncio.Future[Any]] = set()

        # --- the tables the components share ---
        self.conns: dict[int, ServerConnection] = {}
        self.ledger = ResourceLedger(resources, node_labels(self.node_id, resources, labels))
        self.ready = ReadyQueue()
        self.objects = ObjectTable()
        self.arena = Arena(os.path.join(session_dir, "arena"), object_store_memory, create=True)
        self.alloc = Allocator(object_store_memory)
        self.actors = ActorDirectory()
        self.history = TaskHistory(max(task_history, 0))
        self.jobs = JobTable()
        self.feed = ChangeFeed()
        self.telemetry = Telemetry()
        self.groups: dict[bytes, PlacementGroupRecord] = {}
        self.pending_groups: list[PlacementGroupRecord] = []
        self.forwarded: dict[bytes, Forwarded] = {}  # tasks sent to other nodes
        waiting_on: dict[bytes, list[TaskRecord]] = {}

        # --- the components, each built on those below it ---
        spawn = self._spawn
        self.store = ObjectStore(
            self.objects, self.arena, self.alloc, self.spill_dir, self.feed, self.actors, waiting_on
        )
        self.object_manager = ObjectManager(self.store, self.conns, self.feed, spawn)
        self.transfers = self.object_manager.transfers
        self.pool = WorkerPool(
            self.socket_path,
            self.logs_dir,
            worker_environment(worker_env),
            max(1, int(self.ledger.total.get("CPU", 1))),
            self._stopping,
        )
        self.membership = Membership(
            self.node_id, self.ledger, self.conns, join, self._stats_for_peers
        )
        self.tasks = Tasks(
            self.node_id,
            self.ledger,
            self.ready,
            self.object_manager,
            self.pool,
            self.membership,
            self.forwarded,
            self.conns,
            self.actors,
            self.history,
            self.feed,
            task_history >= 0,  # -1 turns task recording off (benchmarks)
        )
        self.peers = Peers(
            token,
            self.membership,
            self.tasks,
            self.object_manager,
            self.forwarded,
            self.conns,
            spawn,
        )
        self.cluster_actors = ClusterActors(
            self.membership,
            self.peers,
            self.tasks,
            self.object_manager,
            self.actors,
            self.conns,
            self.feed,
            spawn,
        )
        self.actor_manager = ActorManager(
            self.actors,
            self.tasks,
            self.object_manager,
            self.pool,
            self.cluster_actors,
            self.conns,
            self.feed,
            session_dir,
        )
        self.placement_groups = PlacementGroups(
            self.ledger, self.object_manager, self.tasks, self.groups, self.pending_groups
        )
        self.cancellation = Cancellation(self.tasks)
        self.generator_items = GeneratorItems(self.tasks.tasks, self.object_manager, self.conns)
        self.state = StateView(
            self.membership,
            self.tasks.tasks,
            self.history,
            self.store,
            self.actors,
            self.conns,
            self.pool.workers,
            self.ledger,
            self.telemetry,
            self.socket_path,
        )
        self.queries = Queries(
            self.membership,
            self.store,
            self.pool,
            self.jobs,
            self.state,
            self.actor_manager,
            self.cluster_actors,
            self.placement_groups,
            self.tasks.machine.validate,
        )

        # --- calls upwards, to components built after the one that makes them ---
        self.store.handles_gone = self.actor_manager.handles_gone
        self.store.forget_waiters = self.tasks.machine.forget_waiters
        self.object_manager.deps_ready = self.tasks.deps_ready
        self.pool.never_came = self.tasks.worker_never_came
        self.membership.dispatch = self.tasks.dispatch
        self.tasks.wire(self.actor_manager, self.placement_groups, self.peers)
        self.peers.wire(self.cluster_actors)
        self.cluster_actors.wire(self.actor_manager)

        objects, tasks, actors = self.object_manager, self.tasks, self.actor_manager
        self._handlers: dict[type, Any] = {
            p.Hello: self.on_hello,
            p.RegisterFunction: tasks.on_register_function,
            p.SubmitTask: tasks.on_submit_task,
            p.PutInline: objects.on_put_inline,
            p.ObjectChunk: self.transfers.on_object_chunk,
            p.CreateObject: objects.on_create_object,
            p.SealObject: objects.on_seal_object,
            p.RefUpdate: objects.on_ref_update,
            p.Unpin: objects.on_unpin,
            p.Subscribe: objects.on_subscribe,
            p.Blocked: tasks.on_blocked,
            p.Unblocked: tasks.on_unblocked,
            p.CancelRequest: self.cancellation.on_cancel,
            p.CancelCell: self.cancellation.on_cancel_cell,
            p.TaskDone: tasks.on_task_done,
            p.GeneratorItem: self.generator_items.on_generator_item,
            p.TaskStarted: tasks.on_task_started,
            p.LogLines: tasks.on_log_lines,
            p.Query: self.queries.on_query,
            p.Shutdown: self.on_shutdown,
            p.CreateActor: actors.on_create_actor,
            p.KillActor: actors.on_kill_actor,
            p.ActorExiting: actors.on_actor_exiting,
            p.DirectCalls: actors.on_direct_calls,
            p.FeedSubscribe: self.on_feed_subscribe,
            p.FeedResync: self.on_feed_resync,
            p.NodeRegister: self.membership.on_node_register,
            p.NodeStatus: self.membership.on_node_status,
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
            self.tcp_address = self.membership.tcp_address = f"{host}:{port}"
            self._tcp_server = tcp
        self.pool.processes.start_zygote(self._early_zygote)
        for _ in range(self.pool.pool_size):
            self.pool.start_worker()
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
        if self.embedded:
            owner_wait = float(os.environ.get(OWNER_WAIT_ENV) or 60.0)
            loop.call_later(owner_wait, self._stop_if_unowned, owner_wait)
        housekeeping = asyncio.ensure_future(self._housekeeping())
        feed = asyncio.ensure_future(self._feed_loop())
        if self.join is not None:
            self._spawn(self.peers.join_head())
        elif self.listen is not None:
            self._spawn(self.membership.heartbeat_members())
        try:
            await self._stopping.wait()
        finally:
            housekeeping.cancel()
            feed.cancel()
            await self._teardown()

    def _stop_if_unowned(self, waited: float) -> None:
        """An embedded node whose starter never connected (killed, or interrupted between
        starting it and connecting) would run with no owner, for good: stop."""
        if not self._owned:
            log.warning("no owner connected within %.0f s of start: stopping", waited)
            self._stopping.set()

    def _new_connection(self) -> ServerConnection:
        self._next_conn += 1
        conn = ServerConnection(self._next_conn, self._dispatch, self._on_lost)
        self.conns[conn.conn_id] = conn
        return conn

    def _new_tcp_connection(self) -> ServerConnection:
        self._next_conn += 1
        nonce = auth.new_nonce()
        conn = ServerConnection(
            self._next_conn, self._dispatch, self._on_lost, greeting=p.AuthChallenge(nonce=nonce)
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
        await self.pool.processes.stop_all()
        self.arena.unlink()
        shutil.rmtree(self.spill_dir, ignore_errors=True)
        shutil.rmtree(self.session_dir, ignore_errors=True)  # ours alone

    async def _feed_loop(self) -> None:
        """Flush the change feed every ``feed.interval`` seconds while anyone listens."""
        while True:
            await asyncio.sleep(self.feed.interval)
            if self.feed.active:
                self.feed.touch("nodes", self.node_id)
                self.feed.flush(self.state.lookup, self.state.snapshot)

    async def _housekeeping(self) -> None:
        """Reap exited workers, retire surplus idle ones, sample machine telemetry."""
        loop = asyncio.get_running_loop()
        gpu_tools = shutil.which("nvidia-smi") is not None or _has_module("pynvml")
        ticks = 0
        while True:
            await asyncio.sleep(0.5)
            ticks += 1
            self.pool.processes.reap()
            self.telemetry.refresh_cpu_memory()
            if gpu_tools and ticks % 4 == 0:
                await loop.run_in_executor(None, self.telemetry.read_gpus)
            self.pool.retire_idle(time.monotonic())

    def _stats_for_peers(self) -> dict[str, Any]:
        """This node's figures in the view other nodes get of it."""
        sample = self.telemetry.sample
        return {
            "hostname": socket.gethostname(),
            "cpu_percent": sample.cpu_percent,
            "memory_used": sample.memory_used,
            "memory_total": sample.memory_total,
            "object_store_used": self.alloc.used,
            "object_store_capacity": self.alloc.capacity,
            "object_store_spilled": self.store.spilled_bytes,
            "num_workers": len(self.pool.workers),
        }

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

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_lost(self, conn: ServerConnection) -> None:
        self.conns.pop(conn.conn_id, None)
        self.jobs.connection_lost(conn.conn_id)
        self.feed.unsubscribe(conn.conn_id)
        self.membership.member_lost(conn)
        freed: list[ObjectEntry] = []
        reclaim = self.objects.drop_connection(conn.conn_id, freed)
        self.store.release_all(freed + reclaim)
        pending = self.object_manager.pending_allocs.pop(conn.conn_id, {})
        self.store.release_payloads(list(pending.values()))
        self.transfers.assembler.drop_source(conn.conn_id)
        self.actor_manager.drop_direct_early(conn.conn_id)
        if self.groups:
            self.placement_groups.groups_owner_gone(conn.conn_id)
        self.actor_manager.owner_gone(conn)
        if conn.role == "driver":
            self.cancellation.drop_tasks_of(conn)
        worker = self.pool.lost(conn.conn_id)
        if worker is not None:
            self.tasks.worker_lost(worker)
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
        self._owned = self._owned or msg.owns_node
        conn.send(
            p.Welcome(
                node_id=self.node_id,
                session_dir=self.session_dir,
                arena_path=self.arena.path,
                arena_size=self.arena.size,
                conn_id=conn.conn_id,
                resources=dict(self.ledger.total),
                tcp_address=self.tcp_address,
            )
        )
        if msg.role == "worker":
            self.pool.joined(conn, msg.pid, msg.worker_id)
            self.tasks.dispatch()

    def on_job_info(self, conn: ServerConnection, msg: p.JobInfo) -> None:
        self.jobs.started(conn.conn_id, msg.job_id, conn.pid, msg.metadata)

    def on_feed_subscribe(self, conn: ServerConnection, msg: p.FeedSubscribe) -> None:
        self.feed.subscribe(conn, self.state.snapshot)

    def on_feed_resync(self, conn: ServerConnection, msg: p.FeedResync) -> None:
        self.feed.resync(conn.conn_id, self.state.snapshot)

    def on_shutdown(self, conn: ServerConnection, msg: p.Shutdown) -> None:
        self._stopping.set()


# --- process entry point -------------------------------------------------------------


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def _has_module(name: str) -> bool:
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
        try:
            sys.stdout.write(f"READY {node.socket_path} {node.tcp_address or '-'}\n")
            sys.stdout.flush()
        except OSError:  # our starter is gone (interrupted, killed): nobody will use us
            node._stopping.set()
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
