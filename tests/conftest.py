"""Fixtures shared by every suite: runtimes that always shut down, and a leak check.

Every test checks on teardown that it left no child processes behind; leftovers are
killed by pid and the test fails, naming them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
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
        client = ray.api._require_client()
        try:
            client.query("validate")
        finally:
            ray.shutdown()


@pytest.fixture
def ray_2cpu(ray_start: Callable[..., Any]) -> Any:
    """A running runtime with 2 CPUs and a 256 MiB store."""
    return ray_start()
