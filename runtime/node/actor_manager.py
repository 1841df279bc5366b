"""The node manager's actor handlers: creation, calls, restarts, death.

A component of the node manager (:mod:`manager`); every method runs on its event loop.
An actor is born from a creation task that is scheduled like any task (its placement
resources), then owns a dedicated worker process. Its *cookie* is an object whose
references are the actor's handles: while any handle, or any pending call, refers to it
the actor lives; when the last goes away, the actor is stopped (unless detached). Actors
placed on, owned by or called from other nodes go through
:class:`cluster_actors.ClusterActors`.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Any

from ..common import protocol as p
from ..common.exceptions import RayActorError
from ..common.ids import object_id_for
from ..common.serialization import deserialize
from ..common.transport import endpoint_path
from .actor_transitions import actor_death_error
from .actors import ALIVE, DEAD, ActorDirectory, ActorRecord, alive_cookie
from .records import TaskRecord

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .cluster_actors import ClusterActors
    from .feed import ChangeFeed
    from .object_manager import ObjectManager
    from .tasks import Tasks
    from .worker_pool import WorkerPool

DIRECTORY_QUERIES = frozenset({"actor_register", "actor_unregister", "actor_owner"})
ACTOR_QUERIES = frozenset({"get_actor", "list_named_actors", "actors"}) | DIRECTORY_QUERIES


class ActorManager:
    """Actor handlers; see the module docstring."""

    def __init__(
        self,
        directory: ActorDirectory,
        tasks: Tasks,
        objects: ObjectManager,
        pool: WorkerPool,
        cluster: ClusterActors,
        conns: dict[int, ServerConnection],
        feed: ChangeFeed,
        session_dir: str,
    ) -> None:
        self.directory = directory
        self.tasks = tasks
        self.objects = objects
        self.table = objects.objects
        self.store = objects.store
        self.pool = pool
        self.cluster = cluster
        self.conns = conns
        self.feed = feed
        self.session_dir = session_dir
        self.direct_early: dict[bytes, p.TaskDone] = {}  # direct calls done before the note

    # --- creation --------------------------------------------------------------------

    def on_create_actor(self, conn: ServerConnection, msg: p.CreateActor) -> Any:
        opts = msg.options
        if opts.name:
            existing = self.directory.lookup(opts.name, opts.namespace)
            info = (
                existing.info() if existing is not None else self.cluster.name_taken_elsewhere(msg)
            )
            if info is not None:
                self.cluster.reply_name_taken(conn, msg, info)
                return None
            if self.cluster.needs_head_for_name(conn, msg):
                return self.cluster.create_named_via_head(conn, msg)  # a coroutine: reserve first
        self.create_actor_here(conn, msg)
        return None

    def create_actor_here(self, conn: ServerConnection, msg: p.CreateActor) -> None:
        """Create the actor's record (this node owns it) and schedule its creation."""
        opts = msg.options
        spec = msg.spec
        spec.owner = conn.conn_id
        cookie = object_id_for(spec.task_id, 0)
        self.table.create(cookie, conn.conn_id)  # the creator's handle
        if opts.detached:
            self.table.hold(cookie)  # lives until killed
        record = ActorRecord(spec.task_id, cookie, spec, opts, conn.conn_id)
        record.for_peer = conn.role == "peer"  # an owner on another node placed it here
        self.directory.add(record)
        if not record.for_peer:
            self.cluster.register_actor(record)
        # __init__ arguments stay alive for the actor's life: a restart runs it again
        for oid in spec.deps + spec.nested_refs:
            self.table.hold(oid)
        conn.send(p.ActorCreated(req_id=msg.req_id, info=record.info()))
        self.tasks.schedule_creation(record, TaskRecord(spec))

    def actor_task_done(self, rec: TaskRecord, msg: p.TaskDone) -> None:
        record = rec.actor
        assert record is not None
        if rec.spec.kind == p.ACTOR_CREATION:
            self._creation_done(record, rec, msg)
        elif msg.retry and rec.retries_left > 0 and not rec.cancelled and record.state == ALIVE:
            # retry_exceptions: the call runs again, first in its caller's queue
            record.inflight.pop(rec.spec.task_id, None)
            for payload in msg.results:
                self.store.release_payload(payload)
            self.tasks.calls_lost(record, [rec], "")
            self.pump_actor(record)
        else:
            record.inflight.pop(rec.spec.task_id, None)
            # a direct call's caller has the value already (or asked for it)
            self.tasks.finish(rec, msg.results, msg.contained, push=not msg.direct_caller)
        self.tasks.dispatch()

    def _creation_done(self, record: ActorRecord, rec: TaskRecord, msg: p.TaskDone) -> None:
        self.tasks.creation_done(rec, msg.results)
        self.feed.touch("actors", record.actor_id.hex())
        result = msg.results[0] if msg.results else None
        if record.state == DEAD:  # killed while its constructor ran
            return
        if result is not None and result.error:
            record.no_restart = True
            cause = "its constructor raised"
            if result.data is not None:
                record.death_error = deserialize(memoryview(result.data))
                cause = f"its constructor raised {record.death_error}"
            worker = record.worker
            self.actor_dead(record, cause)
            if worker is not None:
                self.pool.kill(worker)
            return
        record.state = ALIVE
        entry = self.table.get(record.cookie)
        if entry is not None and entry.payload is None:
            # through sealed(): an owner on another node subscribed to learn it is alive
            self.objects.sealed(record.cookie, alive_cookie(), [])
        self.pump_actor(record)

    # --- calls -----------------------------------------------------------------------

    def submit_actor_call(self, conn: ServerConnection, rec: TaskRecord) -> None:
        spec = rec.spec
        assert spec.actor_id is not None
        record = self.directory.actors.get(spec.actor_id)
        if record is None and self.cluster.membership.in_cluster():
            record = self.cluster.proxy_for(spec)  # another node owns it
        self.tasks.track(rec)
        if record is None:
            self.tasks.fail(
                rec,
                RayActorError(
                    f"No actor with id {spec.actor_id.hex()} exists on this node; its "
                    "handle may come from an earlier session."
                ),
            )
            return
        rec.actor = record
        rec.retries_left = _call_retries(record, spec)
        if not record.proxy:  # (the owner's node holds it once the call gets there)
            self.table.hold(record.cookie)  # a pending call keeps the actor alive
        if record.state == DEAD:
            self.tasks.fail(rec, self.death_error(record))
            return
        self.directory.enqueue(record, conn.conn_id, rec)
        self.pump_actor(record)

    # --- direct calls (see direct.py) ------------------------------------------------

    def _offer_endpoint(self, conn: ServerConnection, record: ActorRecord) -> None:
        """Tell a local caller, once per actor process, where to send calls directly."""
        worker = record.worker
        if (
            worker is None
            or record.state != ALIVE
            or record.for_peer
            or conn.role not in ("driver", "worker")
            or getattr(conn, "remote", False)
            or conn is worker.conn
        ):
            return
        sent: set[tuple[bytes, str]] | None = getattr(conn, "endpoints", None)
        if sent is None:
            sent = conn.endpoints = set()  # type: ignore[attr-defined]
        key = (record.actor_id, worker.worker_id)
        if key in sent:
            return
        path = endpoint_path(self.session_dir, worker.worker_id)
        if path is not None and os.path.exists(path):
            sent.add(key)
            conn.send(
                p.ActorEndpoint(actor_id=record.actor_id, worker_id=worker.worker_id, path=path)
            )

    def on_direct_calls(self, conn: ServerConnection, msg: p.DirectCalls) -> None:
        """A caller's note of the calls it sent to actors directly: track each one."""
        lost: dict[bytes, list[TaskRecord]] = {}
        for spec, worker_id in msg.calls:
            spec.owner = conn.conn_id
            self.table.create(object_id_for(spec.task_id, 0), conn.conn_id)
            rec = TaskRecord(spec)
            self.tasks.track(rec)
            record = self.directory.actors.get(spec.actor_id or b"")
            if record is None:
                self.tasks.fail(rec, RayActorError("the actor of a direct call is unknown here"))
                continue
            rec.actor = record
            rec.retries_left = _call_retries(record, spec)
            self.table.hold(record.cookie)
            done = self.direct_early.pop(spec.task_id, None)
            worker = record.worker
            if done is not None:  # the worker's report came first
                self.tasks.direct_call(rec, None, done.started)
                self.tasks.take_report(rec, done)
                self.actor_task_done(rec, done)
                self._release_contained(done)
            elif record.state == DEAD:
                self.tasks.fail(rec, self.death_error(record))
            elif record.state == ALIVE and worker is not None and worker.worker_id == worker_id:
                self.tasks.direct_call(rec, worker, 0.0)
                record.inflight[spec.task_id] = rec
            else:  # the process it went to died before answering; the call with it
                lost.setdefault(record.actor_id, []).append(rec)
        for actor_id, recs in lost.items():
            record = self.directory.actors[actor_id]
            self.tasks.calls_lost(record, recs, record.death_cause or "its worker process died")
            self.pump_actor(record)

    def direct_done_early(self, msg: p.TaskDone) -> None:
        """A direct call's report came before its caller's note: keep it until then."""
        if msg.direct_caller not in self.conns:  # the caller is gone: nobody wants it
            for payload in msg.results:
                self.store.release_payload(payload)
            return
        for ids in msg.contained:
            for oid in ids:
                self.table.hold(oid)  # the worker's refs to them may go any moment
        self.direct_early[msg.task_id] = msg

    def _release_contained(self, msg: p.TaskDone) -> None:
        freed: list[Any] = []
        for ids in msg.contained:
            for oid in ids:
                self.table.release(oid, freed)
        for entry in freed:
            self.store.release_memory(entry)

    def drop_direct_early(self, caller: int) -> None:
        """The caller went away: drop the reports its notes would have claimed."""
        for task_id, msg in list(self.direct_early.items()):
            if msg.direct_caller == caller:
                del self.direct_early[task_id]
                for payload in msg.results:
                    self.store.release_payload(payload)
                self._release_contained(msg)

    def pump_actor(self, record: ActorRecord) -> None:
        """Send every call whose turn has come to the actor's worker (or its node)."""
        if record.route is not None or record.proxy:
            if record.route_ready:
                self.cluster.send_routed(record)
            return
        if record.state != ALIVE or record.worker is None:
            return
        gpu_ids = record.grant.gpu_ids if record.grant is not None else []
        for rec in self.directory.releasable(record):
            record.inflight[rec.spec.task_id] = rec
            self.tasks.send_task(rec, record.worker, gpu_ids)
            caller = self.conns.get(rec.spec.owner)
            if caller is not None:
                self._offer_endpoint(caller, record)

    def unqueue_actor_call(self, rec: TaskRecord) -> None:
        record = rec.actor
        if record is None:
            return
        q = record.queues.get(rec.spec.owner)
        if q is not None and rec in q:
            q.remove(rec)
            if not q:
                del record.queues[rec.spec.owner]
            self.pump_actor(record)

    # --- death and restarts ----------------------------------------------------------

    def actor_process_lost(
        self, record: ActorRecord, exit_code: int | None, cause: str | None = None
    ) -> None:
        """The actor's process died, or (``cause`` given) the node hosting it: the task
        state machine restarts it, or asks :meth:`actor_dead`."""
        self.tasks.actor_lost(record, exit_code, cause)

    def actor_dead(self, record: ActorRecord, cause: str) -> None:
        # not placed yet, or its constructor is running: drop that attempt
        self.tasks.drop_creation(record.actor_id)
        self.directory.mark_dead(record, cause)
        self.feed.touch("actors", record.actor_id.hex())
        self.cluster.unregister_actor(record)
        self.cluster.hosted_actor_died(record)
        if record.route is not None:
            self.cluster.release_host(record)
        # the lifetime hold on the constructor's arguments, taken at creation
        freed: list[Any] = []
        for oid in record.spec.deps + record.spec.nested_refs:
            self.table.release(oid, freed)
        for entry in freed:
            self.store.release_memory(entry)
        # Calls released to another node but not sent yet: the sender skips them once the
        # route is gone, and no host will ever answer them, so they fail here.
        for rec in record.outbox:
            if record.inflight.pop(rec.spec.task_id, None) is not None:
                self.tasks.fail(rec, self.death_error(record))
        record.outbox.clear()
        for rec in self.directory.drain(record):
            self.tasks.drop_call(rec, self.death_error(record))
        self._maybe_forget(record)

    def death_error(self, record: ActorRecord, cause: str | None = None) -> BaseException:
        return actor_death_error(record, cause)

    def handles_gone(self, record: ActorRecord) -> None:
        """The cookie was freed: no handle and no pending call refers to the actor."""
        if record.state != DEAD:
            record.no_restart = True
            record.death_cause = "all references to it went out of scope"
            worker = record.worker
            self.actor_dead(record, record.death_cause)
            if worker is not None:
                self.pool.kill(worker, signal.SIGTERM)
        self.directory.forget(record)

    def _maybe_forget(self, record: ActorRecord) -> None:
        if record.cookie not in self.table:
            self.directory.forget(record)

    def owner_gone(self, conn: ServerConnection) -> None:
        for record in list(self.directory.actors.values()):
            mine = record.owner == conn.conn_id and not record.options.detached
            if mine and record.state != DEAD:
                record.no_restart = True
                record.death_cause = f"its owner (pid {conn.pid}) exited"
                worker = record.worker
                self.actor_dead(record, record.death_cause)
                if worker is not None:
                    self.pool.kill(worker, signal.SIGTERM)

    def on_kill_actor(self, conn: ServerConnection, msg: p.KillActor) -> None:
        record = self.directory.actors.get(msg.actor_id)
        if record is None or (record.for_peer and msg.no_restart):
            self.cluster.kill_elsewhere(msg)  # the owner marks it dead and frees its name
            if record is None:
                return
        if record.state == DEAD:
            return
        if msg.no_restart:
            record.no_restart = True
            record.death_cause = "it was killed with jupyter_ray.kill()"
        if record.worker is not None:
            self.pool.kill(record.worker)
        elif record.route is not None:
            self.cluster.kill_routed(record, msg)
        elif msg.no_restart:
            self.actor_dead(record, record.death_cause)

    def on_actor_exiting(self, conn: ServerConnection, msg: p.ActorExiting) -> None:
        record = self.directory.actors.get(msg.actor_id)
        if record is not None:
            record.exiting_reason = msg.reason
            record.no_restart = True

    # --- queries ---------------------------------------------------------------------

    def actor_query(self, what: str, arg: Any) -> Any:
        if what == "get_actor":
            name, namespace = arg
            record = self.directory.lookup(name, namespace)
            if record is None and self.cluster.membership.is_head:
                return self.cluster.membership.actor_directory.lookup(
                    name, namespace
                )  # another node's
            return record.info() if record is not None else None
        if what == "list_named_actors":
            # arg: a namespace, or True for all of them (False: the default one)
            namespace = arg if isinstance(arg, str) else (None if arg else "default")
            if self.cluster.membership.is_head:
                return self.cluster.membership.actor_directory.names(namespace)
            return self.directory.names(namespace)
        if what in DIRECTORY_QUERIES:
            return self.cluster.directory_query(what, arg)
        if what == "actors":
            return [
                {
                    "actor_id": r.actor_id.hex(),
                    "class_name": r.options.class_name,
                    "name": r.options.name,
                    "state": r.state.value,
                    "pid": r.pid,
                    "restarts": r.restarts,
                    "death_cause": r.death_cause or None,
                }
                for r in self.directory.actors.values()
            ]
        raise ValueError(f"unknown actor query {what!r}")


def _call_retries(record: ActorRecord, spec: p.TaskSpec) -> int:
    """How often a call is tried again when the actor's process dies (or, with
    ``retry_exceptions``, when it raises): its method's ``max_task_retries`` when
    ``@method`` or ``.options`` set one (``spec.max_retries >= 0``), else the actor's."""
    limit = spec.max_retries if spec.max_retries >= 0 else record.options.max_task_retries
    return 1 << 30 if limit < 0 else limit
