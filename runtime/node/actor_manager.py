"""The node manager's actor handlers: creation, calls, restarts, death.

A mixin of :class:`manager.NodeManager`, kept apart so each module holds one concept; every
method runs on the node manager's event loop. An actor is born from a creation task that
is scheduled like any task (its placement resources), then owns a dedicated worker
process. Its *cookie* is an object whose references are the actor's handles: while any
handle, or any pending call, refers to it the actor lives; when the last goes away, the
actor is stopped (unless detached). Actors placed on, owned by or called from other nodes
go through the base class, :class:`cluster_actors.ClusterActors`.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from typing import TYPE_CHECKING, Any

from .. import protocol as p
from ..direct import endpoint_path
from ..exceptions import ActorDiedError, RayActorError
from ..ids import object_id_for
from ..serialization import deserialize
from ..state_schema import PENDING_ARGS, PENDING_RESOURCES, SCHEDULED
from .actors import ALIVE, DEAD, RESTARTING, ActorDirectory, ActorRecord, alive_cookie
from .cluster_actors import ClusterActors

if TYPE_CHECKING:
    from ..feed import ChangeFeed
    from ..transport import ServerConnection
    from .manager import TaskRecord, WorkerState
    from .objects import ObjectTable
    from .scheduler import Grant, ReadyQueue, ResourceLedger

DIRECTORY_QUERIES = frozenset({"actor_register", "actor_unregister", "actor_owner"})
ACTOR_QUERIES = frozenset({"get_actor", "list_named_actors", "actors"}) | DIRECTORY_QUERIES


class ActorManager(ClusterActors):
    """Actor handlers; see the module docstring."""

    actors: ActorDirectory
    objects: ObjectTable
    ledger: ResourceLedger
    ready: ReadyQueue
    tasks: dict[bytes, TaskRecord]
    conns: dict[int, ServerConnection]
    waiting_on: dict[bytes, list[TaskRecord]]
    feed: ChangeFeed
    session_dir: str
    direct_early: dict[bytes, p.TaskDone]  # direct calls done before the caller's note

    if TYPE_CHECKING:

        def _track(self, rec: TaskRecord) -> None: ...
        def _enqueue(self, rec: TaskRecord) -> None: ...
        def _send_task(self, rec: TaskRecord, worker: WorkerState, gpu_ids: list[int]) -> None: ...
        def _finish(
            self,
            rec: TaskRecord,
            results: list[p.Payload],
            contained: list[list[bytes]],
            push: bool = ...,
        ) -> None: ...
        def _mark(self, rec: TaskRecord, state: str, when: float | None = ...) -> None: ...
        def _take_report(self, rec: TaskRecord, msg: p.TaskDone) -> None: ...
        def _fail(self, rec: TaskRecord, error: BaseException) -> None: ...
        def _release_holds(self, spec: p.TaskSpec) -> None: ...
        def _release_payload(self, payload: p.Payload) -> None: ...
        def _kill_worker(self, worker: WorkerState, sig: int = ...) -> None: ...
        def _release_memory(self, entry: Any) -> None: ...
        def _record_done(self, rec: TaskRecord, results: list[p.Payload]) -> None: ...
        def _maintain_pool(self) -> None: ...
        def _dispatch_tasks(self) -> None: ...

    # --- creation --------------------------------------------------------------------

    def on_create_actor(self, conn: ServerConnection, msg: p.CreateActor) -> Any:
        opts = msg.options
        if opts.name:
            existing = self.actors.lookup(opts.name, opts.namespace)
            info = existing.info() if existing is not None else self.name_taken_elsewhere(msg)
            if info is not None:
                self.reply_name_taken(conn, msg, info)
                return None
            if self.needs_head_for_name(conn, msg):
                return self.create_named_via_head(conn, msg)  # a coroutine: reserve first
        self.create_actor_here(conn, msg)
        return None

    def create_actor_here(self, conn: ServerConnection, msg: p.CreateActor) -> None:
        """Create the actor's record (this node owns it) and schedule its creation."""
        from .manager import TaskRecord

        opts = msg.options
        spec = msg.spec
        spec.owner = conn.conn_id
        cookie = object_id_for(spec.task_id, 0)
        self.objects.create(cookie, conn.conn_id)  # the creator's handle
        if opts.detached:
            self.objects.hold(cookie)  # lives until killed
        record = ActorRecord(spec.task_id, cookie, spec, opts, conn.conn_id)
        record.for_peer = conn.role == "peer"  # an owner on another node placed it here
        self.actors.add(record)
        if not record.for_peer:
            self.register_actor(record)
        # __init__ arguments stay alive for the actor's life: a restart runs it again
        for oid in spec.deps + spec.nested_refs:
            self.objects.hold(oid)
        conn.send(p.ActorCreated(msg.req_id, record.info()))
        self._schedule_creation(record, TaskRecord(spec))

    def _schedule_creation(self, record: ActorRecord, rec: TaskRecord) -> None:
        rec.actor = record
        rec.retries_left = 0
        self._track(rec)
        if rec.missing == 0:
            self._enqueue(rec)

    def place_actor(self, record: ActorRecord, worker: WorkerState, grant: Grant) -> None:
        """The creation task got resources and a worker: dedicate the worker."""
        worker.actor = record
        worker.task = None
        record.worker = worker
        record.pid = worker.pid
        record.grant = grant
        self.feed.touch("actors", record.actor_id.hex())
        self._maintain_pool()

    def actor_task_done(self, rec: TaskRecord, msg: p.TaskDone) -> None:
        record = rec.actor
        assert record is not None
        if rec.spec.kind == p.ACTOR_CREATION:
            self._creation_done(record, rec, msg)
        elif msg.retry and rec.retries_left > 0 and not rec.cancelled and record.state == ALIVE:
            # retry_exceptions: the call runs again, first in its caller's queue
            record.inflight.pop(rec.spec.task_id, None)
            for payload in msg.results:
                self._release_payload(payload)
            self._calls_lost(record, [rec], "")
            self.pump_actor(record)
        else:
            record.inflight.pop(rec.spec.task_id, None)
            # a direct call's caller has the value already (or asked for it)
            self._finish(rec, msg.results, msg.contained, push=not msg.direct_caller)
        self._dispatch_tasks()

    def _creation_done(self, record: ActorRecord, rec: TaskRecord, msg: p.TaskDone) -> None:
        self.tasks.pop(rec.spec.task_id, None)
        self._record_done(rec, msg.results)
        self.feed.touch("actors", record.actor_id.hex())
        self._release_holds(rec.spec)
        if record.grant is not None and not record.options.hold_resources:
            # Placement needs the resources; a running actor holds none unless asked to.
            self.ledger.release(record.grant)
            record.grant = None
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
            self._actor_dead(record, cause)
            if worker is not None:
                self._kill_worker(worker)
            return
        record.state = ALIVE
        entry = self.objects.get(record.cookie)
        if entry is not None and entry.payload is None:
            # through _sealed: an owner on another node subscribed to learn it is alive
            self._sealed(record.cookie, alive_cookie(), [])
        self.pump_actor(record)

    # --- calls -----------------------------------------------------------------------

    def submit_actor_call(self, conn: ServerConnection, rec: TaskRecord) -> None:
        spec = rec.spec
        assert spec.actor_id is not None
        record = self.actors.actors.get(spec.actor_id)
        if record is None and self.in_cluster():
            record = self.proxy_for(spec)  # another node owns it
        self._track(rec)
        if record is None:
            self._fail(
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
            self.objects.hold(record.cookie)  # a pending call keeps the actor alive
        if record.state == DEAD:
            self._fail(rec, self._death_error(record))
            return
        self.actors.enqueue(record, conn.conn_id, rec)
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
            conn.send(p.ActorEndpoint(record.actor_id, worker.worker_id, path))

    def on_direct_calls(self, conn: ServerConnection, msg: p.DirectCalls) -> None:
        """A caller's note of the calls it sent to actors directly: track each one."""
        from .manager import TaskRecord

        lost: dict[bytes, list[TaskRecord]] = {}
        for spec, worker_id in msg.calls:
            spec.owner = conn.conn_id
            self.objects.create(object_id_for(spec.task_id, 0), conn.conn_id)
            rec = TaskRecord(spec)
            self._track(rec)
            record = self.actors.actors.get(spec.actor_id or b"")
            if record is None:
                self._fail(rec, RayActorError("the actor of a direct call is unknown here"))
                continue
            rec.actor = record
            rec.retries_left = _call_retries(record, spec)
            self.objects.hold(record.cookie)
            done = self.direct_early.pop(spec.task_id, None)
            worker = record.worker
            if done is not None:  # the worker's report came first
                self._mark(rec, SCHEDULED, done.started)
                self._take_report(rec, done)
                self.actor_task_done(rec, done)
                self._release_contained(done)
            elif record.state == DEAD:
                self._fail(rec, self._death_error(record))
            elif record.state == ALIVE and worker is not None and worker.worker_id == worker_id:
                rec.worker = worker
                rec.worker_pid = worker.pid
                self._mark(rec, SCHEDULED)
                record.inflight[spec.task_id] = rec
            else:  # the process it went to died before answering; the call with it
                lost.setdefault(record.actor_id, []).append(rec)
        for actor_id, recs in lost.items():
            record = self.actors.actors[actor_id]
            self._calls_lost(record, recs, record.death_cause or "its worker process died")
            self.pump_actor(record)

    def direct_done_early(self, msg: p.TaskDone) -> None:
        """A direct call's report came before its caller's note: keep it until then."""
        if msg.direct_caller not in self.conns:  # the caller is gone: nobody wants it
            for payload in msg.results:
                self._release_payload(payload)
            return
        for ids in msg.contained:
            for oid in ids:
                self.objects.hold(oid)  # the worker's refs to them may go any moment
        self.direct_early[msg.task_id] = msg

    def _release_contained(self, msg: p.TaskDone) -> None:
        freed: list[Any] = []
        for ids in msg.contained:
            for oid in ids:
                self.objects.release(oid, freed)
        for entry in freed:
            self._release_memory(entry)

    def drop_direct_early(self, caller: int) -> None:
        """The caller went away: drop the reports its notes would have claimed."""
        for task_id, msg in list(self.direct_early.items()):
            if msg.direct_caller == caller:
                del self.direct_early[task_id]
                for payload in msg.results:
                    self._release_payload(payload)
                self._release_contained(msg)

    def pump_actor(self, record: ActorRecord) -> None:
        """Send every call whose turn has come to the actor's worker (or its node)."""
        if record.route is not None or record.proxy:
            if record.route_ready:
                self.send_routed(record)
            return
        if record.state != ALIVE or record.worker is None:
            return
        gpu_ids = record.grant.gpu_ids if record.grant is not None else []
        for rec in self.actors.releasable(record):
            record.inflight[rec.spec.task_id] = rec
            self._send_task(rec, record.worker, gpu_ids)
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
        """The actor's process died, or (``cause`` given) the node hosting it."""
        self.feed.touch("actors", record.actor_id.hex())
        if record.grant is not None:
            self.ledger.release(record.grant)
            record.grant = None
        record.worker = None
        inflight = list(record.inflight.values())
        record.inflight.clear()
        creation = self.tasks.get(record.actor_id)
        if creation is not None and creation.spec.kind == p.ACTOR_CREATION:
            self.tasks.pop(record.actor_id, None)
            self._release_holds(creation.spec)
        if record.state == DEAD:
            return
        if record.exiting_reason:
            cause = record.exiting_reason
        elif record.no_restart:
            cause = record.death_cause or "it was killed with jupyter_ray.kill()"
        elif cause is None:
            code = f" with exit code {exit_code}" if exit_code is not None else ""
            cause = f"its worker process (pid {record.pid}) died{code}"
        limit = record.options.max_restarts
        can_restart = not record.no_restart and not record.exiting_reason
        can_restart = can_restart and (limit < 0 or record.restarts < limit)
        if not can_restart:
            for rec in inflight:
                self._fail(rec, self._death_error(record, cause))
            self._actor_dead(record, cause)
            return
        record.state = RESTARTING
        record.restarts += 1
        self._calls_lost(record, inflight, cause)
        from .manager import TaskRecord

        self._schedule_creation(record, TaskRecord(record.spec))

    def _calls_lost(self, record: ActorRecord, recs: list[TaskRecord], cause: str) -> None:
        """Calls that died with the actor's process: queue them again, at the front of
        their callers' queues, while ``max_task_retries`` allows; fail the others."""
        for rec in reversed(recs):
            if rec.retries_left > 0:
                rec.retries_left -= 1
                rec.attempt += 1
                rec.state = PENDING_RESOURCES
                record.queues.setdefault(rec.spec.owner, deque()).appendleft(rec)
            else:
                self._fail(
                    rec,
                    RayActorError(
                        f"The actor {record.options.class_name} died while running "
                        f"{rec.spec.name}(): {cause}. It is restarting; the call was not "
                        "retried because max_task_retries is 0."
                    ),
                )

    def _actor_dead(self, record: ActorRecord, cause: str) -> None:
        creation = self.tasks.get(record.actor_id)
        if creation is not None and creation.spec.kind == p.ACTOR_CREATION:
            # not placed yet, or its constructor is running: drop that attempt
            del self.tasks[record.actor_id]
            if creation.state == PENDING_RESOURCES:
                self.ready.remove(creation)
            elif creation.state == PENDING_ARGS:
                for oid in creation.spec.deps:
                    waiters = self.waiting_on.get(oid)
                    if waiters and creation in waiters:
                        waiters.remove(creation)
            self._release_holds(creation.spec)
        self.actors.mark_dead(record, cause)
        self.feed.touch("actors", record.actor_id.hex())
        self.unregister_actor(record)
        self.hosted_actor_died(record)
        if record.route is not None:
            self.release_host(record)
        # the lifetime hold on the constructor's arguments, taken at creation
        freed: list[Any] = []
        for oid in record.spec.deps + record.spec.nested_refs:
            self.objects.release(oid, freed)
        for entry in freed:
            self._release_memory(entry)
        # Calls released to another node but not sent yet: the sender skips them once the
        # route is gone, and no host will ever answer them, so they fail here.
        for rec in record.outbox:
            if record.inflight.pop(rec.spec.task_id, None) is not None:
                self._fail(rec, self._death_error(record))
        record.outbox.clear()
        for rec in self.actors.drain(record):
            for oid in rec.spec.deps:
                waiters = self.waiting_on.get(oid)
                if waiters and rec in waiters:
                    waiters.remove(rec)
            self._fail(rec, self._death_error(record))
        self._maybe_forget(record)

    def _death_error(self, record: ActorRecord, cause: str | None = None) -> BaseException:
        return ActorDiedError(
            f"The actor {record.options.class_name} ({record.actor_id.hex()[:12]}) is dead: "
            f"{cause or record.death_cause}.",
            cause=record.death_error,
        )

    def _handles_gone(self, record: ActorRecord) -> None:
        """The cookie was freed: no handle and no pending call refers to the actor."""
        if record.state != DEAD:
            record.no_restart = True
            record.death_cause = "all references to it went out of scope"
            worker = record.worker
            self._actor_dead(record, record.death_cause)
            if worker is not None:
                self._kill_worker(worker, signal.SIGTERM)
        self.actors.forget(record)

    def _maybe_forget(self, record: ActorRecord) -> None:
        if record.cookie not in self.objects:
            self.actors.forget(record)

    def _owner_gone(self, conn: ServerConnection) -> None:
        for record in list(self.actors.actors.values()):
            mine = record.owner == conn.conn_id and not record.options.detached
            if mine and record.state != DEAD:
                record.no_restart = True
                record.death_cause = f"its owner (pid {conn.pid}) exited"
                worker = record.worker
                self._actor_dead(record, record.death_cause)
                if worker is not None:
                    self._kill_worker(worker, signal.SIGTERM)

    def on_kill_actor(self, conn: ServerConnection, msg: p.KillActor) -> None:
        record = self.actors.actors.get(msg.actor_id)
        if record is None or (record.for_peer and msg.no_restart):
            self.kill_elsewhere(msg)  # the owner marks it dead and frees its name
            if record is None:
                return
        if record.state == DEAD:
            return
        if msg.no_restart:
            record.no_restart = True
            record.death_cause = "it was killed with jupyter_ray.kill()"
        if record.worker is not None:
            self._kill_worker(record.worker)
        elif record.route is not None:
            self.kill_routed(record, msg)
        elif msg.no_restart:
            self._actor_dead(record, record.death_cause)

    def on_actor_exiting(self, conn: ServerConnection, msg: p.ActorExiting) -> None:
        record = self.actors.actors.get(msg.actor_id)
        if record is not None:
            record.exiting_reason = msg.reason
            record.no_restart = True

    # --- queries ---------------------------------------------------------------------

    def actor_query(self, what: str, arg: Any) -> Any:
        if what == "get_actor":
            name, namespace = arg
            record = self.actors.lookup(name, namespace)
            if record is None and self.is_head:
                return self.actor_directory.lookup(name, namespace)  # another node's
            return record.info() if record is not None else None
        if what == "list_named_actors":
            # arg: a namespace, or True for all of them (False: the default one)
            namespace = arg if isinstance(arg, str) else (None if arg else "default")
            if self.is_head:
                return self.actor_directory.names(namespace)
            return self.actors.names(namespace)
        if what in DIRECTORY_QUERIES:
            return self.directory_query(what, arg)
        if what == "actors":
            return [
                {
                    "actor_id": r.actor_id.hex(),
                    "class_name": r.options.class_name,
                    "name": r.options.name,
                    "state": r.state,
                    "pid": r.pid,
                    "restarts": r.restarts,
                    "death_cause": r.death_cause or None,
                }
                for r in self.actors.actors.values()
            ]
        raise ValueError(f"unknown actor query {what!r}")


def _call_retries(record: ActorRecord, spec: p.TaskSpec) -> int:
    """How often a call is tried again when the actor's process dies (or, with
    ``retry_exceptions``, when it raises): its method's ``max_task_retries`` when
    ``@method`` or ``.options`` set one (``spec.max_retries >= 0``), else the actor's."""
    limit = spec.max_retries if spec.max_retries >= 0 else record.options.max_task_retries
    return 1 << 30 if limit < 0 else limit
