"""Placement-group resource names, shared by the facade and the node manager.

As in Ray, a reserved group turns into resources of its own, and a task placed in the
group asks for those instead of the plain ones (``in_group``, used by the facade when it
sees a ``PlacementGroupSchedulingStrategy``):

- ``CPU_group_<i>_<id>`` for what bundle ``i`` holds, ``CPU_group_<id>`` for the whole
  group (any bundle), likewise for every resource of the bundles;
- ``bundle_group_<i>_<id>`` and ``bundle_group_<id>``, which every task in the group also
  asks a sliver of, so a task that needs no resources still runs where the group is.

The reservation itself is the node manager's (``node/placement_groups.py``).
"""

from __future__ import annotations

BUNDLE_UNITS = 1000.0
IN_GROUP_SLIVER = 0.001


def group_resources(pg_hex: str, bundles: list[dict[str, float]]) -> dict[str, float]:
    """The resources a reserved group adds to its node."""
    out: dict[str, float] = {}
    for i, bundle in enumerate(bundles):
        for name, amount in bundle.items():
            if amount > 0:
                out[f"{name}_group_{i}_{pg_hex}"] = amount
                whole = f"{name}_group_{pg_hex}"
                out[whole] = out.get(whole, 0.0) + amount
        out[f"bundle_group_{i}_{pg_hex}"] = BUNDLE_UNITS
    out[f"bundle_group_{pg_hex}"] = BUNDLE_UNITS * len(bundles)
    return out


def in_group(demand: dict[str, float], pg_hex: str, index: int) -> dict[str, float]:
    """A task's demand rewritten to run in bundle ``index`` of a group (-1: any)."""
    suffix = f"_group_{index}_{pg_hex}" if index >= 0 else f"_group_{pg_hex}"
    out = {f"{name}{suffix}": amount for name, amount in demand.items() if amount > 0}
    out[f"bundle{suffix}"] = IN_GROUP_SLIVER
    return out
