"""Actors across the nodes of a cluster: placement, routed calls, the actor directory.

A component of the node manager (:mod:`manager`), between the peers (:mod:`peers`) and
the actors (:mod:`actor_manager`, reached through :class:`ActorHost`); everything runs on
the node manager's event loop. The head's directory itself is :mod:`cluster_directory`.

- **Owner.** The node whose driver or worker creates an actor keeps its ``ActorRecord``:
  the count of its handles, its name, its restarts. When the creation task cannot run
  here it is placed like a task, and the owner sends ``CreateActor`` over a ``PeerLink``
  to the chosen *host* node, which starts the actor with that link as its creator. Calls
  released from the owner's per-caller queues then go down the same link, one after the
  other, and come back like a forwarded task's results.
- **Callers on other nodes.** A node that gets a call for an actor it does not know asks
  the head which node owns it and keeps a *proxy* record: per-caller queues as usual,
  released calls forwarded to the owner. A caller's calls therefore stay in order: one
  queue on the caller's node, one link, one queue per link on the owner and on the host.
- **Directory.** The head knows every actor's owner node and every name
  (:class:`ActorNameDirectory`); members ask it with ``Query`` messages on their head
  link. A name is reserved there before the actor is created, so a duplicate anywhere in
  the cluster raises. Creations and look-ups reach the head; calls never do.
- **Failure.** When the link to the host drops, the owner treats it as the death of the
  actor's process: the actor is created again wherever it fits while ``max_restarts``
  allows (calls in flight retried per ``max_task_retries``), else calls raise an error
  naming the node. When the owner's node dies, the host sees its creator's link close and
  stops the actor, as Ray does when an actor's owner dies. A worker process that dies on
  the host is restarted by the host itself, from the restarts the owner had left.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..common import protocol as p
from ..common.exceptions import RayActorError, RaySystemError
from ..common.ids import object_id_for
from ..common.serialization import deserialize, serialize
from .actors import ALIVE, DEAD, ActorDirectory, ActorRecord, alive_cookie
from .peers import LINK_ERRORS
from .records import Forwarded, TaskRecord

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .cluster import Membership
    from .feed import ChangeFeed
    from .object_manager import ObjectManager
    from .peers import Peers
    from .tasks import Tasks

log = logging.getLogger("jupyter_ray.node")

OWNER_LOOKUP_TRIES = 30
"""An owner's registration may still be on its way to the head: ask again this often."""

_head_req_ids = itertools.count(1)


class ActorHost(Protocol):
    """What the cross-node actors ask of the actors component (:mod:`actor_manager`)."""

    def pump_actor(self, record: ActorRecord) -> None: ...
    def actor_query(self, what: str, arg: Any) -> Any: ...
    def actor_process_lost(
        self, record: ActorRecord, exit_code: int | None, cause: str | None = None
    ) -> None: ...
    def actor_dead(self, record: ActorRecord, cause: str) -> None: ...
    def death_error(self, record: ActorRecord, cause: str | None = None) -> BaseException: ...
    def create_actor_here(self, conn: ServerConnection, msg: p.CreateActor) -> None: ...


class ClusterActors:
    """Actor handlers that reach across nodes; see the module docstring."""

    def __init__(
        self,
        membership: Membership,
        peers: Peers,
        tasks: Tasks,
        objects: ObjectManager,
        actors: ActorDirectory,
        conns: dict[int, ServerConnection],
        feed: ChangeFeed,
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.membership = membership
        self.peers = peers
        self.tasks = tasks
        self.objects = objects
        self.table = objects.objects
        self.actors = actors
        self.conns = conns
        self.feed = feed
        self.spawn = spawn
        self.head_requests: dict[int, asyncio.Future[Any]] = {}  # member: queries to the head

    def wire(self, host: ActorHost) -> None:
        """Connect the actors component (built after this one)."""
        self.host = host

    # --- the head's directory --------------------------------------------------------

    async def ask_head(self, what: str, arg: Any) -> Any:
        """Member: a query answered by the head (request and reply on the head link)."""
        link = self.membership.head_link
        if link is None or link.closed:
            raise ConnectionError("this node is not connected to the head")
        req_id = next(_head_req_ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.head_requests[req_id] = future
        try:
            link.send(p.Query(req_id=req_id, what=what, arg=arg))
            return await asyncio.wait_for(future, 30)
        finally:
            self.head_requests.pop(req_id, None)

    def head_replied(self, msg: p.QueryReply) -> None:
        future = self.head_requests.get(msg.req_id)
        if future is not None and not future.done():
            future.set_result(msg.data)

    def head_lost(self) -> None:
        for future in self.head_requests.values():
            if not future.done():
                future.set_exception(ConnectionError("lost the link to the head"))

    def register_actor(self, record: ActorRecord) -> None:
        """Tell the directory who owns a new actor (its name is already reserved)."""
        if self.membership.is_head:
            self.membership.actor_directory.register(record.info(), self.membership.node_id)
        elif self.membership.head_link is not None:
            # no reply awaited: a caller that asks before this arrives asks again
            self.membership.head_link.send(
                p.Query(
                    req_id=0, what="actor_register", arg=(record.info(), self.membership.node_id)
                )
            )

    def unregister_actor(self, record: ActorRecord) -> None:
        if record.proxy or record.for_peer:
            return
        if self.membership.is_head:
            self.membership.actor_directory.unregister(record.actor_id)
        elif self.membership.head_link is not None:
            self.membership.head_link.send(
                p.Query(req_id=0, what="actor_unregister", arg=record.actor_id)
            )

    def directory_query(self, what: str, arg: Any) -> Any:
        """Head: the directory's answers to members' queries."""
        if what == "actor_register":
            info, node_id = arg
            return self.membership.actor_directory.register(info, node_id)
        if what == "actor_unregister":
            self.membership.actor_directory.unregister(arg)
            return None
        return self.membership.actor_directory.owner_of(arg)  # "actor_owner"

    def name_taken_elsewhere(self, msg: p.CreateActor) -> p.ActorInfo | None:
        """Head: another node's live actor with this name, if any."""
        opts = msg.options
        if not self.membership.is_head or not opts.name:
            return None
        info = self.membership.actor_directory.lookup(opts.name, opts.namespace)
        return info if info is not None and info.actor_id != msg.spec.task_id else None

    def needs_head_for_name(self, conn: ServerConnection, msg: p.CreateActor) -> bool:
        return bool(msg.options.name) and not self.membership.is_head and conn.role != "peer"

    async def create_named_via_head(self, conn: ServerConnection, msg: p.CreateActor) -> None:
        """Member: reserve the name at the head, then create the actor here."""
        spec = msg.spec
        info = p.ActorInfo(
            actor_id=spec.task_id, cookie=object_id_for(spec.task_id, 0), options=msg.options
        )
        try:
            existing = await self.ask_head("actor_register", (info, self.membership.node_id))
        except (ConnectionError, asyncio.TimeoutError) as err:
            conn.send(
                p.ActorCreated(
                    req_id=msg.req_id,
                    info=None,
                    error=f"Cannot check the name {msg.options.name!r} with the head of the "
                    f"cluster ({err}); start the head again or create the actor unnamed.",
                )
            )
            return
        if existing is not None:
            self.reply_name_taken(conn, msg, existing)
        elif conn.conn_id in self.conns:
            self.host.create_actor_here(conn, msg)
        elif self.membership.head_link is not None:  # the creator left while we asked
            self.membership.head_link.send(
                p.Query(req_id=0, what="actor_unregister", arg=spec.task_id)
            )

    def reply_name_taken(
        self, conn: ServerConnection, msg: p.CreateActor, existing: p.ActorInfo
    ) -> None:
        opts = msg.options
        if opts.get_if_exists:
            conn.send(p.ActorCreated(req_id=msg.req_id, info=existing, existed=True))
            return
        conn.send(
            p.ActorCreated(
                req_id=msg.req_id,
                info=None,
                error=(
                    f"An actor named {opts.name!r} already exists in namespace "
                    f"{opts.namespace!r}. Use get_actor({opts.name!r}) for a handle to it, "
                    "pass get_if_exists=True, or pick another name."
                ),
            )
        )

    def query_via_head(self, conn: ServerConnection, msg: p.Query) -> bool:
        """Member: answer get_actor/list_named_actors from the head's directory."""
        if self.membership.head_link is None or msg.what not in ("get_actor", "list_named_actors"):
            return False
        if msg.what == "get_actor" and self.actors.lookup(*msg.arg) is not None:
            return False  # ours: answered here
        self.spawn(self._query_head_for(conn, msg))
        return True

    async def _query_head_for(self, conn: ServerConnection, msg: p.Query) -> None:
        try:
            data = await self.ask_head(msg.what, msg.arg)
        except (ConnectionError, asyncio.TimeoutError) as err:
            log.warning("the head did not answer %s (%s); answering for this node", msg.what, err)
            data = self.host.actor_query(msg.what, msg.arg)
        conn.send(p.QueryReply(req_id=msg.req_id, data=data))

    async def owner_of(self, actor_id: bytes) -> str | None:
        """The node that owns the actor, asking again while its registration travels."""
        for _ in range(OWNER_LOOKUP_TRIES):
            if self.membership.is_head:
                owner = self.membership.actor_directory.owner_of(actor_id)
            else:
                owner = await self.ask_head("actor_owner", actor_id)
            if owner is not None:
                return str(owner)
            await asyncio.sleep(0.1)
        return None

    # --- placement: the creation goes to another node ---------------------------------

    def forward_creation(self, rec: TaskRecord, node_id: str) -> None:
        """Host the actor on ``node_id`` (the state machine placed its creation there)."""
        self.spawn(self._forward_creation(rec, node_id))

    async def _forward_creation(self, rec: TaskRecord, node_id: str) -> None:
        record = rec.actor
        assert record is not None
        limit = record.options.max_restarts
        host_options = dataclasses.replace(
            record.options,
            name=None,  # the name lives with the owner and the head
            detached=False,  # the host stops it when the owner's link drops
            get_if_exists=False,
            max_restarts=limit if limit < 0 else max(limit - record.restarts, 0),
        )
        try:
            link = await self.peers.link(node_id)
            if self.tasks.tasks.get(record.actor_id) is not rec or record.state == DEAD:
                return  # killed or lost while we connected
            await self.peers.send_forward(rec, node_id, link, host_options)
        except LINK_ERRORS as err:
            log.warning("cannot reach node %s (%s); placing actor again", node_id, err)
            self.membership.mark_dead(node_id)
            if self.tasks.tasks.get(record.actor_id) is rec and record.state != DEAD:
                self.tasks.enqueue(rec)
            return
        record.route = node_id
        record.route_ready = True
        self.feed.touch("actors", record.actor_id.hex())
        self.host.pump_actor(record)

    def remote_creation_done(self, fwd: Forwarded, payload: p.Payload) -> None:
        """The host says the actor is alive (its cookie sealed), or that it died."""
        rec = fwd.rec
        record = rec.actor
        assert record is not None
        rec.ended = time.time()
        self.tasks.creation_done(rec, [payload])
        self.feed.touch("actors", record.actor_id.hex())
        if record.state == DEAD or record.route != fwd.node_id:
            return
        if payload.error and payload.data is not None:
            err = deserialize(memoryview(payload.data))
            record.no_restart = True
            record.death_error = getattr(err, "cause", None)
            self.host.actor_dead(record, str(err))
            return
        record.state = ALIVE
        entry = self.table.get(record.cookie)
        if entry is not None and entry.payload is None:
            self.objects.sealed(record.cookie, alive_cookie(), [])

    def hosted_actor_died(self, record: ActorRecord) -> None:
        """Host: tell the owner that an actor that never came up died (its constructor)."""
        entry = self.table.get(record.cookie)
        if record.for_peer and entry is not None and entry.payload is None:
            data = serialize(RayActorError(record.death_cause, record.death_error)).to_bytes()
            self.objects.sealed(record.cookie, p.Payload(data=data, size=len(data), error=True), [])

    # --- calls that go to another node -----------------------------------------------

    def proxy_for(self, spec: p.TaskSpec) -> ActorRecord:
        """The record that forwards calls to an actor another node owns."""
        assert spec.actor_id is not None
        record = self.actors.proxies.get(spec.actor_id)
        if record is None:
            actor_id = spec.actor_id
            placeholder = p.TaskSpec(
                task_id=actor_id,
                name=spec.name,
                fn_id=b"",
                args=b"",
                deps=[],
                nested_refs=[],
                num_returns=1,
                resources={},
                max_retries=0,
                retry_exceptions=False,
                max_calls=0,
                kind=p.ACTOR_CREATION,
            )
            options = p.ActorOptions(class_name=spec.name.partition(".")[0], methods=b"")
            record = ActorRecord(actor_id, object_id_for(actor_id, 0), placeholder, options, 0)
            record.proxy = True
            self.actors.proxies[actor_id] = record
            self.spawn(self._find_owner(record))
        return record

    async def _find_owner(self, record: ActorRecord) -> None:
        try:
            owner = await self.owner_of(record.actor_id)
        except (ConnectionError, asyncio.TimeoutError) as err:
            owner = None
            why = f"the head could not be asked where it lives ({err})"
        else:
            why = "no node of the cluster owns it; it may have died, or its handle is stale"
        view = self.membership.cluster.get(owner) if owner is not None else None
        if owner is None or owner == self.membership.node_id or view is None or not view.alive:
            if owner is not None:
                why = f"the node {owner} that owns it died"
            self.host.actor_dead(record, why)
            return
        record.route = owner
        record.route_ready = True
        record.state = ALIVE
        self.host.pump_actor(record)

    def send_routed(self, record: ActorRecord) -> None:
        """Release calls whose turn has come to the route, in order, by one sender."""
        for rec in self.actors.releasable(record):
            if rec.spec.generator:
                self.tasks.fail(
                    rec,
                    RaySystemError(
                        f"{rec.spec.name}() is a generator method of an actor on another "
                        "node, which jupyter_ray cannot stream yet: give the actor "
                        "resources only this node has, or return a list instead."
                    ),
                )
                continue
            record.inflight[rec.spec.task_id] = rec
            self.tasks.routed(rec)
            record.outbox.append(rec)
        if record.outbox and not record.sending:
            record.sending = True
            self.spawn(self._drain_outbox(record))

    async def _drain_outbox(self, record: ActorRecord) -> None:
        try:
            while record.outbox:
                rec = record.outbox.popleft()
                node_id = record.route
                if node_id is None or rec.spec.task_id not in record.inflight:
                    continue  # its route died meanwhile: it was re-queued or failed
                try:
                    link = await self.peers.link(node_id)
                    if record.route == node_id and rec.spec.task_id in record.inflight:
                        await self.peers.send_forward(rec, node_id, link, None)
                except LINK_ERRORS as err:
                    log.warning("cannot reach node %s (%s) for actor calls", node_id, err)
                    self.membership.mark_dead(node_id)
                    self.actors_lost_with(node_id)
        finally:
            record.sending = False

    def kill_routed(self, record: ActorRecord, msg: p.KillActor) -> None:
        if msg.no_restart:
            self.host.actor_dead(record, record.death_cause)  # tells the host, see below
        elif record.route is not None:
            self.spawn(self._send_to(record.route, msg))

    def kill_elsewhere(self, msg: p.KillActor) -> None:
        """``kill`` of an actor another node owns: the owner decides."""
        if self.membership.in_cluster():
            self.spawn(self._kill_via_owner(msg))

    async def _kill_via_owner(self, msg: p.KillActor) -> None:
        proxy = self.actors.proxies.get(msg.actor_id)
        try:
            owner = proxy.route if proxy is not None else None
            owner = owner or await self.owner_of(msg.actor_id)
        except (ConnectionError, asyncio.TimeoutError):
            return
        if owner is not None and owner != self.membership.node_id:
            await self._send_to(owner, msg)

    async def _send_to(self, node_id: str, msg: object) -> None:
        try:
            link = await self.peers.link(node_id)
        except LINK_ERRORS as err:
            log.warning("cannot reach node %s (%s)", node_id, err)
            return
        link.send(msg)

    def release_host(self, record: ActorRecord) -> None:
        """The owner gave the actor up: stop it on its host and drop our handle there."""
        node_id = record.route
        record.route = None
        record.route_ready = False
        if node_id is not None and not record.proxy:
            msgs = [
                p.KillActor(actor_id=record.actor_id, no_restart=True),
                p.RefUpdate(add=[], remove=[record.cookie]),
            ]
            self.spawn(self._send_to_all(node_id, msgs))

    async def _send_to_all(self, node_id: str, msgs: list[object]) -> None:
        for msg in msgs:
            await self._send_to(node_id, msg)

    # --- failure ---------------------------------------------------------------------

    def routes_to(self, node_id: str) -> bool:
        records = itertools.chain(self.actors.actors.values(), self.actors.proxies.values())
        return any(r.route == node_id for r in records)

    def actors_lost_with(self, node_id: str) -> None:
        """The link to ``node_id`` dropped: actors hosted there, proxies of its actors."""
        for record in list(self.actors.actors.values()):
            if record.route == node_id and record.state != DEAD:
                record.route = None
                record.route_ready = False
                record.outbox.clear()
                self.host.actor_process_lost(record, None, f"the node {node_id} hosting it died")
        for record in list(self.actors.proxies.values()):
            if record.route != node_id:
                continue
            record.route = None
            record.outbox.clear()
            cause = f"the node {node_id} that owns it died"
            inflight = list(record.inflight.values())
            record.inflight.clear()
            for rec in inflight:
                self.tasks.fail(rec, self.host.death_error(record, cause))
            self.host.actor_dead(record, cause)
