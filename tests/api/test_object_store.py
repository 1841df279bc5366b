"""The shared-memory object store: zero copy, reference counting, spilling."""

from __future__ import annotations

import gc
import os
import time
from typing import Any

import numpy as np
from _wait import eventually as _eventually

import jupyter_ray as ray

MiB = 1 << 20


def _stats() -> dict[str, int]:
    return dict(ray._client.require_client().query("store_stats"))


@ray.remote
def total(a: np.ndarray) -> float:
    return float(a.sum())


@ray.remote
def make(n: int, value: float) -> np.ndarray:
    return np.full(n, value)


def test_small_values_round_trip(ray_2cpu: Any) -> None:
    for value in [1, "text", {"a": [1, 2]}, None, b"\x00" * 10, (1.5, True)]:
        assert ray.get(ray.put(value)) == value


def test_large_array_get_is_a_read_only_view_without_copy(ray_2cpu: Any) -> None:
    arr = np.random.default_rng(0).random(4 * MiB // 8)
    ref = ray.put(arr)
    a = ray.get(ref)
    b = ray.get(ref)
    np.testing.assert_array_equal(a, arr)
    assert not a.flags.writeable
    assert np.shares_memory(a, b), "two gets of one object should map the same memory"
    assert _stats()["used"] >= arr.nbytes


def test_task_reads_large_argument_from_the_store(ray_2cpu: Any) -> None:
    arr = np.arange(2 * MiB, dtype=np.float64)
    ref = ray.put(arr)
    assert ray.get([total.remote(ref) for _ in range(4)]) == [float(arr.sum())] * 4
    # passed by value, a large array is put in the store for the task
    assert ray.get(total.remote(arr)) == float(arr.sum())


def test_large_task_results_live_in_the_store(ray_2cpu: Any) -> None:
    ref = make.remote(MiB, 2.0)
    out = ray.get(ref)
    assert out.shape == (MiB,) and float(out.sum()) == 2.0 * MiB
    assert ray.get(total.remote(ref)) == 2.0 * MiB


def test_large_result_outlives_the_worker_that_wrote_it(ray_2cpu: Any) -> None:
    # max_calls=1: the worker exits right after writing the result into the store. The
    # store used to free the result's range with the worker, so later puts reused it and
    # the result read back as their data.
    @ray.remote(max_calls=1, num_returns=2)
    def ones(n: int) -> tuple[int, np.ndarray]:
        return os.getpid(), np.ones(n, dtype=np.uint8)

    client = ray._client.require_client()
    pid_ref, ref = ones.remote(8 * MiB)
    pid = ray.get(pid_ref)
    _eventually(lambda: pid not in client.query("worker_pids"))  # exited and reaped
    others = [ray.put(np.full(8 * MiB, 7, dtype=np.uint8)) for _ in range(3)]
    value = ray.get(ref)
    assert int(value.sum()) == 8 * MiB
    assert all(int(ray.get(r)[0]) == 7 for r in others)


def test_object_is_freed_when_the_last_ref_goes(ray_2cpu: Any) -> None:
    base = _stats()["used"]
    ref = ray.put(np.ones(8 * MiB // 8))
    assert _stats()["used"] >= base + 8 * MiB
    del ref
    gc.collect()
    _eventually(lambda: _stats()["used"] == base)


def test_view_outlives_its_ref_and_memory_is_not_reused_under_it(ray_2cpu: Any) -> None:
    arr = np.arange(MiB, dtype=np.int64)
    view = ray.get(ray.put(arr))  # the ref is gone at once; the view is not
    for _ in range(5):
        ray.put(np.full(MiB, -1, dtype=np.int64))
    gc.collect()
    np.testing.assert_array_equal(view, arr)
    used_with_view = _stats()["used"]
    del view
    gc.collect()
    _eventually(lambda: _stats()["used"] < used_with_view)


def test_object_lives_while_a_pending_task_or_container_holds_it(ray_2cpu: Any) -> None:
    @ray.remote
    def slow_sum(refs: list[ray.ObjectRef]) -> float:
        time.sleep(0.5)
        return float(sum(ray.get(r).sum() for r in refs))

    inner = ray.put(np.ones(MiB))
    outer = ray.put([inner])  # a stored list holding a ref
    pending = slow_sum.remote([inner])
    del inner
    gc.collect()
    time.sleep(0.2)
    assert ray.get(pending) == float(MiB)
    (again,) = ray.get(outer)
    assert float(ray.get(again).sum()) == float(MiB)


def test_store_spills_to_disk_and_nothing_referenced_is_lost(ray_start: Any) -> None:
    ray_start(object_store_memory=32 * MiB)
    refs = [ray.put(np.full(6 * MiB // 8, i, dtype=np.float64)) for i in range(12)]
    assert _stats()["spilled"] > 0
    for i, ref in enumerate(refs):
        arr = ray.get(ref)
        assert arr[0] == i and arr[-1] == i
        del arr
    assert ray.get([total.remote(r) for r in refs]) == [i * 6 * MiB / 8 for i in range(12)]
    del refs, ref
    gc.collect()
    _eventually(lambda: _stats()["spilled"] == 0 and _stats()["used"] == 0)


def test_object_larger_than_the_store_still_works(ray_start: Any) -> None:
    ray_start(object_store_memory=8 * MiB)
    arr = np.arange(4 * MiB, dtype=np.float32)  # 16 MiB
    ref = ray.put(arr)
    np.testing.assert_array_equal(ray.get(ref), arr)
    assert ray.get(total.remote(ref)) == float(arr.sum())


def test_put_then_get_many_small_objects(ray_2cpu: Any) -> None:
    refs = [ray.put(i) for i in range(1000)]
    assert ray.get(refs) == list(range(1000))
