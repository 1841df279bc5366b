"""Work that crosses nodes: links to peers, tasks forwarded to them, their results.

A component of the node manager (:mod:`manager`); everything runs on its event loop.

- **Forwarding.** A task that cannot run here and fits on a peer (see :mod:`cluster`) is
  sent over a ``PeerLink``: this node manager connects to that node's TCP port and acts
  as a driver there. The submitter still talks only to its own node.
- **Data.** Arguments travel with a forwarded task (their values are put on the peer
  under the same object ids, never through the head); results come back as soon as the
  task finishes, so an object never lives only on another node once its task is done.
  Values over one chunk (4 MiB) move as chunks written straight into the receiver's
  store (:mod:`transfer`).
- **Failure.** When a peer's connection drops, tasks forwarded there are retried (on
  this node or another) while ``max_retries`` allows, else fail naming the node.
- **Actors** are placed the same way; the calls, names and failures of actors that live
  on another node are :mod:`cluster_actors`' (reached through :class:`ActorRoutes`).
- A member node's link to its head is made and kept here too (``join_head``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..common import protocol as p
from ..common.exceptions import ObjectLostError
from ..common.ids import object_id_for
from ..common.serialization import serialize
from .cluster import HEARTBEAT
from .peer_link import PeerLink, link_factory, link_source, release_push
from .records import Forwarded, TaskRecord
from .transfer import CHUNKED

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .cluster import Membership
    from .object_manager import ObjectManager
    from .tasks import Tasks

log = logging.getLogger("jupyter_ray.node")

LINK_ERRORS = (OSError, ConnectionError, asyncio.TimeoutError, KeyError)


class ActorRoutes(Protocol):
    """What the peers component asks of the cross-node actors (:mod:`cluster_actors`)."""

    def forward_creation(self, rec: TaskRecord, node_id: str) -> None: ...
    def remote_creation_done(self, fwd: Forwarded, payload: p.Payload) -> None: ...
    def head_replied(self, msg: p.QueryReply) -> None: ...
    def head_lost(self) -> None: ...
    def routes_to(self, node_id: str) -> bool: ...
    def actors_lost_with(self, node_id: str) -> None: ...


class Peers:
    """Links to other nodes and the tasks forwarded over them; see the module docstring."""

    def __init__(
        self,
        token: str | None,
        membership: Membership,
        tasks: Tasks,
        objects: ObjectManager,
        forwarded: dict[bytes, Forwarded],
        conns: dict[int, ServerConnection],
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.token = token
        self.membership = membership
        self.tasks = tasks
        self.objects = objects
        self.table = objects.objects
        self.transfers = objects.transfers
        self.conns = conns
        self.spawn = spawn
        self.linking: dict[str, asyncio.Future[PeerLink]] = {}
        self.forwarded = forwarded  # task id -> a task sent to another node
        # node id -> objects a result from there referred to, not arrived yet
        self.awaited_from: dict[str, set[bytes]] = {}
        self._peer_handlers: dict[type, Callable[[PeerLink, Any], None]] = {
            p.ClusterView: self._cluster_view,
            p.ObjectAvailable: self._object_available,
            p.ObjectChunk: self._object_chunk,
            p.PutInline: self._put_inline,
            p.TaskStarted: self._task_started,
            p.LogLines: self._log_lines,
            p.QueryReply: self._query_reply,
            p.ActorCreated: self._actor_created,
        }

    def wire(self, routes: ActorRoutes) -> None:
        """Connect the cross-node actors (built after this component)."""
        self.routes = routes

    async def join_head(self) -> None:
        """Member: connect to the head, register, then heartbeat until the link drops."""
        assert self.membership.join is not None and self.token is not None
        loop = asyncio.get_running_loop()
        while True:
            hello = p.Hello(role="node", pid=os.getpid())
            link = PeerLink("head", self.token, hello, self.on_peer_message, self.on_link_lost)
            try:
                await loop.create_connection(link_factory(link), *self.membership.join)
                await asyncio.wait_for(link.ready, 30)
            except (OSError, ConnectionError, asyncio.TimeoutError) as err:
                log.warning(
                    "cannot reach the head at %s:%s (%s); retrying", *self.membership.join, err
                )
                await asyncio.sleep(1.0)
                continue
            self.membership.head_link = link
            link.send(p.NodeRegister(view=self.membership.self_view()))
            log.info("joined the head at %s:%s", *self.membership.join)
            while not link.closed:
                await asyncio.sleep(HEARTBEAT)
                link.send(p.NodeStatus(view=self.membership.self_view()))
            log.warning("lost the head; trying to rejoin")
            self.membership.head_link = None
            await asyncio.sleep(1.0)

    def on_peer_message(self, link: PeerLink, msg: Any) -> None:
        """A message another node manager sent on one of our links (see ``_peer_handlers``)."""
        handler = self._peer_handlers.get(type(msg))
        if handler is not None:
            handler(link, msg)

    def _cluster_view(self, link: PeerLink, msg: p.ClusterView) -> None:
        self.membership.view_arrived(msg.views)

    def _object_available(self, link: PeerLink, msg: p.ObjectAvailable) -> None:
        self.spawn(self._forwarded_result(link, msg))

    def _object_chunk(self, link: PeerLink, msg: p.ObjectChunk) -> None:
        self.transfers.assembler.feed(link_source(link), msg)

    def _put_inline(self, link: PeerLink, msg: p.PutInline) -> None:
        # An object a forwarded task's result refers to: the result follows, or (when
        # announced) came before and still holds it, unless it was freed since.
        if msg.announced:
            self.awaited_from.get(link.node_id, set()).discard(msg.object_id)
        if msg.announced and self.table.get(msg.object_id) is None:
            if msg.chunked:
                self.spawn(self.transfers.drop_chunked(msg.object_id))
            return
        self.table.arriving(msg.object_id)
        self.transfers.store_put(msg)

    def _task_started(self, link: PeerLink, msg: p.TaskStarted) -> None:
        self.tasks.on_task_started(link, msg)  # a task forwarded there started running

    def _log_lines(self, link: PeerLink, msg: p.LogLines) -> None:
        fwd = self.forwarded.get(msg.task_id)
        owner = self.conns.get(fwd.rec.spec.owner) if fwd is not None else None
        if owner is not None:
            owner.send(msg)

    def _query_reply(self, link: PeerLink, msg: p.QueryReply) -> None:
        self.routes.head_replied(msg)

    def _actor_created(self, link: PeerLink, msg: p.ActorCreated) -> None:
        if msg.error:
            log.warning("node %s refused an actor: %s", link.node_id, msg.error)

    def on_link_lost(self, link: PeerLink) -> None:
        self.transfers.assembler.drop_source(link_source(link))
        self._lose_awaited(link.node_id)
        if link is self.membership.head_link:
            self.routes.head_lost()
        if self.membership.links.get(link.node_id) is link:
            del self.membership.links[link.node_id]
        view = self.membership.cluster.get(link.node_id)
        lost = [f for f in self.forwarded.values() if f.link is link]
        actors = self.routes.routes_to(link.node_id)
        if (lost or actors) and view is not None:
            view.alive = False
        for fwd in lost:
            del self.forwarded[fwd.rec.spec.task_id]
        if lost:  # retried elsewhere, or failed (actors' creations and calls: below)
            self.tasks.node_lost(link.node_id, [fwd.rec for fwd in lost])
        if actors:
            self.routes.actors_lost_with(link.node_id)

    def _lose_awaited(self, node_id: str) -> None:
        """The link to ``node_id`` dropped: objects still to come from it never will.

        They were results still running there when a value referring to them came here.
        This node has no way to run them again (they were submitted over there), so a
        ``get`` raises ObjectLostError naming the node instead of waiting forever.
        """
        for oid in self.awaited_from.pop(node_id, ()):
            entry = self.table.get(oid)
            if entry is None or entry.payload is not None:
                continue
            err = ObjectLostError(
                f"Object {oid.hex()} was being made on node {node_id}, which died (or "
                "left the cluster) before the value reached this node. Run the task that "
                "made it again."
            )
            data = serialize(err).to_bytes()
            payload = p.Payload(data=data, size=len(data), error=True, type_name="ObjectLostError")
            self.objects.sealed(oid, payload, [])

    async def link(self, node_id: str) -> PeerLink:
        link = self.membership.links.get(node_id)
        if link is not None and not link.closed:
            return link
        pending = self.linking.get(node_id)
        if pending is not None:
            return await pending
        future: asyncio.Future[PeerLink] = asyncio.get_running_loop().create_future()
        self.linking[node_id] = future
        try:
            view = self.membership.cluster[node_id]
            host, _, port = view.address.rpartition(":")
            assert self.token is not None
            link = PeerLink(
                node_id,
                self.token,
                p.Hello(role="peer", pid=os.getpid()),
                self.on_peer_message,
                self.on_link_lost,
            )
            await asyncio.get_running_loop().create_connection(link_factory(link), host, int(port))
            await asyncio.wait_for(link.ready, 30)
            self.membership.links[node_id] = link
            future.set_result(link)
            return link
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # mark retrieved
            raise
        finally:
            del self.linking[node_id]

    def forward(self, rec: TaskRecord, node_id: str) -> None:
        """Send a task the state machine placed on ``node_id`` (SCHEDULED there)."""
        if rec.spec.kind == p.ACTOR_CREATION:
            self.routes.forward_creation(rec, node_id)
            return
        self.spawn(self._forward(rec, node_id))

    async def _forward(self, rec: TaskRecord, node_id: str) -> None:
        spec = rec.spec
        try:
            link = await self.link(node_id)
            await self.send_forward(rec, node_id, link, None)
        except LINK_ERRORS as err:
            log.warning("cannot reach node %s (%s); keeping %s here", node_id, err, spec.name)
            self.membership.mark_dead(node_id)
            self.tasks.enqueue(rec)

    async def send_forward(
        self, rec: TaskRecord, node_id: str, link: PeerLink, create: p.ActorOptions | None
    ) -> None:
        """Push the task's arguments to the peer, then the task (or actor) itself.

        With ``create``, the task is an actor's creation and the peer is asked to host it.
        Raises ConnectionError if the link closed meanwhile, having sent nothing that counts.
        """
        spec = rec.spec
        pushed = []
        for oid in self.transfers.closure(spec.deps + spec.nested_refs):
            entry = self.table.get(oid)
            if entry is None or entry.payload is None:
                continue
            count = link.pushed.get(oid, 0)
            # Counted before any await: a task forwarded meanwhile must not push it again.
            link.pushed[oid] = count + 1
            pushed.append(oid)
            if count > 0:
                continue
            await self.transfers.push_value(link.send, link.drain, entry)
        msgs: list[object] = []
        if spec.fn_id and spec.fn_id not in link.functions:
            name, payload = self.tasks.functions[spec.fn_id]
            msgs.append(p.RegisterFunction(fn_id=spec.fn_id, name=name, payload=payload))
            link.functions.add(spec.fn_id)
        returns = [object_id_for(spec.task_id, i) for i in range(spec.num_returns)]
        if create is not None:
            msgs += [
                p.CreateActor(req_id=0, spec=spec, options=create),
                p.Subscribe(object_ids=returns, want_value=False),
            ]
        else:
            msgs += [p.SubmitTask(spec=spec), p.Subscribe(object_ids=returns, want_value=True)]
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
            done = [oid for oid in fwd.pushed if release_push(link, oid)]
            if done:  # the host holds the constructor's arguments for the actor's life
                link.send(p.RefUpdate(add=[], remove=done))
            self.routes.remote_creation_done(fwd, payload)
            return
        if payload.offset == CHUNKED:
            try:
                local = await self.transfers.assembler.take(msg.object_id)
            except (KeyError, ConnectionError):
                return  # the link dropped mid-transfer: the task is retried or fails there
            local.type_name, local.error = payload.type_name, payload.error
            payload = local
        elif payload.data is not None and payload.size >= p.INLINE_LIMIT and not payload.error:
            local = await self.transfers.store_bytes(msg.object_id, payload.data)
            local.type_name = payload.type_name
            payload = local
        fwd.results[msg.object_id] = payload
        fwd.contained[msg.object_id] = msg.contained
        for child in msg.contained:  # some may still be on their way (see _deliver_to_peer)
            if self.table.arriving(child).payload is None:
                self.awaited_from.setdefault(fwd.node_id, set()).add(child)
        spec = fwd.rec.spec
        if len(fwd.results) < spec.num_returns or self.forwarded.get(task_id) is not fwd:
            return
        del self.forwarded[task_id]
        self.membership.give_back(fwd.node_id, spec.resources)
        returns = [object_id_for(spec.task_id, i) for i in range(spec.num_returns)]
        results = [fwd.results[oid] for oid in returns]
        done = [oid for oid in fwd.pushed if release_push(link, oid)]
        link.send(p.RefUpdate(add=[], remove=returns + done))  # the peer may free its copies now
        contained = [fwd.contained.get(oid, []) for oid in returns]
        self.tasks.remote_done(fwd.rec, results, contained)
