"""Fixtures shared by every suite: runtimes that always shut down, and a leak check.

Every test checks on teardown that it left no child processes behind; leftovers are
killed by pid and the test fails, naming them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

import jupyter_ray as ray


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


RAY_ENV = {
    # Ray 2.60 turns token authentication on for `ray start`; a loopback test cluster
    # goes without, and stays on 127.0.0.1 with the second setting (DESIGN.md).
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """One Ray head for the whole run, started on first use; its processes (found by the
    temporary folder only they name on their command lines) are killed by pid at the end.
    Skipped, saying why, when Ray (the ``ray`` extra) is not installed."""
    pytest.importorskip(
        "ray", reason="the Ray backend's tests need Ray: pip install 'jupyter_ray[ray]'"
    )
    temp_dir = tempfile.mkdtemp(prefix="jrray-", dir="/tmp")  # Ray's socket paths are short
    env = {**os.environ, **RAY_ENV}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dashboard_port = s.getsockname()[1]
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    started = subprocess.run(
        [
            ray_cli,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            "--port=0",
            "--num-cpus=2",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    cluster = None
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        with open(os.path.join(temp_dir, "ray_current_cluster")) as f:
            address = f.read().strip()
        url = f"http://127.0.0.1:{dashboard_port}"
        _wait_for_dashboard(url)
        cluster = RayCluster(address, url, temp_dir, env)
        yield cluster
    finally:
        mine = []
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if temp_dir in " ".join(proc.info["cmdline"] or []):
                    mine.append(proc)
        for proc in mine:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(mine, timeout=15)
        shutil.rmtree(temp_dir, ignore_errors=True)


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
