"""Direct actor calls (runtime/client/lanes.py): a caller's calls go straight to the actor's
worker once the node has told it where that is. Each test first makes one call through
the node (which hands out the address), then checks that calls did take the lane."""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Any

import numpy as np
import pytest
from _wait import eventually as _eventually
from jupyter_ray.runtime.common import framing
from jupyter_ray.runtime.common import protocol as p
from jupyter_ray.runtime.common.serialization import serialize

import jupyter_ray as ray
from jupyter_ray.exceptions import RayActorError, RayTaskError, TaskCancelledError


@ray.remote
class Log:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, item: Any) -> int:
        self.items.append(item)
        return len(self.items)

    def items_(self) -> list[Any]:
        return list(self.items)

    def pid(self) -> int:
        return os.getpid()

    def big(self, n: int) -> np.ndarray:
        return np.arange(n, dtype=np.int64)

    def boxed(self, value: Any) -> list[Any]:
        return [ray.put(value)]

    def shout(self, text: str) -> str:
        print(f"actor says {text}")
        return text

    def fail(self) -> None:
        raise KeyError("missing")

    def sleep(self, seconds: float, marker: str = "") -> str:
        if marker:
            open(marker, "a").close()  # tells the test the call has started
        time.sleep(seconds)
        return "slept"


@ray.remote
def slow(value: Any, seconds: float) -> Any:
    time.sleep(seconds)
    return value


@ray.remote
def double(x: int) -> int:
    return 2 * x


def _lane(handle: Any) -> Any:
    client = ray._client.require_client()
    return client.lanes.lanes[bytes.fromhex(handle._ray_actor_id)]


def _direct_calls(handle: Any) -> int:
    """How many calls this driver has sent on its lane to the actor's current process."""
    return int(_lane(handle).seq)


def _with_lane(handle: Any) -> Any:
    """Make the call through the node that hands out the lane's address; wait for it."""
    ray.get(handle.pid.remote())
    _eventually(lambda: _lane(handle).worker_id is not None)
    return handle


def test_calls_take_the_lane_and_keep_state(ray_2cpu: Any) -> None:
    log = _with_lane(Log.remote())
    before = _direct_calls(log)
    assert ray.get([log.add.remote(i) for i in range(100)]) == list(range(1, 101))
    assert ray.get(log.items_.remote()) == list(range(100))
    assert _direct_calls(log) == before + 101


def test_order_holds_across_calls_that_must_go_through_the_node(ray_2cpu: Any) -> None:
    # A call with an unready ref argument goes through the node and waits there; the calls
    # after it must not overtake it, and it must not overtake the direct ones before it.
    log = _with_lane(Log.remote())
    first = log.add.remote("direct-1")
    waiting = log.add.remote(slow.remote("routed", 0.5))
    after = [log.add.remote(f"after-{i}") for i in range(3)]
    ray.get([first, waiting, *after])
    assert ray.get(log.items_.remote()) == ["direct-1", "routed", "after-0", "after-1", "after-2"]
    # once nothing is pending in the node, calls take the lane again
    before = _direct_calls(log)
    ray.get(log.add.remote("direct-2"))
    assert _direct_calls(log) == before + 1


def test_a_routed_call_waits_in_the_worker_for_direct_calls_sent_before_it(
    ray_2cpu: Any,
) -> None:
    # The race this guards against (a call through the node reaching the worker before
    # direct calls sent ahead of it) is rare, so the test makes it happen: it sends the
    # driver's "earlier" direct calls itself, on a lane of its own, half a second late.
    log = _with_lane(Log.remote())
    ray.get(log.add.remote("first"))
    client = ray._client.require_client()
    lane = _lane(log)
    seq = lane.seq
    lane.seq = seq + 2  # as if two more direct calls had gone out
    routed = log.add.remote(ray.put("routed"))  # a ref argument: through the node
    assert client.lanes.lanes[lane.actor_id].routed  # it did go through the node
    time.sleep(0.5)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(lane.path)
        msgs = [p.DirectHello(client.welcome.conn_id)]
        for i, item in enumerate(["late-1", "late-2"]):
            spec = p.TaskSpec(
                os.urandom(16),
                "Log.add",
                b"",
                serialize(((item,), {})).to_bytes(),
                [],
                [],
                1,
                {},
                0,
                False,
                0,
                kind=p.ACTOR_METHOD,
                actor_id=lane.actor_id,
                method="add",
            )
            msgs.append(p.DirectCall(spec, seq + 1 + i))
        sock.sendall(b"".join(framing.encode(m) for m in msgs))
        ray.get(routed, timeout=30)
    assert ray.get(log.items_.remote())[-3:] == ["late-1", "late-2", "routed"]


def test_direct_results_are_objects_like_any_other(ray_2cpu: Any) -> None:
    log = _with_lane(Log.remote())
    n = log.add.remote("x")
    # passed to a task: the node learns of the object from the driver before the task
    assert ray.get(double.remote(n)) == 2
    ready, _ = ray.wait([log.add.remote("y")], timeout=30)
    assert len(ready) == 1 and ray.get(ready[0]) == 2
    assert log.add.remote("z").future().result(timeout=30) == 3
    with pytest.raises(RayTaskError) as info:
        ray.get(log.fail.remote())
    assert isinstance(info.value, KeyError)
    assert ray.get(log.add.remote("after the error")) == 4


def test_large_results_and_results_holding_refs_come_through_the_node(
    ray_2cpu: Any,
) -> None:
    log = _with_lane(Log.remote())
    before = _direct_calls(log)
    big = ray.get(log.big.remote(1 << 20))  # 8 MiB: written to the store
    assert big.shape == (1 << 20,) and int(big[-1]) == (1 << 20) - 1
    inner = ray.get(log.boxed.remote({"k": 1}))
    assert ray.get(inner[0]) == {"k": 1}
    assert _direct_calls(log) == before + 2
    ray._client.require_client().query("validate")


def test_output_of_a_direct_call_reaches_the_driver(
    ray_2cpu: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    log = _with_lane(Log.remote())
    before = _direct_calls(log)
    assert ray.get(log.shout.remote("hello")) == "hello"
    assert _direct_calls(log) == before + 1
    _eventually(lambda: "actor says hello" in capfd.readouterr().out, timeout=10)


def test_direct_calls_show_in_the_state_api(ray_2cpu: Any) -> None:
    log = _with_lane(Log.remote())
    ray.get([log.add.remote(i) for i in range(5)])

    def finished() -> int:
        tasks = ray.state.list_tasks(filters=[("name", "=", "Log.add")])
        return sum(1 for t in tasks if t.state == "FINISHED")

    _eventually(lambda: finished() == 5)


def test_cancel_a_running_direct_call(ray_2cpu: Any, tmp_path: Any) -> None:
    log = _with_lane(Log.remote())
    marker = str(tmp_path / "started")
    ref = log.sleep.remote(30, marker)
    _eventually(lambda: os.path.exists(marker))
    ray.cancel(ref)
    with pytest.raises((TaskCancelledError, RayTaskError)):
        ray.get(ref, timeout=30)
    assert ray.get(log.add.remote("alive")) == 1


def test_sigkill_with_direct_calls_in_flight(ray_2cpu: Any, tmp_path: Any) -> None:
    retried = _with_lane(Log.options(max_restarts=1, max_task_retries=1).remote())
    pid = ray.get(retried.pid.remote())
    before = _direct_calls(retried)
    marker = str(tmp_path / "a")
    ref = retried.sleep.remote(2, marker)
    assert _direct_calls(retried) == before + 1
    _eventually(lambda: os.path.exists(marker))
    os.kill(pid, signal.SIGKILL)
    assert ray.get(ref, timeout=60) == "slept"  # run again in the restarted process
    assert ray.get(retried.pid.remote()) != pid

    once = _with_lane(Log.options(max_restarts=1).remote())
    pid = ray.get(once.pid.remote())
    marker = str(tmp_path / "b")
    ref = once.sleep.remote(30, marker)
    _eventually(lambda: os.path.exists(marker))
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(RayActorError, match="max_task_retries"):
        ray.get(ref, timeout=60)
    # the restarted actor takes calls, through the node and then on a new lane
    assert ray.get(once.add.remote("new")) == 1
    _eventually(lambda: _lane(once).worker_id is not None)
    assert ray.get(once.add.remote("newer")) == 2


def test_kill_fails_calls_sent_on_the_lane(ray_2cpu: Any) -> None:
    log = _with_lane(Log.remote())
    ref = log.sleep.remote(30)
    ray.kill(log)
    with pytest.raises(RayActorError):
        ray.get(ref, timeout=60)
    with pytest.raises(RayActorError):
        ray.get(log.add.remote("too late"), timeout=60)
    # the driver forgets the lane of a dead actor once nothing is pending on it
    lanes = ray._client.require_client().lanes.lanes
    _eventually(lambda: bytes.fromhex(log._ray_actor_id) not in lanes)


def test_garbage_on_a_lane_closes_only_that_lane(ray_2cpu: Any) -> None:
    log = _with_lane(Log.remote())
    path = _lane(log).path
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(b"\x05\x00\x00\x00garbage")
        assert sock.recv(1) == b""  # the worker hung up on us
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(framing.encode(p.DirectHello(0)) + framing.encode(p.Shutdown()))
        assert sock.recv(1) == b""
    assert ray.get([log.add.remote(i) for i in range(3)]) == [1, 2, 3]


def test_dropped_refs_to_direct_results_free_their_objects(ray_2cpu: Any) -> None:
    log = _with_lane(Log.remote())
    client = ray._client.require_client()
    for i in range(50):
        log.add.remote(i)  # fire and forget
    ray.get(log.add.remote("last"))

    def objects() -> int:
        client.send()  # push out what the flusher would send within 50 ms
        return int(client.query("store_stats")["objects"])

    # the actor's cookie and nothing else: every call's result is gone
    _eventually(lambda: objects() <= 1)


@ray.remote
class Pairs:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, item: Any) -> int:
        self.items.append(item)
        return len(self.items)

    @ray.method(num_returns=2)
    def add_two(self, item: Any) -> tuple[int, int]:
        self.items.append(item)
        return len(self.items), -len(self.items)

    def items_(self) -> list[Any]:
        return list(self.items)


@ray.remote
def call_from_a_task(actors: list[Any], tag: str, n: int) -> None:
    ray.get([a.add.remote((tag, i)) for i in range(n) for a in actors])


def test_each_caller_keeps_its_order_when_lanes_and_the_node_mix(ray_2cpu: Any) -> None:
    # Threads of the driver and a task's worker call the same actors at once, with a mix
    # of calls that take the lane and calls that must go through the node (a ref
    # argument, two return values). Whatever interleaving results, each caller's calls
    # must appear in the order that caller made them.
    import threading

    actors = [Pairs.remote() for _ in range(2)]
    ray.get([a.add.remote(("warm", -1)) for a in actors])
    n = 150

    def caller(tag: str) -> None:
        refs = []
        for i in range(n):
            for a in actors:
                if i % 10 == 3:
                    refs.append(a.add.remote(ray.put((tag, i))))
                elif i % 10 == 7:
                    refs.extend(a.add_two.remote((tag, i)))
                else:
                    refs.append(a.add.remote((tag, i)))
        ray.get(refs)

    threads = [threading.Thread(target=caller, args=(f"t{k}",)) for k in range(3)]
    task = call_from_a_task.remote(actors, "task", n)
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    ray.get(task, timeout=120)
    for a in actors:
        items = ray.get(a.items_.remote())
        assert len(items) == 1 + 4 * n
        for tag in ["t0", "t1", "t2", "task"]:
            seq = [i for who, i in items if who == tag]
            assert seq == list(range(n)), f"{tag}: {seq[:20]}..."
    assert any(_direct_calls(a) > 0 for a in actors)


def test_calls_in_flight_survive_repeated_sigkills_with_retries(ray_2cpu: Any) -> None:
    log = _with_lane(Log.options(max_restarts=-1, max_task_retries=-1).remote())
    refs = []
    for round_ in range(3):
        pid = ray.get(log.pid.remote(), timeout=60)
        _eventually(lambda: _lane(log).worker_id is not None)
        refs += [log.add.remote((round_, i)) for i in range(100)]
        os.kill(pid, signal.SIGKILL)
    # every call completes: retried on the restarted process when it was lost
    values = ray.get(refs, timeout=120)
    assert len(values) == 300 and all(isinstance(v, int) for v in values)
    assert ray.get(log.add.remote("after"), timeout=60) >= 1


def test_a_call_after_kill_never_reaches_the_killed_process(ray_2cpu: Any) -> None:
    # kill() is a message to the node; a call right behind it must not take the lane to
    # the actor's worker and be answered before the kill lands (it failed 2 runs in 14)
    @ray.remote
    class Pinger:
        def ping(self) -> int:
            return os.getpid()

    for _ in range(25):
        actor = Pinger.remote()
        for _ in range(3):  # the first call through the node, then on the lane
            ray.get(actor.ping.remote())
        ray.kill(actor)
        with pytest.raises(RayActorError):
            ray.get(actor.ping.remote(), timeout=60)


def test_a_call_after_a_restarting_kill_reaches_the_new_process(ray_2cpu: Any) -> None:
    # with Ray's default at-most-once calls (max_task_retries=0), a call the old process
    # may have received fails when it dies; retries carry it to the new one
    @ray.remote(max_restarts=1, max_task_retries=-1)
    class Pinger:
        def ping(self) -> int:
            return os.getpid()

    actor = Pinger.remote()
    old = {ray.get(actor.ping.remote()) for _ in range(3)}
    ray.kill(actor, no_restart=False)
    new = {ray.get(actor.ping.remote(), timeout=60) for _ in range(5)}
    assert len(old) == 1 and len(new) == 1 and old != new
