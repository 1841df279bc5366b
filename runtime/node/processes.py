"""Starting, tracking and stopping a node's worker processes.

Workers are forked by the zygote (see :mod:`zygote`) when it runs, and started as fresh
interpreters otherwise. Runs on the node manager's event loop: the zygote's reports are
read with ``loop.add_reader``, never with a blocking call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

log = logging.getLogger("jupyter_ray.node")

SOCKET_NAME = "node.sock"  # the node manager's socket, in its session directory


def command(role: str, *args: str) -> list[str]:
    """The command line of a runtime process (``python -m jupyter_ray.runtime ROLE``)."""
    return [sys.executable, "-m", "jupyter_ray.runtime", role, *args]


def worker_environment(worker_env: dict[str, str] | None) -> dict[str, str]:
    """The environment of the zygote and of workers: ours, plus what the driver asked."""
    env = dict(os.environ)
    env.update(worker_env or {})
    env["JUPYTER_RAY_WORKER"] = "1"
    return env


def launch_zygote(session_dir: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the worker zygote of the node whose session directory is ``session_dir``.

    The node manager's process calls this first thing, before its own imports, so the
    zygote warms up (an interpreter, the runtime, numpy: ~0.25 s of CPU) while the node
    manager does the same on the other core, not after it.
    """
    logs_dir = os.path.join(session_dir, "logs")
    os.makedirs(logs_dir, exist_ok=True)
    with open(os.path.join(logs_dir, "zygote.log"), "ab") as err:
        return subprocess.Popen(
            command("zygote", os.path.join(session_dir, SOCKET_NAME)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=env.get("JUPYTER_RAY_CWD") or None,
        )


class WorkerProcesses:
    """The worker processes of one node, by pid.

    ``on_exit(pid)`` is called (on the loop) when a process that never said hello exits,
    so the node manager can stop waiting for it.
    """

    def __init__(
        self, socket_path: str, logs_dir: str, env: dict[str, str], on_exit: Callable[[int], None]
    ) -> None:
        self.socket_path = socket_path
        self.logs_dir = logs_dir
        self.env = env
        self.on_exit = on_exit
        self.popen: dict[int, subprocess.Popen[bytes]] = {}
        self.forked: set[int] = set()
        self.exit_codes: dict[int, int] = {}
        self.zygote: subprocess.Popen[bytes] | None = None
        self._zygote_buf = b""

    def start_zygote(self, zygote: subprocess.Popen[bytes] | None = None) -> None:
        """Start the fork server (or adopt ``zygote``, started by :func:`launch_zygote`);
        workers requested before it is warm wait in its pipe."""
        if zygote is None:
            zygote = launch_zygote(os.path.dirname(self.socket_path), self.env)
        self.zygote = zygote
        assert self.zygote.stdout is not None
        os.set_blocking(self.zygote.stdout.fileno(), False)
        asyncio.get_running_loop().add_reader(self.zygote.stdout.fileno(), self._on_zygote_output)

    def _zygote_alive(self) -> bool:
        return self.zygote is not None and self.zygote.poll() is None

    def spawn(self, worker_id: str) -> None:
        log_path = os.path.join(self.logs_dir, f"worker-{worker_id}.log")
        if self._zygote_alive():
            assert self.zygote is not None and self.zygote.stdin is not None
            try:
                self.zygote.stdin.write(f"spawn {worker_id} {log_path}\n".encode())
                self.zygote.stdin.flush()
                return
            except (BrokenPipeError, OSError):
                log.warning("the worker zygote is gone; starting workers as new interpreters")
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                command("worker", self.socket_path, worker_id),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.env.get("JUPYTER_RAY_CWD") or None,
            )
        self.popen[proc.pid] = proc

    def _on_zygote_output(self) -> None:
        assert self.zygote is not None and self.zygote.stdout is not None
        try:
            chunk = os.read(self.zygote.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        if not chunk:
            asyncio.get_running_loop().remove_reader(self.zygote.stdout.fileno())
            return
        self._zygote_buf += chunk
        while b"\n" in self._zygote_buf:
            line, self._zygote_buf = self._zygote_buf.split(b"\n", 1)
            parts = line.decode().split()
            if len(parts) == 3 and parts[0] == "started":
                self.forked.add(int(parts[2]))
            elif len(parts) == 3 and parts[0] == "exited":
                pid = int(parts[1])
                self.forked.discard(pid)
                self.exit_codes[pid] = int(parts[2])
                self.on_exit(pid)

    def reap(self) -> None:
        """Collect exit codes of workers started as interpreters (called periodically)."""
        for pid, proc in list(self.popen.items()):
            code = proc.poll()
            if code is not None:
                del self.popen[pid]
                self.exit_codes[pid] = code
                self.on_exit(pid)

    def exit_code(self, pid: int) -> int | None:
        proc = self.popen.get(pid)
        if proc is not None:
            return proc.poll()
        return self.exit_codes.get(pid)

    def pids(self) -> list[int]:
        alive = [pid for pid, proc in self.popen.items() if proc.poll() is None]
        return alive + sorted(self.forked)

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> None:
        proc = self.popen.get(pid)
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(sig)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    async def stop_all(self, grace: float = 2.0) -> None:
        """Terminate every worker, then the zygote; kill what is left after ``grace``."""
        for pid in self.pids():
            self.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(pid) for pid in self.pids()):
            self.reap()
            await asyncio.sleep(0.01)
        for pid in self.pids():
            self.kill(pid, signal.SIGKILL)
        for proc in self.popen.values():
            proc.wait()
        if self.zygote is not None:
            assert self.zygote.stdin is not None and self.zygote.stdout is not None
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.zygote.stdout.fileno())
            with contextlib.suppress(OSError):
                self.zygote.stdin.close()
            try:
                self.zygote.wait(grace)
            except subprocess.TimeoutExpired:
                self.zygote.kill()
                self.zygote.wait()
            self.zygote.stdout.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers; the zygote reaps its own children promptly
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
