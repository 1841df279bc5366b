"""The same notebooks on both backends: wall time on jupyter_ray's runtime and on Ray.

    python benchmarks/notebook_backends.py [--notebooks 01,02,...] [--rounds 1]

Starts a Ray head on loopback (``jupyter_ray.on_ray.local_head``: ``ray start --head``,
stopped again by the pids of its processes), then runs each seed notebook top to bottom
in a fresh kernel with nbclient, once as it is (jupyter_ray's own runtime) and once on
the Ray backend (``JUPYTER_RAY_BACKEND=ray``, ``JUPYTER_RAY_ADDRESS`` the head's), and
prints the wall time of each, kernel start included: what a user waits for when running
the notebook. Needs Ray (``pip install 'jupyter_ray[ray]'``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from jupyter_ray.on_ray import local_head

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run(path: Path, env: dict[str, str]) -> float:
    nb = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        start = time.perf_counter()
        NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        ).execute()
        return time.perf_counter() - start
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notebooks", default="01,02,03,04,05", help="prefixes of notebooks")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    chosen = [
        p for p in sorted(NOTEBOOKS.glob("*.ipynb")) if p.name[:2] in args.notebooks.split(",")
    ]
    temp_dir = tempfile.mkdtemp(prefix="jrray-bench-", dir="/tmp")
    try:
        address = local_head.start(temp_dir)
        on_ray = {
            **local_head.RAY_ENV,
            "JUPYTER_RAY_BACKEND": "ray",
            "JUPYTER_RAY_ADDRESS": address,
        }
        print(f"{'notebook':32} {'jupyter_ray s':>14} {'Ray s':>8} {'x Ray':>7}")
        for path in chosen:
            ours = min(run(path, {}) for _ in range(args.rounds))
            theirs = min(run(path, on_ray) for _ in range(args.rounds))
            print(f"{path.name:32} {ours:14.2f} {theirs:8.2f} {theirs / ours:6.1f}x", flush=True)
    finally:
        local_head.stop(temp_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
