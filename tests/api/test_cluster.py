"""Clusters started from the command line: a head, worker nodes, drivers that attach.

Each test runs the CLI with a private TMPDIR and registry of runtimes, so ``jupyter-ray
stop`` and ``address="auto"`` only see the runtime the test started; whatever it started
is killed by pid at the end.
Every node is a separate node manager with its own shared-memory store, workers and
resources, talking to the others over authenticated loopback TCP.
"""

from __future__ import annotations

import gc
import os
import re
import socket
import subprocess
import sys
import time
from typing import Any

import cloudpickle
import numpy as np
import psutil
import pytest
from _cluster import Head, families, head_fixture, kill_all  # noqa: F401 - head fixture
from _wait import eventually
from jupyter_ray.runtime.common import discovery

import jupyter_ray as ray

# Worker nodes are started by the CLI and cannot import this test module: ship its
# functions by value, as a user would for a module that only the driver has.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _remote_only(monkeypatch: Any) -> None:
    """Make init() ignore the local Unix socket, as a driver on another machine would."""
    monkeypatch.setattr(discovery, "find_sessions", lambda: [])


@ray.remote
def total(a: Any) -> float:
    return float(np.asarray(a).sum())


def test_driver_attaches_by_address_and_auto(head: Head) -> None:
    ray.init(address=head.address)
    assert not ray._client.require_client().remote  # same machine: shared memory
    assert ray.cluster_resources()["slot"] == 3
    arr = np.arange(1 << 20, dtype=np.float64)
    assert ray.get(total.remote(ray.put(arr))) == float(arr.sum())
    ray.shutdown()
    ray.init(address="auto")
    assert ray.get(total.remote([1, 2])) == 3.0
    ray.shutdown()


def test_token_client_over_tcp_moves_objects_in_messages(head: Head, monkeypatch: Any) -> None:
    _remote_only(monkeypatch)
    with open(head.token_file) as f:
        token = f.read()
    assert oct(os.stat(head.token_file).st_mode & 0o777) == "0o600"
    ray.init(address=head.address, _token=token)
    assert ray._client.require_client().remote
    arr = np.arange(300_000, dtype=np.float64)  # well above the inline limit
    ref = ray.put(arr)
    np.testing.assert_array_equal(ray.get(ref), arr)
    assert ray.get(total.remote(ref)) == float(arr.sum())
    big = ray.get(ray.remote(lambda: np.ones(400_000)).remote())
    assert big.shape == (400_000,)
    # 16 MB: larger than one transfer chunk, so it comes as several and is put together
    huge = ray.get(ray.remote(lambda: np.arange(2_000_000, dtype=np.float64)).remote())
    np.testing.assert_array_equal(huge, np.arange(2_000_000, dtype=np.float64))
    np.testing.assert_array_equal(ray.get(ray.put(huge))[-3:], huge[-3:])


def test_bad_token_and_garbage_are_refused_and_logged(head: Head, monkeypatch: Any) -> None:
    _remote_only(monkeypatch)
    with pytest.raises(ConnectionError, match="token"):
        ray.init(address=head.address, _token="not-the-token")
    with pytest.raises(ConnectionError, match="needs the cluster token"):
        ray.init(address=head.address)
    host, port = head.address.split(":")
    for junk in [os.urandom(200), b"GET / HTTP/1.1\r\n\r\n", b"\x10\x00\x00\x00" + os.urandom(16)]:
        with socket.create_connection((host, int(port)), timeout=30) as s:
            s.sendall(junk)
            s.settimeout(30)
            try:
                while s.recv(4096):
                    pass  # the challenge, then the close
            except ConnectionResetError:
                pass
    log_path = os.path.join(os.path.dirname(head.token_file), "logs", "node.log")
    deadline = time.monotonic() + 30
    while "refused a TCP connection" not in _read(log_path):
        assert time.monotonic() < deadline, "the refusal was not logged"
        time.sleep(0.05)
    with open(head.token_file) as f:
        ray.init(address=head.address, _token=f.read())  # the head still serves
    assert ray.get(total.remote([2, 3])) == 5.0


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_status_then_stop_reports_how_many(head: Head) -> None:
    status = head.cli("status")
    assert "alive" in status.stdout and "slot: 0/3 used" in status.stdout
    family = [head.pid] + [p.pid for p in psutil.Process(head.pid).children(recursive=True)]
    stopped = head.cli("stop")
    count = int(re.search(r"Stopped (\d+)", stopped.stdout).group(1))  # type: ignore[union-attr]
    assert count >= 2  # the node manager and its zygote, plus workers once started
    gone = [pid for pid in family if not psutil.pid_exists(pid) or _zombie(pid)]
    assert gone == family
    assert head.cli("status", check=False).returncode == 1  # nothing left to attach to


def test_start_says_what_is_missing(head: Head, monkeypatch: Any, tmp_path: Any) -> None:
    out = head.cli("start", check=False)
    assert out.returncode == 2 and "--head" in out.stderr
    env = {k: v for k, v in head.env.items() if k != "JUPYTER_RAY_TOKEN"}
    env["TMPDIR"] = "/nonexistent-dir-for-test"
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path)  # no local session to borrow the token from
    out = subprocess.run(
        [sys.executable, "-m", "jupyter_ray.cli", "start", "--address", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 2 and "needs the cluster token" in out.stderr


def _node_of_task() -> str:
    return str(ray.get_runtime_context().get_node_id())


@ray.remote(resources={"a": 1})
def on_a() -> str:
    return _node_of_task()


@ray.remote(resources={"b": 1})
def on_b(x: Any) -> tuple[str, float]:
    return _node_of_task(), float(np.asarray(x).sum())


@ray.remote(resources={"a": 1})
def make_big() -> Any:
    return np.ones(2_000_000)  # 16 MB: travels between nodes as a copy


def test_tasks_go_to_the_node_with_their_resource_and_data_follows(head: Head) -> None:
    head.add_node("--num-cpus", "1", "--resources", '{"a": 1}', "--object-store-memory", "64000000")
    head.add_node("--num-cpus", "1", "--resources", '{"b": 1}', "--object-store-memory", "64000000")
    ray.init(address=head.address)
    head.wait_nodes(3)
    nodes = {n["NodeID"]: n for n in ray.nodes()}
    assert ray.cluster_resources()["CPU"] == 4  # 2 on the head, 1 + 1 on the nodes
    node_a = ray.get(on_a.remote())
    assert nodes[node_a]["Resources"].get("a") == 1
    big = make_big.remote()
    node_b, total = ray.get(on_b.remote(big))
    assert nodes[node_b]["Resources"].get("b") == 1 and node_b != node_a
    assert total == 2_000_000.0
    np.testing.assert_array_equal(ray.get(big)[:3], [1.0, 1.0, 1.0])
    listed = {n.node_id: n for n in ray.state.list_nodes()}
    assert set(listed) == set(nodes) and all(n.alive for n in listed.values())


@ray.remote(resources={"a": 1})
def wait_on_a(path: str) -> str:
    while not os.path.exists(path):
        time.sleep(0.01)
    return _node_of_task()


def test_a_task_running_on_another_node_shows_running_here(head: Head, tmp_path: Any) -> None:
    head.add_node("--num-cpus", "1", "--resources", '{"a": 1}')
    ray.init(address=head.address)
    head.wait_nodes(2)
    release = str(tmp_path / "release")
    ref = wait_on_a.remote(release)
    task_id = ref.task_id().hex()

    def state() -> str:
        (task,) = ray.state.list_tasks(filters=[("task_id", "=", task_id)])
        return str(task.state)

    try:
        eventually(lambda: state() == "RUNNING")
    finally:
        open(release, "w").close()
    assert ray.get(ref) != ray.get_runtime_context().get_node_id()
    eventually(lambda: state() == "FINISHED")


@ray.remote(resources={"a": 1})
def place_in_group_from_a(pg: Any) -> tuple[str, str]:
    from jupyter_ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)
    return _node_of_task(), ray.get(_where.options(scheduling_strategy=strategy).remote())


@ray.remote
def _where() -> str:
    return _node_of_task()


def test_work_placed_in_a_group_from_another_node_runs_where_the_group_is(
    head: Head,
) -> None:
    from jupyter_ray.util import placement_group

    head.add_node("--num-cpus", "1", "--resources", '{"a": 1}')
    ray.init(address=head.address)
    head.wait_nodes(2)
    pg = placement_group([{"CPU": 1}])  # reserved on this driver's node, the head
    assert pg.wait(30)
    here = ray.get_runtime_context().get_node_id()
    node_a, ran_on = ray.get(place_in_group_from_a.remote(pg), timeout=60)
    assert node_a != here and ran_on == here


@ray.remote
def slow_square(x: int) -> tuple[int, str]:
    time.sleep(0.3)
    return x * x, _node_of_task()


def test_work_spills_to_other_nodes_and_survives_a_node_killed_mid_job(head: Head) -> None:
    victim = head.add_node("--num-cpus", "2")
    head.add_node("--num-cpus", "2")
    ray.init(address=head.address)
    head.wait_nodes(3)
    refs = [slow_square.remote(i) for i in range(24)]
    time.sleep(0.5)  # let the job spread out
    family = [psutil.Process(victim), *psutil.Process(victim).children(recursive=True)]
    for proc in family:
        proc.kill()  # SIGKILL the whole node: node manager, zygote and workers
    results = ray.get(refs, timeout=120)
    assert [r[0] for r in results] == [i * i for i in range(24)]
    assert len({r[1] for r in results}) >= 2
    head.wait_nodes(2)
    deadline = time.monotonic() + 30
    while any(n["Alive"] for n in ray.nodes() if n["NodeID"] not in {r[1] for r in results}):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_worker_node_that_restarts_rejoins_and_runs_what_waited_for_it(head: Head) -> None:
    first = head.add_node("--num-cpus", "1", "--resources", '{"a": 1}')
    ray.init(address=head.address)
    head.wait_nodes(2)
    old_id = ray.get(on_a.remote(), timeout=60)
    kill_all(families([first]))  # SIGKILL the node manager, its zygote and workers
    deadline = time.monotonic() + 30
    while any(n["Alive"] for n in ray.nodes() if n["NodeID"] == old_id):
        assert time.monotonic() < deadline, "the head did not notice the node die"
        time.sleep(0.05)
    # Nothing left has resource "a": the task waits (it does not fail) ...
    waiting = on_a.remote()
    ready, _ = ray.wait([waiting], timeout=0.5)
    assert not ready
    # ... until the node comes back, as a new node with the same resources.
    head.add_node("--num-cpus", "1", "--resources", '{"a": 1}')
    new_id = ray.get(waiting, timeout=60)
    assert new_id != old_id
    alive = {n["NodeID"]: n["Alive"] for n in ray.nodes()}
    assert alive[new_id] is True and alive.get(old_id) is not True


@ray.remote(resources={"tiny": 1})
def sum_on_tiny(x: Any) -> float:
    return float(np.asarray(x).sum())


@ray.remote(resources={"tiny": 1})
def make_on_tiny(n: int) -> Any:
    return np.arange(n, dtype=np.float64)


def test_values_larger_than_a_nodes_store_cross_nodes_in_chunks(head: Head) -> None:
    # 24 MB values against a 16 MB store: the receiving node keeps them in files.
    head.add_node(
        "--num-cpus", "1", "--resources", '{"tiny": 1}', "--object-store-memory", "16000000"
    )
    ray.init(address=head.address)
    head.wait_nodes(2)
    n = 3_000_000
    arg = ray.put(np.ones(n))
    assert ray.get(sum_on_tiny.remote(arg), timeout=60) == float(n)
    back = ray.get(make_on_tiny.remote(n), timeout=60)
    assert back.shape == (n,) and float(back[-1]) == n - 1
    assert ray.get(sum_on_tiny.remote(arg), timeout=60) == float(n)  # pushed again, freed after


@ray.remote(resources={"b": 1})
def puts_on_b(n: int) -> list[Any]:
    inner = ray.put("inner")
    return [_node_of_task(), ray.put(np.arange(n, dtype=np.float64)), ray.put([inner])]


def test_refs_returned_from_another_node_can_be_got(head: Head) -> None:
    # Objects put by a task on another node, and returned inside its result, travel with
    # the result: the driver's node must be able to hand them out.
    head.add_node("--num-cpus", "1", "--resources", '{"b": 1}', "--object-store-memory", "64000000")
    ray.init(address=head.address)
    head.wait_nodes(2)
    client = ray._client.require_client()
    for n in (10, 2_000_000):  # inline, and 16 MB (in chunks)
        node_b, values, nested = ray.get(puts_on_b.remote(n), timeout=60)
        assert node_b != ray.get_runtime_context().get_node_id()
        arr = ray.get(values, timeout=60)
        assert arr.shape == (n,) and float(arr[-1]) == n - 1
        (inner,) = ray.get(nested, timeout=60)
        assert ray.get(inner, timeout=60) == "inner"
        ids = [r.binary() for r in (values, nested, inner)]
        del arr, values, nested, inner
        gc.collect()
        # Once the driver lets go, the head frees what came with the result, too.
        deadline = time.monotonic() + 30
        while any(client.query("has_object", oid) for oid in ids):
            assert time.monotonic() < deadline, "objects sent with a result were never freed"
            time.sleep(0.05)
        assert client.query("validate")


@ray.remote(resources={"b": 1})
def slow_on_b(x: int) -> int:
    time.sleep(0.5)
    return x * 2


@ray.remote(resources={"b": 1})
def returns_pending_ref(x: int) -> list[Any]:
    return [slow_on_b.remote(x)]  # still running when this result is sent


def test_a_ref_to_a_result_still_running_on_another_node_resolves(head: Head) -> None:
    head.add_node("--num-cpus", "2", "--resources", '{"b": 2}')
    ray.init(address=head.address)
    head.wait_nodes(2)
    (pending,) = ray.get(returns_pending_ref.remote(21), timeout=60)
    assert ray.get(pending, timeout=60) == 42


@ray.remote(resources={"b": 1})
def very_slow_on_b() -> int:
    time.sleep(60)
    return 1


@ray.remote(resources={"b": 1})
def returns_very_slow_ref() -> list[Any]:
    return [very_slow_on_b.remote()]


def test_a_ref_whose_node_dies_before_it_arrives_raises_object_lost(head: Head) -> None:
    node = head.add_node("--num-cpus", "2", "--resources", '{"b": 2}')
    ray.init(address=head.address)
    head.wait_nodes(2)
    node_id = next(n["NodeID"] for n in ray.nodes() if n["Resources"].get("b"))
    (pending,) = ray.get(returns_very_slow_ref.remote(), timeout=60)
    kill_all(families([node]))  # SIGKILL the node manager, its zygote and workers
    with pytest.raises(ray.exceptions.ObjectLostError, match=node_id):
        ray.get(pending, timeout=60)


@ray.remote
def hold_then_node(release: str) -> str:
    while not os.path.exists(release):
        time.sleep(0.01)
    return _node_of_task()


def test_auto_attaches_to_the_head_and_outlives_a_worker_node(head: Head, tmp_path: Any) -> None:
    victim = head.add_node("--num-cpus", "2")  # started last, so the newest session
    ray.init(address="auto")
    head.wait_nodes(2)
    here = ray.get_runtime_context().get_node_id()
    (head_node,) = [n for n in ray.state.list_nodes() if n.is_head]
    assert here == head_node.node_id  # "auto" means the cluster: its head
    status = head.cli("status").stdout
    assert f"node {head_node.node_id}" in status
    assert re.search(rf"node {head_node.node_id}\s+\S+\s+head\s+alive", status)
    assert "worker node" in status

    release = str(tmp_path / "release")
    refs = [hold_then_node.remote(release) for _ in range(4)]  # 2 here, 2 spill over

    def running_on_victim() -> bool:
        running = ray.state.list_tasks(filters=[("state", "=", "RUNNING")])
        return len(running) == 4 and any(t.node_id != here for t in running)

    try:
        eventually(running_on_victim)
        kill_all(families([victim]))  # SIGKILL the worker node and its workers
    finally:
        open(release, "w").close()
    assert ray.get(refs, timeout=120) == [here] * 4  # retried on the surviving head
    assert ray.get(total.remote([1, 2])) == 3.0  # the driver carries on


def test_to_ray_prints_the_steps_with_the_address(tmp_path: Any) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jupyter_ray.cli", "to-ray", "--address", "10.1.2.3:6379"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "pip install 'jupyter_ray[ray]'" in out.stdout
    assert 'c.JupyterRay.address = "10.1.2.3:6379"' in out.stdout
    assert "%ray_start --backend ray --address 10.1.2.3:6379" in out.stdout
