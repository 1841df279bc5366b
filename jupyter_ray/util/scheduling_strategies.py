"""Scheduling strategies for ``.options(scheduling_strategy=...)``, with Ray's names."""

from __future__ import annotations

from ..runtime.common.group_resources import in_group
from .placement_group import PlacementGroup

__all__ = ["PlacementGroupSchedulingStrategy"]


class PlacementGroupSchedulingStrategy:
    """Run a task or actor in a placement group: in bundle ``placement_group_bundle_index``,
    or in any of its bundles with the default -1.

    With ``placement_group_capture_child_tasks=True`` the tasks and actors it starts (and
    theirs) run in the group too, in any bundle, unless they are given a strategy of their
    own (or ``placement_group=None``), as in Ray.
    """

    def __init__(
        self,
        placement_group: PlacementGroup,
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks: bool | None = None,
    ) -> None:
        if not isinstance(placement_group, PlacementGroup):
            raise TypeError(
                "PlacementGroupSchedulingStrategy takes the PlacementGroup that "
                f"placement_group() returned, got {type(placement_group).__name__}"
            )
        index = placement_group_bundle_index
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"placement_group_bundle_index must be an int, got {index!r}")
        if not -1 <= index < placement_group.bundle_count:
            raise ValueError(
                f"placement_group_bundle_index {index} is out of range: the group has "
                f"{placement_group.bundle_count} bundle(s), so use 0 to "
                f"{placement_group.bundle_count - 1}, or -1 for any bundle"
            )
        capture = placement_group_capture_child_tasks
        if capture is not None and not isinstance(capture, bool):
            raise TypeError(
                f"placement_group_capture_child_tasks must be True, False or None, got {capture!r}"
            )
        self.placement_group = placement_group
        self.placement_group_bundle_index = index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    @classmethod
    def captured(cls, pg_id: bytes) -> PlacementGroupSchedulingStrategy:
        """The strategy of a child task of a task that captures its children: any bundle
        of the same group, capturing in turn (its bundles are not known here, and need not
        be: the node checks the demand against them)."""
        strategy = cls.__new__(cls)
        strategy.placement_group = PlacementGroup(pg_id, [], "PACK")
        strategy.placement_group_bundle_index = -1
        strategy.placement_group_capture_child_tasks = True
        return strategy

    def demand(self, demand: dict[str, float]) -> dict[str, float]:
        """``demand`` rewritten to the group's resources (see runtime/placement.py)."""
        return in_group(demand, self.placement_group.id.hex(), self.placement_group_bundle_index)

    def check_fits(self, demand: dict[str, float], name: str, actor_default: bool) -> None:
        """ValueError when ``demand`` of the task or actor ``name`` fits none of the
        bundles it may use, as Ray raises (it would wait for ever otherwise)."""
        what = f"actor {name}" if actor_default else name
        bundles = self.placement_group.bundle_specs
        if not bundles:
            return  # a captured group: its bundles are the node's to check
        index = self.placement_group_bundle_index
        usable = bundles if index < 0 else [bundles[index]]
        wanted = {k: v for k, v in demand.items() if v > 0}
        if any(all(b.get(k, 0.0) + 1e-9 >= v for k, v in wanted.items()) for b in usable):
            return
        where = "any bundle" if index < 0 else f"bundle {index}"
        if actor_default:
            raise ValueError(
                f"Cannot schedule {what} in the placement group: an actor needs "
                f"{wanted.get('CPU', 0)} CPU to be created, and {where} of {usable} has "
                "less. Create the group with CPU in its bundles, or give the actor "
                "num_cpus=0."
            )
        raise ValueError(
            f"Cannot schedule {what} in the placement group: its resource request "
            f"{wanted} cannot fit into {where} of {usable}."
        )

    def __repr__(self) -> str:
        return (
            f"PlacementGroupSchedulingStrategy({self.placement_group!r}, "
            f"placement_group_bundle_index={self.placement_group_bundle_index})"
        )
