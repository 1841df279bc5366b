"""Generator tasks and actor methods as Ray runs them: ``num_returns="streaming"`` (an
ObjectRefGenerator the caller iterates while the task still yields, synchronously or
with ``async for``) and ``num_returns="dynamic"``; errors and cancellation mid-stream."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _wait import eventually
from jupyter_ray.runtime.client.generators import DynamicObjectRefGenerator, ObjectRefGenerator

import jupyter_ray as ray
from jupyter_ray.exceptions import RayActorError, TaskCancelledError, WorkerCrashedError


def _wait_for(path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


@ray.remote
def count(n: int) -> Any:
    yield from range(n)


@ray.remote
def handshake(path: str) -> Any:
    """Yields 0, then waits for the caller to say it got it, then yields 1."""
    yield 0
    _wait_for(path)
    yield 1


def test_the_caller_gets_each_value_while_the_task_still_runs(
    ray_2cpu: Any, tmp_path: Path
) -> None:
    gen = handshake.remote(str(tmp_path / "got-0"))
    assert isinstance(gen, ObjectRefGenerator)  # generator functions stream by default
    assert ray.get(next(gen), timeout=60) == 0  # the task is still running: it waits for us
    (tmp_path / "got-0").touch()
    assert [ray.get(r) for r in gen] == [1]
    with pytest.raises(StopIteration):
        next(gen)
    assert gen.is_finished()
    assert ray.get(gen.completed()) is None
    assert [ray.get(r) for r in count.options(num_returns="streaming").remote(4)] == [0, 1, 2, 3]
    assert list(count.remote(0)) == []


def test_async_iteration(ray_2cpu: Any, tmp_path: Path) -> None:
    async def main() -> list[int]:
        out = []
        gen = handshake.remote(str(tmp_path / "got-0"))
        async for ref in gen:
            out.append(await ref)
            (tmp_path / "got-0").touch()
        return out

    assert asyncio.run(main()) == [0, 1]


@ray.remote
def fails_after(n: int) -> Any:
    yield from range(n)
    raise ValueError("went wrong after the values")


def _drain(gen: Any) -> list[Any]:
    out: list[Any] = []
    for ref in gen:
        try:
            out.append(ray.get(ref, timeout=60))
        except Exception as err:
            out.append(type(err))
    return out


def test_an_error_mid_stream_is_the_next_value_then_the_stream_ends(ray_2cpu: Any) -> None:
    out = _drain(fails_after.remote(2))
    assert out[:2] == [0, 1] and len(out) == 3
    assert issubclass(out[2], ValueError)
    gen = fails_after.remote(0)
    with pytest.raises(ValueError, match="went wrong"):
        ray.get(next(gen), timeout=60)
    with pytest.raises(StopIteration):
        next(gen)


@ray.remote
def endless() -> Any:
    i = 0
    while True:
        time.sleep(0.02)
        yield i
        i += 1


def test_cancel_mid_stream(ray_2cpu: Any) -> None:
    gen = endless.remote()
    assert ray.get(next(gen), timeout=60) == 0
    ray.cancel(gen)
    out = _drain(gen)
    assert out and out[-1] is TaskCancelledError  # what came before it, then the cancel
    assert all(isinstance(v, int) for v in out[:-1])
    assert ray.get(count.remote(1).completed(), timeout=60) is None  # the runtime goes on


@ray.remote
class Streamer:
    def __init__(self) -> None:
        self.calls = 0

    def numbers(self, n: int) -> Any:
        for i in range(n):
            yield i * 10

    def forever(self) -> Any:
        i = 0
        while True:
            time.sleep(0.02)
            yield i
            i += 1

    def broken(self) -> Any:
        yield "first"
        raise KeyError("broken stream")

    def ping(self) -> str:
        return "pong"


@ray.remote
class AsyncStreamer:
    async def numbers(self, n: int) -> Any:
        for i in range(n):
            await asyncio.sleep(0.001)
            yield i

    async def forever(self) -> Any:
        i = 0
        while True:
            await asyncio.sleep(0.02)
            yield i
            i += 1

    def plain(self, n: int) -> Any:
        yield from range(n)

    async def ping(self) -> str:
        return "pong"


@pytest.mark.parametrize("options", [{}, {"max_concurrency": 3}], ids=["plain", "threaded"])
def test_actor_generator_methods(ray_2cpu: Any, options: dict[str, Any]) -> None:
    actor = Streamer.options(**options).remote()
    gen = actor.numbers.remote(3)
    assert isinstance(gen, ObjectRefGenerator)
    assert [ray.get(r) for r in gen] == [0, 10, 20]
    out = _drain(actor.broken.remote())
    assert out[0] == "first" and issubclass(out[1], KeyError)
    forever = actor.forever.remote()
    assert ray.get(next(forever), timeout=60) == 0
    ray.cancel(forever)
    assert _drain(forever)[-1] is TaskCancelledError
    assert ray.get(actor.ping.remote(), timeout=60) == "pong"  # the actor lives on


def test_async_actor_generator_methods(ray_2cpu: Any) -> None:
    actor = AsyncStreamer.remote()
    assert [ray.get(r) for r in actor.numbers.remote(4)] == [0, 1, 2, 3]
    assert [ray.get(r) for r in actor.plain.remote(2)] == [0, 1]
    forever = actor.forever.remote()
    assert ray.get(next(forever), timeout=60) == 0
    ray.cancel(forever)
    assert _drain(forever)[-1] is TaskCancelledError
    assert ray.get(actor.ping.remote(), timeout=60) == "pong"

    async def main() -> list[int]:
        return [await ref async for ref in actor.numbers.remote(3)]

    assert asyncio.run(main()) == [0, 1, 2]


def test_an_actor_dying_mid_stream_ends_it_with_the_error(ray_2cpu: Any) -> None:
    actor = Streamer.remote()
    gen = actor.forever.remote()
    assert ray.get(next(gen), timeout=60) == 0
    ray.kill(actor)
    assert issubclass(_last_error(gen), RayActorError)
    assert issubclass(_last_error(actor.forever.remote()), RayActorError)


def _last_error(gen: Any) -> type:
    out = _drain(gen)
    assert isinstance(out[-1], type), out
    return out[-1]


with pytest.warns(DeprecationWarning, match="dynamic"):  # (as Ray warns)

    @ray.remote(num_returns="dynamic")
    def dynamic(n: int, fail: bool) -> Any:
        yield from range(n)
        if fail:
            raise ValueError("dynamic failure")


def test_dynamic_returns_a_ref_to_the_refs(ray_2cpu: Any) -> None:
    ref = dynamic.remote(3, False)
    assert isinstance(ref, ray.ObjectRef)
    refs = ray.get(ref, timeout=60)
    assert isinstance(refs, DynamicObjectRefGenerator) and len(refs) == 3
    assert [ray.get(r) for r in refs] == [0, 1, 2]
    out = [ray.get(r) if i < 2 else None for i, r in enumerate(ray.get(dynamic.remote(2, True)))]
    assert out[:2] == [0, 1]
    last = list(ray.get(dynamic.remote(2, True)))[-1]
    with pytest.raises(ValueError, match="dynamic failure"):
        ray.get(last)
    actor = Streamer.remote()
    with pytest.warns(DeprecationWarning, match="dynamic"):
        dyn = actor.numbers.options(num_returns="dynamic")
    assert [ray.get(r) for r in ray.get(dyn.remote(2))] == [0, 10]


def test_dynamic_is_deprecated_as_in_ray(ray_2cpu: Any) -> None:
    with pytest.warns(DeprecationWarning, match="num_returns='streaming'"):

        @ray.remote(num_returns="dynamic")
        def gen() -> Any:
            yield 1


def test_large_values_and_nested_consumers(ray_2cpu: Any) -> None:
    @ray.remote
    def arrays(n: int) -> Any:
        for i in range(n):
            yield np.full(300_000, i, dtype=np.float64)  # 2.4 MB each: in the store

    sums = [float(ray.get(r).sum()) for r in arrays.remote(3)]
    assert sums == [0.0, 300_000.0, 600_000.0]

    @ray.remote
    def consumer(n: int) -> list[int]:
        # a task that iterates a generator (its worker owns the stream) lends its CPU
        # while it waits, so the generator task can run even with every CPU taken
        return [ray.get(r) for r in count.remote(n)]

    assert ray.get([consumer.remote(3), consumer.remote(2)], timeout=60) == [[0, 1, 2], [0, 1]]


def test_a_dropped_generator_leaves_nothing_behind(ray_2cpu: Any) -> None:
    client = ray._client.require_client()

    def objects() -> int:
        return int(client.query("store_stats")["objects"])

    before = objects()
    gen = count.remote(50)
    next(gen)
    del gen
    ray.get(count.remote(1).completed(), timeout=60)
    eventually(lambda: objects() <= before)


@ray.remote(max_retries=1)
def crashes_once(marker: str) -> Any:
    yield 0
    yield 1
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    yield 2


def test_a_retried_generator_does_not_repeat_values(ray_2cpu: Any, tmp_path: Path) -> None:
    assert [ray.get(r) for r in crashes_once.remote(str(tmp_path / "m"))] == [0, 1, 2]
    no_retry = crashes_once.options(max_retries=0).remote(str(tmp_path / "n"))
    out = _drain(no_retry)
    assert out[:2] == [0, 1] and out[2] is WorkerCrashedError


def test_bad_generator_use_says_what_to_do(ray_2cpu: Any) -> None:
    @ray.remote
    def plain() -> int:
        return 1

    with pytest.raises(ValueError, match="generator functions"):
        plain.options(num_returns="streaming")
    with pytest.raises(ValueError, match="generator functions"):
        ray.method(num_returns="streaming")(lambda self: 1)
    gen = count.remote(2)
    with pytest.raises(TypeError, match="ObjectRefGenerator"):
        pickle.dumps(gen)
    with pytest.raises(TypeError):
        ray.put(gen)
    assert [ray.get(r) for r in gen] == [0, 1]


def test_a_generator_is_iterated_on_any_thread(ray_2cpu: Any) -> None:
    gen = count.remote(3)
    out: list[int] = []
    thread = threading.Thread(target=lambda: out.extend(ray.get(r) for r in gen))
    thread.start()
    thread.join(60)
    assert out == [0, 1, 2]
