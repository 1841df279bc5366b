"""``jupyter_ray.util.multiprocessing.Pool``: the standard library's Pool, on actors."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psutil
import pytest
from _wait import eventually

import jupyter_ray as ray
from jupyter_ray.util.multiprocessing import Pool, TimeoutError

STATE: dict[str, Any] = {}


def _set_up(tag: str) -> None:
    STATE["tag"] = tag
    STATE["pid"] = os.getpid()


def _tag(_: Any) -> tuple[str, int]:
    return STATE.get("tag", ""), os.getpid()


def test_map_family_matches_the_standard_library(ray_2cpu: Any) -> None:
    offset = 10  # closures over notebook-style local state travel with the function
    with Pool(2) as pool:
        assert len(pool) == 2
        assert pool.map(lambda x: x + offset, range(20)) == [x + offset for x in range(20)]
        assert pool.map(str, [1, 2, 3], chunksize=2) == ["1", "2", "3"]
        assert pool.map(abs, []) == []
        assert list(pool.imap(lambda x: -x, range(7), chunksize=3)) == [-x for x in range(7)]
        assert sorted(pool.imap_unordered(lambda x: x * 2, range(9))) == [x * 2 for x in range(9)]
        assert pool.starmap(pow, [(2, 5), (3, 3)]) == [32, 27]
        assert pool.apply(divmod, (17, 5)) == (3, 2)
        assert pool.apply(int, ("ff",), {"base": 16}) == 255


def _meet(folder: str) -> int:
    """Wait until two calls have arrived here: passes only if they run at once."""
    open(os.path.join(folder, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 30
    while len(os.listdir(folder)) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("the other call never ran at the same time")
        time.sleep(0.01)
    return os.getpid()


def test_work_runs_in_the_pools_processes_in_parallel(ray_2cpu: Any, tmp_path: Any) -> None:
    with Pool(2) as pool:
        pids = {pid for _, pid in pool.map(_tag, range(8), chunksize=1)}
        assert len(pids) == 2 and os.getpid() not in pids
        met = pool.map(_meet, [str(tmp_path)] * 2, chunksize=1)
        assert len(set(met)) == 2


def test_initializer_runs_once_in_each_process(ray_2cpu: Any) -> None:
    with Pool(2, initializer=_set_up, initargs=("ready",)) as pool:
        tags = pool.map(_tag, range(6), chunksize=1)
        assert {tag for tag, _ in tags} == {"ready"}


def test_maxtasksperchild_replaces_processes(ray_2cpu: Any) -> None:
    with Pool(1, maxtasksperchild=2) as pool:
        pids = [pid for _, pid in pool.map(_tag, range(6), chunksize=1)]
        assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5]
        assert len(set(pids)) == 3


def test_async_results_callbacks_and_timeouts(ray_2cpu: Any) -> None:
    got: list[Any] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def on_result(value: Any) -> None:
        got.append(value)
        done.set()

    with Pool(2) as pool:
        result = pool.map_async(lambda x: x * 3, range(5), callback=on_result)
        assert result.get(timeout=30) == [0, 3, 6, 9, 12]
        assert done.wait(30) and got == [[0, 3, 6, 9, 12]]
        assert result.ready() and result.successful()

        slow = pool.apply_async(time.sleep, (30,))
        with pytest.raises(TimeoutError):
            slow.get(timeout=0.2)
        assert not slow.ready()
        with pytest.raises(ValueError, match="not ready"):
            slow.successful()

        failing = pool.apply_async(
            int, ("not a number",), error_callback=errors.append, callback=got.append
        )
        with pytest.raises(ValueError, match="not a number"):
            failing.get(timeout=30)
        eventually(lambda: len(errors) == 1)
        assert isinstance(errors[0], ValueError) and not failing.successful()


def test_errors_raise_the_functions_exception_and_the_pool_keeps_working(
    ray_2cpu: Any,
) -> None:
    def maybe_fail(x: int) -> int:
        if x == 3:
            raise KeyError(f"no {x}")
        return x

    with Pool(2) as pool:
        with pytest.raises(KeyError, match="no 3"):
            pool.map(maybe_fail, range(6))
        assert pool.map(maybe_fail, [0, 1, 2]) == [0, 1, 2]


def test_bad_input_says_what_to_do(ray_2cpu: Any) -> None:
    with pytest.raises(ValueError, match="processes"):
        Pool(0)
    with pytest.raises(ValueError, match="maxtasksperchild"):
        Pool(1, maxtasksperchild=0)
    with pytest.raises(TypeError, match="initializer"):
        Pool(1, initializer="setup")  # type: ignore[arg-type]
    with Pool(1) as pool:
        with pytest.raises(TypeError, match="callable"):
            pool.map(42, [1])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="chunksize"):
            pool.map(abs, [1], chunksize=0)
        with pytest.raises(ValueError, match="still running"):
            pool.join()
        pool.close()
        with pytest.raises(ValueError, match="Pool not running"):
            pool.map(abs, [1])


def test_close_join_lets_work_finish_and_terminate_stops_the_processes(
    ray_2cpu: Any,
) -> None:
    pool = Pool(2)
    pids = {pid for _, pid in pool.map(_tag, range(4), chunksize=1)}
    pending = pool.map_async(lambda x: (time.sleep(0.3), x)[1], range(4), chunksize=1)
    pool.close()
    pool.join()
    assert pending.ready() and pending.get() == [0, 1, 2, 3]
    eventually(lambda: not any(_alive(pid) for pid in pids))

    with Pool(2) as pool:
        pids = {pid for _, pid in pool.map(_tag, range(4), chunksize=1)}
    eventually(lambda: not any(_alive(pid) for pid in pids))
    assert ray.get(ray.put("runtime still fine")) == "runtime still fine"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
