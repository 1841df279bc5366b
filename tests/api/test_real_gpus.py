"""GPUs on a machine that has them (skipped elsewhere; the fake-GPU paths are tested in
test_resources.py): detection, device assignment, sharing, telemetry, placement groups.

Run on a GPU machine with ``python -m pytest tests/api/test_real_gpus.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest

import jupyter_ray as ray
from jupyter_ray import state

pytestmark = pytest.mark.skipif(
    shutil.which("nvidia-smi") is None or not os.path.isdir("/proc/driver/nvidia/gpus"),
    reason="needs an NVIDIA GPU and nvidia-smi",
)


def _gpu_count() -> int:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return len([line for line in out.splitlines() if line.strip()])


@ray.remote(num_gpus=1)
def use_gpu() -> tuple[list[int], str | None, Any]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import torch
    except ImportError:
        return ray.get_gpu_ids(), visible, None
    x = torch.ones(1024, 1024, device="cuda")
    return ray.get_gpu_ids(), visible, (torch.cuda.device_count(), float((x @ x).sum()))


@ray.remote(num_gpus=0.5)
def half_gpu() -> tuple[list[int], str | None]:
    return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")


def test_gpus_are_detected_and_assigned_to_tasks_and_actors(ray_start: Any) -> None:
    ray_start(num_cpus=4)
    count = _gpu_count()
    assert ray.cluster_resources()["GPU"] == count  # found without num_gpus=
    ids, visible, torch_check = ray.get(use_gpu.remote(), timeout=120)
    assert len(ids) == 1 and visible == str(ids[0])
    if torch_check is not None:
        devices, total = torch_check
        assert devices == 1 and total == 1024.0**3  # the task sees exactly its device

    @ray.remote(num_gpus=1)
    class OnGpu:
        def ids(self) -> tuple[list[int], str | None]:
            return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    actor = OnGpu.remote()
    actor_ids, actor_visible = ray.get(actor.ids.remote(), timeout=120)
    assert len(actor_ids) == 1 and actor_visible == str(actor_ids[0])
    assert ray.available_resources().get("GPU", 0) == count - 1  # the actor holds it


def test_fractional_gpus_share_a_device(ray_start: Any) -> None:
    ray_start(num_cpus=4)
    results = ray.get([half_gpu.remote() for _ in range(2)], timeout=120)
    assert all(len(ids) == 1 for ids, _ in results)
    if _gpu_count() == 1:
        assert results[0][0] == results[1][0]  # two halves of the one device


def test_gpu_telemetry_in_the_node_record(ray_start: Any) -> None:
    ray_start(num_cpus=2)

    def gpus() -> Any:
        (node,) = state.list_nodes()
        return node.gpus

    import time

    deadline = time.monotonic() + 30
    while not gpus() and time.monotonic() < deadline:
        time.sleep(0.2)
    found = gpus()
    assert found and len(found) == _gpu_count()
    assert found[0].name and found[0].memory_total > 1 << 30


def test_a_gpu_bundle_gives_its_device_to_work_in_it(ray_start: Any) -> None:
    from jupyter_ray.util import placement_group
    from jupyter_ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    ray_start(num_cpus=4)
    pg = placement_group([{"CPU": 1, "GPU": 1}])
    assert pg.wait(60)
    strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)
    ids, visible, _ = ray.get(use_gpu.options(scheduling_strategy=strategy).remote(), timeout=120)
    assert len(ids) == 1 and visible == str(ids[0])


def test_tasks_can_ask_for_this_machines_gpu_model(ray_start: Any) -> None:
    from jupyter_ray.runtime.common.gpus import detect_accelerator_type

    ray_start(num_cpus=2)
    model = detect_accelerator_type()
    assert model and ray.cluster_resources()[f"accelerator_type:{model}"] == 1
    placed = use_gpu.options(accelerator_type=model).remote()
    assert len(ray.get(placed, timeout=120)[0]) == 1
    elsewhere = use_gpu.options(accelerator_type="NOT" + model).remote()
    ready, _ = ray.wait([elsewhere], timeout=1)
    assert not ready  # no node has that model: it waits, as in Ray
    ray.cancel(elsewhere)
