"""Instructions per plain sync task in each process of the runtime, counted by valgrind.

    python benchmarks/instructions.py                 # driver, node and worker
    python benchmarks/instructions.py --only driver   # one process
    python benchmarks/instructions.py --tasks 200,1200

CPU time per task on this 2-core VM swings by a third from one run to the next; an
instruction count does not (repeat runs agree within 1-2%), so a change that adds work
to the hot path shows up even when no timed benchmark can see it. Each process is run
under valgrind's cachegrind (``apt-get install valgrind``), once with the smaller number
of ``get(noop.remote())`` round trips and once with the larger: the difference divided by
the difference in tasks is the cost per task, start-up and shutdown cancelled out.

- ``driver``: the driver under cachegrind, the node manager (and its workers) not.
- ``node``: the node manager under cachegrind, its zygote and workers not.
- ``worker``: the node manager and every process it starts traced; what is counted is
  the zygote and the worker it forks (the zygote sits idle in ``select``: next to
  nothing per task).

Compare two commits by running this in a virtual environment of each
(``pip install -e`` of a worktree). Under valgrind everything runs ~50x slower: the
default sizes take about a minute for the three.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

DRIVER = """
import sys
import jupyter_ray as ray

ray.init(address=sys.argv[1])

@ray.remote
def noop():
    return None

for _ in range(int(sys.argv[2])):
    ray.get(noop.remote())
ray.shutdown()
"""

TARGETS = ("driver", "node", "worker")


def cachegrind(out: str, children: bool = False) -> list[str]:
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}"]
    return cmd + (["--trace-children=yes"] if children else [])


def instructions(path: Path) -> int:
    """The total instruction count in a cachegrind output file."""
    for line in path.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise ValueError(f"{path}: no summary line (did the process end normally?)")


def run_once(target: str, tasks: int, out_dir: Path) -> int:
    """Instructions the target process(es) ran for a driver doing ``tasks`` round trips."""
    session = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    node_cmd = [
        sys.executable,
        "-m",
        "jupyter_ray.runtime",
        "node",
        "--session-dir",
        session,
        "--resources",
        json.dumps({"CPU": 1.0}),
        "--object-store-memory",
        str(128 << 20),
        "--detached",
    ]
    if target == "node":
        node_cmd = cachegrind(str(out_dir / "node.out")) + node_cmd
    elif target == "worker":
        node_cmd = cachegrind(str(out_dir / "%p.out"), children=True) + node_cmd
    node = subprocess.Popen(node_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert node.stdout is not None
        ready = node.stdout.readline().decode().split()
        if len(ready) < 2 or ready[0] != "READY":
            raise RuntimeError(f"the node manager did not start: {ready!r}")
        driver_cmd = [sys.executable, "-c", DRIVER, ready[1], str(tasks)]
        if target == "driver":
            driver_cmd = cachegrind(str(out_dir / "driver.out")) + driver_cmd
        subprocess.run(driver_cmd, check=True, stderr=subprocess.DEVNULL)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(300)  # it stops its zygote and workers (they write their files) first
        shutil.rmtree(session, ignore_errors=True)
    if target != "worker":
        return instructions(out_dir / f"{target}.out")
    # every traced process but the node manager itself (and the valgrind launcher's own
    # exec of python, which is the node manager's pid)
    files = [f for f in out_dir.glob("*.out") if f.name != f"{node.pid}.out"]
    return sum(instructions(f) for f in files)


def per_task(target: str, small: int, large: int) -> float:
    counts = []
    for tasks in (small, large):
        with tempfile.TemporaryDirectory() as tmp:
            counts.append(run_once(target, tasks, Path(tmp)))
    return (counts[1] - counts[0]) / (large - small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(TARGETS), help="driver,node,worker")
    parser.add_argument("--tasks", default="200,1200", help="the two run sizes, SMALL,LARGE")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install valgrind (Debian/Ubuntu)")
    targets = [t for t in args.only.split(",") if t]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        sys.exit(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    small, large = (int(n) for n in args.tasks.split(","))
    if not 0 < small < large:
        sys.exit("--tasks takes two sizes, the smaller first: e.g. 200,1200")
    for target in targets:
        print(f"{target:>7}: {per_task(target, small, large):>10,.0f} instructions per sync task")


if __name__ == "__main__":
    main()
