"""A worker node on a host of its own: a network namespace with its own address.

The other cluster tests run every node on loopback. Here a worker node runs inside a
network namespace that the test makes (iproute2, root only) and joins the head across a
veth pair, from its own address, with its own TMPDIR, as a second machine would: it finds
no session file of the head's and must be given the address and the token. Skipped, with
the reason, where namespaces cannot be made.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest
from _cluster import families, kill_all

import jupyter_ray as ray

pytestmark = pytest.mark.cluster

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclass
class TwoHosts:
    namespace: str
    head_ip: str
    node_ip: str


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def two_hosts() -> Iterator[TwoHosts]:
    """This machine's root namespace and one namespace joined by a veth pair (/30)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a network namespace")
    tag = os.getpid() % 50_000
    namespace, outer, inner = f"jr{tag}ns", f"jr{tag}a", f"jr{tag}b"
    # A subnet per test process, so that parallel runs never share addresses.
    subnet, base = f"10.213.{tag % 250}", tag // 250 % 60 * 4
    head_ip, node_ip = f"{subnet}.{base + 1}", f"{subnet}.{base + 2}"
    made = _ip("netns", "add", namespace)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {made.stderr.strip()}")
    try:
        for args in (
            ("link", "add", outer, "type", "veth", "peer", "name", inner),
            ("link", "set", inner, "netns", namespace),
            ("addr", "add", f"{head_ip}/30", "dev", outer),
            ("link", "set", outer, "up"),
            ("-n", namespace, "addr", "add", f"{node_ip}/30", "dev", inner),
            ("-n", namespace, "link", "set", inner, "up"),
            ("-n", namespace, "link", "set", "lo", "up"),
        ):
            step = _ip(*args)
            assert step.returncode == 0, f"ip {' '.join(args)}: {step.stderr}"
        yield TwoHosts(namespace, head_ip, node_ip)
    finally:
        _ip("link", "del", outer)  # takes its peer in the namespace with it
        _ip("netns", "del", namespace)


def _start(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    pid = int(re.search(r"\(pid (\d+)\)", out.stdout).group(1))  # type: ignore[union-attr]
    return pid, out.stdout


@ray.remote(resources={"far": 1})
def far_node() -> str:
    return str(ray.get_runtime_context().get_node_id())


@ray.remote(resources={"far": 1})
def make_far(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64)


@ray.remote(resources={"far": 1})
def total_far(a: np.ndarray) -> float:
    return float(a.sum())


def test_worker_node_on_its_own_address_joins_and_moves_data(
    two_hosts: TwoHosts, tmp_path: Path, monkeypatch: Any
) -> None:
    head_tmp, node_tmp = tmp_path / "head", tmp_path / "node"
    head_tmp.mkdir()
    node_tmp.mkdir()
    head_env = {**os.environ, "TMPDIR": str(head_tmp), "JUPYTER_RUNTIME_DIR": str(head_tmp)}
    node_env = {**os.environ, "TMPDIR": str(node_tmp), "JUPYTER_RUNTIME_DIR": str(node_tmp)}
    cli = [sys.executable, "-m", "jupyter_ray.cli"]
    in_ns = ["ip", "netns", "exec", two_hosts.namespace, *cli]
    small = ["--num-cpus", "1", "--object-store-memory", str(128 << 20)]
    pids: list[int] = []
    try:
        head_pid, out = _start(
            [*cli, "start", "--head", "--host", two_hosts.head_ip, "--port", "0", *small],
            head_env,
        )
        pids.append(head_pid)
        address = re.search(rf"on ({re.escape(two_hosts.head_ip)}:\d+)\.", out)
        assert address is not None, out
        token_file = re.search(r"Token: (\S+)", out).group(1)  # type: ignore[union-attr]
        token = Path(token_file).read_text().strip()
        join = [*in_ns, "start", "--address", address.group(1), "--host", two_hosts.node_ip]
        # Without the token the other host is turned away, with a message that says so.
        refused = subprocess.run(
            join,
            capture_output=True,
            text=True,
            timeout=120,
            env=node_env,
        )
        assert refused.returncode != 0
        assert "token" in (refused.stderr + refused.stdout).lower()
        node_pid, _ = _start(
            [*join, "--token", token, "--resources", '{"far": 1}', *small],
            node_env,
        )
        pids.append(node_pid)

        monkeypatch.setenv("TMPDIR", str(head_tmp))
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(head_tmp))
        monkeypatch.setattr(tempfile, "tempdir", str(head_tmp))
        ray.init(address="auto")  # the driver runs on the head's host
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert time.monotonic() < deadline, ray.nodes()
            time.sleep(0.05)
        by_address = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes()}
        assert set(by_address) == {two_hosts.head_ip, two_hosts.node_ip}, by_address

        assert ray.get(far_node.remote(), timeout=60) == by_address[two_hosts.node_ip]
        n = 3_000_000  # 24 MB each way: larger than any message sent inline
        made = make_far.remote(n)
        assert float(ray.get(made, timeout=60).sum()) == n * (n - 1) / 2
        local = ray.put(np.ones(n))
        assert ray.get(total_far.remote(local), timeout=60) == float(n)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        kill_all(families(pids))
