"""Actors as a Ray user writes them: state, ordering, concurrency, handles, names, faults."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

import psutil
import pytest
from _wait import eventually as _eventually

import jupyter_ray as ray
from jupyter_ray.exceptions import ActorDiedError, RayActorError, RayTaskError
from jupyter_ray.util import ActorPool, list_named_actors
from jupyter_ray.util.queue import Empty, Full, Queue


@ray.remote
class Counter:
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def incr(self, k: int = 1) -> int:
        self.n += k
        return self.n

    def value(self) -> int:
        return self.n

    def pid(self) -> int:
        return os.getpid()

    def fail(self) -> None:
        raise ValueError("bad call")

    @ray.method(num_returns=2)
    def pair(self) -> tuple[int, int]:
        return self.n, -self.n


def _actor_state(handle: Any) -> dict[str, Any]:
    actors = ray._client.require_client().query("actors")
    return next(a for a in actors if a["actor_id"] == handle._ray_actor_id)


def test_actor_keeps_state_and_runs_calls_in_order(ray_2cpu: Any) -> None:
    c = Counter.remote(10)
    assert ray.get([c.incr.remote() for _ in range(50)]) == list(range(11, 61))
    a, b = c.pair.remote()
    assert ray.get([a, b]) == [60, -60]
    assert c.pair.options(num_returns=1).remote() is not None


def test_calls_wait_in_order_behind_a_call_whose_argument_is_not_ready(ray_2cpu: Any) -> None:
    @ray.remote
    def slow(x: int) -> int:
        time.sleep(0.5)
        return x

    @ray.remote
    class Log:
        def __init__(self) -> None:
            self.items: list[int] = []

        def add(self, x: int) -> list[int]:
            self.items.append(x)
            return list(self.items)

    log = Log.remote()
    first = log.add.remote(slow.remote(1))
    second = log.add.remote(2)
    assert ray.get(second) == [1, 2]
    assert ray.get(first) == [1]


def test_calls_from_different_callers_do_not_wait_for_each_other(ray_2cpu: Any) -> None:
    @ray.remote
    class Gate:
        def touch(self, *args: Any) -> str:
            return "ok"

    @ray.remote
    def never_ready() -> None:
        time.sleep(30)

    @ray.remote
    def caller(gate: Any) -> str:
        return str(ray.get(gate.touch.remote()))

    gate = Gate.remote()
    pending = never_ready.remote()
    stuck = gate.touch.remote(pending)  # the driver's call waits on an unready argument
    assert ray.get(caller.remote(gate), timeout=30) == "ok"  # another caller gets through
    ready, _ = ray.wait([stuck], timeout=0.2)
    assert not ready
    ray.cancel(pending, force=True)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(stuck, timeout=60)


def test_handles_travel_to_tasks_and_actors(ray_2cpu: Any) -> None:
    @ray.remote
    def bump(counter: Any) -> int:
        return int(ray.get(counter.incr.remote(5)))

    @ray.remote
    class Supervisor:
        def __init__(self, n: int) -> None:
            self.workers = [Counter.remote(i) for i in range(n)]

        def work(self) -> list[int]:
            return list(ray.get([w.incr.remote() for w in self.workers]))

    c = Counter.remote()
    assert ray.get(bump.remote(c)) == 5
    assert ray.get(c.value.remote()) == 5
    sup = Supervisor.remote(3)
    assert ray.get(sup.work.remote()) == [1, 2, 3]
    assert ray.get(sup.work.remote()) == [2, 3, 4]


def test_threaded_actor_runs_calls_concurrently(ray_2cpu: Any) -> None:
    @ray.remote(max_concurrency=4)
    class Barrier:
        def __init__(self) -> None:
            self.barrier = threading.Barrier(4, timeout=30)

        def meet(self) -> str:
            self.barrier.wait()  # only returns when 4 calls run at once
            return threading.current_thread().name

    b = Barrier.remote()
    names = ray.get([b.meet.remote() for _ in range(4)], timeout=60)
    assert len(set(names)) == 4


def test_async_actor_interleaves_calls_on_one_loop(ray_2cpu: Any) -> None:
    @ray.remote
    class Sleeper:
        async def nap(self, i: int) -> int:
            await asyncio.sleep(0.3)
            return i

        def thread(self) -> str:
            return threading.current_thread().name

    s = Sleeper.remote()
    start = time.monotonic()
    assert ray.get([s.nap.remote(i) for i in range(40)]) == list(range(40))
    assert time.monotonic() - start < 10  # 40 x 0.3 s sequentially would be 12 s


def test_actor_holds_no_cpu_while_running_by_default(ray_2cpu: Any) -> None:
    actors = [Counter.remote() for _ in range(4)]  # more actors than CPUs
    assert ray.get([a.incr.remote() for a in actors]) == [1, 1, 1, 1]
    assert ray.available_resources().get("CPU") == 2.0

    @ray.remote(num_cpus=1)
    class Heavy:
        def ping(self) -> int:
            return 1

    h = Heavy.remote()
    assert ray.get(h.ping.remote()) == 1
    assert ray.available_resources().get("CPU") == 1.0
    ray.kill(h)
    _eventually(lambda: ray.available_resources().get("CPU") == 2.0)


def test_method_exception_reraises_and_actor_survives(ray_2cpu: Any) -> None:
    c = Counter.remote()
    with pytest.raises(ValueError, match="bad call") as info:
        ray.get(c.fail.remote())
    assert isinstance(info.value, RayTaskError)
    assert "raise ValueError" in info.value.traceback_str
    assert ray.get(c.incr.remote()) == 1


def test_constructor_failure_makes_every_call_raise_actor_died(ray_2cpu: Any) -> None:
    @ray.remote
    class Broken:
        def __init__(self) -> None:
            raise RuntimeError("cannot start")

        def ping(self) -> int:
            return 1

    b = Broken.remote()
    for _ in range(2):
        with pytest.raises(ActorDiedError, match="cannot start") as info:
            ray.get(b.ping.remote())
        assert isinstance(info.value, RayActorError)
        assert isinstance(info.value.cause, RuntimeError)


def test_sigkill_from_outside_restarts_the_actor(ray_2cpu: Any) -> None:
    c = Counter.options(max_restarts=1).remote(100)
    pid = ray.get(c.pid.remote())
    assert ray.get(c.incr.remote()) == 101
    os.kill(pid, signal.SIGKILL)
    # after the restart __init__ ran again, so the state starts over
    _eventually(lambda: _actor_state(c)["restarts"] == 1)
    new_pid = ray.get(c.pid.remote(), timeout=60)
    assert new_pid != pid
    assert ray.get(c.incr.remote()) == 101
    os.kill(new_pid, signal.SIGKILL)  # no restarts left
    with pytest.raises(RayActorError, match="died"):
        _eventually(lambda: _actor_state(c)["state"] == "DEAD")
        ray.get(c.incr.remote(), timeout=60)


def test_inflight_call_is_retried_only_with_max_task_retries(ray_2cpu: Any, tmp_path: Any) -> None:
    @ray.remote
    class Fragile:
        def crash_once(self, marker: str) -> str:
            if not os.path.exists(marker):
                open(marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
            return "survived"

    retried = Fragile.options(max_restarts=1, max_task_retries=1).remote()
    assert ray.get(retried.crash_once.remote(str(tmp_path / "a")), timeout=60) == "survived"
    not_retried = Fragile.options(max_restarts=1).remote()
    with pytest.raises(RayActorError, match="max_task_retries"):
        ray.get(not_retried.crash_once.remote(str(tmp_path / "b")), timeout=60)
    assert ray.get(not_retried.crash_once.remote(str(tmp_path / "b")), timeout=60) == "survived"


def test_kill_and_graceful_termination(ray_2cpu: Any) -> None:
    c = Counter.options(max_restarts=5).remote()
    pid = ray.get(c.pid.remote())
    ray.kill(c)  # no_restart=True by default, even with restarts left
    with pytest.raises(RayActorError, match="killed"):
        ray.get(c.incr.remote(), timeout=60)
    _eventually(lambda: not psutil.pid_exists(pid) or _zombie(pid))

    d = Counter.remote()
    calls = [d.incr.remote() for _ in range(3)]
    d.__ray_terminate__.remote()
    assert ray.get(calls) == [1, 2, 3]  # queued before the stop: they still run
    with pytest.raises(RayActorError, match="__ray_terminate__"):
        ray.get(d.incr.remote(), timeout=60)


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_exit_actor_from_inside(ray_2cpu: Any) -> None:
    @ray.remote
    class Quitter:
        def quit(self) -> None:
            ray.actor.exit_actor()

        def ping(self) -> int:
            return 1

    q = Quitter.remote()
    assert ray.get(q.ping.remote()) == 1
    with pytest.raises(RayActorError, match="exit_actor"):  # (its caller sees the death)
        ray.get(q.quit.remote())
    with pytest.raises(RayActorError, match="exit_actor"):
        ray.get(q.ping.remote(), timeout=60)
    with pytest.raises(TypeError, match="inside an actor"):
        ray.actor.exit_actor()


def test_actor_ends_when_its_last_handle_goes(ray_2cpu: Any) -> None:
    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    result = Counter.remote(7).incr.remote()  # the handle is dropped at once ...
    assert ray.get(result) == 8  # ... but its pending call still runs
    del c
    _eventually(lambda: _zombie(pid))


def test_named_actors(ray_2cpu: Any) -> None:
    c = Counter.options(name="counter").remote(3)
    assert "counter" in list_named_actors()
    same = ray.get_actor("counter")
    assert ray.get(same.incr.remote()) == 4
    assert same == c
    with pytest.raises(ValueError, match="already exists"):
        Counter.options(name="counter").remote()
    again = Counter.options(name="counter", get_if_exists=True).remote()
    assert ray.get(again.value.remote()) == 4
    with pytest.raises(ValueError, match="no live actor named 'nobody'"):
        ray.get_actor("nobody")
    other = Counter.options(name="counter", namespace="elsewhere").remote(50)
    assert ray.get(ray.get_actor("counter", namespace="elsewhere").value.remote()) == 50
    assert {"name": "counter", "namespace": "elsewhere"} in list_named_actors(True)
    ray.kill(c)
    _eventually(lambda: "counter" not in list_named_actors())
    del other


def test_detached_actor_outlives_its_handles(ray_2cpu: Any) -> None:
    Counter.options(name="keeper", lifetime="detached").remote(1)
    time.sleep(0.2)
    import gc

    gc.collect()
    assert ray.get(ray.get_actor("keeper").incr.remote(), timeout=60) == 2
    ray.kill(ray.get_actor("keeper"))


def test_bad_actor_usage_raises_clearly(ray_2cpu: Any) -> None:
    with pytest.raises(TypeError, match=r"Counter\.remote\(\)"):
        Counter()
    c = Counter.remote()
    with pytest.raises(TypeError, match=r"incr\.remote\(\)"):
        c.incr()
    with pytest.raises(AttributeError, match="has no method 'missing'"):
        c.missing.remote()
    with pytest.raises(TypeError, match="Cannot subclass"):

        class Sub(Counter):  # type: ignore[misc,valid-type]
            pass

    with pytest.raises(ValueError, match="Invalid option"):
        Counter.options(bogus=1)
    with pytest.raises(ValueError, match="max_concurrency"):
        Counter.options(max_concurrency=0)
    with pytest.raises(TypeError, match="actor handle"):
        ray.kill("not a handle")  # type: ignore[arg-type]
    assert ray.get(c.incr.remote()) == 1


def test_actor_pool(ray_2cpu: Any) -> None:
    @ray.remote
    class Doubler:
        def double(self, x: int) -> int:
            time.sleep(0.01 * (x % 3))
            return 2 * x

    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    assert list(pool.map(lambda a, v: a.double.remote(v), range(8))) == [2 * i for i in range(8)]
    assert sorted(pool.map_unordered(lambda a, v: a.double.remote(v), range(6))) == [
        0,
        2,
        4,
        6,
        8,
        10,
    ]
    pool.submit(lambda a, v: a.double.remote(v), 1)
    pool.submit(lambda a, v: a.double.remote(v), 2)
    pool.submit(lambda a, v: a.double.remote(v), 3)  # waits for a free actor
    assert pool.has_next() and not pool.has_free()
    assert [pool.get_next(), pool.get_next(), pool.get_next()] == [2, 4, 6]
    assert not pool.has_next()
    idle = pool.pop_idle()
    assert idle is not None
    pool.push(idle)
    with pytest.raises(ValueError, match="already in the pool"):
        pool.push(idle)
    pool.submit(lambda a, v: a.double.remote(v), 21)
    assert pool.get_next_unordered(timeout=60) == 42


def test_queue_between_driver_and_tasks(ray_2cpu: Any) -> None:
    q = Queue(maxsize=2)

    @ray.remote
    def producer(queue: Queue, n: int) -> None:
        for i in range(n):
            queue.put(i)

    done = producer.remote(q, 5)
    got = [q.get(timeout=30) for _ in range(5)]
    ray.get(done)
    assert got == [0, 1, 2, 3, 4]
    assert q.empty()
    with pytest.raises(Empty):
        q.get(timeout=0.1)
    q.put_nowait_batch([1, 2])
    assert q.full()
    with pytest.raises(Full):
        q.put(3, timeout=0.1)
    assert q.get_nowait_batch(2) == [1, 2]
    import queue as stdlib_queue

    with pytest.raises(stdlib_queue.Empty):
        q.get_nowait()
    q.shutdown()


def test_max_pending_calls_limits_a_handle(ray_2cpu: Any, tmp_path: Any) -> None:
    from jupyter_ray.exceptions import PendingCallsLimitExceeded

    @ray.remote
    class Gate:
        def wait_for(self, path: str) -> None:
            while not os.path.exists(path):
                time.sleep(0.01)

    release = str(tmp_path / "open")
    gate = Gate.options(max_pending_calls=2).remote()
    first = [gate.wait_for.remote(release) for _ in range(2)]
    with pytest.raises(PendingCallsLimitExceeded, match="max_pending_calls"):
        gate.wait_for.remote(release)
    open(release, "w").close()
    ray.get(first, timeout=30)
    ray.get(gate.wait_for.remote(release), timeout=30)  # room again
    with pytest.raises(ValueError, match="max_pending_calls"):
        Gate.options(max_pending_calls=0)


def test_runtime_context_inside_an_actor(ray_2cpu: Any) -> None:
    @ray.remote
    class Self:
        def __init__(self) -> None:
            self.n = 0

        def ids(self) -> tuple[str | None, str | None]:
            ctx = ray.get_runtime_context()
            return ctx.get_actor_id(), ctx.get_task_id()

        def bump(self) -> int:
            self.n += 1
            return self.n

        def through_my_handle(self) -> int:
            # a task that calls back into this actor through current_actor
            me = ray.get_runtime_context().current_actor
            return int(ray.get(call_bump.remote(me)))

    @ray.remote
    def call_bump(actor: Any) -> int:
        return int(ray.get(actor.bump.remote()))

    actor = Self.options(max_concurrency=2).remote()
    actor_id, task_id = ray.get(actor.ids.remote())
    assert actor_id == actor._ray_actor_id and task_id
    assert ray.get(actor.through_my_handle.remote(), timeout=60) == 1
    assert ray.get_runtime_context().get_actor_id() is None
    assert ray.get_runtime_context().get_accelerator_ids() == {"GPU": []}
    with pytest.raises(RuntimeError, match="inside an actor"):
        _ = ray.get_runtime_context().current_actor


def test_init_namespace_is_where_named_actors_live(ray_start: Any) -> None:
    ray_start(namespace="team")
    assert ray.get_runtime_context().namespace == "team"
    shared = Counter.options(name="shared").remote()  # kept: unreferenced actors go
    assert ray.get(ray.get_actor("shared").incr.remote()) == 1
    assert list_named_actors() == ["shared"]
    assert {"name": "shared", "namespace": "team"} in list_named_actors(all_namespaces=True)
    with pytest.raises(ValueError, match="namespace 'default'"):
        ray.get_actor("shared", namespace="default")

    @ray.remote
    def make_named() -> int:
        Counter.options(name="from_task", lifetime="detached").remote(5)
        return int(ray.get(ray.get_actor("from_task").value.remote()))

    assert ray.get(make_named.remote()) == 5  # the task works in the driver's namespace
    assert ray.get(ray.get_actor("from_task", namespace="team").value.remote()) == 5
    ray.kill(ray.get_actor("from_task"))
    del shared
