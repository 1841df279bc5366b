"""Actor concurrency groups: named limits on how many calls of a kind run at once."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import jupyter_ray as ray
from jupyter_ray.exceptions import RayTaskError


@ray.remote(concurrency_groups={"io": 2, "compute": 1})
class Threaded:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def _enter(self, group: str) -> None:
        with self.lock:
            self.running[group] = self.running.get(group, 0) + 1
            self.peak[group] = max(self.peak.get(group, 0), self.running[group])

    def _leave(self, group: str) -> None:
        with self.lock:
            self.running[group] -= 1

    @ray.method(concurrency_group="io")
    def io(self, seconds: float) -> str:
        self._enter("io")
        time.sleep(seconds)
        self._leave("io")
        return threading.current_thread().name

    @ray.method(concurrency_group="compute")
    def compute(self, seconds: float) -> str:
        self._enter("compute")
        time.sleep(seconds)
        self._leave("compute")
        return threading.current_thread().name

    def default(self) -> str:
        return threading.current_thread().name

    def peaks(self) -> dict[str, int]:
        return dict(self.peak)


def test_each_group_runs_its_own_number_of_calls_at_once(ray_2cpu: Any) -> None:
    actor = Threaded.remote()
    refs = [actor.io.remote(0.4) for _ in range(4)] + [actor.compute.remote(0.4) for _ in range(2)]
    # the default group is not stuck behind busy groups
    assert ray.get(actor.default.remote(), timeout=30) == "MainThread"
    names = ray.get(refs, timeout=60)
    assert all(n.startswith("actor-io") for n in names[:4])
    assert all(n.startswith("actor-compute") for n in names[4:])
    # at most the group's size at once; io's calls did overlap (0.4 s each, 2 threads)
    assert ray.get(actor.peaks.remote()) == {"io": 2, "compute": 1}
    # a call can be put in a group for once
    per_call = actor.default.options(concurrency_group="io").remote()
    assert ray.get(per_call).startswith("actor-io")


def test_async_actor_groups(ray_2cpu: Any) -> None:
    @ray.remote(concurrency_groups={"slow": 1})
    class Async:
        def __init__(self) -> None:
            self.active = 0
            self.peak = 0

        @ray.method(concurrency_group="slow")
        async def slow(self) -> None:
            self.active += 1
            self.peak = max(self.peak, self.active)
            await asyncio.sleep(0.1)
            self.active -= 1

        async def fast(self) -> int:
            return self.peak

    actor = Async.remote()
    ray.get([actor.slow.remote() for _ in range(4)], timeout=30)
    assert ray.get(actor.fast.remote()) == 1


def test_bad_groups_say_what_to_do(ray_2cpu: Any) -> None:
    with pytest.raises(ValueError, match="concurrency_groups must map"):
        Threaded.options(concurrency_groups={"io": 0})
    with pytest.raises(ValueError, match="concurrency_group must be"):
        ray.method(concurrency_group="")

    @ray.remote
    class Undeclared:
        @ray.method(concurrency_group="io")
        def io(self) -> None:
            pass

    with pytest.raises(ValueError, match="does not define"):
        Undeclared.remote()
    actor = Threaded.remote()
    with pytest.raises(RayTaskError, match="not defined for this actor"):
        ray.get(actor.default.options(concurrency_group="gpu").remote(), timeout=30)
    assert ray.get(actor.default.remote()) == "MainThread"  # still fine
