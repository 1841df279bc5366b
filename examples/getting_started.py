"""Getting started with jupyter_ray: start a runtime, run tasks, share objects, wait.

Run it with ``python examples/getting_started.py``. Any Ray program written against
``import ray`` runs the same way after ``import jupyter_ray as ray``.
"""

from __future__ import annotations

import time

import jupyter_ray as ray


@ray.remote
def square(x: int) -> int:
    """A remote function: calling ``square.remote(x)`` runs it in a worker process."""
    return x * x


@ray.remote
def scale(values: list[int], factor: int) -> list[int]:
    return [v * factor for v in values]


@ray.remote
def sleepy_echo(value: str, seconds: float) -> str:
    time.sleep(seconds)
    return value


def main() -> None:
    started = time.perf_counter()
    ray.init(num_cpus=2)
    try:
        # Tasks: .remote() returns an ObjectRef at once; ray.get waits for the values.
        refs = [square.remote(i) for i in range(8)]
        print("squares:", ray.get(refs))

        # put/get: store an object once, pass the ref to tasks (they receive the value).
        data_ref = ray.put([1, 2, 3])
        print("put/get:", ray.get(data_ref))
        print("scaled by a task:", ray.get(scale.remote(data_ref, 10)))

        # wait: take results as they finish, not in submission order.
        slow = sleepy_echo.remote("slow", 0.5)
        fast = sleepy_echo.remote("fast", 0.05)
        ready, not_ready = ray.wait([slow, fast], num_returns=1)
        print("first finished:", ray.get(ready[0]))
        print("then:", ray.get(not_ready[0]))
    finally:
        ray.shutdown()
    print(f"done in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
