"""Answers to ``Query`` messages: the cluster's resources and nodes, the store's figures,
the workers, the jobs, and the state, actor and placement-group queries of the other
components (a component of the node manager, on its event loop)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..common import protocol as p
from .actor_manager import ACTOR_QUERIES
from .placement_groups import PG_QUERIES
from .state_view import STATE_QUERIES

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .actor_manager import ActorManager
    from .cluster import Membership
    from .cluster_actors import ClusterActors
    from .jobs import JobTable
    from .object_store import ObjectStore
    from .placement_groups import PlacementGroups
    from .state_view import StateView
    from .worker_pool import WorkerPool


class Queries:
    """The node manager's ``Query`` handler; see the module docstring."""

    def __init__(
        self,
        membership: Membership,
        store: ObjectStore,
        pool: WorkerPool,
        jobs: JobTable,
        state: StateView,
        actors: ActorManager,
        cluster_actors: ClusterActors,
        groups: PlacementGroups,
        validate_tasks: Callable[[], None],
    ) -> None:
        self.membership = membership
        self.store = store
        self.pool = pool
        self.jobs = jobs
        self.state = state
        self.actors = actors
        self.cluster_actors = cluster_actors
        self.groups = groups
        self.validate_tasks = validate_tasks  # the task state machine's invariants

    def on_query(self, conn: ServerConnection, msg: p.Query) -> None:
        if msg.what in PG_QUERIES:
            conn.send(
                p.QueryReply(req_id=msg.req_id, data=self.groups.pg_query(conn, msg.what, msg.arg))
            )
            return
        if self.cluster_actors.query_via_head(conn, msg):
            return
        conn.send(p.QueryReply(req_id=msg.req_id, data=self.answer(msg.what, msg.arg)))

    def answer(self, what: str, arg: Any) -> Any:
        views = self.membership.all_views
        if what == "cluster_resources":
            return _sum(v.total for v in views() if v.alive)
        if what == "available_resources":
            free = _sum(v.available for v in views() if v.alive)
            return {k: v for k, v in free.items() if v > 0}
        if what == "nodes":
            return [node_info(v) for v in views()]
        objects = self.store.objects
        if what == "store_stats":
            return {
                "capacity": self.store.alloc.capacity,
                "used": self.store.alloc.used,
                "spilled": self.store.spilled_bytes,
                "objects": len(objects.entries),
                "zombies": len(objects.zombies),
            }
        if what == "workers":
            return [{"pid": w.pid, "busy": w.task is not None} for w in self.pool.workers.values()]
        if what == "worker_pids":  # every worker process started and not yet reaped
            return self.pool.processes.pids()
        if what == "list_jobs":
            return self.jobs.states()
        if what in STATE_QUERIES:
            return self.state.state_query(what, arg)
        if what in ACTOR_QUERIES:
            return self.actors.actor_query(what, arg)
        if what == "has_object":
            return arg in objects
        if what == "validate":
            objects.validate()
            self.store.alloc.check()
            self.validate_tasks()
            return True
        raise ValueError(f"unknown query {what!r}")


def node_info(view: p.NodeView) -> dict[str, Any]:
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


def _sum(dicts: Any) -> dict[str, float]:
    total: dict[str, float] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0.0) + v
    return total
