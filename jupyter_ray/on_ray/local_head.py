"""A Ray head on this machine, on loopback, started and stopped by the pids of its processes.

For the tests and benchmarks that compare the two backends, and for trying the Ray
backend without a cluster. ``ray stop`` is not used: it stops every Ray process of the
machine by name, a user's own among them.

``stop`` finds the head's processes by its temporary folder: named in an environment
variable they all inherit, on their command lines, or in the files they hold open (Ray's
processes that set their titles rewrite their command lines and part of their
environment).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys

import psutil

MARKER_ENV = "JUPYTER_RAY_LOCAL_RAY_HEAD"

RAY_ENV = {
    # Ray 2.60 turns token authentication on for `ray start`; a loopback head goes
    # without, and stays on 127.0.0.1 with the second setting.
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}
"""What a driver of a loopback head needs in its environment too."""


def start(temp_dir: str, *, num_cpus: int = 2, dashboard_port: int | None = None) -> str:
    """Start a head whose files live in ``temp_dir`` (keep the path short: Ray puts socket
    paths in it); returns its GCS address, ``HOST:PORT``. With ``dashboard_port`` the
    dashboard (which serves Ray's state API) listens there on 127.0.0.1."""
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    cmd = [
        ray_cli,
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        "--port=0",
        f"--num-cpus={num_cpus}",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
    ]
    if dashboard_port is None:
        cmd.append("--include-dashboard=false")
    else:
        cmd += [
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}",
        ]
    env = {**os.environ, **RAY_ENV, MARKER_ENV: temp_dir}
    started = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        stop(temp_dir)
        raise RuntimeError(f"ray start failed: {started.stderr[-3000:]}")
    with open(os.path.join(temp_dir, "ray_current_cluster")) as f:
        return f.read().strip()


def processes(temp_dir: str) -> list[psutil.Process]:
    """The running processes of the head started in ``temp_dir``."""
    return [
        proc
        for proc in psutil.process_iter()
        if proc.pid != os.getpid() and _belongs(proc.pid, temp_dir)
    ]


def _belongs(pid: int, temp_dir: str) -> bool:
    # Three signs, because a process that sets its title (ray::DashboardAgent) rewrites
    # the memory its command line and, in part, its environment are read from: the
    # marker in its environment, the folder on its command line, or a file it holds open
    # there (every Ray process writes its logs in it).
    marker = f"{MARKER_ENV}={temp_dir}".encode()
    with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as f:
        if marker in f.read().split(b"\0"):
            return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
        if temp_dir.encode() in f.read():
            return True
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(temp_dir + "/"):
                    return True
    return False


def stop(temp_dir: str) -> None:
    """Kill the head's processes by pid, again until none is left (one being killed may
    have started another), and remove ``temp_dir``."""
    for _ in range(20):
        mine = processes(temp_dir)
        if not mine:
            break
        for proc in mine:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(mine, timeout=15)
    shutil.rmtree(temp_dir, ignore_errors=True)
