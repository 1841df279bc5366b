"""Placement groups: bundles of resources reserved together, for tasks and actors to use.

A component of the node manager (:mod:`manager`); every method runs on its event loop. The
resource names a reserved group adds are in :mod:`jupyter_ray.runtime.placement`.

A group is reserved whole on the node whose process created it, when the sum of its
bundles fits there (``STRICT_SPREAD`` with several bundles never fits one node, and waits);
groups that do not fit yet wait, and are tried again whenever resources come back. Other
nodes of a cluster see the group's resources in this node's status, so tasks placed in
the group from anywhere are forwarded here. Removing a group (or its creator's exit, for
a group that is not detached) kills what runs in it and fails what waits for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..common import protocol as p
from ..common.exceptions import RaySystemError
from ..common.group_resources import group_resources
from ..common.ids import object_id_for
from ..common.serialization import serialize
from .scheduler import Grant

if TYPE_CHECKING:
    from ..common.transport import ServerConnection
    from .object_manager import ObjectManager
    from .scheduler import ResourceLedger
    from .tasks import Tasks


class GroupStatus(str, Enum):
    """A placement group's state; the values are what ``placement_group_table`` shows."""

    PENDING = "PENDING"
    CREATED = "CREATED"
    REMOVED = "REMOVED"


PENDING, CREATED, REMOVED = GroupStatus.PENDING, GroupStatus.CREATED, GroupStatus.REMOVED
PG_QUERIES = frozenset({"pg_create", "pg_remove", "pg_table", "pg_get"})


@dataclass(slots=True, eq=False)
class PlacementGroupRecord:
    pg_id: bytes
    bundles: list[dict[str, float]]
    strategy: str
    name: str
    namespace: str
    detached: bool
    owner: int
    state: GroupStatus = PENDING
    grants: list[Grant] = field(default_factory=list)
    added: dict[str, float] = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    @property
    def ready_id(self) -> bytes:
        return object_id_for(self.pg_id, 0)

    def table_entry(self) -> dict[str, Any]:
        return {
            "placement_group_id": self.pg_id.hex(),
            "name": self.name,
            "namespace": self.namespace,
            "bundles": {i: dict(b) for i, b in enumerate(self.bundles)},
            "strategy": self.strategy,
            "state": self.state.value,
            "detached": self.detached,
        }


class PlacementGroups:
    """Placement-group handlers of the node manager; see the module docstring."""

    def __init__(
        self,
        ledger: ResourceLedger,
        objects: ObjectManager,
        tasks: Tasks,
        groups: dict[bytes, PlacementGroupRecord],
        pending_groups: list[PlacementGroupRecord],
    ) -> None:
        self.ledger = ledger
        self.objects = objects
        self.tasks = tasks
        self.groups = groups
        self.pending_groups = pending_groups  # oldest first

    def pg_query(self, conn: ServerConnection, what: str, arg: Any) -> Any:
        if what == "pg_create":
            return self._create_group(conn, *arg)
        if what == "pg_remove":
            rec = self.groups.get(arg)
            if rec is not None and rec.state != REMOVED:
                self.remove_group(rec, "it was removed with remove_placement_group()")
            return None
        if what == "pg_table":
            if arg is not None:
                rec = self.groups.get(arg)
                return rec.table_entry() if rec is not None else None
            return {r.pg_id.hex(): r.table_entry() for r in self.groups.values()}
        if what == "pg_get":
            name, namespace = arg
            for rec in self.groups.values():
                if rec.name == name and rec.namespace == namespace and rec.state != REMOVED:
                    return rec.pg_id, rec.bundles, rec.strategy
            return None
        raise ValueError(f"unknown placement group query {what!r}")

    def _create_group(
        self,
        conn: ServerConnection,
        pg_id: bytes,
        bundles: list[dict[str, float]],
        strategy: str,
        name: str,
        namespace: str,
        detached: bool,
    ) -> str | None:
        """Record a new group and try to reserve it; an error message, or None."""
        if name and any(
            r.name == name and r.namespace == namespace and r.state != REMOVED
            for r in self.groups.values()
        ):
            return (
                f"a placement group named {name!r} already exists in namespace "
                f"{namespace!r}; pick another name, or get it with get_placement_group()"
            )
        rec = PlacementGroupRecord(
            pg_id, bundles, strategy, name, namespace, detached, conn.conn_id
        )
        self.groups[pg_id] = rec
        self.pending_groups.append(rec)
        self.objects.objects.create(rec.ready_id, conn.conn_id)  # the creator's ref to ready()
        if not self.reserve_groups():
            self.tasks.dispatch()
        return None

    def reserve_groups(self, dispatch: bool = True) -> bool:
        """Reserve every waiting group that fits now, oldest first; True if any did."""
        reserved = self.reserve_fitting()
        self.groups_reserved(reserved)
        if reserved and dispatch:
            self.tasks.dispatch("group-reserved")
        return bool(reserved)

    def reserve_fitting(self) -> list[PlacementGroupRecord]:
        """Take the resources of every waiting group that fits now, oldest first (the
        bookkeeping only: :meth:`groups_reserved` tells their creators)."""
        done = []
        for rec in list(self.pending_groups):
            if rec.strategy == "STRICT_SPREAD" and len(rec.bundles) > 1:
                continue  # one bundle per node: never on a single node
            total: dict[str, float] = {}
            for bundle in rec.bundles:
                for k, v in bundle.items():
                    total[k] = total.get(k, 0.0) + v
            if not self.ledger.fits(total):
                continue
            grants: list[Grant] = []
            for bundle in rec.bundles:
                grant = self.ledger.acquire(bundle)
                if grant is None:  # GPUs that do not split this way: give back, wait
                    for g in grants:
                        self.ledger.release(g)
                    break
                grants.append(grant)
            else:
                rec.grants = grants
                rec.added = group_resources(rec.pg_id.hex(), rec.bundles)
                self.ledger.add(rec.added)
                rec.state = CREATED
                self.pending_groups.remove(rec)
                done.append(rec)
        return done

    def groups_reserved(self, groups: list[PlacementGroupRecord]) -> None:
        """Seal the ``ready()`` object of each group that got its resources."""
        for rec in groups:
            self.objects.sealed(rec.ready_id, _payload(True), [])

    def group_gpu_ids(self, demand: dict[str, float]) -> list[int]:
        """GPU ids for a demand placed in a group: those of its bundle (or all bundles)."""
        for key in demand:
            if not key.startswith("GPU_group_"):
                continue
            parts = key[len("GPU_group_") :].split("_")
            rec = self.groups.get(bytes.fromhex(parts[-1]))
            if rec is None:
                return []
            if len(parts) == 2:
                return list(rec.grants[int(parts[0])].gpu_ids)
            return [i for g in rec.grants for i in g.gpu_ids]
        return []

    def remove_group(self, rec: PlacementGroupRecord, why: str) -> None:
        """Give the group's resources back; kill what runs in it, fail what waits."""
        was = rec.state
        rec.state = REMOVED
        error = RaySystemError(
            f"The placement group {rec.name or rec.pg_id.hex()[:12]} is gone: {why}. "
            "Create a new one to run this work."
        )
        if was == PENDING:
            self.pending_groups.remove(rec)
            self.objects.sealed(rec.ready_id, _payload(error, error=True), [])
            return
        self.tasks.group_removed(set(rec.added), error, why)
        self.ledger.remove(rec.added)
        for grant in rec.grants:
            self.ledger.release(grant)
        rec.grants = []
        self.reserve_groups(dispatch=False)
        self.tasks.dispatch()

    def groups_owner_gone(self, conn_id: int) -> None:
        for rec in list(self.groups.values()):
            if rec.owner == conn_id and not rec.detached and rec.state != REMOVED:
                self.remove_group(rec, "the driver that created it exited")


def _payload(value: Any, error: bool = False) -> p.Payload:
    data = serialize(value).to_bytes()
    return p.Payload(data=data, size=len(data), error=error)
