"""The same notebooks on both backends: wall time on jupyter_ray's runtime and on Ray.

    python benchmarks/notebook_backends.py [--notebooks 01,02,...] [--rounds 1]

Starts a Ray head on loopback (``ray start --head``, stopped again by the pids of its
processes), then runs each seed notebook top to bottom in a fresh kernel with nbclient,
once as it is (jupyter_ray's own runtime) and once on the Ray backend
(``JUPYTER_RAY_BACKEND=ray``, ``JUPYTER_RAY_ADDRESS`` the head's), and prints the wall time
of each, kernel start included: what a user waits for when running the notebook. Needs
Ray (``pip install 'jupyter_ray[ray]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def start_ray(temp_dir: str) -> str:
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    subprocess.run(
        [
            ray_cli,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            "--port=0",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
        ],
        env={**os.environ, **RAY_ENV},
        check=True,
        capture_output=True,
        timeout=180,
    )
    return (Path(temp_dir) / "ray_current_cluster").read_text().strip()


def stop_ray(temp_dir: str) -> None:
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
        address = start_ray(temp_dir)
        on_ray = {**RAY_ENV, "JUPYTER_RAY_BACKEND": "ray", "JUPYTER_RAY_ADDRESS": address}
        print(f"{'notebook':32} {'jupyter_ray s':>14} {'Ray s':>8} {'x Ray':>7}")
        for path in chosen:
            ours = min(run(path, {}) for _ in range(args.rounds))
            theirs = min(run(path, on_ray) for _ in range(args.rounds))
            print(f"{path.name:32} {ours:14.2f} {theirs:8.2f} {theirs / ours:6.1f}x", flush=True)
    finally:
        stop_ray(temp_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
