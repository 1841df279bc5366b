"""Scheduling strategies for ``.options(scheduling_strategy=...)``, with Ray's names."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .placement_group import PlacementGroup

__all__ = ["PlacementGroupSchedulingStrategy"]


class PlacementGroupSchedulingStrategy:
    """Run a task or actor in a placement group: in bundle ``placement_group_bundle_index``,
    or in any of its bundles with the default -1.

    Child tasks are not placed in the group (``placement_group_capture_child_tasks`` must
    stay None or False): pass the strategy to them explicitly.
    """

    def __init__(
        self,
        placement_group: PlacementGroup,
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks: bool | None = None,
    ) -> None:
        from .placement_group import PlacementGroup

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
        if placement_group_capture_child_tasks:
            raise ValueError(
                "placement_group_capture_child_tasks=True is not supported: give child "
                "tasks the same scheduling_strategy explicitly"
            )
        self.placement_group = placement_group
        self.placement_group_bundle_index = index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def demand(self, demand: dict[str, float]) -> dict[str, float]:
        """``demand`` rewritten to the group's resources (see runtime/placement.py)."""
        from ..runtime.placement import in_group

        return in_group(demand, self.placement_group.id.hex(), self.placement_group_bundle_index)

    def __repr__(self) -> str:
        return (
            f"PlacementGroupSchedulingStrategy({self.placement_group!r}, "
            f"placement_group_bundle_index={self.placement_group_bundle_index})"
        )
