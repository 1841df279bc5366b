"""Actors: method calls (sync, async, on async and threaded actors) and creation.

Skipped, with the probe's error, on a backend whose actors do not work yet.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .registry import VS_RAY_2X, Context, benchmark, feature


@feature("actors")
def probe_actors(ctx: Context) -> None:
    ray = ctx.api
    ctx.ensure_init()

    class Probe:
        def ping(self) -> int:
            return 1

    handle = ray.remote(Probe).remote()
    if ray.get(handle.ping.remote(), timeout=60) != 1:
        raise AssertionError("actor probe returned a wrong value")
    ray.kill(handle)


def _counter_class() -> type:
    # Defined per call, so cloudpickle ships it by value (workers cannot import us).
    class Counter:
        def __init__(self) -> None:
            self.calls = 0

        def call(self) -> None:
            self.calls += 1

        def count(self) -> int:
            return self.calls

    return Counter


def _calls(ctx: Context, handle: Any, n: int, *, sync: bool) -> list[float]:
    ray = ctx.api

    def once() -> None:
        if sync:
            for _ in range(n):
                ray.get(handle.call.remote())
        else:
            ray.get([handle.call.remote() for _ in range(n)])

    try:
        return ctx.rounds(once, ops=n)
    finally:
        ray.kill(handle)


@benchmark(
    "actor_calls_sync",
    "1:1 actor calls, sync",
    unit="calls/s",
    group="actors",
    requires="actors",
    targets=(VS_RAY_2X,),
)
def actor_calls_sync(ctx: Context) -> list[float]:
    """`get(a.call.remote())` in a loop on one actor: a method-call round trip."""
    handle = ctx.api.remote(_counter_class()).remote()
    return _calls(ctx, handle, ctx.n(1000, 200), sync=True)


@benchmark(
    "actor_calls_async",
    "1:1 actor calls, async",
    unit="calls/s",
    group="actors",
    requires="actors",
    targets=(VS_RAY_2X,),
)
def actor_calls_async(ctx: Context) -> list[float]:
    """Submit N calls to one actor, then `get` the list (calls run in order)."""
    handle = ctx.api.remote(_counter_class()).remote()
    return _calls(ctx, handle, ctx.n(2000, 300), sync=False)


@benchmark(
    "async_actor_calls",
    "async-actor calls",
    unit="calls/s",
    group="actors",
    requires="actors",
    targets=(VS_RAY_2X,),
)
def async_actor_calls(ctx: Context) -> list[float]:
    """Submit N calls to an actor whose method is `async def` (it runs them on an event
    loop, concurrently), then `get` the list."""

    class AsyncCounter:
        def __init__(self) -> None:
            self.calls = 0

        async def call(self) -> None:
            self.calls += 1
            await asyncio.sleep(0)

    handle = ctx.api.remote(AsyncCounter).remote()
    return _calls(ctx, handle, ctx.n(2000, 300), sync=False)


@benchmark(
    "threaded_actor_calls",
    "threaded actor, concurrent calls",
    unit="calls/s",
    group="actors",
    requires="actors",
    targets=(VS_RAY_2X,),
)
def threaded_actor_calls(ctx: Context) -> list[float]:
    """Submit N calls to an actor with `max_concurrency=4` (calls run on a pool of 4
    threads), then `get` the list."""
    handle = ctx.api.remote(max_concurrency=4)(_counter_class()).remote()
    return _calls(ctx, handle, ctx.n(2000, 300), sync=False)


@benchmark(
    "create_actors",
    "create actors",
    unit="actors/s",
    group="actors",
    requires="actors",
    targets=(VS_RAY_2X,),
)
def create_actors(ctx: Context) -> list[float]:
    """Create N actors (`num_cpus=0`, so they all fit) and get one call's result from
    each: how fast a pool of actors becomes usable. N is 40 (200 with `--slow`; Ray
    needs about 0.45 s per actor on 2 cores, and a process per actor)."""
    ray = ctx.api
    n = 200 if ctx.slow else ctx.n(40, 10)
    ctx.note(f"N={n}")
    cls = ray.remote(num_cpus=0)(_counter_class())
    start = time.perf_counter()
    handles = [cls.remote() for _ in range(n)]
    ray.get([h.count.remote() for h in handles])
    elapsed = time.perf_counter() - start
    for handle in handles:
        ray.kill(handle)
    return [n / elapsed]
