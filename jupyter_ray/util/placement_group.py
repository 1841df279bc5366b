"""Placement groups, as ``ray.util.placement_group``: reserve bundles of resources together,
then run tasks and actors in them with ``PlacementGroupSchedulingStrategy``.

>>> pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
>>> ray.get(pg.ready())
True
>>> f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()

See runtime/placement.py for how the node reserves them.
"""

from __future__ import annotations

import numbers
from typing import Any

from .._checks import check_resource_name
from .._client import require_client
from ..api import wait
from ..runtime.client import context
from ..runtime.client.object_ref import ObjectRef
from ..runtime.common.ids import new_task_id, object_id_for

__all__ = [
    "PlacementGroup",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class PlacementGroup:
    """A handle to a placement group; it can be passed to tasks and actors."""

    def __init__(
        self,
        pg_id: bytes,
        bundles: list[dict[str, float]],
        strategy: str,
        ready_ref: ObjectRef | None = None,
    ) -> None:
        self.id = pg_id  # bytes; .hex() as in Ray
        self.bundle_specs = [dict(b) for b in bundles]
        self.strategy = strategy
        self._ready = ready_ref

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self) -> ObjectRef:
        """A ref that resolves (to True) once every bundle is reserved."""
        if self._ready is None:
            self._ready = ObjectRef(object_id_for(self.id, 0))
        return self._ready

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Whether the group is reserved within ``timeout_seconds``."""
        ready, _ = wait([self.ready()], timeout=timeout_seconds)
        return bool(ready)

    def __reduce__(self) -> tuple[Any, ...]:
        return (PlacementGroup, (self.id, self.bundle_specs, self.strategy))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup(id={self.id.hex()}, bundles={self.bundle_specs})"


def _check_bundles(bundles: Any) -> list[dict[str, float]]:
    if not isinstance(bundles, list | tuple) or not bundles:
        raise ValueError(
            "placement_group() takes a non-empty list of bundles, each a dict of resources "
            'such as [{"CPU": 1}, {"CPU": 1, "GPU": 1}]'
        )
    out = []
    for i, bundle in enumerate(bundles):
        if not isinstance(bundle, dict) or not bundle:
            raise ValueError(
                f"bundle {i} must be a non-empty dict of resources such as {{'CPU': 1}}, "
                f"got {bundle!r}"
            )
        clean: dict[str, float] = {}
        for name, amount in bundle.items():
            if not isinstance(name, str):
                raise ValueError(f"resource names must be strings, got {name!r} in bundle {i}")
            check_resource_name(name)
            if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or amount < 0:
                raise ValueError(f"bundle {i}: {name} must be a number >= 0, got {amount!r}")
            clean[name] = float(amount)
        if not any(v > 0 for v in clean.values()):
            raise ValueError(f"bundle {i} asks for no resources: {bundle!r}")
        out.append(clean)
    return out


def placement_group(
    bundles: list[dict[str, float]],
    strategy: str = "PACK",
    name: str = "",
    lifetime: str | None = None,
    namespace: str | None = None,
) -> PlacementGroup:
    """Reserve ``bundles`` together; returns at once (``ready()`` says when reserved).

    ``lifetime="detached"`` keeps the group after its creator exits.
    """
    clean = _check_bundles(bundles)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if lifetime not in (None, "detached"):
        raise ValueError(f"lifetime must be None or 'detached', got {lifetime!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    client = require_client()
    pg_id = new_task_id()
    error = client.query(
        "pg_create",
        (pg_id, clean, strategy, name, namespace or "default", lifetime == "detached"),
    )
    if error is not None:
        raise ValueError(error)
    ready = client._new_owned_ref(object_id_for(pg_id, 0))
    return PlacementGroup(pg_id, clean, strategy, ready)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Give the group's resources back; tasks and actors running in it are stopped."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"expected a PlacementGroup, got {type(placement_group).__name__}")
    require_client().query("pg_remove", placement_group.id)


def get_placement_group(name: str, namespace: str | None = None) -> PlacementGroup:
    """The live placement group called ``name``; ValueError if there is none."""
    found = require_client().query("pg_get", (name, namespace or "default"))
    if found is None:
        raise ValueError(f"Failed to look up a placement group named {name!r}")
    pg_id, bundles, strategy = found
    return PlacementGroup(pg_id, bundles, strategy)


def get_current_placement_group() -> PlacementGroup | None:
    """The placement group the running task's children are placed in, when its
    strategy captures child tasks (``placement_group_capture_child_tasks=True``); else
    None, as in Ray (also in the driver)."""
    task = context.current_task()
    if task is None or task.capture_group is None:
        return None
    pg_id = task.capture_group
    entry = require_client().query("pg_table", pg_id)
    bundles = [dict(b) for _, b in sorted((entry or {}).get("bundles", {}).items())]
    return PlacementGroup(pg_id, bundles, (entry or {}).get("strategy", "PACK"))


def placement_group_table(placement_group: PlacementGroup | None = None) -> Any:
    """State of one group, or of all by id: bundles, strategy, state (PENDING, CREATED,
    REMOVED)."""
    arg = placement_group.id if placement_group is not None else None
    return require_client().query("pg_table", arg)
