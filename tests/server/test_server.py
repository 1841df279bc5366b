"""The server extension, through a real ``jupyter server`` on loopback: it owns a runtime,
answers REST with authentication, feeds browsers live, and survives its runtime's death.

Every test runs twice: at the root and under a non-root ``base_url``, as behind
JupyterHub or another proxy.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from _server import Server, next_message, start_server, wait_for

pytestmark = pytest.mark.slow

ROUTES = [
    "clusters",
    "cluster",
    "nodes",
    "jobs",
    "tasks",
    "tasks/" + "0" * 32,
    "graph",
    "actors",
    "objects",
    "summary",
    "timeline",
]


# The whole suite runs behind a proxy's prefix (a non-root base_url, where mistakes in
# building URLs show); the tests that build URLs (every route, the WebSocket, a kernel's
# connection) run at the root too.
both_base_urls = pytest.mark.parametrize(
    "server", ["/", "/behind/a/proxy/"], ids=["root", "base_url"], indirect=True
)


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path, getattr(request, "param", "/behind/a/proxy/"))
    try:
        wait_for(lambda: srv.api("GET", "cluster")["state"] == "running", "the runtime")
        yield srv
    finally:
        srv.close()


def _driver(server: Server, code: str, *, env: dict[str, str] | None = None) -> str:
    """Run a script as a separate driver with the kernels' environment; its stdout."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**server.env, **_kernel_env(server), **(env or {})},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _kernel_env(server: Server) -> dict[str, str]:
    """What a kernel started by the server inherits: where its runtime is."""
    (conn,) = server.runtime_dir.glob("jupyter_ray-server-*.json")
    return {"JUPYTER_RAY_ADDRESS": str(conn)}


@both_base_urls
def test_every_route_and_the_feed_refuse_a_missing_or_wrong_token(server: Server) -> None:
    for route in ROUTES:
        for token in (None, "not-the-token"):
            status, _ = server.request("GET", f"jupyter-ray/api/{route}", token=token)
            assert status == 403, (route, token, status)
    for method in ("POST", "DELETE"):
        assert server.request(method, "jupyter-ray/api/cluster", {}, token=None)[0] == 403
    for token in (None, "not-the-token"):
        with pytest.raises(Exception, match="403"):
            asyncio.run(server.websocket(token=token))
    assert server.api("GET", "cluster")["state"] == "running"  # nothing was changed


def test_start_and_stop_through_rest_with_worker_nodes(server: Server) -> None:
    first = server.api("GET", "cluster")
    assert first["owned"] and first["join_command"].startswith("JUPYTER_RAY_TOKEN=$(cat ")
    head_pid = next(c["pid"] for c in server.api("GET", "clusters")["clusters"] if c["current"])
    stopped = server.api("DELETE", "cluster")
    assert stopped["state"] == "stopped" and stopped["address"] is None
    wait_for(lambda: not psutil.pid_exists(head_pid), "the old head to exit")
    status, answer = server.request("GET", "jupyter-ray/api/nodes")
    assert status == 503 and "no jupyter_ray runtime is running" in answer["message"]

    started = server.api("POST", "cluster", {"num_cpus": 1, "worker_nodes": 1})
    assert started["state"] == "running" and len(started["worker_nodes"]) == 1
    assert started["options"]["num_cpus"] == 1

    def both_nodes() -> list[dict[str, Any]] | None:
        nodes = server.api("GET", "nodes")["nodes"]
        return nodes if len([n for n in nodes if n["alive"]]) == 2 else None

    nodes = wait_for(both_nodes, "the worker node to join")
    assert sorted(n["is_head"] for n in nodes) == [False, True]
    status, answer = server.request("POST", "jupyter-ray/api/cluster", {})
    assert status == 409 and "already running" in answer["message"]
    # the one command that joins a node on another machine works here too
    join = started["join_command"]
    token_file = re.search(r"cat (\S+)\)", join).group(1)  # type: ignore[union-attr]
    address = join.rsplit(" ", 1)[1]
    joined = subprocess.run(
        [sys.executable, "-m", "jupyter_ray.cli", "start", "--address", address],
        capture_output=True,
        text=True,
        timeout=120,
        env={**server.env, "JUPYTER_RAY_TOKEN": Path(token_file).read_text().strip()},
    )
    assert joined.returncode == 0, joined.stderr
    pid = int(re.search(r"\(pid (\d+)\)", joined.stdout).group(1))  # type: ignore[union-attr]
    node = psutil.Process(pid)
    server.started += [node, *node.children(recursive=True)]
    wait_for(lambda: len([n for n in server.api("GET", "nodes")["nodes"] if n["alive"]]) == 3, "3")
    node.kill()  # the node on "another machine" dies: shown as dead, live
    wait_for(
        lambda: any(not n["alive"] for n in server.api("GET", "nodes")["nodes"]), "a dead node"
    )
    server.api("DELETE", "cluster")
    assert all(not psutil.pid_exists(p) or _zombie(p) for p in started["worker_nodes"])


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_bad_input_gets_400_with_a_reason_and_unknown_ids_404(server: Server) -> None:
    server.api("DELETE", "cluster")
    bad_bodies: list[tuple[Any, str]] = [
        ({"num_cpus": "four"}, "num_cpus must be a number"),
        ({"num_cpus": -1}, "num_cpus must be >= 0"),
        ({"worker_nodes": 99}, "worker_nodes"),
        ({"object_store_memory": 10}, "at least 1 MiB"),
        ({"resources": [1, 2]}, "resources is a JSON object"),
        ({"resources": {"CPU": 2}}, "num_cpus"),
        ({"cpus": 2}, "unknown start option"),
        ({"address": "/nonexistent/node.sock"}, "Could not find"),
        ([1], "JSON object"),
    ]
    for body, reason in bad_bodies:
        status, answer = server.request("POST", "jupyter-ray/api/cluster", body)
        assert status == 400 and reason in answer["message"], (body, status, answer)
        assert server.api("GET", "cluster")["state"] == "stopped"  # nothing half-started
    status, answer = server.request("POST", "jupyter-ray/api/cluster", raw=b"{not json")
    assert status == 400 and "not JSON" in answer["message"]
    server.api("POST", "cluster", {})
    for route, reason in [
        ("tasks?limit=abc", "whole number"),
        ("tasks?limit=0", "between 1 and"),
        ("tasks?state=DONE", "state must be one of"),
        (f"tasks?cell_id={'x' * 300}", "at most"),
        ("tasks/not-an-id", "32 hex digits"),
        ("actors?state=HAPPY", "state must be one of"),
    ]:
        status, answer = server.request("GET", f"jupyter-ray/api/{route}")
        assert status == 400 and reason in answer["message"], (route, status, answer)
    status, answer = server.request("GET", "jupyter-ray/api/tasks/" + "ab" * 16)
    assert status == 404 and "no task" in answer["message"]

    async def garbage() -> tuple[int | None, str | None]:
        async with server.feed() as ws:
            ws.write_message("{this is not json")
            while await ws.read_message() is not None:
                pass
            return ws.close_code, ws.close_reason

    code, reason = asyncio.run(garbage())
    assert code == 1003 and reason is not None and "JSON" in reason
    assert server.api("GET", "cluster")["state"] == "running"  # the server goes on


@both_base_urls
def test_a_kernel_started_by_the_server_runs_on_its_runtime_and_the_feed_shows_it(
    server: Server,
) -> None:
    kernel_id = server.start_kernel()

    async def watch() -> dict[str, Any]:
        async with server.feed() as ws:
            return await follow(ws)

    async def follow(ws: Any) -> dict[str, Any]:
        status = await next_message(ws, lambda m: m["type"] == "status")
        assert status["cluster"]["state"] == "running"
        await next_message(ws, lambda m: m["type"] == "snapshot")
        ws.write_message(json.dumps({"type": "filter", "kernel_id": kernel_id}))
        snap = await next_message(ws, lambda m: m["type"] == "snapshot")
        assert snap["tasks"] == []  # this kernel has run nothing yet
        tasks: dict[str, dict[str, Any]] = {}
        ran = asyncio.ensure_future(
            server.run_in_kernel(
                kernel_id,
                "import jupyter_ray as ray\n"
                "ray.init()\n"  # no address: the server's runtime, through the environment
                "@ray.remote\n"
                "def square(x):\n"
                "    return x * x\n"
                "@ray.remote\n"
                "def total(*xs):\n"
                "    return sum(xs)\n"
                "print('RESULT', ray.get(total.remote(*[square.remote(i) for i in range(4)])))\n"
                "print('NODE', ray.get_runtime_context().get_node_id())\n",
            )
        )
        while len(tasks) < 5 or any(t["state"] != "FINISHED" for t in tasks.values()):
            msg = await next_message(ws, lambda m: m["type"] in ("update", "snapshot"))
            rows = msg["tasks"] if msg["type"] == "snapshot" else msg["changed"].get("tasks", [])
            tasks.update({t["task_id"]: t for t in rows})
        out = await ran
        return {"out": out, "tasks": tasks}

    seen = asyncio.run(watch())
    assert "RESULT 14" in seen["out"]
    node = re.search(r"NODE (\w+)", seen["out"]).group(1)  # type: ignore[union-attr]
    assert node == server.api("GET", "cluster")["node_id"]
    names = sorted(t["name"] for t in seen["tasks"].values())
    assert names == ["square"] * 4 + ["total"]
    (job,) = [j for j in server.api("GET", "jobs")["jobs"] if j["metadata"].get("kernel_id")]
    assert job["metadata"] == {**job["metadata"], "origin": "kernel", "kernel_id": kernel_id}
    listed = server.api("GET", f"tasks?kernel_id={kernel_id}")["tasks"]
    assert sorted(t["name"] for t in listed) == names
    graph = server.api("GET", f"graph?kernel_id={kernel_id}")
    assert len(graph["nodes"]) == 5 and len(graph["edges"]) == 4  # square -> total, x4
    grouped = server.api("GET", f"graph?kernel_id={kernel_id}&limit=2")
    assert grouped["grouped"] and {n["name"]: n["count"] for n in grouped["nodes"]} == {
        "square": 4,
        "total": 1,
    }
    assert grouped["edges"] == [
        {"source": "group:square", "target": "group:total", "kind": "data", "count": 4}
    ]
    server.shutdown_kernel(kernel_id)


@both_base_urls
def test_the_feed_narrowed_to_one_cell_sends_only_its_tasks(server: Server) -> None:
    async def watch() -> list[dict[str, Any]]:
        async with server.feed() as ws:
            return await follow(ws)

    async def follow(ws: Any) -> list[dict[str, Any]]:
        ws.write_message(json.dumps({"type": "filter", "cell_id": "cell-b"}))
        snapshot = await next_message(ws, lambda m: m["type"] == "snapshot")
        seqs = [snapshot["seq"]]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None,
            _driver,
            server,
            """
            import jupyter_ray as ray
            from jupyter_ray.runtime.client import context
            ray.init()
            cell = ["cell-a"]
            context.cell_id_provider = lambda: (cell[0], 1)
            f = ray.remote(lambda x: x)
            ray.get([f.remote(i) for i in range(3)])
            cell[0] = "cell-b"
            ray.get([f.remote(i) for i in range(2)])
            """,
        )
        seen: dict[str, dict[str, Any]] = {}
        while len(seen) < 2 or any(t["state"] != "FINISHED" for t in seen.values()):
            msg = await next_message(ws, lambda m: m["type"] in ("update", "snapshot"))
            seqs.append(msg["seq"])
            if msg["type"] == "snapshot":  # a client that fell behind gets a fresh picture
                seen = {t["task_id"]: t for t in msg["tasks"]}
            else:
                seen.update({t["task_id"]: t for t in msg["changed"].get("tasks", [])})
        # numbered per browser: a narrowed feed has no gaps (a gap means a lost update)
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        return list(seen.values())

    tasks = asyncio.run(watch())
    assert [t["cell_id"] for t in tasks] == ["cell-b", "cell-b"]


def test_every_runtime_on_the_machine_is_listed(server: Server, tmp_path: Path) -> None:
    cli = subprocess.run(
        [sys.executable, "-m", "jupyter_ray.cli", "start", "--head", "--num-cpus", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=server.env,
    )
    assert cli.returncode == 0, cli.stderr
    pid = int(re.search(r"\(pid (\d+)\)", cli.stdout).group(1))  # type: ignore[union-attr]
    head = psutil.Process(pid)
    server.started += [head, *head.children(recursive=True)]
    # a kernel that starts a runtime of its own (it leaves the server's alone)
    kernel_id = server.start_kernel()
    code = "import os, jupyter_ray as ray\n"
    code += "del os.environ['JUPYTER_RAY_ADDRESS']\n"
    code += "ray.init(num_cpus=1)\n"
    asyncio.run(server.run_in_kernel(kernel_id, code))

    def origins() -> list[str] | None:
        found = sorted(c["origin"] for c in server.api("GET", "clusters")["clusters"])
        return found if len(found) == 3 else None

    assert wait_for(origins, "three runtimes in the registry") == ["cli", "kernel", "server"]
    (mine,) = [c for c in server.api("GET", "clusters")["clusters"] if c["origin"] == "kernel"]
    assert kernel_id[:8] in mine["label"] and not mine["current"]
    server.shutdown_kernel(kernel_id)
    head.kill()
    wait_for(lambda: origins() is None, "dead runtimes to leave the registry")


def test_the_server_survives_its_runtime_being_killed_and_starts_a_new_one(
    server: Server,
) -> None:
    before = server.api("GET", "cluster")
    head = next(c for c in server.api("GET", "clusters")["clusters"] if c["current"])
    family = [psutil.Process(head["pid"])]
    family += family[0].children(recursive=True)

    async def watch() -> dict[str, Any]:
        async with server.feed() as ws:
            await next_message(ws, lambda m: m["type"] == "snapshot")
            for proc in family:
                proc.kill()
            crashed = await next_message(
                ws, lambda m: m["type"] == "status" and m["cluster"]["state"] == "crashed"
            )
            return crashed["cluster"]

    crashed = asyncio.run(watch())
    psutil.wait_procs(family, timeout=10)
    assert "went away" in crashed["error"]
    assert server.request("GET", "api/status")[0] == 200  # the server itself is fine
    assert server.request("GET", "jupyter-ray/api/tasks")[0] == 503
    conn = json.loads(next(server.runtime_dir.glob("jupyter_ray-server-*.json")).read_text())
    assert conn["address"] is None and conn["state"] == "crashed"
    again = server.api("POST", "cluster", {})
    assert again["state"] == "running" and again["address"] != before["address"]
    out = _driver(server, "import jupyter_ray as ray; ray.init(); print(ray.get(ray.put(7)))")
    assert out.strip() == "7"
    assert os.path.exists(again["address"])


def test_attaching_to_another_runtime_and_detaching_leaves_it_running(server: Server) -> None:
    cli = subprocess.run(
        [sys.executable, "-m", "jupyter_ray.cli", "start", "--head", "--num-cpus", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=server.env,
    )
    assert cli.returncode == 0, cli.stderr
    pid = int(re.search(r"\(pid (\d+)\)", cli.stdout).group(1))  # type: ignore[union-attr]
    head = psutil.Process(pid)
    server.started += [head, *head.children(recursive=True)]
    address = re.search(r"on (127\.0\.0\.1:\d+)\.", cli.stdout).group(1)  # type: ignore[union-attr]
    server.api("DELETE", "cluster")
    attached = server.api("POST", "cluster", {"address": address})
    assert attached["state"] == "running" and not attached["owned"]
    (current,) = [c for c in server.api("GET", "clusters")["clusters"] if c["current"]]
    assert current["origin"] == "cli" and current["pid"] == pid
    # a kernel's init(address="auto") follows the server to the runtime it serves now
    kernel_id = server.start_kernel()
    out = asyncio.run(
        server.run_in_kernel(
            kernel_id,
            "import jupyter_ray as ray\n"
            "ray.init(address='auto')\n"
            "print('NODE', ray.get_runtime_context().get_node_id())\n",
        )
    )
    assert f"NODE {current['node_id']}" in out
    server.shutdown_kernel(kernel_id)
    assert server.api("DELETE", "cluster")["state"] == "stopped"
    assert head.is_running() and head.status() != psutil.STATUS_ZOMBIE  # left alone
    head.kill()
