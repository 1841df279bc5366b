"""Runtime context, resources, placement groups and JobConfig as Ray has them."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _wait import eventually

import jupyter_ray as ray
from jupyter_ray.exceptions import GetTimeoutError
from jupyter_ray.job_config import JobConfig
from jupyter_ray.runtime_context import NodeID
from jupyter_ray.util import (
    get_current_placement_group,
    placement_group,
    remove_placement_group,
)
from jupyter_ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@ray.remote
def task_context() -> dict[str, Any]:
    ctx = ray.get_runtime_context()
    return {
        "function": ctx.get_task_function_name(),
        "resources": ctx.get_assigned_resources(),
        "actor": ctx.get_actor_name(),
    }


@ray.remote
class Inspector:
    def context(self) -> dict[str, Any]:
        ctx = ray.get_runtime_context()
        return {
            "function": ctx.get_task_function_name(),
            "resources": ctx.get_assigned_resources(),
            "name": ctx.get_actor_name(),
            "restarted": ctx.was_current_actor_reconstructed,
        }

    def pid(self) -> int:
        return os.getpid()


def test_get_runtime_context_starts_the_runtime(ray_start: Any) -> None:
    assert not ray.is_initialized()
    ctx = ray.get_runtime_context()  # as in Ray: no init() needed first
    assert ray.is_initialized()
    node = ctx.get_node_id()
    assert isinstance(node, str) and len(node) == 56  # 28 bytes, as Ray's node ids
    assert ctx.node_id == NodeID.from_hex(node)
    with pytest.warns(DeprecationWarning, match="get_\\*_id"):
        ids = ctx.get()
    assert ids["node_id"].hex() == node and ids["job_id"].hex() == ctx.get_job_id()
    assert ctx.get_task_function_name() is None and ctx.get_assigned_resources() == {}
    assert ctx.get_actor_name() is None and not ctx.was_current_actor_reconstructed


def test_what_a_task_and_an_actor_see(ray_2cpu: Any) -> None:
    seen = ray.get(task_context.remote(), timeout=60)
    assert seen["function"].endswith(".task_context")
    assert seen["resources"] == {"CPU": 1.0} and seen["actor"] is None
    assert ray.get(task_context.options(num_cpus=0.5).remote())["resources"] == {"CPU": 0.5}
    held = Inspector.options(num_cpus=1, name="inspector").remote()
    seen = ray.get(held.context.remote(), timeout=60)
    assert seen["function"].endswith("Inspector.context")
    assert seen["resources"] == {"CPU": 1.0} and seen["name"] == "inspector"
    assert not seen["restarted"]
    # an actor without resources holds none once it runs (its placement CPU went back)
    plain = Inspector.remote()
    assert ray.get(plain.context.remote())["resources"] == {}
    assert ray.get(plain.context.remote())["name"] == ""


def test_was_current_actor_reconstructed(ray_2cpu: Any) -> None:
    actor = Inspector.options(max_restarts=1).remote()
    pid = ray.get(actor.pid.remote(), timeout=60)
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: _restarted(actor, pid))
    assert ray.get(actor.context.remote(), timeout=60)["restarted"] is True


def _restarted(actor: Any, pid: int) -> bool:
    try:
        return int(ray.get(actor.pid.remote(), timeout=10)) != pid
    except ray.exceptions.RayActorError:
        return False


@ray.remote
def depth(n: int) -> int:
    return 0 if n == 0 else 1 + ray.get(depth.remote(n - 1))


def test_a_task_blocked_in_get_lends_its_cpu(ray_2cpu: Any) -> None:
    assert ray.get(depth.remote(6), timeout=120) == 6  # six levels on two CPUs


@ray.remote
def pid() -> int:
    return os.getpid()


@ray.remote(num_gpus=1)
def gpu_pid() -> int:
    return os.getpid()


def test_gpu_and_cpu_tasks_never_share_a_worker(ray_start: Any) -> None:
    ray_start(num_cpus=2, num_gpus=1)
    cpu_pids = set(ray.get([pid.remote() for _ in range(6)], timeout=60))
    gpu_pids = set(ray.get([gpu_pid.remote() for _ in range(3)], timeout=60))
    cpu_pids |= set(ray.get([pid.remote() for _ in range(6)], timeout=60))
    assert not cpu_pids & gpu_pids


@ray.remote
def hold(path: str) -> None:
    while not os.path.exists(path):
        time.sleep(0.01)


@ray.remote
def read_all(refs: list[Any]) -> float:
    return float(sum(a.sum() for a in ray.get(refs)))


def test_no_worker_starts_for_a_get_of_objects_already_ready(ray_2cpu: Any, tmp_path: Path) -> None:
    client = ray._client.require_client()
    refs = [ray.put(np.ones(100_000)) for _ in range(8)]  # in the store, all ready
    assert ray.get(read_all.remote(refs), timeout=60) == 800_000.0  # workers warmed up
    before = set(client.query("worker_pids"))
    marker = str(tmp_path / "go")
    holding = hold.remote(marker)
    reading = read_all.remote(refs)
    queued = [pid.remote() for _ in range(4)]  # waiting for a CPU
    assert ray.get(reading, timeout=60) == 800_000.0
    Path(marker).touch()
    ray.get([holding, *queued], timeout=60)
    assert set(client.query("worker_pids")) == before


@ray.remote
def child_group() -> str | None:
    pg = get_current_placement_group()
    return pg.id.hex() if pg is not None else None


@ray.remote
def parent(escape: bool) -> Any:
    if escape:  # placement_group=None: out of the group, as in Ray (which warns)
        with pytest.warns(DeprecationWarning):
            escaped = child_group.options(placement_group=None)
        return ray.get(escaped.remote(), timeout=2)
    return ray.get(child_group.remote(), timeout=60), child_group_of_own()


def child_group_of_own() -> str | None:
    pg = get_current_placement_group()
    return pg.id.hex() if pg is not None else None


def test_placement_group_capture_child_tasks(ray_2cpu: Any) -> None:
    pg = placement_group([{"CPU": 1}, {"CPU": 1}])  # every CPU of the node
    assert pg.wait(30)
    capturing = PlacementGroupSchedulingStrategy(pg, 0, placement_group_capture_child_tasks=True)
    child, own = ray.get(parent.options(scheduling_strategy=capturing).remote(False), timeout=60)
    assert child == own == pg.id.hex()  # the child ran in the group's other bundle
    with pytest.raises(GetTimeoutError):  # outside the group no CPU is left for it
        ray.get(parent.options(scheduling_strategy=capturing).remote(True), timeout=60)
    not_capturing = PlacementGroupSchedulingStrategy(pg, 0)
    assert ray.get(child_group.options(scheduling_strategy=not_capturing).remote()) is None
    assert get_current_placement_group() is None  # in the driver
    # The same remote function called again outside any group (in a worker that may have
    # run it in the group): placement is the calling task's, not remembered per function.
    remove_placement_group(pg)
    assert ray.get(parent.remote(False), timeout=60) == (None, None)


def test_legacy_placement_options_warn_and_work(ray_2cpu: Any) -> None:
    pg = placement_group([{"CPU": 1}])
    assert pg.wait(30)
    with pytest.warns(DeprecationWarning, match="placement_group parameter is deprecated"):
        legacy = pid.options(placement_group=pg)
    with pytest.warns(DeprecationWarning) as record:
        indexed = pid.options(placement_group=pg, placement_group_bundle_index=0)
    assert [str(w.message).split()[0] for w in record] == [
        "placement_group",
        "placement_group_bundle_index",
    ]
    assert ray.get([legacy.remote(), indexed.remote()], timeout=60)
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(ValueError, match="scheduling_strategy"),
    ):
        pid.options(placement_group=pg, scheduling_strategy=PlacementGroupSchedulingStrategy(pg))


def test_work_that_cannot_fit_its_bundle_raises(ray_start: Any) -> None:
    ray_start(resources={"slot": 2})
    pg = placement_group([{"CPU": 1}, {"slot": 1}])
    assert pg.wait(30)
    with pytest.raises(ValueError, match="cannot fit into any bundle"):
        pid.options(num_cpus=2, scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote()
    in_slot = PlacementGroupSchedulingStrategy(pg, 1)
    with pytest.raises(ValueError, match=r"needs 1\.0 CPU to be created"):
        Inspector.options(scheduling_strategy=in_slot).remote()
    actor = Inspector.options(num_cpus=0, resources={"slot": 1}, scheduling_strategy=in_slot)
    assert ray.get(actor.remote().pid.remote(), timeout=60) > 0


def test_the_reserved_resource_name_bundle_is_refused(ray_start: Any) -> None:
    with pytest.raises(ValueError, match="reserved resource name"):
        ray_start(resources={"bundle": 1})
    ray_start()
    with pytest.raises(ValueError, match="reserved resource name"):
        placement_group([{"bundle": 1}])
    with pytest.raises(ValueError, match="reserved resource name"):
        Inspector.options(resources={"bundle": 1})


@ray.remote
def env_and_namespace() -> tuple[str | None, str]:
    return os.environ.get("FROM_JOB"), ray.get_runtime_context().namespace


def test_job_config(ray_start: Any) -> None:
    config = JobConfig(
        runtime_env={"env_vars": {"FROM_JOB": "yes"}},
        metadata={"team": "search"},
        ray_namespace="jobs_ns",
        default_actor_lifetime="detached",
    )
    ray_start(job_config=config)
    assert ray.get(env_and_namespace.remote(), timeout=60) == ("yes", "jobs_ns")
    assert ray.get_runtime_context().namespace == "jobs_ns"
    job_id = ray.get_runtime_context().get_job_id()
    (job,) = [j for j in ray.state.list_jobs() if j.job_id == job_id]
    assert job.metadata["team"] == "search"
    actor = Inspector.options(name="kept").remote()
    pid_of = ray.get(actor.pid.remote(), timeout=60)
    del actor  # detached by the job's default: it lives on without handles
    time.sleep(0.5)
    assert ray.get(ray.get_actor("kept").pid.remote(), timeout=60) == pid_of
    ray.kill(ray.get_actor("kept"))
    with pytest.raises(ValueError, match="default_actor_lifetime"):
        JobConfig(default_actor_lifetime="forever")
    with pytest.raises(TypeError, match="JobConfig"):
        ray.shutdown()
        ray_start(job_config={"ray_namespace": "x"})


def test_init_arguments_win_over_the_job_config(ray_start: Any) -> None:
    config = JobConfig(runtime_env={"env_vars": {"FROM_JOB": "config"}}, ray_namespace="a")
    ray_start(job_config=config, namespace="b", runtime_env={"env_vars": {"FROM_JOB": "init"}})
    assert ray.get(env_and_namespace.remote(), timeout=60) == ("init", "b")
