"""Start-up: importing the backend, and init() to the first task result.

Both run before anything else in a fresh suite process (``run.py`` starts extra fresh
processes for them in a full run, since one sample per process is all there is).
"""

from __future__ import annotations

import importlib
import time

from .registry import Context, Target, benchmark


@benchmark(
    "import",
    "import",
    unit="s",
    group="startup",
    higher_is_better=False,
    needs_init=False,
)
def import_time(ctx: Context) -> list[float]:
    """Seconds for `import <backend>` and a first use of its API (`<backend>.remote`, as
    jupyter_ray loads its facade on first use) in a fresh process that has already
    imported numpy (a notebook usually has)."""
    start = time.perf_counter()
    ctx.module = importlib.import_module(ctx.backend)
    ctx.module.remote  # noqa: B018 - the attribute access is what is timed
    return [time.perf_counter() - start]


@benchmark(
    "init_first_result",
    "init to first result",
    unit="s",
    group="startup",
    higher_is_better=False,
    needs_init=False,
    targets=(Target("at_most", 0.5),),
)
def init_first_result(ctx: Context) -> list[float]:
    """Seconds from calling `init(num_cpus=2, include_dashboard=False)` to holding the
    result of `get()` on a trivial task: what a notebook user waits for before their
    first answer."""
    ray = ctx.api

    def one() -> int:
        return 1

    remote_one = ray.remote(one)
    start = time.perf_counter()
    ctx.init()
    value = ray.get(remote_one.remote())
    elapsed = time.perf_counter() - start
    if value != 1:
        raise AssertionError(f"first task returned {value!r}, expected 1")
    return [elapsed]
