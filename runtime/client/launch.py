"""Starting and stopping a node manager process for the embedded runtime.

Runs in the driver, on the caller's thread (``init``/``shutdown`` are blocking calls).
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from ..common import leftovers
from ..common.exceptions import RaySystemError

SESSION_PREFIX = "jupyter_ray-"
PRELOAD_ENV = "JUPYTER_RAY_PRELOAD"
"""Comma-separated modules the zygote imports before it forks workers (default: numpy).
Set it in the environment of the process that starts the runtime; empty turns it off."""


@dataclass(slots=True)
class LocalNode:
    """A node manager this driver started and owns."""

    proc: subprocess.Popen[bytes]
    session_dir: str
    socket_path: str
    tcp_address: str | None = None

    def stop(self, timeout: float = 5.0) -> None:
        """Wait for the node manager to exit (it stops when its owner disconnects)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(2.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        shutil.rmtree(self.session_dir, ignore_errors=True)


def default_object_store_memory() -> int:
    """30% of available memory, bounded by the free space of /dev/shm."""
    import psutil

    want = int(psutil.virtual_memory().available * 0.3)
    try:
        shm = shutil.disk_usage("/dev/shm").free
        want = min(want, int(shm * 0.8))
    except OSError:
        pass
    return max(want, 64 << 20)


def _default_preload() -> str:
    """numpy when installed: nearly every data task imports it (Ray's workers do too)."""
    return "numpy" if importlib.util.find_spec("numpy") is not None else ""


def shm_dir() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def start_local_node(
    resources: dict[str, float],
    object_store_memory: int,
    timeout: float = 30.0,
    task_history: int = 10_000,
    head: bool = False,
    listen: str | None = None,
    join: str | None = None,
    token: str | None = None,
    origin: str = "script",
    label: str = "",
    labels: dict[str, str] | None = None,
) -> LocalNode:
    """Start a node manager (and its workers) and wait until it listens.

    ``head=True`` (the command line) keeps it running after this process exits;
    ``listen="HOST:PORT"`` opens the token-protected cluster port.
    """
    # What node managers killed earlier left behind (their arenas hold memory).
    leftovers.sweep((shm_dir(), SESSION_PREFIX), (tempfile.gettempdir(), "jupyter_ray-spill-"))
    # The session directory holds the socket and the arena; sockets need short paths.
    session_dir = tempfile.mkdtemp(prefix=SESSION_PREFIX, dir=shm_dir())
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    if sys.path and sys.path[0] == "":
        paths.insert(0, os.getcwd())
    worker_env = {
        "JUPYTER_RAY_SYS_PATH": json.dumps(paths),
        "JUPYTER_RAY_CWD": os.getcwd(),
        PRELOAD_ENV: os.environ.get(PRELOAD_ENV, _default_preload()),
    }
    cmd = [
        sys.executable,
        "-m",
        "jupyter_ray.runtime",
        "node",
        "--session-dir",
        session_dir,
        "--resources",
        json.dumps(resources),
        "--object-store-memory",
        str(object_store_memory),
        "--worker-env",
        json.dumps(worker_env),
        "--task-history",
        str(task_history),
    ]
    if head:
        cmd.append("--detached")
    if listen:
        cmd += ["--listen", listen]
    if join:
        cmd += ["--join", join]
    cmd += ["--origin", origin, "--label", label]
    if labels:
        cmd += ["--labels", json.dumps(labels)]
    env = dict(os.environ)
    if token:
        env["JUPYTER_RAY_TOKEN"] = token  # in the environment, not on the command line
    # Always a session of its own: an embedded node manager ends when its driver
    # disconnects, so signals meant for the driver's process group must not reach it.
    # ipykernel, shutting down, sends SIGTERM to every process in its group and waits
    # while any is left: a node manager there was killed mid-teardown, and closing or
    # restarting a notebook took 2.6 s instead of 0.3 s.
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True, env=env
    )
    try:
        line = _wait_until_ready(proc, timeout)
    except BaseException:  # an interrupt: a node nobody will connect to would run on
        _kill(proc)
        shutil.rmtree(session_dir, ignore_errors=True)
        raise
    if not line.startswith(b"READY "):
        _kill(proc)
        log_path = os.path.join(session_dir, "logs", "node.log")
        detail = ""
        if os.path.exists(log_path):
            with open(log_path, errors="replace") as f:
                detail = f.read()[-2000:]
        shutil.rmtree(session_dir, ignore_errors=True)
        raise RaySystemError(
            f"the jupyter_ray node manager did not start (exit code {proc.returncode}). {detail}"
        )
    _, socket_path, tcp = line.decode().split()
    return LocalNode(proc, session_dir, socket_path, None if tcp == "-" else tcp)


def _wait_until_ready(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The node manager's first line: ``READY <socket> <tcp address or ->``, or what it
    wrote before it exited or ``timeout`` ran out."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            break
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            line += chunk
    return line


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill a node manager that will not be used (by pid), and wait for it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
