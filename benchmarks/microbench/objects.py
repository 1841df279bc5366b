"""The object store: small and 100 MiB puts and gets, and plain numpy copies as reference.

The numpy copies run in the same process as the puts, so the "within 2x of a plain copy"
target compares figures taken under the same conditions.
"""

from __future__ import annotations

import time

import numpy as np

from .registry import GIB, MIB, VS_RAY_2X, Context, Target, benchmark

SMALL = b"x" * 1024
LARGE_BYTES = 100 * MIB
LARGE_GIB = LARGE_BYTES / GIB


def _large_array() -> np.ndarray:
    # np.ones writes every page, so the source is already touched for every figure.
    return np.ones(LARGE_BYTES // 8, dtype=np.float64)


@benchmark("put_small", "put small (1 KiB)", unit="ops/s", group="objects", targets=(VS_RAY_2X,))
def put_small(ctx: Context) -> list[float]:
    """`put(b"x" * 1024)` in a loop, dropping each ref at once."""
    ray = ctx.api
    n = ctx.n(2000, 300)

    def once() -> None:
        for _ in range(n):
            ray.put(SMALL)

    return ctx.rounds(once, ops=n)


@benchmark("get_small", "get small (1 KiB)", unit="ops/s", group="objects", targets=(VS_RAY_2X,))
def get_small(ctx: Context) -> list[float]:
    """`get(ref)` in a loop on one ref to an already-put 1 KiB bytes object."""
    ray = ctx.api
    ref = ray.put(SMALL)
    n = ctx.n(5000, 500)

    def once() -> None:
        for _ in range(n):
            ray.get(ref)

    samples = ctx.rounds(once, ops=n)
    if ray.get(ref) != SMALL:
        raise AssertionError("get returned a different value than was put")
    return samples


def _put_rounds(ctx: Context, pause: float) -> list[float]:
    ray = ctx.api
    arr = _large_array()
    ref = ray.put(arr)  # warm-up, and a check that the data arrived whole
    if float(ray.get(ref)[-1]) != 1.0:
        raise AssertionError("put of 100 MiB returned different data")
    del ref
    samples: list[float] = []
    for _ in range(ctx.n(7, 2)):
        time.sleep(pause)
        start = time.perf_counter()
        ref = ray.put(arr)
        samples.append(LARGE_GIB / (time.perf_counter() - start))
        del ref
    return samples


@benchmark(
    "put_large",
    "put 100 MiB numpy",
    unit="GiB/s",
    group="objects",
    targets=(VS_RAY_2X, Target("vs_reference", 0.5, "numpy_copy_fresh")),
    show_best=True,
)
def put_large(ctx: Context) -> list[float]:
    """`put()` of a 100 MiB float64 array, back to back: each round drops the previous
    ref and puts again at once, so the store frees one object while it takes the next
    (the loop a user writes)."""
    return _put_rounds(ctx, pause=0.0)


@benchmark(
    "put_large_settled",
    "put 100 MiB numpy, settled store",
    unit="GiB/s",
    group="objects",
    show_best=True,
)
def put_large_settled(ctx: Context) -> list[float]:
    """Like `put_large`, with an untimed 0.5 s pause before each put, so the previous
    object is freed first: the put itself, without the free racing it."""
    return _put_rounds(ctx, pause=0.5)


@benchmark(
    "put_large_kept",
    "put 100 MiB numpy, refs kept",
    unit="GiB/s",
    group="objects",
    targets=(VS_RAY_2X, Target("vs_reference", 0.5, "numpy_copy_fresh")),
    show_best=True,
    own_process=True,
)
def put_large_kept(ctx: Context) -> list[float]:
    """Five `put()`s of a 100 MiB array in a row, keeping every ref (a user building a
    list of arrays), each put timed on its own. Runs in a fresh process and runtime, so
    the five land in store memory never written before: page faults, not copying, bound
    them."""
    ray = ctx.api
    arr = _large_array()
    ray.put(arr)  # warm-up, ref dropped: the first put's one-time costs are not measured
    refs = []
    samples: list[float] = []
    for _ in range(ctx.n(5, 3)):
        start = time.perf_counter()
        refs.append(ray.put(arr))
        samples.append(LARGE_GIB / (time.perf_counter() - start))
    del refs
    return samples


@benchmark(
    "get_large",
    "get 100 MiB numpy",
    unit="GiB/s",
    group="objects",
    targets=(VS_RAY_2X,),
    show_best=True,
)
def get_large(ctx: Context) -> list[float]:
    """The first `get()` of a 100 MiB float64 array that a task returned (the task is
    finished first, with `wait`, so only the get is timed). Zero-copy stores return a
    read-only view, so this is mostly mapping and deserialization cost."""
    ray = ctx.api
    count = LARGE_BYTES // 8

    def make() -> np.ndarray:
        return np.ones(count, dtype=np.float64)

    f = ray.remote(make)
    samples: list[float] = []
    rounds = ctx.n(7, 2)
    for i in range(rounds + 1):  # the first round is a warm-up
        ref = f.remote()
        ray.wait([ref])
        start = time.perf_counter()
        value = ray.get(ref)
        elapsed = time.perf_counter() - start
        if value.nbytes != LARGE_BYTES or float(value[-1]) != 1.0:
            raise AssertionError("get of 100 MiB returned different data")
        del value, ref
        if i:
            samples.append(LARGE_GIB / elapsed)
    return samples


@benchmark(
    "first_use_large",
    "first 10 tasks taking a 100 MiB ref",
    unit="ms/task",
    group="objects",
    higher_is_better=False,
    needs_init=False,
    targets=(VS_RAY_2X,),
    own_process=True,
)
def first_use_large(ctx: Context) -> list[float]:
    """A fresh runtime each round: `init`, `put` a 100 MiB array, then the first ten
    tasks that take its ref (`f.remote(ref)`, reading only `x.nbytes`), timed from the
    first submit to the last result, per task. What the workers pay the first time they
    meet a large object: mapping the store, importing numpy."""
    ray = ctx.api
    arr = _large_array()

    def nbytes(x: np.ndarray) -> int:
        return int(x.nbytes)

    samples: list[float] = []
    for i in range(ctx.n(3, 1)):
        if i or ctx.initialized:
            ray.shutdown()
        ctx.init()
        f = ray.remote(nbytes)
        ref = ray.put(arr)
        start = time.perf_counter()
        sizes = ray.get([f.remote(ref) for _ in range(10)])
        samples.append((time.perf_counter() - start) / 10 * 1000)
        if sizes != [LARGE_BYTES] * 10:
            raise AssertionError(f"tasks saw sizes {sizes}")
        del ref
    return samples


@benchmark(
    "numpy_copy_fresh",
    "numpy copy 100 MiB, fresh memory",
    unit="GiB/s",
    group="objects",
    needs_init=False,
    show_best=True,
)
def numpy_copy_fresh(ctx: Context) -> list[float]:
    """Reference: `arr.copy()` of 100 MiB; the copy lands in newly mapped memory, so
    page faults bound it, as they bound a store that maps fresh memory per object."""
    arr = _large_array()

    def once() -> None:
        arr.copy()

    return ctx.rounds(once, ops=LARGE_GIB, repeats=ctx.n(7, 2))


@benchmark(
    "numpy_copy_touched",
    "numpy copy 100 MiB, touched memory",
    unit="GiB/s",
    group="objects",
    needs_init=False,
    show_best=True,
)
def numpy_copy_touched(ctx: Context) -> list[float]:
    """Reference: `np.copyto(dst, arr)` of 100 MiB into an array already written once:
    the memory-bandwidth ceiling for a store that reuses its memory."""
    arr = _large_array()
    dst = np.empty_like(arr)
    dst.fill(0.0)  # touch every page once, outside the timing

    def once() -> None:
        np.copyto(dst, arr)

    return ctx.rounds(once, ops=LARGE_GIB, repeats=ctx.n(7, 2))
