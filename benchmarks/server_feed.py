"""The server extension's live feed, seen from a browser's side of the WebSocket.

    python benchmarks/server_feed.py [--tasks 20000] [--in-flight 100000]

Starts a real ``jupyter server`` with the extension on loopback (it starts its runtime),
then measures two things:

1. **Updates delivered during a job.** A WebSocket client reads the feed while a driver
   attached to the server's runtime runs ``--tasks`` trivial tasks (in batches of 2,000).
   Prints the updates per second the client received, the task records they carried, the
   largest update, and how long after the job's end the client's picture showed every
   task finished.
2. **Memory with a client that stops reading.** A driver submits ``--in-flight`` tasks
   that wait (so they all stay in flight) while the server's resident memory is sampled,
   twice: with no browser, then with a client that completes the WebSocket handshake and
   never reads. Prints the server's memory before, at its peak and at the end of each.

The server's own share of memory is what the issue bounds: it must not grow with what
the stalled client has not read.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

MiB = 1 << 20


class Server:
    """A ``jupyter server`` subprocess with the extension, on 127.0.0.1."""

    def __init__(self, tmp: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.token = secrets.token_hex(16)
        self.runtime_dir = tmp / "runtime"
        self.runtime_dir.mkdir()
        self.env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(self.runtime_dir)}
        self.env.pop("JUPYTER_RAY_ADDRESS", None)
        self.log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--allow-root",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={tmp}",
                "--ServerApp.jpserver_extensions={'jupyter_ray': True}",
                "--JupyterRay.num_cpus=2",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + 60
        while self.status().get("state") != "running":
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the server did not start; see {tmp / 'server.log'}")
            time.sleep(0.1)

    def status(self) -> dict[str, Any]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/jupyter-ray/api/cluster",
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                answer: dict[str, Any] = json.loads(res.read())
                return answer
        except OSError:
            return {}

    def driver_env(self) -> dict[str, str]:
        (conn,) = self.runtime_dir.glob("jupyter_ray-server-*.json")
        return {**self.env, "JUPYTER_RAY_ADDRESS": str(conn)}

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def stop(self) -> None:
        family = psutil.Process(self.proc.pid).children(recursive=True)
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(family, timeout=10)
        self.log.close()


def run_driver(server: Server, code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=server.driver_env(),
        stdout=subprocess.PIPE,
        text=True,
    )


JOB = """
import time, jupyter_ray as ray
ray.init()
f = ray.remote(lambda x: x)
n, batch = {tasks}, 2000
start = time.time()
for i in range(0, n, batch):
    ray.get([f.remote(j) for j in range(i, min(n, i + batch))])
print(start, time.time(), flush=True)
"""


async def updates_during_a_job(server: Server, tasks: int) -> dict[str, Any]:
    req = HTTPRequest(
        f"ws://127.0.0.1:{server.port}/jupyter-ray/api/events",
        headers={"Authorization": f"token {server.token}"},
    )
    ws = await websocket_connect(req, max_message_size=1 << 30)
    states: dict[str, str] = {}
    updates: list[tuple[float, int, int]] = []  # (time, task records, bytes)
    driver = run_driver(server, JOB.format(tasks=tasks))
    finished_seen_at = None
    while True:
        text = await asyncio.wait_for(ws.read_message(), 120)
        if text is None:
            raise RuntimeError("the server closed the feed")
        msg = json.loads(text)
        if msg["type"] == "update":
            rows = msg["changed"].get("tasks", [])
            updates.append((time.time(), len(rows), len(text)))
            states.update({t["task_id"]: t["state"] for t in rows})
        elif msg["type"] == "snapshot":
            states.update({t["task_id"]: t["state"] for t in msg["tasks"]})
        done = sum(1 for s in states.values() if s == "FINISHED")
        if done >= tasks:
            finished_seen_at = time.time()
            break
    out, _ = driver.communicate(timeout=120)
    started, ended = (float(x) for x in out.split())
    ws.close()
    during = [u for u in updates if started <= u[0] <= ended + 1]
    span = max(ended - started, 1e-9)
    return {
        "tasks": tasks,
        "job_seconds": round(ended - started, 2),
        "updates_per_s": round(len(during) / span, 2),
        "task_records": sum(u[1] for u in updates),
        "largest_update_records": max((u[1] for u in updates), default=0),
        "largest_update_kib": round(max((u[2] for u in updates), default=0) / 1024, 1),
        "lag_after_job_s": round(finished_seen_at - ended, 3) if finished_seen_at else None,
    }


def stalled_client(server: Server) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /jupyter-ray/api/events HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: token {server.token}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"handshake refused: {head[:200]!r}")
    return sock


INFLIGHT = """
import sys, time, jupyter_ray as ray
ray.init()
@ray.remote(num_cpus=1)
def wait(path):
    import os, time
    while not os.path.exists(path):
        time.sleep(0.05)
refs = [wait.remote({release!r}) for _ in range({n})]
print("SUBMITTED", flush=True)
sys.stdin.readline()  # then exit: the node drops the tasks of a driver that left
"""


def memory_during_in_flight_job(
    server: Server, in_flight: int, tmp: Path, stalled: bool
) -> dict[str, Any]:
    """The server's memory while ``in_flight`` tasks wait, with a stalled browser or none
    (the difference is what the stalled browser costs)."""
    before = server.rss()
    sock = stalled_client(server) if stalled else None
    release = tmp / f"release-{stalled}"
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak[0] = max(peak[0], server.rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(INFLIGHT.format(release=str(release), n=in_flight))],
        env=server.driver_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout is not None and driver.stdin is not None
    t0 = time.time()
    line = driver.stdout.readline()
    if "SUBMITTED" not in line:
        raise RuntimeError("the in-flight driver failed")
    submitted_s = time.time() - t0
    time.sleep(10)  # let the feed push everything it has at the stalled client
    end = server.rss()
    stop.set()
    sampler.join()
    driver.stdin.write("\n")
    driver.stdin.close()
    release.touch()
    driver.wait(120)
    if sock is not None:
        sock.close()
    return {
        "stalled_client": stalled,
        "in_flight": in_flight,
        "submit_seconds": round(submitted_s, 1),
        "server_rss_before_mib": round(before / MiB, 1),
        "server_rss_peak_mib": round(peak[0] / MiB, 1),
        "server_rss_end_mib": round(end / MiB, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="jupyter_ray-bench-") as tmp:
        server = Server(Path(tmp))
        try:
            job = asyncio.run(updates_during_a_job(server, args.tasks))
            print("updates during a job:", json.dumps(job))
            for stalled in (False, True):
                memory = memory_during_in_flight_job(server, args.in_flight, Path(tmp), stalled)
                print("memory while tasks are in flight:", json.dumps(memory))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
