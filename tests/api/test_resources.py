"""Resources as a Ray user declares them: CPUs, (fake) GPUs, custom resources, infeasibility.

Concurrency is checked two ways: tasks that must not overlap record their start and end
times (``time.time()`` is one clock for every process on the machine), and tasks that must
run together meet at a rendezvous, which fails (after a deadline) if they cannot.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

import jupyter_ray as ray
from jupyter_ray.exceptions import TaskCancelledError

# --- helpers (also run inside workers) -----------------------------------------------


def wait_until(cond: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Retry ``cond`` every 20 ms until it is truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _rendezvous(directory: str, name: str, expected: int, timeout: float) -> bool:
    """Announce ``name`` in ``directory``; True once ``expected`` tasks have announced."""
    with open(os.path.join(directory, f"{name}.here"), "w"):
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for n in os.listdir(directory) if n.endswith(".here")) >= expected:
            return True
        time.sleep(0.02)
    return False


def assert_disjoint(intervals: list[tuple[float, float]]) -> None:
    spans = sorted(intervals)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"tasks overlapped: {spans}"


@ray.remote
def span(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


@ray.remote
def meet(directory: str, name: str, expected: int) -> tuple[bool, list[int], str | None]:
    """Wait (at most 20 s) until ``expected`` tasks run at once; report this task's GPUs."""
    met = _rendezvous(directory, name, expected, 20.0)
    return met, ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")


@ray.remote
def gpus_seen() -> tuple[list[int], str | None]:
    return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")


@ray.remote
def add(a: int, b: int) -> int:
    return a + b


@ray.remote
def block(started: str, release: str) -> str:
    """Say it started, then wait (at most 30 s) for ``release`` to exist."""
    with open(started, "w"):
        pass
    deadline = time.monotonic() + 30
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


# --- custom resources ----------------------------------------------------------------


def test_custom_resource_limits_concurrency(ray_start: Any, tmp_path: Path) -> None:
    ray_start(num_cpus=2, resources={"slot": 1})
    # two CPUs are free, so only the single slot can keep these apart
    spans = ray.get([span.options(resources={"slot": 1}).remote(0.3) for _ in range(2)])
    assert_disjoint(spans)


def test_fractional_custom_resource_runs_two_at_a_time(ray_start: Any, tmp_path: Path) -> None:
    ray_start(num_cpus=2, resources={"slot": 1})
    half = meet.options(resources={"slot": 0.5})
    results = ray.get([half.remote(str(tmp_path), f"t{i}", 2) for i in range(2)], timeout=60)
    assert [met for met, _, _ in results] == [True, True]


# --- GPUs ------------------------------------------------------------------------------


def test_gpu_task_sees_one_device(ray_start: Any) -> None:
    ray_start(num_cpus=2, num_gpus=2)
    ids, visible = ray.get(gpus_seen.options(num_gpus=1).remote())
    assert len(ids) == 1 and ids[0] in (0, 1)
    assert visible == str(ids[0])
    assert ray.get_gpu_ids() == []  # the driver holds none


def test_concurrent_gpu_tasks_get_different_devices(ray_start: Any, tmp_path: Path) -> None:
    ray_start(num_cpus=2, num_gpus=2)
    one = meet.options(num_gpus=1)
    results = ray.get([one.remote(str(tmp_path), f"t{i}", 2) for i in range(2)], timeout=60)
    assert [met for met, _, _ in results] == [True, True]
    ids = [tuple(gpu_ids) for _, gpu_ids, _ in results]
    assert sorted(ids) == [(0,), (1,)]
    assert [visible for _, _, visible in results] == [str(i[0]) for i in ids]


def test_fractional_gpu_tasks_share_a_device(ray_start: Any, tmp_path: Path) -> None:
    ray_start(num_cpus=2, num_gpus=1)
    half = meet.options(num_gpus=0.5)
    results = ray.get([half.remote(str(tmp_path), f"t{i}", 2) for i in range(2)], timeout=60)
    assert [met for met, _, _ in results] == [True, True]
    assert [(gpu_ids, visible) for _, gpu_ids, visible in results] == [([0], "0"), ([0], "0")]


def test_gpu_limit_keeps_whole_gpu_tasks_apart(ray_start: Any) -> None:
    ray_start(num_cpus=2, num_gpus=1)
    spans = ray.get([span.options(num_gpus=1).remote(0.3) for _ in range(2)])
    assert_disjoint(spans)


# --- CPUs ------------------------------------------------------------------------------


def test_tasks_needing_all_cpus_run_one_at_a_time(ray_2cpu: Any) -> None:
    spans = ray.get([span.options(num_cpus=2).remote(0.3) for _ in range(2)])
    assert_disjoint(spans)


def test_zero_cpu_tasks_run_beyond_the_cpu_count(ray_2cpu: Any, tmp_path: Path) -> None:
    free = meet.options(num_cpus=0)
    results = ray.get([free.remote(str(tmp_path), f"t{i}", 4) for i in range(4)], timeout=60)
    assert [met for met, _, _ in results] == [True] * 4


# --- infeasible tasks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"resources": {"missing": 1}}, {"num_cpus": 64}, {"accelerator_type": "A100"}],
    ids=["unknown-resource", "too-many-cpus", "gpu-model-not-here"],
)
def test_infeasible_task_waits_without_blocking_others(
    ray_2cpu: Any, options: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ref = add.options(**options).remote(1, 2)
    ready, not_ready = ray.wait([ref], timeout=0.5)
    assert ready == [] and not_ready == [ref]
    # as in Ray, the driver is told (on stderr, not as an error) that the task cannot fit
    stderr: list[str] = []

    def told() -> bool:
        stderr.append(capsys.readouterr().err)
        return "add needs" in "".join(stderr)

    wait_until(told, "a message saying the task cannot fit", timeout=10)
    assert ray.get([add.remote(i, i) for i in range(4)], timeout=30) == [0, 2, 4, 6]
    ready, not_ready = ray.wait([ref], timeout=0)
    assert ready == [] and not_ready == [ref]
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=10)
    assert ray.available_resources()["CPU"] == 2


# --- resource views -------------------------------------------------------------------------


def test_cluster_resources_match_init(ray_start: Any) -> None:
    ray_start(num_cpus=2, num_gpus=1, resources={"slot": 3, "half": 0.5})
    total = ray.cluster_resources()
    assert total["CPU"] == 2 and total["GPU"] == 1
    assert total["slot"] == 3 and total["half"] == 0.5
    assert total["object_store_memory"] == 256 << 20
    nodes = ray.nodes()
    assert len(nodes) == 1
    assert nodes[0]["Alive"] is True
    assert nodes[0]["Resources"] == total


def test_available_resources_follow_running_tasks(ray_start: Any, tmp_path: Path) -> None:
    ray_start(num_cpus=2, resources={"slot": 2})
    assert ray.available_resources()["CPU"] == 2
    release = str(tmp_path / "release")
    ref = block.options(resources={"slot": 0.5}).remote(str(tmp_path / "started"), release)
    wait_until((tmp_path / "started").exists, "the task to start")
    during = ray.available_resources()
    assert during["CPU"] == 1 and during["slot"] == 1.5
    assert ray.cluster_resources()["CPU"] == 2  # totals do not move
    with open(release, "w"):
        pass
    assert ray.get(ref, timeout=30) == "released"
    wait_until(
        lambda: (
            ray.available_resources().get("CPU") == 2 and ray.available_resources().get("slot") == 2
        ),
        "CPU and slot to be given back",
        timeout=10,
    )


def test_fully_used_resources_leave_available_resources(ray_start: Any, tmp_path: Path) -> None:
    ray_start(num_cpus=2)
    release = str(tmp_path / "release")
    ref = block.options(num_cpus=2).remote(str(tmp_path / "started"), release)
    wait_until((tmp_path / "started").exists, "the task to start")
    assert "CPU" not in ray.available_resources()  # as in Ray
    with open(release, "w"):
        pass
    ray.get(ref, timeout=30)


# --- bad init ----------------------------------------------------------------------------------


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_cpus": -1}, ValueError, "num_cpus must be >= 0"),
        ({"num_gpus": -2}, ValueError, "num_gpus must be >= 0"),
        ({"resources": {"CPU": 2}}, ValueError, "num_cpus"),
        ({"resources": {"GPU": 1}}, ValueError, "num_gpus"),
        ({"resources": ["slot"]}, TypeError, "resources must be a dict"),
        ({"resources": {"slot": -1}}, ValueError, "slot"),
    ],
)
def test_bad_init_arguments_raise_at_once(
    ray_start: Any, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    before = _children()
    with pytest.raises(error, match=message):
        ray_start(**kwargs)
    assert not ray.is_initialized()
    assert _children() == before  # nothing was started
    ray_start(num_cpus=2, resources={"slot": 1})
    assert ray.get(add.options(resources={"slot": 1}).remote(1, 2)) == 3


def test_accelerator_type_names_and_bad_values() -> None:
    from jupyter_ray.runtime.common.gpus import accelerator_type

    assert accelerator_type("NVIDIA H100 80GB HBM3") == "H100"
    assert accelerator_type("NVIDIA A100-SXM4-40GB") == "A100"
    assert accelerator_type("Tesla V100-SXM2-16GB") == "V100"
    assert accelerator_type("Tesla T4") == "T4"
    assert accelerator_type("") is None
    with pytest.raises(ValueError, match="GPU model name"):
        add.options(accelerator_type="")
    with pytest.raises(ValueError, match="label selector value"):  # (see test_parity_labels)
        add.options(label_selector={"zone": "in("})
