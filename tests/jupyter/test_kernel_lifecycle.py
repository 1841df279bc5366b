"""Restarting or shutting down a kernel: what it started goes, what it attached to stays.

A runtime the kernel started itself stops with it, leaving no process and nothing in
shared memory. A runtime someone else owns (the Jupyter server; here the test process
plays that part) survives the restart, and frees what the old kernel held: its objects
and its non-detached actors.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from _kernel import kernel_session

import jupyter_ray as ray
from jupyter_ray import state

pytestmark = pytest.mark.slow

HOLD = """
import numpy as np

@ray.remote
class Keeper:
    def ping(self):
        return "pong"

temp = Keeper.remote()
keeper = Keeper.options(name="keeper", lifetime="detached").remote()
assert ray.get([temp.ping.remote(), keeper.ping.remote()]) == ["pong", "pong"]
big = ray.put(np.ones(4 << 20, dtype=np.uint8))     # 4 MiB: in shared memory
small = ray.put("a small value")
"""


def _eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s: {what}"
        time.sleep(0.05)


def test_a_runtime_the_kernel_started_goes_with_it(tmp_path: Path) -> None:
    with kernel_session(tmp_path) as kernel:
        kernel.execute("%load_ext jupyter_ray\n%ray_start --num-cpus 2\nimport jupyter_ray as ray")
        kernel.execute(HOLD)
        session_dir = Path(kernel.value("ray._client.info().session_dir"))
        assert session_dir.is_dir() and str(session_dir).startswith("/dev/shm/jupyter_ray-")
        runtime = kernel.descendants()
        assert len(runtime) >= 3, runtime  # node manager, zygote, workers
        kernel.restart()
        _, alive = psutil.wait_procs(runtime, timeout=15)
        assert not alive, f"still running after the restart: {alive}"
        _eventually(lambda: not session_dir.exists(), 15, f"{session_dir} to be removed")
        # the new kernel starts afresh
        kernel.execute("%load_ext jupyter_ray\n%ray_start --num-cpus 1\nimport jupyter_ray as ray")
        assert kernel.value("ray._client.info().session_dir") != str(session_dir)
        new_dir = Path(kernel.value("ray._client.info().session_dir"))
    # closing the kernel (the notebook) stops that one too
    assert not new_dir.exists()


def test_an_attached_runtime_outlives_the_kernel_and_frees_its_objects(
    tmp_path: Path, ray_start: Callable[..., Any]
) -> None:
    info = ray_start(num_cpus=3)  # the runtime's owner, as the Jupyter server would be
    address = f"{info.session_dir}/node.sock"
    with kernel_session(tmp_path, env={"JUPYTER_RAY_ADDRESS": address}) as kernel:
        start = kernel.execute("%load_ext jupyter_ray\n%ray_start\nimport jupyter_ray as ray")
        assert "it outlives this kernel" in str(start.messages)
        kernel.execute(HOLD)
        old_pid = kernel.pid
        owned = [o for o in state.list_objects(limit=None) if o.owner_pid == old_pid]
        assert {o.location for o in owned} >= {"shared_memory", "inline"}
        used_before = ray._client.require_client().query("store_stats")["used"]
        assert used_before >= 4 << 20
        kernel.restart()
        # the runtime is still here, and the old kernel's job is over ...
        assert ray.get(ray.put(1)) == 1
        job = _eventually(
            lambda: [j for j in state.list_jobs() if j.pid == old_pid and j.end_time is not None],
            what="the old kernel's job to end",
        )
        assert job[0].metadata["origin"] == "kernel"
        # ... its objects are freed, its actor is gone, the detached one lives on
        _eventually(
            lambda: not [o for o in state.list_objects(limit=None) if o.owner_pid == old_pid],
            what="the old kernel's objects to be freed",
        )
        assert ray._client.require_client().query("store_stats")["used"] < 4 << 20
        _eventually(
            lambda: (
                [(a.name, a.state) for a in state.list_actors(limit=None) if a.state != "DEAD"]
                == [("keeper", "ALIVE")]
            ),
            what="the kernel's actor to die and the detached one to live",
        )
        # the new kernel finds the runtime without being told where it is
        again = kernel.execute(
            "%load_ext jupyter_ray\n%ray_start\nimport jupyter_ray as ray\n"
            "ray.get(ray.get_actor('keeper').ping.remote())"
        )
        assert again.result == "'pong'"
        assert kernel.value("ray._client.info().node_id") == info.node_id
    ray.kill(ray.get_actor("keeper"))
    assert os.path.isdir(info.session_dir)  # still the test's own, stopped by the fixture
