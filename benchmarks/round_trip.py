"""Where a synchronous call's time goes: CPU per call in each process it crosses.

    python benchmarks/round_trip.py [--calls 5000]

Makes ``--calls`` synchronous calls (``get(f.remote())``) of a trivial task and of a
trivial actor method, and reports the wall time per call and the CPU time per call
spent by the driver, the node manager and the worker (from their ``cpu_times``). On
2 cores the three run one after another for a sync call, so their CPU adds up to about
the wall time: whatever is to be won must come out of one of the three columns, or
from removing a process from the path.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import psutil

import jupyter_ray as ray


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def measure(label: str, call: Callable[[], Any], calls: int) -> None:
    call()
    me = psutil.Process()
    node = next(c for c in me.children() if "jupyter_ray.runtime" in " ".join(c.cmdline()))
    procs = {"driver": me, "node manager": node}
    procs.update({f"pid {c.pid}": c for c in node.children(recursive=True)})
    before = {name: _cpu(p) for name, p in procs.items()}
    start = time.perf_counter()
    for _ in range(calls):
        call()
    wall = time.perf_counter() - start
    after = {name: _cpu(p) for name, p in procs.items()}
    print(f"{label}: {calls / wall:,.0f} calls/s, {wall / calls * 1e6:.0f} us/call wall")
    for name in procs:
        used = (after[name] - before[name]) / calls * 1e6
        if used >= 1:  # idle workers and the zygote
            print(f"  {name:14} {used:6.0f} us CPU per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5_000)
    args = parser.parse_args()
    ray.init(num_cpus=2)
    try:

        @ray.remote
        def task() -> int:
            return 1

        @ray.remote
        class Actor:
            def call(self) -> int:
                return 1

        actor = Actor.remote()
        measure("task", lambda: ray.get(task.remote()), args.calls)
        measure("actor call", lambda: ray.get(actor.call.remote()), args.calls)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
