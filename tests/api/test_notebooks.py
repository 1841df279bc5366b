"""Run every tutorial notebook, and the getting-started example, against the real runtime.

Each notebook in ``notebooks/`` is executed top to bottom by nbclient in a real ipykernel
kernel, as a user would run it; a cell that raises (including a failed ``assert``) fails
the test, unless it is tagged ``raises-exception``. Then what each notebook shows is
checked (``_notebook_outputs.py``). The kernel runs this test's own interpreter
(``sys.executable``) through a kernel spec written to a temporary ``JUPYTER_PATH``, so an
unrelated ``python3`` kernel installed on the machine is never picked up.

Every process started on the test's behalf (the kernel, and the runtime that the notebook
starts from inside it) is tracked while the notebook runs; any still alive once the run is
over is killed by pid and named in the failure.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest
from _notebook_outputs import OUTPUT_CHECKS
from nbclient import NotebookClient
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXAMPLE = REPO / "examples" / "getting_started.py"

RAN: dict[str, object] = {}
"""Notebooks this session ran, by file name, as nbclient left them (the Ray-backend test
compares against them instead of running each again)."""

CELL_TIMEOUT_S = 120
KERNEL_STARTUP_TIMEOUT_S = 60
# How long processes may take to exit after the run before they count as leftovers.
EXIT_GRACE_S = 5.0

pytestmark = [
    # jupyter_core 5.0-5.x warns on path lookups until JUPYTER_PLATFORM_DIRS is set.
    pytest.mark.filterwarnings(
        "ignore:Jupyter is migrating its paths to use standard platformdirs:DeprecationWarning"
    ),
]


class DescendantTracker:
    """Remembers every descendant process of this one seen while it is active.

    A runtime started inside a kernel is a grandchild of the test; once the kernel exits,
    its leftovers are re-parented away and no longer show up as our children. So
    descendants are sampled from a background thread (and on demand) while the run is in
    progress, and checked for survivors afterwards.
    """

    def __init__(self, interval_s: float = 0.1) -> None:
        self._me = psutil.Process()
        # Processes that existed before the run belong to someone else (another fixture).
        self._baseline = set(self._children())
        self._seen: set[psutil.Process] = set()
        self._lock = threading.Lock()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="descendant-tracker", daemon=True)

    def __enter__(self) -> DescendantTracker:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.snapshot()

    def _children(self) -> list[psutil.Process]:
        try:
            return self._me.children(recursive=True)
        except psutil.Error:
            return []

    def _poll(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.snapshot()

    def snapshot(self) -> None:
        """Record the descendants alive right now (runs on the caller's thread)."""
        found = [p for p in self._children() if p not in self._baseline]
        with self._lock:
            self._seen.update(found)

    @property
    def seen(self) -> set[psutil.Process]:
        with self._lock:
            return set(self._seen)

    def kill_leftovers(self, grace_s: float = EXIT_GRACE_S) -> list[str]:
        """Wait up to ``grace_s`` for tracked processes to exit, kill the rest by pid.

        Returns a description of each process that had to be killed.
        """
        alive = [p for p in self.seen if _running(p)]
        _, alive = psutil.wait_procs(alive, timeout=grace_s)
        alive = [p for p in alive if _running(p)]
        described = [_describe(p) for p in alive]
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=5.0)
        return described


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(proc: psutil.Process) -> str:
    try:
        cmdline = " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        cmdline = "?"
    return f"pid {proc.pid}: {cmdline}"


@pytest.fixture(scope="module")
def runtime_importable() -> None:
    """Fail early, with advice, when the kernel could not import jupyter_ray."""
    probe = subprocess.run(
        [sys.executable, "-c", "import jupyter_ray"],
        cwd=NOTEBOOK_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        pytest.fail(
            f"{sys.executable} cannot import jupyter_ray outside the repository root, so "
            f"neither a notebook kernel nor the example can; run `pip install -e .` first.\n"
            f"{probe.stderr}"
        )


@pytest.fixture
def python3_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A ``python3`` kernel spec that runs this interpreter; yields the kernel name."""
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test interpreter)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    # JUPYTER_PATH comes first in the kernel spec search path.
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # Keep the user's IPython profile (startup scripts, extensions) out of the kernel.
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    yield "python3"


def test_notebooks_found() -> None:
    assert len(NOTEBOOKS) >= 4, f"expected the tutorial notebooks in {NOTEBOOK_DIR}"
    unchecked = sorted({p.name for p in NOTEBOOKS} - set(OUTPUT_CHECKS))
    assert not unchecked, f"add output checks for {unchecked} to _notebook_outputs.py"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(
    path: Path, runtime_importable: None, python3_kernel: str, tmp_path: Path
) -> None:
    nb = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    leftovers: list[str] = []
    with DescendantTracker() as tracker:
        client = NotebookClient(
            nb,
            kernel_name=python3_kernel,
            timeout=CELL_TIMEOUT_S,
            startup_timeout=KERNEL_STARTUP_TIMEOUT_S,
            resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
            # Unix sockets instead of TCP ports: no port races with parallel test runs. The
            # socket prefix must be absolute: the kernel runs in the notebook's folder, the
            # client in ours, and a relative prefix would name two different files.
            config=Config({"KernelManager": {"transport": "ipc", "ip": str(tmp_path / "kernel")}}),
            # Also sample right after each cell, when the runtime is surely up.
            on_cell_executed=lambda **_: tracker.snapshot(),
        )
        try:
            client.execute()
        finally:
            tracker.snapshot()
            leftovers = tracker.kill_leftovers()
            if leftovers:
                # Printed too, so the names survive when a cell error is what gets raised.
                print(f"killed leftover processes after {path.name}:", *leftovers, sep="\n  ")
    print(f"{path.name} ran in {time.perf_counter() - started:.1f} s")
    assert tracker.seen, "the kernel process was never observed; the tracker is broken"
    try:
        OUTPUT_CHECKS[path.name](nb)
    except AssertionError:
        # what each cell showed, for a failure that does not repeat on demand
        for cell in nb.cells:
            if cell.cell_type == "code":
                print(f"--- cell {cell.id}:", repr(cell.outputs)[:1500])
        raise
    RAN[path.name] = nb
    if leftovers:
        pytest.fail(
            f"{path.name} left {len(leftovers)} process(es) running after ray.shutdown() "
            f"and kernel shutdown (now killed):\n  " + "\n  ".join(leftovers)
        )


@pytest.mark.timeout(120)
def test_getting_started_example(runtime_importable: None) -> None:
    started = time.perf_counter()
    with DescendantTracker() as tracker:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    leftovers = tracker.kill_leftovers()
    elapsed = time.perf_counter() - started
    print(stdout)
    print(f"{EXAMPLE.name} ran in {elapsed:.2f} s")
    assert proc.returncode == 0, f"{EXAMPLE.name} exited with {proc.returncode}:\n{stderr}"
    assert "squares: [0, 1, 4, 9, 16, 25, 36, 49]" in stdout
    assert "first finished: fast" in stdout
    assert not leftovers, f"{EXAMPLE.name} left processes running (now killed):\n" + "\n".join(
        leftovers
    )
