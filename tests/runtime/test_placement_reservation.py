"""Placement-group reservation without processes: which waiting groups a node reserves,
in what order, and what the ledger holds after (``PlacementGroups.reserve_fitting``).

The node manager's shell calls it whenever resources come back; these tests drive it with
a real ``ResourceLedger`` and records only, as the task state machine's tests do.
"""

from __future__ import annotations

from jupyter_ray.runtime.common.group_resources import group_resources, in_group
from jupyter_ray.runtime.node.placement_groups import (
    CREATED,
    PENDING,
    PlacementGroupRecord,
    PlacementGroups,
)
from jupyter_ray.runtime.node.scheduler import ResourceLedger


def _node(total: dict[str, float]) -> tuple[ResourceLedger, PlacementGroups]:
    ledger = ResourceLedger(total)
    # reserve_fitting touches only the ledger and the two tables: no objects, no tasks
    groups = PlacementGroups(ledger, None, None, {}, [])  # type: ignore[arg-type]
    return ledger, groups


def _wait(
    groups: PlacementGroups, n: int, bundles: list[dict[str, float]], strategy: str = "PACK"
) -> PlacementGroupRecord:
    rec = PlacementGroupRecord(bytes([n]) * 16, bundles, strategy, "", "default", False, 1)
    groups.groups[rec.pg_id] = rec
    groups.pending_groups.append(rec)
    return rec


def test_groups_that_fit_are_reserved_oldest_first_and_the_others_wait() -> None:
    ledger, groups = _node({"CPU": 4})
    big = _wait(groups, 1, [{"CPU": 2}, {"CPU": 3}])  # 5 CPUs: never on this node now
    first = _wait(groups, 2, [{"CPU": 1}, {"CPU": 1}])
    second = _wait(groups, 3, [{"CPU": 2}])
    third = _wait(groups, 4, [{"CPU": 1}])  # nothing left for it

    assert groups.reserve_fitting() == [first, second]
    assert (big.state, first.state, second.state, third.state) == (
        PENDING,
        CREATED,
        CREATED,
        PENDING,
    )
    assert groups.pending_groups == [big, third]
    assert ledger.available["CPU"] == 0
    # the group's own resources: work placed in bundle 1 of the first group fits there
    assert first.added == group_resources(first.pg_id.hex(), first.bundles)
    assert ledger.fits(in_group({"CPU": 1}, first.pg_id.hex(), 1))
    assert not ledger.fits(in_group({"CPU": 2}, first.pg_id.hex(), 1))

    # A grant given back (a task ended): the next call reserves the one that now fits.
    ledger.release(second.grants[0])
    assert groups.reserve_fitting() == [third]
    assert groups.pending_groups == [big]
    assert ledger.available["CPU"] == 1


def test_strict_spread_of_several_bundles_never_takes_one_node() -> None:
    ledger, groups = _node({"CPU": 8})
    spread = _wait(groups, 1, [{"CPU": 1}, {"CPU": 1}], "STRICT_SPREAD")
    single = _wait(groups, 2, [{"CPU": 1}], "STRICT_SPREAD")
    assert groups.reserve_fitting() == [single]
    assert spread.state == PENDING and ledger.available["CPU"] == 7


def test_gpu_bundles_that_do_not_split_over_the_devices_give_everything_back() -> None:
    ledger, groups = _node({"CPU": 4, "GPU": 2})
    half = ledger.acquire({"GPU": 0.5})  # a task holds half of one device
    assert half is not None
    # 1.2 GPUs in all fit the 1.5 free, but two bundles of 0.6 need 0.6 on each of two
    # devices, and one of them has only 0.5 left.
    rec = _wait(groups, 1, [{"GPU": 0.6}, {"GPU": 0.6}])
    before = dict(ledger.available)
    assert groups.reserve_fitting() == []
    assert rec.state == PENDING and rec.grants == [] and ledger.available == before

    ledger.release(half)
    assert groups.reserve_fitting() == [rec]
    assert [g.gpu_ids for g in rec.grants] == [[0], [1]]  # 0.6 of each device
    assert abs(ledger.available["GPU"] - 0.8) < 1e-9
