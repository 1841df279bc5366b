"""What the state records and the change feed cost: task throughput and the head's memory.

    python benchmarks/feed.py [--tasks 100000] [--batch 2000]

Runs the same job (``--tasks`` trivial tasks, submitted in batches of ``--batch`` and
collected batch by batch) three times, each in a fresh runtime:

- ``off``: ``_system_config={"record_tasks": False}``, no state records at all;
- ``on``: records on (the default), nobody subscribed to the feed;
- ``on+feed``: records on and one live subscriber (``state.subscribe()``).

For each it prints the throughput, the node manager's CPU time per task (which, unlike
the throughput, other load on the machine hardly changes), its resident memory before the
job and at its peak (sampled every 20 ms), and for ``on+feed`` how many feed messages the
subscriber got, the largest one in records, and the size of its view at the end. Issue 5's
targets: recording costs at most 10% of throughput; the feed of a 100,000-task job keeps
the head within a few MiB.
"""

from __future__ import annotations

import argparse
import gc
import threading
import time
from typing import Any

import psutil

import jupyter_ray as ray
from jupyter_ray import state

MiB = 1 << 20


def _node_manager() -> psutil.Process:
    for child in psutil.Process().children():
        if "jupyter_ray.runtime" in " ".join(child.cmdline()):
            return child
    raise RuntimeError("no node manager among this process's children")


class PeakRss:
    """Samples a process's resident memory on a thread until stopped."""

    def __init__(self, proc: psutil.Process, every_s: float = 0.02) -> None:
        self.proc = proc
        self.start = proc.memory_info().rss
        self.peak = self.start
        self._every = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(mode: str, tasks: int, batch: int) -> dict[str, Any]:
    config = {"record_tasks": False} if mode == "off" else None
    ray.init(num_cpus=2, _system_config=config)
    try:

        @ray.remote
        def noop(i: int) -> int:
            return i

        ray.get([noop.remote(i) for i in range(200)])  # warm the pool and the function
        gc.collect()
        messages = 0
        largest = 0

        def on_message(msg: Any, view: Any) -> None:
            nonlocal messages, largest
            messages += 1
            changed = getattr(msg, "changed", None) or getattr(msg, "records", {})
            largest = max(largest, sum(len(v) for v in changed.values()))

        feed = state.subscribe(on_message) if mode == "on+feed" else None
        node = _node_manager()
        sampler = PeakRss(node)
        cpu_before = sum(node.cpu_times()[:2])
        started = time.perf_counter()
        done = 0
        while done < tasks:
            n = min(batch, tasks - done)
            ray.get([noop.remote(i) for i in range(n)])
            done += n
        elapsed = time.perf_counter() - started
        cpu = sum(node.cpu_times()[:2]) - cpu_before
        time.sleep(0.6)  # let the last feed updates go out before the peak is read
        sampler.stop()
        view_tasks = len(feed.view.records["tasks"]) if feed is not None else 0
        if feed is not None:
            feed.close()
        return {
            "mode": mode,
            "rate": tasks / elapsed,
            "cpu_us": cpu / tasks * 1e6,
            "rss_start": sampler.start / MiB,
            "rss_peak": sampler.peak / MiB,
            "messages": messages,
            "largest": largest,
            "view_tasks": view_tasks,
        }
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args()
    rows = [run(mode, args.tasks, args.batch) for mode in ("off", "on", "on+feed")]
    base = rows[0]["rate"]
    print(f"{args.tasks:,} tasks in batches of {args.batch:,}, num_cpus=2")
    print(
        f"{'mode':8} {'tasks/s':>9} {'vs off':>7} {'NM CPU/task':>12} {'NM RSS start':>13} "
        f"{'NM RSS peak':>12} "
        f"{'growth':>7} {'feed msgs':>9} {'largest':>8} {'view':>7}"
    )
    for r in rows:
        print(
            f"{r['mode']:8} {r['rate']:9,.0f} {r['rate'] / base:7.2f} {r['cpu_us']:9.0f} us "
            f"{r['rss_start']:10.1f} MiB {r['rss_peak']:8.1f} MiB "
            f"{r['rss_peak'] - r['rss_start']:5.1f} MiB {r['messages']:9,} {r['largest']:8,} "
            f"{r['view_tasks']:7,}"
        )


if __name__ == "__main__":
    main()
