"""The server extension on the Ray backend: a real Ray cluster's tasks through the same
REST routes and live feed, read from Ray's state API; what Ray does not say is marked
unavailable, never made up."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _server import Server, next_message, start_server, wait_for

pytestmark = pytest.mark.slow

JOB = """
import sys

import jupyter_ray as ray
from jupyter_ray.runtime.client import context

ray.init()  # the server's connection file says: Ray, at this address
context.cell_id_provider = lambda: ("cell-on-ray", 3)  # as a notebook cell would

@ray.remote
def leaf(x):
    return x * x

@ray.remote
def parent(n):
    return sum(ray.get([leaf.remote(i) for i in range(n)]))

print("RESULT", ray.get(parent.remote(3)), flush=True)
# Stay attached, as a notebook's kernel does, until the test has watched the tasks
# finish: a driver that exits at once ends its Ray job, and Ray then drops the task
# events its workers had not yet reported (it marks those tasks FAILED).
sys.stdin.read()
"""


@pytest.fixture
def ray_server(
    ray_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Server]:
    for key, value in ray_cluster.env.items():
        monkeypatch.setenv(key, value)
    srv = start_server(
        tmp_path,
        extra=(
            "--JupyterRay.backend=ray",
            f"--JupyterRay.address={ray_cluster.address}",
            f"--JupyterRay.ray_dashboard_url={ray_cluster.dashboard_url}",
            "--JupyterRay.ray_poll_interval=0.5",
        ),
    )
    try:
        wait_for(lambda: srv.api("GET", "cluster")["state"] == "running", "the Ray backend")
        yield srv
    finally:
        srv.close()


def _start_job(server: Server) -> subprocess.Popen[str]:
    (conn,) = server.runtime_dir.glob("jupyter_ray-server-*.json")
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(JOB)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**server.env, "JUPYTER_RAY_ADDRESS": str(conn)},
    )


def _finish_job(job: subprocess.Popen[str]) -> str:
    """Let the driver exit (its stdin closes) and return what it printed."""
    try:
        out, err = job.communicate(timeout=180)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode == 0, err[-3000:]
    return out


def test_rest_and_feed_list_ray_tasks_with_states_and_edges(ray_server: Server) -> None:
    status = ray_server.api("GET", "cluster")
    assert status["backend"] == "ray" and not status["owned"]
    assert "data edges" in " ".join(status["unavailable"]["graph"])
    assert (
        json.loads(next(ray_server.runtime_dir.glob("jupyter_ray-server-*.json")).read_text())[
            "backend"
        ]
        == "ray"
    )

    async def watch() -> dict[str, dict[str, Any]]:
        async with ray_server.feed() as ws:
            await next_message(ws, lambda m: m["type"] == "snapshot")
            ws.write_message(json.dumps({"type": "filter", "cell_id": "cell-on-ray"}))
            await next_message(ws, lambda m: m["type"] == "snapshot")
            job = _start_job(ray_server)
            try:
                seen: dict[str, dict[str, Any]] = {}
                while len(seen) < 4 or any(t["state"] != "FINISHED" for t in seen.values()):
                    msg = await next_message(ws, lambda m: m["type"] in ("update", "snapshot"))
                    rows = (
                        msg["tasks"]
                        if msg["type"] == "snapshot"
                        else msg["changed"].get("tasks", [])
                    )
                    seen.update({t["task_id"]: t for t in rows})
            finally:
                out = await asyncio.get_running_loop().run_in_executor(None, _finish_job, job)
            assert "RESULT 5" in out
            return seen

    seen = asyncio.run(watch())
    assert sorted(t["name"] for t in seen.values()) == ["leaf", "leaf", "leaf", "parent"]
    assert {t["cell_id"] for t in seen.values()} == {"cell-on-ray"}
    assert {t["cell_execution_count"] for t in seen.values()} == {3}
    tasks = ray_server.api("GET", "tasks?cell_id=cell-on-ray&state=FINISHED")["tasks"]
    assert len(tasks) == 4
    graph = ray_server.api("GET", "graph?cell_id=cell-on-ray")
    (root,) = [n["id"] for n in graph["nodes"] if n["name"] == "parent"]
    submitted = [e for e in graph["edges"] if e["kind"] == "submitted"]
    assert len(submitted) == 3 and {e["source"] for e in submitted} == {root}
    nodes = ray_server.api("GET", "nodes")["nodes"]
    assert nodes and nodes[0]["resources_total"]["CPU"] == 2
    assert "resources_available" in nodes[0]["extra"]["unavailable"]
    status, answer = ray_server.request("POST", "jupyter-ray/api/cluster", {})
    assert status == 409  # attached to Ray: stop (detach) first
    ray_server.api("DELETE", "cluster")
    status, answer = ray_server.request("POST", "jupyter-ray/api/cluster", {})
    assert status == 400 and "ray start --head" in answer["message"]
