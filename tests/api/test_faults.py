"""Failures as a Ray user meets them: crashed workers, retries, task errors, cancellation.

Tasks count their attempts in files under ``tmp_path`` (a worker killed with SIGKILL
cannot report anything else), and tasks that must stay busy wait for a release file
rather than sleep a guessed time.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jupyter_ray.runtime.client import context

import jupyter_ray as ray
from jupyter_ray.exceptions import RayTaskError, TaskCancelledError, WorkerCrashedError

POOL_SIZE = 2  # ray_2cpu starts one worker per CPU


# --- helpers (also run inside workers) -----------------------------------------------


def wait_until(cond: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Retry ``cond`` every 20 ms until it is truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _attempt(path: str) -> int:
    """Record one attempt in ``path``; return how many attempts there have been so far."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return count_attempts(path)


def count_attempts(path: str | Path) -> int:
    try:
        with open(path) as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0


def _touch(path: str, text: str = "") -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)  # readers never see a half-written file


def pool_pids() -> list[int]:
    return [w["pid"] for w in ray._client.require_client().query("workers")]


def assert_pool_recovers(dead_pid: int | None = None, timeout: float = 30.0) -> None:
    """The node replaces lost workers: back to POOL_SIZE, without the dead one."""
    wait_until(
        lambda: len(pool_pids()) == POOL_SIZE and dead_pid not in pool_pids(),
        f"the worker pool to be back at {POOL_SIZE} workers (dead pid {dead_pid})",
        timeout,
    )


class FlakyError(Exception):
    pass


class OtherError(Exception):
    pass


class LockedError(Exception):
    """Cannot be pickled: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def _slow_restore(path: str) -> str:
    _touch(path)
    time.sleep(0.5)  # stands in for a heavy import; a cancel arrives meanwhile
    return path


class SlowToUnpickle:
    """Takes 0.5 s to unpickle in a worker, and says when that starts."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (_slow_restore, (self.path,))


@ray.remote
def add(a: int, b: int) -> int:
    return a + b


@ray.remote
def die_first(path: str, deaths: int) -> int:
    """SIGKILL its own worker on the first ``deaths`` attempts, then return the attempt."""
    n = _attempt(path)
    if n <= deaths:
        os.kill(os.getpid(), signal.SIGKILL)
    return n


@ray.remote
def flaky(path: str, failures: int, kind: str) -> int:
    """Raise on the first ``failures`` attempts, then return the attempt number."""
    n = _attempt(path)
    if n <= failures:
        if kind == "flaky":
            raise FlakyError(f"flaky attempt {n}")
        raise OtherError(f"other attempt {n}")
    return n


@ray.remote
def block(started: str, release: str) -> int:
    """Say it started, then wait (at most 30 s) for ``release`` to exist; returns its pid."""
    _touch(started, str(os.getpid()))
    deadline = time.monotonic() + 30
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.getpid()


@ray.remote
def sleeper(started: str, sleep_s: float = 30.0) -> str:
    _touch(started, str(os.getpid()))
    time.sleep(sleep_s)
    return "slept"


@ray.remote
def child(marker_dir: str, i: int) -> int:
    """Runs until cancelled (records that it was) or until the release file appears."""
    _touch(f"{marker_dir}/child{i}.started")
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(f"{marker_dir}/release") and time.monotonic() < deadline:
            time.sleep(0.02)
    except TaskCancelledError:
        _touch(f"{marker_dir}/child{i}.cancelled")
        raise
    _touch(f"{marker_dir}/child{i}.done")
    return i


@ray.remote
def parent(marker_dir: str) -> list[int]:
    return ray.get([child.remote(marker_dir, i) for i in range(2)])


@ray.remote
def marker(path: str) -> str:
    _touch(path)
    return "ran"


@ray.remote
def worker_pid() -> int:
    return os.getpid()


@ray.remote
def raise_unpicklable() -> None:
    raise LockedError("holding a lock")


@ray.remote
def fail_upstream() -> int:
    raise ValueError("upstream broke")


def started_pid(path: Path) -> int:
    """Wait until a task wrote its pid to ``path``; return it."""
    text = wait_until(lambda: path.exists() and path.read_text(), f"{path.name} to start")
    return int(text)


# --- crashed workers -------------------------------------------------------------------


def test_worker_killed_mid_task_is_retried_and_the_result_arrives(
    ray_2cpu: Any, tmp_path: Path
) -> None:
    path = tmp_path / "attempts"
    assert ray.get(die_first.options(max_retries=2).remote(str(path), 2), timeout=60) == 3
    assert count_attempts(path) == 3
    assert_pool_recovers()
    assert ray.get(add.remote(1, 2)) == 3


def test_crash_without_retries_raises_worker_crashed_and_the_pool_recovers(
    ray_2cpu: Any, tmp_path: Path
) -> None:
    path = tmp_path / "attempts"
    before = set(wait_until(lambda: len(pool_pids()) == POOL_SIZE and pool_pids(), "the pool"))
    ref = die_first.options(max_retries=0).remote(str(path), 99)
    with pytest.raises(WorkerCrashedError, match="die_first") as info:
        ray.get(ref, timeout=60)
    assert not isinstance(info.value, RayTaskError)
    assert count_attempts(path) == 1
    with open(path) as f:
        dead = int(f.read().split()[0])
    assert dead in before
    assert_pool_recovers(dead)
    assert ray.get([add.remote(i, 1) for i in range(4)]) == [1, 2, 3, 4]


def test_max_retries_defaults_to_three(ray_2cpu: Any, tmp_path: Path) -> None:
    path = tmp_path / "attempts"
    with pytest.raises(WorkerCrashedError, match="die_first"):
        ray.get(die_first.remote(str(path), 99), timeout=60)
    assert count_attempts(path) == 4
    assert_pool_recovers()
    assert ray.get(add.remote(2, 3)) == 5
    assert ray.available_resources()["CPU"] == POOL_SIZE  # no CPU leaked by the crashes


# --- application errors -----------------------------------------------------------------


def test_application_errors_are_not_retried_by_default(ray_2cpu: Any, tmp_path: Path) -> None:
    path = tmp_path / "attempts"
    with pytest.raises(FlakyError, match="flaky attempt 1"):
        ray.get(flaky.remote(str(path), 1, "flaky"))
    assert count_attempts(path) == 1


@pytest.mark.parametrize("retry", [True, [FlakyError]], ids=["true", "listed"])
def test_retry_exceptions_retries_application_errors(
    ray_2cpu: Any, tmp_path: Path, retry: Any
) -> None:
    path = tmp_path / "attempts"
    ref = flaky.options(retry_exceptions=retry, max_retries=3).remote(str(path), 2, "flaky")
    assert ray.get(ref) == 3
    assert count_attempts(path) == 3


def test_exception_not_listed_in_retry_exceptions_is_not_retried(
    ray_2cpu: Any, tmp_path: Path
) -> None:
    path = tmp_path / "attempts"
    ref = flaky.options(retry_exceptions=[FlakyError], max_retries=3).remote(str(path), 5, "other")
    with pytest.raises(OtherError, match="other attempt 1") as info:
        ray.get(ref)
    assert isinstance(info.value, RayTaskError)
    assert count_attempts(path) == 1


def test_retries_exhausted_raise_the_last_error_with_its_remote_traceback(
    ray_2cpu: Any, tmp_path: Path
) -> None:
    path = tmp_path / "attempts"
    ref = flaky.options(retry_exceptions=True, max_retries=2).remote(str(path), 99, "flaky")
    with pytest.raises(RayTaskError) as info:
        ray.get(ref)
    err = info.value
    assert isinstance(err, FlakyError)
    assert count_attempts(path) == 3
    assert "flaky attempt 3" in str(err)  # the last attempt's error, not the first
    assert err.function_name == "flaky"
    assert "in flaky" in err.traceback_str
    assert 'raise FlakyError(f"flaky attempt {n}")' in err.traceback_str
    assert "FlakyError: flaky attempt 3" in err.traceback_str
    assert 'raise FlakyError(f"flaky attempt {n}")' in str(err)  # shown in the driver too


def test_unpicklable_exception_still_reaches_the_driver(ray_2cpu: Any) -> None:
    with pytest.raises(RayTaskError) as info:
        ray.get(raise_unpicklable.remote())
    err = info.value
    assert err.cause_repr == repr(LockedError("holding a lock"))
    assert "raise_unpicklable" in str(err)
    assert "LockedError: holding a lock" in str(err)
    assert ray.get(add.remote(1, 1)) == 2


def test_downstream_task_raises_the_upstream_error_type(ray_2cpu: Any, tmp_path: Path) -> None:
    ref = add.remote(fail_upstream.remote(), 1)
    with pytest.raises(ValueError, match="upstream broke") as info:
        ray.get(ref)
    assert isinstance(info.value, RayTaskError)
    assert "fail_upstream" in str(info.value)

    crashed = die_first.options(max_retries=0).remote(str(tmp_path / "attempts"), 99)
    with pytest.raises(WorkerCrashedError, match="die_first"):
        ray.get(add.remote(crashed, 1), timeout=60)

    release = str(tmp_path / "release")
    cancelled = block.remote(str(tmp_path / "started"), release)
    after_cancelled = add.remote(cancelled, 1)
    started_pid(tmp_path / "started")
    ray.cancel(cancelled, force=True)
    with pytest.raises(TaskCancelledError):
        ray.get(after_cancelled, timeout=20)


# --- cancellation --------------------------------------------------------------------------


def test_cancel_a_task_queued_behind_busy_cpus(ray_2cpu: Any, tmp_path: Path) -> None:
    release = str(tmp_path / "release")
    busy = [block.remote(str(tmp_path / f"busy{i}"), release) for i in range(2)]
    for i in range(2):
        started_pid(tmp_path / f"busy{i}")
    queued = marker.remote(str(tmp_path / "queued-ran"))
    ray.cancel(queued)
    with pytest.raises(TaskCancelledError):
        ray.get(queued, timeout=10)
    _touch(release)
    ray.get(busy, timeout=30)
    # both CPUs are free again; a task submitted now runs, the cancelled one never did
    assert ray.get(marker.remote(str(tmp_path / "after-ran"))) == "ran"
    assert not (tmp_path / "queued-ran").exists()


def test_cancel_a_task_waiting_for_an_unready_argument(ray_2cpu: Any, tmp_path: Path) -> None:
    release = str(tmp_path / "release")
    upstream = block.remote(str(tmp_path / "up"), release)
    downstream = add.remote(upstream, 1)
    ray.cancel(downstream)
    with pytest.raises(TaskCancelledError):
        ray.get(downstream, timeout=10)
    _touch(release)
    assert isinstance(ray.get(upstream, timeout=30), int)  # the upstream task is untouched


def test_cancel_interrupts_a_running_task_quickly(ray_2cpu: Any, tmp_path: Path) -> None:
    ref = sleeper.remote(str(tmp_path / "started"), 30.0)
    pid = started_pid(tmp_path / "started")
    t0 = time.monotonic()
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=20)
    assert time.monotonic() - t0 < 5
    assert pid in pool_pids()  # a polite cancel leaves the worker alive
    assert ray.get(add.remote(1, 2)) == 3


def test_cancel_right_after_submit_never_runs_the_whole_task(ray_2cpu: Any, tmp_path: Path) -> None:
    for i in range(5):
        ref = sleeper.remote(str(tmp_path / f"started{i}"), 30.0)
        ray.cancel(ref)
        t0 = time.monotonic()
        with pytest.raises(TaskCancelledError):
            ray.get(ref, timeout=20)
        assert time.monotonic() - t0 < 5


def test_cancel_that_reaches_the_worker_before_the_task_starts(
    ray_2cpu: Any, tmp_path: Path
) -> None:
    # The worker is still loading the function (as a first call that imports a heavy
    # module would) when the cancel arrives; the task must not run once loading ends.
    wait_until(lambda: len(pool_pids()) == POOL_SIZE, "the worker pool to start")
    heavy = SlowToUnpickle(str(tmp_path / "loading"))
    ran = str(tmp_path / "ran")

    @ray.remote
    def slow_to_load() -> str:
        _touch(ran, str(heavy))
        time.sleep(30)
        return "slept"

    ref = slow_to_load.remote()
    wait_until((tmp_path / "loading").exists, "the worker to start loading the function")
    t0 = time.monotonic()
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=20)
    assert time.monotonic() - t0 < 5
    assert not os.path.exists(ran)
    assert ray.get(add.remote(1, 2)) == 3


def test_force_cancel_kills_the_worker_and_the_pool_recovers(ray_2cpu: Any, tmp_path: Path) -> None:
    ref = sleeper.remote(str(tmp_path / "started"), 30.0)
    pid = started_pid(tmp_path / "started")
    t0 = time.monotonic()
    ray.cancel(ref, force=True)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=20)
    assert time.monotonic() - t0 < 5
    assert_pool_recovers(pid)
    assert ray.get(add.remote(3, 4)) == 7
    assert ray.available_resources()["CPU"] == POOL_SIZE  # the killed task's CPU is back


def test_cancelling_a_finished_task_is_harmless(ray_2cpu: Any) -> None:
    ref = add.remote(1, 2)
    assert ray.get(ref) == 3
    assert_pool_recovers()
    pids = set(pool_pids())
    ray.cancel(ref)
    ray.cancel(ref, force=True)
    assert ray.get(ref) == 3
    assert ray.get(add.remote(ref, 1)) == 4
    assert set(pool_pids()) == pids  # no worker was killed for it


def test_cancelling_a_parent_cancels_its_children(ray_2cpu: Any, tmp_path: Path) -> None:
    d = str(tmp_path)
    ref = parent.remote(d)
    for i in range(2):
        wait_until((tmp_path / f"child{i}.started").exists, f"child {i} to start")
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=20)
    for i in range(2):
        # a child left running would only stop after 30 s
        wait_until(
            (tmp_path / f"child{i}.cancelled").exists, f"child {i} to be cancelled", timeout=10
        )
        assert not (tmp_path / f"child{i}.done").exists()


def test_cancel_with_recursive_false_leaves_children_running(ray_2cpu: Any, tmp_path: Path) -> None:
    d = str(tmp_path)
    ref = parent.remote(d)
    for i in range(2):
        wait_until((tmp_path / f"child{i}.started").exists, f"child {i} to start")
    ray.cancel(ref, recursive=False)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=20)
    _touch(f"{d}/release")
    for i in range(2):
        wait_until((tmp_path / f"child{i}.done").exists, f"child {i} to finish", timeout=10)
        assert not (tmp_path / f"child{i}.cancelled").exists()


# --- max_calls ---------------------------------------------------------------------------------


def test_max_calls_one_runs_each_call_in_a_fresh_worker(ray_2cpu: Any) -> None:
    once = worker_pid.options(max_calls=1)
    pids = [ray.get(once.remote(), timeout=30) for _ in range(3)]
    assert len(set(pids)) == 3
    # the used-up workers exit
    wait_until(lambda: not set(pids) & set(pool_pids()), "max_calls workers to exit")
    assert ray.get(add.remote(1, 1)) == 2


def test_pool_refills_after_max_calls_workers_exit(ray_2cpu: Any) -> None:
    # Workers that leave after max_calls are replaced like crashed ones, so the next
    # task finds a warm worker instead of waiting for one to start.
    once = worker_pid.options(max_calls=1)
    pids = ray.get([once.remote() for _ in range(POOL_SIZE)], timeout=30)
    wait_until(lambda: not set(pids) & set(pool_pids()), "max_calls workers to exit")
    assert_pool_recovers(timeout=10)  # a replacement starts in well under a second


def test_interrupting_a_cell_cancels_its_tasks_and_theirs_only(
    ray_start: Any, tmp_path: Path
) -> None:
    # What the kernel side does on an interrupt: cancel what the cell started, including
    # tasks those tasks started, and nothing another cell started.
    ray_start(num_cpus=4)
    other = tmp_path / "other"
    other.mkdir()
    try:
        context.cell_id_provider = lambda: ("cell-A", 1)
        ref = parent.remote(str(tmp_path))
        context.cell_id_provider = lambda: ("cell-B", 2)
        unrelated = child.remote(str(other), 9)
    finally:
        context.cell_id_provider = None
    for i in range(2):
        wait_until((tmp_path / f"child{i}.started").exists, f"child {i} to start")
    wait_until((other / "child9.started").exists, "the other cell's task to start")
    ray._client.require_client().cancel_cell("cell-A")
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=20)
    for i in range(2):
        wait_until(
            (tmp_path / f"child{i}.cancelled").exists, f"child {i} to be cancelled", timeout=10
        )
    _touch(str(other / "release"))
    assert ray.get(unrelated, timeout=30) == 9


def test_a_cancel_that_comes_before_the_worker_is_ready_is_not_lost(ray_2cpu: Any) -> None:
    # A task can reach a worker that has only just connected, and its cancel right after
    # it, before the worker set its cancel handler; that cancel used to be dropped, and
    # the task ran to its end. The client keeps such cancels for the handler.
    from jupyter_ray.runtime.common import protocol as p

    client = ray._client.require_client()
    early, later = p.CancelTask(b"e" * 16, False), p.CancelTask(b"l" * 16, False)
    client._on_message(early)  # as the reader thread would, with no handler yet
    seen: list[Any] = []
    client.set_cancel_handler(seen.append)
    client._on_message(later)
    assert seen == [early, later]


# --- get raises the first error it knows of --------------------------------------------


@ray.remote
def hold(release: str) -> str:
    """Run until the test writes ``release`` (a task that is still busy when asked)."""
    while not os.path.exists(release):
        time.sleep(0.01)
    return "released"


def test_get_of_a_list_raises_a_failure_while_the_others_still_run(
    ray_2cpu: Any, tmp_path: Path
) -> None:
    release = str(tmp_path / "release")
    slow = hold.remote(release)
    bad = flaky.remote(str(tmp_path / "bad"), 1, "flaky")
    try:
        with pytest.raises(FlakyError, match="flaky attempt 1"):
            ray.get([slow, bad])  # would block until the release without fail-fast
        with pytest.raises(FlakyError):
            ray.get([slow, bad], timeout=600)  # an error, not a GetTimeoutError later
        with pytest.raises(ray.exceptions.GetTimeoutError):
            ray.get([slow], timeout=0.2)  # and slow was indeed still running
    finally:
        _touch(release)
    assert ray.get(slow) == "released"


def test_async_forms_raise_a_failure_while_the_others_still_run(
    ray_2cpu: Any, tmp_path: Path
) -> None:
    import asyncio

    release = str(tmp_path / "release")
    slow = hold.remote(release)
    bad = flaky.remote(str(tmp_path / "bad"), 1, "flaky")

    async def main() -> None:
        with pytest.raises(FlakyError):
            await asyncio.gather(slow, bad)
        with pytest.raises(FlakyError):
            await bad
        assert not slow.future().done()  # slow was indeed still running

    try:
        asyncio.run(main())
    finally:
        _touch(release)
    assert ray.get(slow) == "released"
