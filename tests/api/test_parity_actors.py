"""Actors as Ray has them: the methods every handle has, exit_actor, the decorated
class's own attributes, handle reference counting, concurrency groups, out-of-order
calls, label selectors and process titles."""

from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from _wait import eventually

import jupyter_ray as ray
from jupyter_ray.actor import ActorClassInheritanceException
from jupyter_ray.exceptions import GetTimeoutError, RayActorError


@ray.remote
class Box:
    KIND = "box"

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def get(self) -> int:
        return self.value

    def pid(self) -> int:
        return os.getpid()

    @staticmethod
    def unit() -> str:
        return "kg"

    @classmethod
    def make_name(cls, suffix: str) -> str:
        return f"{cls.__name__}-{suffix}"


def test_every_handle_has_ray_ready_call_and_terminate(ray_2cpu: Any) -> None:
    box = Box.options(name="boxed").remote(7)
    assert ray.get(box.__ray_ready__.remote(), timeout=60) is True
    assert ray.get(box.__ray_call__.remote(lambda self, k: self.value + k, 3)) == 10
    looked_up = ray.get_actor("boxed")
    assert ray.get(looked_up.__ray_ready__.remote(), timeout=60) is True
    pid = ray.get(box.pid.remote())
    box.__ray_terminate__.remote()
    eventually(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie")
    with pytest.raises(RayActorError):
        ray.get(box.get.remote(), timeout=60)


def test_the_decorated_class_keeps_its_attributes_and_lists_its_methods(ray_2cpu: Any) -> None:
    assert Box.KIND == "box"
    assert Box.unit() == "kg"
    assert Box.make_name("x") == "Box-x"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = Box.nothing
    names = dir(Box)
    assert {"get", "pid", "unit", "make_name", "KIND", "remote", "options"} <= set(names)
    box = Box.remote()
    handle_names = dir(box)
    assert {"get", "pid", "unit", "make_name"} <= set(handle_names)
    assert ray.get(box.unit.remote(), timeout=60) == "kg"
    assert ray.get(box.make_name.remote("y")) == "Box-y"
    with pytest.raises(ActorClassInheritanceException, match="Cannot subclass"):

        class Bigger(Box):  # type: ignore[misc,valid-type]
            pass

    assert issubclass(ActorClassInheritanceException, TypeError)


def _write_atexit(path: str) -> None:
    with open(path, "a") as f:
        f.write("atexit ran\n")


@ray.remote
class Quitter:
    def __init__(self, path: str) -> None:
        atexit.register(_write_atexit, path)

    def quit(self) -> None:
        ray.actor.exit_actor()

    def slow(self, seconds: float) -> str:
        time.sleep(seconds)
        return "finished"

    def ping(self) -> str:
        return "pong"


@ray.remote
class AsyncQuitter:
    def __init__(self, path: str) -> None:
        atexit.register(_write_atexit, path)

    async def quit(self) -> None:
        ray.actor.exit_actor()

    async def ping(self) -> str:
        return "pong"


@pytest.mark.parametrize("kind", ["sync", "threaded", "async"])
def test_exit_actor_runs_atexit_handlers_and_fails_queued_calls(
    ray_2cpu: Any, tmp_path: Path, kind: str
) -> None:
    path = str(tmp_path / "atexit")
    if kind == "async":  # one call at a time: the pings below queue behind quit()
        actor = AsyncQuitter.options(max_concurrency=1).remote(path)
    else:
        actor = Quitter.options(max_concurrency=4 if kind == "threaded" else 1).remote(path)
    assert ray.get(actor.ping.remote(), timeout=60) == "pong"
    running = actor.slow.remote(1.0) if kind == "threaded" else None
    if running is not None:
        time.sleep(0.2)  # it runs on its own thread when quit() comes
    stop = actor.quit.remote()
    queued = [actor.ping.remote() for _ in range(3)] if kind != "threaded" else []
    with pytest.raises(RayActorError, match="exit_actor"):
        ray.get(stop, timeout=60)  # the caller sees the death, not a value (as in Ray)
    for ref in [*queued, actor.ping.remote()]:
        with pytest.raises(RayActorError):
            ray.get(ref, timeout=60)
    if running is not None:
        assert ray.get(running, timeout=60) == "finished"  # a running call completes
    eventually(lambda: os.path.exists(path))
    assert Path(path).read_text() == "atexit ran\n"


@ray.remote
class Named:
    def ping(self) -> int:
        return os.getpid()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_named_actor_ends_with_its_handles_and_get_actor_handles_are_weak(
    ray_2cpu: Any,
) -> None:
    original = Named.options(name="weakly_held").remote()
    pid = ray.get(original.ping.remote(), timeout=60)
    looked_up = ray.get_actor("weakly_held")
    assert ray.get(looked_up.ping.remote(), timeout=60) == pid
    del original  # the only strong handle: looked_up does not keep it alive
    eventually(lambda: _gone(pid))
    with pytest.raises(RayActorError):
        ray.get(looked_up.ping.remote(), timeout=60)
    with pytest.raises(ValueError, match="no live actor"):
        ray.get_actor("weakly_held")


def test_handles_passed_to_tasks_keep_the_actor_alive(ray_2cpu: Any) -> None:
    @ray.remote
    def keep(handles: list[Any]) -> int:
        time.sleep(1.0)
        return int(ray.get(handles[0].ping.remote()))

    actor = Named.remote()
    pid = ray.get(actor.ping.remote(), timeout=60)
    ref = keep.remote([actor])
    del actor
    assert ray.get(ref, timeout=60) == pid


def test_a_detached_actor_lives_until_killed(ray_2cpu: Any) -> None:
    Named.options(name="lasting", lifetime="detached").remote()
    pid = ray.get(ray.get_actor("lasting").ping.remote(), timeout=60)
    time.sleep(0.5)
    assert ray.get(ray.get_actor("lasting").ping.remote(), timeout=60) == pid
    anonymous = Named.options(lifetime="detached").remote()  # no name needed, as in Ray
    assert ray.get(anonymous.ping.remote(), timeout=60) > 0
    ray.kill(anonymous)
    ray.kill(ray.get_actor("lasting"))
    eventually(lambda: _gone(pid))


@ray.remote(concurrency_groups={"io": 1})
class Gate:
    def __init__(self) -> None:
        self.opened = threading.Event()
        self.order: list[int] = []

    def wait_open(self) -> str:  # the default group: blocks its thread
        return "opened" if self.opened.wait(60) else "timed out"

    @ray.method(concurrency_group="io")
    def open(self, i: int) -> int:
        self.order.append(i)
        self.opened.set()
        return i

    @ray.method(concurrency_group="io")
    def order_seen(self) -> list[int]:
        return list(self.order)


@ray.remote(concurrency_groups={"io": 1})
class AsyncGate:
    def __init__(self) -> None:
        self.opened = threading.Event()

    async def wait_open(self) -> str:
        # blocks its event loop outright (no await): only its own group's loop
        return "opened" if self.opened.wait(60) else "timed out"

    @ray.method(concurrency_group="io")
    async def open(self) -> str:
        self.opened.set()
        return "set"


def test_a_blocked_call_never_holds_up_another_concurrency_group(ray_2cpu: Any) -> None:
    gate = Gate.remote()
    blocked = gate.wait_open.remote()
    time.sleep(0.3)
    opens = [gate.open.remote(i) for i in range(5)]
    assert ray.get(opens, timeout=60) == [0, 1, 2, 3, 4]
    assert ray.get(blocked, timeout=60) == "opened"
    assert ray.get(gate.order_seen.remote()) == [0, 1, 2, 3, 4]  # in order, per group
    async_gate = AsyncGate.remote()
    blocked = async_gate.wait_open.remote()
    time.sleep(0.3)
    assert ray.get(async_gate.open.remote(), timeout=60) == "set"
    assert ray.get(blocked, timeout=60) == "opened"


@ray.remote
def released(path: str) -> int:
    while not os.path.exists(path):
        time.sleep(0.01)
    return 1


@ray.remote(max_concurrency=2)
class Threaded:
    def take(self, value: int) -> int:
        return value

    def quick(self) -> str:
        return "quick"


@ray.remote
class AsyncOne:
    async def take(self, value: int) -> int:
        return value

    async def quick(self) -> str:
        return "quick"


@pytest.mark.parametrize("actor_class", [Threaded, AsyncOne], ids=["threaded", "async"])
def test_later_calls_run_while_an_earlier_ones_argument_is_pending(
    ray_2cpu: Any, tmp_path: Path, actor_class: Any
) -> None:
    actor = actor_class.remote()
    marker = str(tmp_path / "go")
    waiting = actor.take.remote(released.remote(marker))
    assert ray.get(actor.quick.remote(), timeout=60) == "quick"  # out of order, as in Ray
    Path(marker).touch()
    assert ray.get(waiting, timeout=60) == 1


def test_a_plain_actor_keeps_its_callers_order(ray_2cpu: Any, tmp_path: Path) -> None:
    @ray.remote
    class Plain:
        def take(self, value: int) -> int:
            return value

        def quick(self) -> str:
            return "quick"

    actor = Plain.remote()
    marker = str(tmp_path / "go")
    waiting = actor.take.remote(released.remote(marker))
    quick = actor.quick.remote()
    with pytest.raises(GetTimeoutError):
        ray.get(quick, timeout=0.5)
    Path(marker).touch()
    assert ray.get([waiting, quick], timeout=60) == [1, "quick"]
    with pytest.raises(ValueError, match="out of order"):
        Threaded.options(allow_out_of_order_execution=False).remote()


@ray.remote
def where() -> str:
    return ray.get_runtime_context().get_node_id()


def test_label_selectors_and_fallbacks(ray_start: Any) -> None:
    ray_start(labels={"zone": "a", "disk": "ssd"})
    node = ray.get_runtime_context().get_node_id()
    for selector in ({"zone": "a"}, {"zone": "in(a,b)"}, {"zone": "!b"}, {"gpu": "!h100"}):
        assert ray.get(where.options(label_selector=selector).remote(), timeout=60) == node
    assert ray.get(where.options(label_selector={"ray.io/node-id": node}).remote()) == node
    unmatched = where.options(label_selector={"zone": "b"}).remote()  # waits, as in Ray
    with pytest.raises(GetTimeoutError):
        ray.get(unmatched, timeout=1)
    ray.cancel(unmatched)
    fallback = where.options(
        label_selector={"zone": "b"}, fallback_strategy=[{"label_selector": {"disk": "ssd"}}]
    ).remote()
    assert ray.get(fallback, timeout=60) == node
    box = Box.options(label_selector={"zone": "a"}).remote(3)
    assert ray.get(box.get.remote(), timeout=60) == 3


def test_process_titles(ray_2cpu: Any) -> None:
    box = Box.options(name="titled").remote()
    pid = ray.get(box.pid.remote(), timeout=60)
    assert psutil.Process(pid).name() == "ray::Box"

    @ray.remote
    def own_title() -> str:
        with open("/proc/self/comm") as f:
            return f.read().strip()

    assert ray.get(own_title.options(name="renamed").remote(), timeout=60) == "ray::renamed"
    assert ray.get(own_title.remote(), timeout=60) == "ray::own_title"
