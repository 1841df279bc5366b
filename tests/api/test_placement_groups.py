"""Placement groups (``jupyter_ray.util.placement_group``), as a Ray user writes them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from _wait import eventually

import jupyter_ray as ray
from jupyter_ray.exceptions import RayActorError, RaySystemError
from jupyter_ray.util import (
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from jupyter_ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@ray.remote
def where() -> tuple[int, list[int]]:
    return os.getpid(), ray.get_gpu_ids()


@ray.remote
class Member:
    def ping(self) -> str:
        return "pong"


def _in(pg: Any, index: int = -1) -> PlacementGroupSchedulingStrategy:
    return PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index)


def test_a_group_reserves_its_bundles_and_runs_what_is_placed_in_it(ray_start: Any) -> None:
    ray_start(num_cpus=4, num_gpus=2)
    pg = placement_group([{"CPU": 1, "GPU": 1}, {"CPU": 2}], strategy="PACK")
    assert ray.get(pg.ready(), timeout=30) is True and pg.wait(5)
    assert placement_group_table(pg)["state"] == "CREATED"
    free = ray.available_resources()
    assert free["CPU"] == 1 and free["GPU"] == 1  # 3 CPUs and 1 GPU are the group's now
    _, gpus = ray.get(where.options(num_gpus=1, scheduling_strategy=_in(pg, 0)).remote())
    assert len(gpus) == 1  # the GPU of bundle 0
    pids = ray.get([where.options(scheduling_strategy=_in(pg)).remote() for _ in range(6)])
    assert len(pids) == 6
    member = Member.options(scheduling_strategy=_in(pg, 1)).remote()
    assert ray.get(member.ping.remote(), timeout=30) == "pong"
    # more than bundle 1 holds: it raises at once, as in Ray (it would wait for ever)
    with pytest.raises(ValueError, match="cannot fit into bundle 1"):
        where.options(num_cpus=3, scheduling_strategy=_in(pg, 1)).remote()


def test_a_group_that_does_not_fit_waits_until_resources_come_back(ray_2cpu: Any) -> None:
    first = placement_group([{"CPU": 2}])
    assert first.wait(30)
    second = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD")
    assert not second.wait(0.5)
    assert placement_group_table(second)["state"] == "PENDING"
    remove_placement_group(first)
    assert second.wait(30)
    # one node cannot hold two bundles that must be on different nodes
    strict = placement_group([{"CPU": 0.1}, {"CPU": 0.1}], strategy="STRICT_SPREAD")
    assert not strict.wait(0.5)
    remove_placement_group(strict)
    with pytest.raises(RaySystemError, match="removed"):
        ray.get(strict.ready(), timeout=30)


def test_removing_a_group_stops_what_runs_in_it_and_frees_its_resources(
    ray_2cpu: Any,
) -> None:
    pg = placement_group([{"CPU": 1}], name="to-remove")
    assert pg.wait(30)
    member = Member.options(scheduling_strategy=_in(pg, 0)).remote()
    assert ray.get(member.ping.remote(), timeout=30) == "pong"
    remove_placement_group(pg)
    with pytest.raises(RayActorError, match="placement group"):
        ray.get(member.ping.remote(), timeout=30)
    assert placement_group_table(pg)["state"] == "REMOVED"
    eventually(lambda: ray.available_resources().get("CPU") == 2)
    assert not [k for k in ray.available_resources() if "_group_" in k]
    with pytest.raises(ValueError, match="to-remove"):
        get_placement_group("to-remove")
    assert ray.get(where.remote())[0] > 0  # the runtime goes on


def test_named_groups_are_found_and_names_are_unique(ray_2cpu: Any) -> None:
    pg = placement_group([{"CPU": 1}], name="shared")
    same = get_placement_group("shared")
    assert same == pg and same.bundle_specs == [{"CPU": 1.0}]
    assert same.wait(30)

    # a handle passed to a task places work in the same group
    @ray.remote
    def run_in(group: Any) -> int:
        return ray.get(where.options(scheduling_strategy=_in(group, 0)).remote())[0]

    assert ray.get(run_in.remote(same), timeout=30) > 0
    with pytest.raises(ValueError, match="already exists"):
        placement_group([{"CPU": 1}], name="shared")
    assert pg.id.hex() in placement_group_table()


def test_bad_input_says_what_to_do(ray_2cpu: Any) -> None:
    with pytest.raises(ValueError, match="non-empty list"):
        placement_group([])
    with pytest.raises(ValueError, match="bundle 1"):
        placement_group([{"CPU": 1}, {"CPU": -1}])
    with pytest.raises(ValueError, match="no resources"):
        placement_group([{"CPU": 0}])
    with pytest.raises(ValueError, match="strategy"):
        placement_group([{"CPU": 1}], strategy="TIGHT")
    pg = placement_group([{"CPU": 1}])
    with pytest.raises(ValueError, match="out of range"):
        PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=1)
    with pytest.raises(TypeError, match="PlacementGroup"):
        PlacementGroupSchedulingStrategy("pg")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="capture_child_tasks"):
        PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scheduling_strategy"):
        where.options(scheduling_strategy="NEAREST")
    assert ray.get(where.options(scheduling_strategy=_in(pg)).remote(), timeout=30)[0] > 0


def test_a_group_goes_when_the_driver_that_made_it_exits(ray_2cpu: Any) -> None:
    address = ray._client.require_client().welcome.session_dir + "/node.sock"  # type: ignore
    script = textwrap.dedent(
        f"""
        import jupyter_ray as ray
        from jupyter_ray.util import placement_group
        ray.init(address={address!r})
        assert placement_group([{{"CPU": 1}}], name="short-lived").wait(30)
        placement_group([{{"CPU": 0.5}}], name="kept", lifetime="detached").wait(30)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    eventually(lambda: placement_group_table_by_name().get("short-lived") == "REMOVED")
    assert placement_group_table_by_name().get("kept") == "CREATED"
    remove_placement_group(get_placement_group("kept"))


def placement_group_table_by_name() -> dict[str, str]:
    return {g["name"]: g["state"] for g in placement_group_table().values()}
