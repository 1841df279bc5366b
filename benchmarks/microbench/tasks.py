"""Tasks: submission and result round trips, dependency chains, draining with wait()."""

from __future__ import annotations

from .registry import VS_RAY_2X, Context, benchmark


@benchmark("tasks_sync", "tasks, sync", unit="tasks/s", group="tasks", targets=(VS_RAY_2X,))
def tasks_sync(ctx: Context) -> list[float]:
    """`get(f.remote())` in a loop on a task that returns None: one full round trip,
    submit to result, per task."""
    ray = ctx.api

    def noop() -> None:
        return None

    f = ray.remote(noop)
    n = ctx.n(600, 100)

    def once() -> None:
        for _ in range(n):
            ray.get(f.remote())

    return ctx.rounds(once, ops=n)


@benchmark("tasks_async", "tasks, async", unit="tasks/s", group="tasks", targets=(VS_RAY_2X,))
def tasks_async(ctx: Context) -> list[float]:
    """Submit N trivial tasks, then `get` the list: submission and scheduling
    throughput when many tasks are queued."""
    ray = ctx.api

    def noop() -> None:
        return None

    f = ray.remote(noop)
    n = ctx.n(2000, 300)

    def once() -> None:
        ray.get([f.remote() for _ in range(n)])

    return ctx.rounds(once, ops=n)


@benchmark("chain", "chain of dependent tasks", unit="tasks/s", group="tasks", targets=(VS_RAY_2X,))
def chain(ctx: Context) -> list[float]:
    """`x = f.remote(x)` N times (each task takes the previous one's ref), then
    `get(x)`: every task waits for its argument, so this is dependency resolution
    latency, not parallelism."""
    ray = ctx.api

    def inc(x: int) -> int:
        return x + 1

    f = ray.remote(inc)
    n = ctx.n(500, 100)

    def once() -> None:
        x = f.remote(0)
        for _ in range(n - 1):
            x = f.remote(x)
        result = ray.get(x)
        if result != n:
            raise AssertionError(f"chain of {n} returned {result}")

    return ctx.rounds(once, ops=n)


@benchmark("wait_drain", "draining wait", unit="tasks/s", group="tasks", targets=(VS_RAY_2X,))
def wait_drain(ctx: Context) -> list[float]:
    """Submit N trivial tasks, then `ready, rest = wait(rest, num_returns=1)` until
    nothing is left: the usual "process results as they come" loop (the wait calls
    cost grows with the list, as it does in user code)."""
    ray = ctx.api

    def noop() -> None:
        return None

    f = ray.remote(noop)
    n = ctx.n(500, 100)

    def once() -> None:
        rest = [f.remote() for _ in range(n)]
        done = 0
        while rest:
            ready, rest = ray.wait(rest, num_returns=1)
            done += len(ready)
        if done != n:
            raise AssertionError(f"wait returned {done} of {n} refs")

    return ctx.rounds(once, ops=n)
