"""Clusters started from the command line, shared by the cluster suites.

``head`` starts a head node through the CLI with a private TMPDIR and Jupyter runtime
directory (where the registry of runtimes lives), so ``jupyter-ray stop`` and
``address="auto"`` only see the runtime the test started; ``Head.add_node`` starts
worker nodes that join it. Everything started is killed by pid at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest

import jupyter_ray as ray


@dataclass
class Head:
    pid: int
    address: str
    token_file: str
    env: dict[str, str]
    nodes: list[int] = field(default_factory=list)  # pids of worker nodes started

    def add_node(self, *args: str) -> int:
        """Start a worker node that joins this head; returns its pid."""
        out = self.cli("start", "--address", self.address, *args)
        pid = int(re.search(r"\(pid (\d+)\)", out.stdout).group(1))  # type: ignore[union-attr]
        self.nodes.append(pid)
        return pid

    def wait_nodes(self, n: int) -> None:
        deadline = time.monotonic() + 60
        while len([x for x in ray.nodes() if x["Alive"]]) < n:
            assert time.monotonic() < deadline, f"only {ray.nodes()} joined"
            time.sleep(0.05)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [sys.executable, "-m", "jupyter_ray.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
        )
        if check:
            assert out.returncode == 0, out.stderr
        return out


@pytest.fixture(name="head")
def head_fixture(tmp_path: Any, monkeypatch: Any) -> Iterator[Head]:
    """A head node (2 CPUs, resource ``slot: 3``) started by the CLI; torn down by pid.

    Import ``head_fixture`` into a test module to use the ``head`` fixture.
    """
    registry = str(tmp_path / "jupyter-runtime")
    env = {**os.environ, "TMPDIR": str(tmp_path), "JUPYTER_RUNTIME_DIR": registry}
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", registry)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_ray.cli",
            "start",
            "--head",
            "--port",
            "0",
            "--num-cpus",
            "2",
            "--resources",
            '{"slot": 3}',
            "--object-store-memory",
            str(64 << 20),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    pid = int(re.search(r"\(pid (\d+)\)", out.stdout).group(1))  # type: ignore[union-attr]
    address = re.search(r"on (127\.0\.0\.1:\d+)\.", out.stdout).group(1)  # type: ignore[union-attr]
    token_file = re.search(r"Token: (\S+)", out.stdout).group(1)  # type: ignore[union-attr]
    assert "ray.init(address='auto')" in out.stdout
    head = Head(pid, address, token_file, env)
    try:
        yield head
    finally:
        family = families([pid, *head.nodes])
        if ray.is_initialized():
            ray.shutdown()
        kill_all(family)


def families(pids: list[int]) -> list[psutil.Process]:
    """The processes of these node managers: themselves, zygotes and workers."""
    found: list[psutil.Process] = []
    for pid in pids:
        try:
            node = psutil.Process(pid)
            found += [node, *node.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return found


def kill_all(procs: list[psutil.Process]) -> None:
    """SIGKILL each by pid and wait for them (what a test started, never by name)."""
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)
