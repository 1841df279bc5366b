"""Several node managers as one cluster: membership, placement across nodes, transfers.

A mixin of :class:`manager.NodeManager`; everything runs on its event loop.

- **Membership.** A worker node connects to the head's TCP port (authenticated like any
  peer), registers, and then reports its free resources every ``HEARTBEAT`` seconds. The
  head keeps the list and sends every member the cluster view whenever it changes and
  with each heartbeat round; a member whose connection drops is marked dead at once.
- **Placement.** A node runs a ready task itself when its resources fit. When they never
  can (infeasible here) or cannot now (busy) and another live node has room, the task is
  *forwarded*: this node manager connects to that node's TCP port (a ``PeerLink``) and
  acts as a driver there. The submitter still talks only to its own node.
- **Data.** Arguments travel with a forwarded task (their values are put on the peer
  under the same object ids, never through the head); results come back as soon as the
  task finishes, so an object never lives only on another node once its task is done.
  Values over one chunk (4 MiB) move as chunks written straight into the receiver's
  store (:mod:`transfer`). The head's picture of a peer's free resources is corrected
  when a forwarded task finishes, not only at the peer's next status.
- **Failure.** When a peer's connection drops, tasks forwarded there are retried (on
  this node or another) while ``max_retries`` allows, else fail naming the node.
- **Actors** are placed the same way; the calls, names and failures of actors that live
  on another node are handled in :mod:`cluster_actors`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import auth
from .. import protocol as p
from ..exceptions import ObjectLostError, WorkerCrashedError
from ..ids import object_id_for
from ..protocol import FrameDecoder, NodeView, encode
from ..serialization import serialize
from ..state_schema import SCHEDULED
from ..transport import Drainable
from .cluster_actors import LINK_ERRORS, ActorNameDirectory
from .transfer import CHUNKED

if TYPE_CHECKING:
    from ..store import Allocator, Arena
    from ..transport import ServerConnection
    from .manager import TaskRecord
    from .objects import ObjectEntry, ObjectTable
    from .scheduler import ReadyQueue, ResourceLedger
    from .transfer import Assembler

log = logging.getLogger("jupyter_ray.node")

HEARTBEAT = 0.5


class PeerLink(Drainable, asyncio.Protocol):
    """An outgoing, authenticated connection from this node manager to another one."""

    def __init__(
        self,
        node_id: str,
        token: str,
        hello: p.Hello,
        on_message: Callable[..., None],
        on_lost: Callable[[PeerLink], None],
    ) -> None:
        self.node_id = node_id
        self._token = token
        self._hello = hello
        self._on_message = on_message
        self._on_lost = on_lost
        self._decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[p.Welcome] = asyncio.get_event_loop().create_future()
        self.closed = False
        self.functions: set[bytes] = set()
        self.pushed: dict[bytes, int] = {}  # object id -> forwarded tasks that need it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._decoder.feed(data)
        except Exception as err:
            log.warning("bad frame from peer %s: %s", self.node_id, err)
            self.close()
            return
        for msg in messages:
            if isinstance(msg, p.AuthChallenge):
                self._hello.auth = auth.answer(self._token, msg.nonce)
                self.send(self._hello)
            elif isinstance(msg, p.Welcome):
                if not self.ready.done():
                    self.ready.set_result(msg)
            else:
                self._on_message(self, msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake_drainers(ConnectionError(f"the link to node {self.node_id} closed"))
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"peer {self.node_id} closed the link"))
        self._on_lost(self)

    def send(self, *msgs: object) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(b"".join(encode(m) for m in msgs))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass(slots=True, eq=False)
class Forwarded:
    """A task this node sent to another node, and what it is waiting for."""

    rec: TaskRecord
    node_id: str
    link: PeerLink
    pushed: list[bytes]
    results: dict[bytes, p.Payload] = field(default_factory=dict)
    contained: dict[bytes, list[bytes]] = field(default_factory=dict)  # refs in each result


class ClusterMember:
    """Cluster handlers of a node manager; see the module docstring."""

    node_id: str
    token: str | None
    tcp_address: str | None
    ledger: ResourceLedger
    ready: ReadyQueue
    objects: ObjectTable
    arena: Arena
    alloc: Allocator
    tasks: dict[bytes, TaskRecord]
    conns: dict[int, ServerConnection]
    functions: dict[bytes, tuple[str, bytes]]

    if TYPE_CHECKING:

        def _spawn(self, coro: Any) -> None: ...
        def _enqueue(self, rec: TaskRecord) -> None: ...
        def _mark(self, rec: TaskRecord, state: str, when: float | None = ...) -> None: ...
        def _finish(
            self, rec: TaskRecord, results: list[p.Payload], contained: list[list[bytes]]
        ) -> None: ...
        def _fail(self, rec: TaskRecord, error: BaseException) -> None: ...
        def _dispatch_tasks(self) -> None: ...
        def on_task_started(self, conn: Any, msg: p.TaskStarted) -> None: ...
        async def _allocate(self, object_id: bytes, size: int) -> p.Payload: ...

        assembler: Assembler

        def closure(self, roots: list[bytes]) -> list[bytes]: ...
        def store_put(self, msg: p.PutInline) -> None: ...
        def _sealed(self, object_id: bytes, payload: p.Payload, contained: list[bytes]) -> None: ...
        async def drop_chunked(self, object_id: bytes) -> None: ...
        async def store_bytes(self, object_id: bytes, data: bytes) -> p.Payload: ...
        async def push_value(
            self,
            send: Callable[[object], None],
            drain: Callable[[], Awaitable[None]],
            entry: ObjectEntry,
        ) -> None: ...
        def _stats_for_peers(self) -> dict[str, Any]: ...
        def forward_creation(self, rec: TaskRecord, node_id: str) -> None: ...
        def remote_creation_done(self, fwd: Forwarded, payload: p.Payload) -> None: ...
        def head_replied(self, msg: p.QueryReply) -> None: ...
        def head_lost(self) -> None: ...
        def routes_to(self, node_id: str) -> bool: ...
        def actors_lost_with(self, node_id: str) -> None: ...

    def init_cluster(self, is_head: bool, join: tuple[str, int] | None) -> None:
        self.is_head = is_head
        self.join = join
        self.cluster: dict[str, NodeView] = {}
        self.members: dict[int, str] = {}  # head side: member connection -> node id
        self.links: dict[str, PeerLink] = {}
        self.linking: dict[str, asyncio.Future[PeerLink]] = {}
        self.forwarded: dict[bytes, Forwarded] = {}
        # node id -> objects a result from there referred to, not arrived yet
        self.awaited_from: dict[str, set[bytes]] = {}
        self.head_link: PeerLink | None = None
        self.actor_directory = ActorNameDirectory()  # consulted on the head only
        self.head_requests: dict[int, asyncio.Future[Any]] = {}  # member: queries to the head

    def self_view(self) -> NodeView:
        return NodeView(
            self.node_id,
            self.tcp_address or "",
            dict(self.ledger.total),
            {k: max(v, 0.0) for k, v in self.ledger.available.items()},
            True,
            self.is_head,
            self._stats_for_peers(),
            dict(self.ledger.labels),
        )

    def peers(self) -> list[NodeView]:
        return [v for k, v in self.cluster.items() if k != self.node_id and v.alive]

    def all_views(self) -> list[NodeView]:
        views = {v.node_id: v for v in self.cluster.values()}
        views[self.node_id] = self.self_view()
        return list(views.values())

    # --- membership (member side) ------------------------------------------------------

    async def join_head(self) -> None:
        """Member: connect to the head, register, then heartbeat until the link drops."""
        assert self.join is not None and self.token is not None
        loop = asyncio.get_running_loop()
        while True:
            hello = p.Hello("node", os.getpid())
            link = PeerLink("head", self.token, hello, self._on_peer_message, self._on_link_lost)
            try:
                await loop.create_connection(_factory(link), *self.join)
                await asyncio.wait_for(link.ready, 30)
            except (OSError, ConnectionError, asyncio.TimeoutError) as err:
                log.warning("cannot reach the head at %s:%s (%s); retrying", *self.join, err)
                await asyncio.sleep(1.0)
                continue
            self.head_link = link
            link.send(p.NodeRegister(self.self_view()))
            log.info("joined the head at %s:%s", *self.join)
            while not link.closed:
                await asyncio.sleep(HEARTBEAT)
                link.send(p.NodeStatus(self.self_view()))
            log.warning("lost the head; trying to rejoin")
            self.head_link = None
            await asyncio.sleep(1.0)

    # --- membership (head side) --------------------------------------------------------

    def on_node_register(self, conn: ServerConnection, msg: p.NodeRegister) -> None:
        view = msg.view
        self.members[conn.conn_id] = view.node_id
        self.cluster[view.node_id] = view
        log.info("node %s joined from %s", view.node_id, view.address)
        self._broadcast_view()
        self._dispatch_tasks()

    def on_node_status(self, conn: ServerConnection, msg: p.NodeStatus) -> None:
        if conn.conn_id in self.members:
            self.cluster[msg.view.node_id] = msg.view
            self._dispatch_tasks()

    def mark_dead(self, node_id: str) -> bool:
        """Count ``node_id`` dead in this node's view; False if it is not known here."""
        view = self.cluster.get(node_id)
        if view is None:
            return False
        view.alive = False
        return True

    def member_lost(self, conn: ServerConnection) -> None:
        node_id = self.members.pop(conn.conn_id, None)
        if node_id is None:
            return
        if self.mark_dead(node_id):
            log.warning("node %s left the cluster", node_id)
        self.actor_directory.drop_node(node_id)  # its actors died with it
        link = self.links.pop(node_id, None)
        if link is not None:
            link.close()
        self._broadcast_view()

    def _broadcast_view(self) -> None:
        views = self.all_views()
        for conn_id in self.members:
            conn = self.conns.get(conn_id)
            if conn is not None:
                conn.send(p.ClusterView(views))

    async def heartbeat_members(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            if self.members:
                self._broadcast_view()

    # --- messages from peers -----------------------------------------------------------

    def _on_peer_message(self, link: PeerLink, msg: Any) -> None:
        if isinstance(msg, p.ClusterView):
            for view in msg.views:
                if view.node_id != self.node_id:
                    old = self.cluster.get(view.node_id)
                    self.cluster[view.node_id] = view
                    if old is not None and old.alive and not view.alive:
                        dead = self.links.get(view.node_id)
                        if dead is not None:
                            dead.close()
            self._dispatch_tasks()
        elif isinstance(msg, p.ObjectAvailable):
            self._spawn(self._forwarded_result(link, msg))
        elif isinstance(msg, p.ObjectChunk):
            self.assembler.feed(_source(link), msg)
        elif isinstance(msg, p.PutInline):
            # An object a forwarded task's result refers to: the result follows, or (when
            # announced) came before and still holds it, unless it was freed since.
            if msg.announced:
                self.awaited_from.get(link.node_id, set()).discard(msg.object_id)
            if msg.announced and self.objects.get(msg.object_id) is None:
                if msg.chunked:
                    self._spawn(self.drop_chunked(msg.object_id))
                return
            self.objects.arriving(msg.object_id)
            self.store_put(msg)
        elif isinstance(msg, p.TaskStarted):
            self.on_task_started(link, msg)  # a task forwarded there started running
        elif isinstance(msg, p.LogLines):
            fwd = self.forwarded.get(msg.task_id)
            owner = self.conns.get(fwd.rec.spec.owner) if fwd is not None else None
            if owner is not None:
                owner.send(msg)
        elif isinstance(msg, p.QueryReply):
            self.head_replied(msg)
        elif isinstance(msg, p.ActorCreated) and msg.error:
            log.warning("node %s refused an actor: %s", link.node_id, msg.error)

    def _on_link_lost(self, link: PeerLink) -> None:
        self.assembler.drop_source(_source(link))
        self._lose_awaited(link.node_id)
        if link is self.head_link:
            self.head_lost()
        if self.links.get(link.node_id) is link:
            del self.links[link.node_id]
        view = self.cluster.get(link.node_id)
        lost = [f for f in self.forwarded.values() if f.link is link]
        actors = self.routes_to(link.node_id)
        if (lost or actors) and view is not None:
            view.alive = False
        for fwd in lost:
            del self.forwarded[fwd.rec.spec.task_id]
            rec = fwd.rec
            if rec.actor is not None:
                continue  # actor creations and calls: below
            if rec.retries_left > 0 and not rec.cancelled:
                rec.retries_left -= 1
                rec.attempt += 1
                log.warning("node %s died; retrying %s elsewhere", link.node_id, rec.spec.name)
                self._enqueue(rec)
            else:
                self._fail(
                    rec,
                    WorkerCrashedError(
                        f"The node {link.node_id} running {rec.spec.name}() died, and no "
                        "retries were left (max_retries)."
                    ),
                )
        if actors:
            self.actors_lost_with(link.node_id)

    # --- placement ---------------------------------------------------------------------

    def place_elsewhere(self, demand: dict[str, float], feasible_here: bool) -> str | None:
        """A live peer that can take a task of this demand now, or None."""
        best: NodeView | None = None
        for view in self.peers():
            if view.fits(demand) and (best is None or _headroom(view) > _headroom(best)):
                best = view
        if best is not None:
            for k, v in demand.items():  # count it taken until the next status arrives
                best.available[k] = best.available.get(k, 0.0) - v
            return best.node_id
        return None

    def _lose_awaited(self, node_id: str) -> None:
        """The link to ``node_id`` dropped: objects still to come from it never will.

        They were results still running there when a value referring to them came here.
        This node has no way to run them again (they were submitted over there), so a
        ``get`` raises ObjectLostError naming the node instead of waiting forever.
        """
        for oid in self.awaited_from.pop(node_id, ()):
            entry = self.objects.get(oid)
            if entry is None or entry.payload is not None:
                continue
            err = ObjectLostError(
                f"Object {oid.hex()} was being made on node {node_id}, which died (or "
                "left the cluster) before the value reached this node. Run the task that "
                "made it again."
            )
            data = serialize(err).to_bytes()
            payload = p.Payload(data=data, size=len(data), error=True, type_name="ObjectLostError")
            self._sealed(oid, payload, [])

    def give_back(self, node_id: str, demand: dict[str, float]) -> None:
        """A task forwarded to ``node_id`` finished: count its resources free again.

        Without this they stayed taken until the node's next status (every HEARTBEAT), so
        back-to-back tasks that only that node can run waited ~0.4 s each. A status that
        already showed them free makes this over-count until the next one, which at worst
        forwards a task that then queues there; never above the node's total.
        """
        view = self.cluster.get(node_id)
        if view is None:
            return
        for k, v in demand.items():
            view.available[k] = min(view.total.get(k, 0.0), view.available.get(k, 0.0) + v)

    def feasible_somewhere(self, demand: dict[str, float]) -> bool:
        return any(v.feasible(demand) for v in self.peers())

    async def _link(self, node_id: str) -> PeerLink:
        link = self.links.get(node_id)
        if link is not None and not link.closed:
            return link
        pending = self.linking.get(node_id)
        if pending is not None:
            return await pending
        future: asyncio.Future[PeerLink] = asyncio.get_running_loop().create_future()
        self.linking[node_id] = future
        try:
            view = self.cluster[node_id]
            host, _, port = view.address.rpartition(":")
            assert self.token is not None
            link = PeerLink(
                node_id,
                self.token,
                p.Hello("peer", os.getpid()),
                self._on_peer_message,
                self._on_link_lost,
            )
            await asyncio.get_running_loop().create_connection(_factory(link), host, int(port))
            await asyncio.wait_for(link.ready, 30)
            self.links[node_id] = link
            future.set_result(link)
            return link
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # mark retrieved
            raise
        finally:
            del self.linking[node_id]

    def forward(self, rec: TaskRecord, node_id: str) -> None:
        if rec.spec.kind == p.ACTOR_CREATION:
            self.forward_creation(rec, node_id)
            return
        self._mark(rec, SCHEDULED)
        rec.worker_pid = None
        rec.node_id = node_id
        self._spawn(self._forward(rec, node_id))

    async def _forward(self, rec: TaskRecord, node_id: str) -> None:
        spec = rec.spec
        try:
            link = await self._link(node_id)
            await self._send_forward(rec, node_id, link, None)
        except LINK_ERRORS as err:
            log.warning("cannot reach node %s (%s); keeping %s here", node_id, err, spec.name)
            self.mark_dead(node_id)
            self._enqueue(rec)

    async def _send_forward(
        self, rec: TaskRecord, node_id: str, link: PeerLink, create: p.ActorOptions | None
    ) -> None:
        """Push the task's arguments to the peer, then the task (or actor) itself.

        With ``create``, the task is an actor's creation and the peer is asked to host it.
        Raises ConnectionError if the link closed meanwhile, having sent nothing that counts.
        """
        spec = rec.spec
        pushed = []
        for oid in self.closure(spec.deps + spec.nested_refs):
            entry = self.objects.get(oid)
            if entry is None or entry.payload is None:
                continue
            count = link.pushed.get(oid, 0)
            # Counted before any await: a task forwarded meanwhile must not push it again.
            link.pushed[oid] = count + 1
            pushed.append(oid)
            if count > 0:
                continue
            await self.push_value(link.send, link.drain, entry)
        msgs: list[object] = []
        if spec.fn_id and spec.fn_id not in link.functions:
            name, payload = self.functions[spec.fn_id]
            msgs.append(p.RegisterFunction(spec.fn_id, name, payload))
            link.functions.add(spec.fn_id)
        returns = [object_id_for(spec.task_id, i) for i in range(spec.num_returns)]
        if create is not None:
            msgs += [p.CreateActor(0, spec, create), p.Subscribe(returns, False)]
        else:
            msgs += [p.SubmitTask(spec), p.Subscribe(returns, True)]
        if link.closed:  # it dropped while we read the arguments
            raise ConnectionError(f"the link to node {node_id} closed")
        self.forwarded[spec.task_id] = Forwarded(rec, node_id, link, pushed)
        link.send(*msgs)

    async def _forwarded_result(self, link: PeerLink, msg: p.ObjectAvailable) -> None:
        task_id = msg.object_id[:16]
        fwd = self.forwarded.get(task_id)
        if fwd is None or msg.payload is None:
            return
        payload = msg.payload
        if fwd.rec.spec.kind == p.ACTOR_CREATION:
            del self.forwarded[task_id]
            done = [oid for oid in fwd.pushed if _release_push(link, oid)]
            if done:  # the host holds the constructor's arguments for the actor's life
                link.send(p.RefUpdate([], done))
            self.remote_creation_done(fwd, payload)
            return
        if payload.offset == CHUNKED:
            try:
                local = await self.assembler.take(msg.object_id)
            except (KeyError, ConnectionError):
                return  # the link dropped mid-transfer: the task is retried or fails there
            local.type_name, local.error = payload.type_name, payload.error
            payload = local
        elif payload.data is not None and payload.size >= p.INLINE_LIMIT and not payload.error:
            local = await self.store_bytes(msg.object_id, payload.data)
            local.type_name = payload.type_name
            payload = local
        fwd.results[msg.object_id] = payload
        fwd.contained[msg.object_id] = msg.contained
        for child in msg.contained:  # some may still be on their way (see _deliver_to_peer)
            if self.objects.arriving(child).payload is None:
                self.awaited_from.setdefault(fwd.node_id, set()).add(child)
        spec = fwd.rec.spec
        if len(fwd.results) < spec.num_returns or self.forwarded.get(task_id) is not fwd:
            return
        del self.forwarded[task_id]
        self.give_back(fwd.node_id, spec.resources)
        returns = [object_id_for(spec.task_id, i) for i in range(spec.num_returns)]
        results = [fwd.results[oid] for oid in returns]
        done = [oid for oid in fwd.pushed if _release_push(link, oid)]
        link.send(p.RefUpdate([], returns + done))  # the peer may free its copies now
        rec = fwd.rec
        rec.ended = time.time()
        if any(r.error for r in results):
            rec.error_type = rec.error_type or "RemoteTaskError"
        if rec.actor is not None:
            rec.actor.inflight.pop(spec.task_id, None)
        self._finish(rec, results, [fwd.contained.get(oid, []) for oid in returns])
        self._dispatch_tasks()


def _source(link: PeerLink) -> int:
    """The assembler's key for values arriving on ``link`` (connection ids are >= 0)."""
    return -id(link)


def _factory(link: PeerLink) -> Callable[[], PeerLink]:
    return lambda: link


def _release_push(link: PeerLink, oid: bytes) -> bool:
    left = link.pushed.get(oid, 0) - 1
    if left > 0:
        link.pushed[oid] = left
        return False
    link.pushed.pop(oid, None)
    return True


def _headroom(view: NodeView) -> float:
    return view.available.get("CPU", 0.0)
