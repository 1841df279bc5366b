"""Fixtures shared by every suite: runtimes that always shut down, and a leak check.

Every test checks on teardown that it left no child processes behind; leftovers are
killed by pid and the test fails, naming them.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

import jupyter_ray as ray
from jupyter_ray.on_ray import local_head


def _children() -> dict[int, psutil.Process]:
    try:
        return {p.pid: p for p in psutil.Process(os.getpid()).children(recursive=True)}
    except psutil.Error:
        return {}


@pytest.fixture(autouse=True, scope="session")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A registry of runtimes (Jupyter's runtime directory) of the test run's own, so that
    ``address="auto"`` never finds a runtime the developer started outside the tests."""
    previous = os.environ.get("JUPYTER_RUNTIME_DIR")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("jupyter-runtime"))
    yield
    if previous is None:
        os.environ.pop("JUPYTER_RUNTIME_DIR", None)
    else:
        os.environ["JUPYTER_RUNTIME_DIR"] = previous


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    before = set(_children())
    yield
    if ray.is_initialized():
        ray.shutdown()
    leftovers = {pid: p for pid, p in _children().items() if pid not in before}
    if not leftovers:
        return
    _, alive = psutil.wait_procs(list(leftovers.values()), timeout=5)
    if not alive:
        return
    names = []
    for proc in alive:
        try:
            names.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)
    pytest.fail(f"test left processes running: {names}")


@pytest.fixture
def ray_start() -> Iterator[Callable[..., Any]]:
    """Factory: ``ray_start(num_cpus=2, ...)`` inits jupyter_ray; always shut down after.

    On teardown it also asks the node manager to check its own bookkeeping.
    """

    def start(**kwargs: Any) -> Any:
        kwargs.setdefault("num_cpus", 2)
        kwargs.setdefault("object_store_memory", 256 << 20)
        return ray.init(**kwargs)

    yield start
    if ray.is_initialized():
        client = ray._client.require_client()
        try:
            client.query("validate")
        finally:
            ray.shutdown()


@pytest.fixture
def ray_2cpu(ray_start: Callable[..., Any]) -> Any:
    """A running runtime with 2 CPUs and a 256 MiB store."""
    return ray_start()


@dataclass
class RayCluster:
    """A real Ray cluster on loopback (``ray start --head``) for the Ray-backend tests."""

    address: str  # HOST:PORT of its GCS: init(address=..., _backend="ray")
    dashboard_url: str  # where Ray's state API answers
    temp_dir: str
    env: dict[str, str]  # what a process needs to talk to it here


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """One Ray head for the whole run, started on first use; its processes are killed by
    pid at the end (``local_head``). Skipped, saying why, when Ray (the ``ray`` extra)
    is not installed."""
    pytest.importorskip(
        "ray", reason="the Ray backend's tests need Ray: pip install 'jupyter_ray[ray]'"
    )
    temp_dir = tempfile.mkdtemp(prefix="jrray-", dir="/tmp")  # Ray's socket paths are short
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dashboard_port = s.getsockname()[1]
    try:
        address = local_head.start(temp_dir, dashboard_port=dashboard_port)
        url = f"http://127.0.0.1:{dashboard_port}"
        _wait_for_dashboard(url)
        yield RayCluster(address, url, temp_dir, {**os.environ, **local_head.RAY_ENV})
    finally:
        local_head.stop(temp_dir)


def _wait_for_dashboard(url: str, timeout: float = 120.0) -> None:
    """Ray's state API answers through the dashboard, which comes up after the head."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=5) as res:
                if res.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"Ray's dashboard at {url} never answered"
        time.sleep(0.2)
