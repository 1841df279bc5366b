"""The seed notebooks, unchanged, on both backends: jupyter_ray's runtime and a Ray cluster.

Each seed notebook runs twice in a real kernel, once as it is and once with the Ray
backend chosen from the environment (``JUPYTER_RAY_BACKEND=ray``, ``JUPYTER_RAY_ADDRESS``
the cluster's), as a user who moves to Ray would. What each code cell printed must be
the same on both, once timings, sizes of the machine and pids are masked.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from test_notebooks import (  # noqa: F401 - fixtures
    CELL_TIMEOUT_S,
    KERNEL_STARTUP_TIMEOUT_S,
    NOTEBOOK_DIR,
    RAN,
    DescendantTracker,
    python3_kernel,
    runtime_importable,
)
from traitlets.config import Config

SEEDS = sorted(p for p in NOTEBOOK_DIR.glob("0[1-5]_*.ipynb"))
MASKS = [
    (re.compile(r"\d+\.\d+"), "#.#"),  # timings, speed-ups
    (re.compile(r"pid=\d+"), "pid=#"),
    (re.compile(r"\x1b\[[0-9;]*[A-Za-z]"), ""),  # colours
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:Jupyter is migrating its paths to use standard platformdirs:DeprecationWarning"
    ),
]


def _printed(nb: Any) -> dict[str, str]:
    """What each code cell printed on stdout, masked."""
    out = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        text = "".join(
            o.get("text", "")
            for o in cell.outputs
            if o.output_type == "stream" and o.name == "stdout"
        )
        for pattern, mask in MASKS:
            text = pattern.sub(mask, text)
        out[cell.id] = text
    return out


def _run(path: Path, kernel: str, tmp: Path) -> tuple[Any, float]:
    nb = nbformat.read(path, as_version=4)
    tmp.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with DescendantTracker() as tracker:
        client = NotebookClient(
            nb,
            kernel_name=kernel,
            timeout=CELL_TIMEOUT_S,
            startup_timeout=KERNEL_STARTUP_TIMEOUT_S,
            resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
            config=Config({"KernelManager": {"transport": "ipc", "ip": str(tmp / "kernel")}}),
        )
        try:
            client.execute()
        finally:
            leftovers = tracker.kill_leftovers()
    assert not leftovers, f"{path.name} left processes running: {leftovers}"
    return nb, time.perf_counter() - started


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", SEEDS, ids=[p.name for p in SEEDS])
def test_a_seed_notebook_prints_the_same_on_both_backends(
    path: Path,
    ray_cluster: Any,
    runtime_importable: None,  # noqa: F811
    python3_kernel: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the run of test_notebooks.py in this session, else one now
    ours = RAN.get(path.name) or _run(path, python3_kernel, tmp_path / "jupyter_ray")[0]
    for key, value in ray_cluster.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JUPYTER_RAY_BACKEND", "ray")
    monkeypatch.setenv("JUPYTER_RAY_ADDRESS", ray_cluster.address)
    theirs, ray_s = _run(path, python3_kernel, tmp_path / "ray")
    print(f"{path.name}: Ray {ray_s:.1f} s")
    assert _printed(theirs) == _printed(ours)
    assert any(_printed(ours).values()), "the notebook printed nothing to compare"
