"""Cluster figures: start-up of a head and two worker nodes, and moving 100 MiB between nodes.

    python benchmarks/cluster.py [--rounds 5]

Starts its own cluster through the command line (in a private TMPDIR, so it touches no
other runtime), measures, and stops it by pid. Targets from issue 4, on these 2-core
machines: a head and 2 nodes up and ready in under 2 s; at least 1 GiB/s for a 100 MiB
array moved between two nodes on loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import psutil

MiB = 1 << 20


def _cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "jupyter_ray.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    return out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="jr-cluster-bench-")
    env = {**os.environ, "TMPDIR": tmp}
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = tmp
    pids: list[int] = []
    try:
        start = time.perf_counter()
        out = _cli(env, "start", "--head", "--port", "0", "--num-cpus", "1")
        address = re.search(r"on (127\.0\.0\.1:\d+)\.", out).group(1)  # type: ignore[union-attr]
        pids.append(int(re.search(r"\(pid (\d+)\)", out).group(1)))  # type: ignore[union-attr]
        for res in ('{"a": 1}', '{"b": 1}'):
            out = _cli(env, "start", "--address", address, "--num-cpus", "1", "--resources", res)
            pids.append(int(re.search(r"\(pid (\d+)\)", out).group(1)))  # type: ignore[union-attr]
        import jupyter_ray as ray

        ray.init(address=address)
        while len([n for n in ray.nodes() if n["Alive"]]) < 3:
            time.sleep(0.005)
        up = time.perf_counter() - start
        print(f"head + 2 nodes up and ready: {up:.2f} s (target < 2 s)")

        @ray.remote(resources={"a": 1})
        def make() -> np.ndarray:
            return np.ones(100 * MiB // 8)

        @ray.remote(resources={"b": 1})
        def consume(x: np.ndarray) -> int:
            return int(x.nbytes)

        @ray.remote(resources={"b": 1})
        def noop(x: int) -> int:
            return x

        ray.get(noop.remote(0))
        rates = []
        for _ in range(args.rounds):
            made = make.remote()
            ray.wait([made])  # produced on node a and already pulled back to the head
            t0 = time.perf_counter()
            assert ray.get(consume.remote(made)) == 100 * MiB  # head -> node b
            dt = time.perf_counter() - t0
            t0 = time.perf_counter()
            ray.get(noop.remote(1))
            dt -= time.perf_counter() - t0  # minus a task round trip to node b
            rates.append(100 / 1024 / dt)
            del made
        print(
            f"100 MiB between nodes: median {statistics.median(rates):.2f} GiB/s, best "
            f"{max(rates):.2f} GiB/s (target >= 1 GiB/s)"
        )
        ray.shutdown()
    finally:
        for pid in pids:
            try:
                node = psutil.Process(pid)
                family = [node, *node.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in family:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
            psutil.wait_procs(family, timeout=10)


if __name__ == "__main__":
    main()
