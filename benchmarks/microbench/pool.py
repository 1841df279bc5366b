"""``util.multiprocessing.Pool``: map work over a pool of processes, both backends.

Information rows (no target): both backends ship the same Pool API, built on actors.
"""

from __future__ import annotations

import importlib
from typing import Any

from .registry import Context, benchmark


def _pool(ctx: Context) -> Any:
    module = importlib.import_module(f"{ctx.api.__name__}.util.multiprocessing")
    return module.Pool(2)


@benchmark("pool_map", "Pool.map, one item per call", unit="items/s", group="pool")
def pool_map(ctx: Context) -> list[float]:
    """`Pool(2).map(f, range(N), chunksize=1)`: one actor call per item, results in
    order."""
    n = ctx.n(2000, 200)

    def square(x: int) -> int:  # defined here: shipped by value, as from a notebook
        return x * x

    with _pool(ctx) as pool:
        return ctx.rounds(lambda: pool.map(square, range(n), chunksize=1), ops=n)


@benchmark("pool_imap_unordered", "Pool.imap_unordered", unit="items/s", group="pool")
def pool_imap_unordered(ctx: Context) -> list[float]:
    """`list(Pool(2).imap_unordered(f, range(N)))`: one call per item, each result taken
    as soon as it is done."""
    n = ctx.n(2000, 200)

    def square(x: int) -> int:
        return x * x

    with _pool(ctx) as pool:
        return ctx.rounds(lambda: list(pool.imap_unordered(square, range(n))), ops=n)
