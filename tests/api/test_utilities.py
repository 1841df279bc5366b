"""ray.util behaviours a ported program relies on: Queue, multiprocessing.Pool, ActorPool."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

import jupyter_ray as ray
from jupyter_ray.util import ActorPool
from jupyter_ray.util.multiprocessing import Pool
from jupyter_ray.util.queue import Empty, Full, Queue


def test_queue_async_forms_and_shutdown(ray_2cpu: Any) -> None:
    q = Queue(maxsize=1)

    async def main() -> list[Any]:
        await q.put_async("a")
        assert q.full() and not q.empty()
        with pytest.raises(Full):
            await q.put_async("b", timeout=0.1)
        with pytest.raises(Full):
            await q.put_async("b", block=False)
        got = [await q.get_async()]
        with pytest.raises(Empty):
            await q.get_async(timeout=0.1)
        with pytest.raises(Empty):
            await q.get_async(block=False)
        await q.put_async("c")
        got.append(await q.get_async(block=False))
        return got

    assert asyncio.run(main()) == ["a", "c"]
    with pytest.raises(ValueError, match="timeout"):
        q.get(timeout=-1)
    started = time.monotonic()
    q.shutdown()  # graceful: the actor ends at once, without waiting out the grace period
    assert time.monotonic() - started < 4
    with pytest.raises(RuntimeError, match="shut down"):
        q.put(1)
    q.shutdown()  # twice is fine


def _slow_square(x: int) -> int:
    if x == 0:
        time.sleep(1.5)
    return x * x


def test_pool_imap_iterators_take_a_timeout(ray_2cpu: Any) -> None:
    with Pool(2) as pool:
        ordered = pool.imap(_slow_square, range(4))
        with pytest.raises(multiprocessing.TimeoutError):
            ordered.next(timeout=0.1)  # item 0 is still sleeping
        assert [ordered.next(timeout=60) for _ in range(4)] == [0, 1, 4, 9]
        with pytest.raises(StopIteration):
            ordered.next()
        unordered = pool.imap_unordered(_slow_square, range(4))
        first = unordered.next(timeout=60)
        assert first in {1, 4, 9}  # not the sleeping one
        assert sorted([first, *unordered]) == [0, 1, 4, 9]


def _mark(path: str) -> None:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")


def _fail_init() -> None:
    raise RuntimeError("no database here")


def test_pool_initializer_has_run_when_the_pool_starts(ray_2cpu: Any, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    with Pool(2, initializer=_mark, initargs=(str(marks),)):
        assert len(marks.read_text().split()) == 2  # no work submitted yet
    with pytest.raises(Exception, match="no database here"):
        Pool(1, initializer=_fail_init)


@ray.remote
class Recorder:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def double(self, x: int) -> int:
        self.seen.append(x)
        if x < 0:
            time.sleep(0.5)
        return 2 * x

    @ray.method(num_returns=2)
    def split(self, x: int) -> tuple[int, int]:
        return x, -x

    def calls(self) -> list[Any]:
        return self.seen


def test_actor_pool_map_is_eager_ignores_earlier_work_and_takes_several_returns(
    ray_2cpu: Any,
) -> None:
    actors = [Recorder.remote(), Recorder.remote()]
    pool = ActorPool(actors)
    pool.submit(lambda a, v: a.double.remote(v), -1)  # before the map: never yielded
    results = pool.map(lambda a, v: a.double.remote(v), [1, 2, 3])
    # submitted when map() was called, before anyone iterates: the free actor has 1
    deadline = time.monotonic() + 60
    while 1 not in [x for a in actors for x in ray.get(a.calls.remote())]:
        assert time.monotonic() < deadline, "map() did not submit its work eagerly"
        time.sleep(0.05)
    assert list(results) == [2, 4, 6]
    assert not pool.has_next()
    pairs = ActorPool(actors).map(lambda a, v: a.split.remote(v), [1, 2])
    assert list(pairs) == [[1, -1], [2, -2]]
    unordered = pool.map_unordered(lambda a, v: a.double.remote(v), [5, 6, 7])
    assert sorted(unordered) == [10, 12, 14]


@ray.remote
def _sleep_then(x: float) -> float:
    time.sleep(x)
    return x


def test_as_completed_and_map_unordered_yield_as_results_finish(ray_2cpu: Any) -> None:
    refs = [_sleep_then.remote(x) for x in (1.0, 0.0)]
    assert list(ray.util.as_completed(refs, chunk_size=1)) == [0.0, 1.0]
    got = list(ray.util.as_completed(refs, yield_obj_refs=True))
    assert sorted(ray.get(got)) == [0.0, 1.0]
    values = list(ray.util.map_unordered(_sleep_then, [0.6, 0.0, 0.0], chunk_size=1))
    assert values[-1] == 0.6 and sorted(values) == [0.0, 0.0, 0.6]
    limited = ray.util.map_unordered(_sleep_then, [0.0] * 5, backpressure_size=2, chunk_size=1)
    assert list(limited) == [0.0] * 5
    with pytest.raises(TypeError, match="remote function"):
        list(ray.util.map_unordered(lambda x: x, [1]))
    with pytest.raises(ValueError, match="chunk_size"):
        list(ray.util.as_completed(refs, chunk_size=0))


def test_small_ray_names_wait_empty_as_future_objectid_state_lookups(ray_2cpu: Any) -> None:
    assert ray.wait([]) == ([], [])
    assert ray.ObjectID is ray.ObjectRef

    async def main() -> int:
        future = ray.put(41).as_future()
        assert isinstance(future, asyncio.Future)
        return int(await future) + 1

    assert asyncio.run(main()) == 42
    counter = Recorder.remote()
    ray.get(counter.double.remote(1))
    actor = ray.util.state.get_actor(counter._ray_actor_id)
    assert actor is not None and actor.class_name == "Recorder" and actor.state == "ALIVE"
    assert ray.util.state.get_actor("00" * 16) is None
    calls = ray.util.state.list_tasks(filters=[("name", "=", "Recorder.double")])
    assert [t.kind for t in calls] == ["actor_method"]
