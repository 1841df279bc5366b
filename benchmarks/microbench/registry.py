"""The benchmark registry, the per-process context and the timing helpers.

A benchmark is a function that takes a :class:`Context` and returns its samples, each a
figure in the benchmark's unit (one per timed round). It joins the suite with the
:func:`benchmark` decorator; the suite runs them in the order they were registered::

    @benchmark("tasks_sync", "tasks, sync", unit="tasks/s", group="tasks",
               targets=(VS_RAY_2X,))
    def tasks_sync(ctx: Context) -> list[float]:
        ray = ctx.api
        ...
        return ctx.rounds(once, ops=n)

Everything a benchmark sends to a worker (remote functions, actor classes) must be
defined inside the benchmark function, so that cloudpickle ships it by value: workers
cannot import this package, and a notebook user's code travels the same way.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

# Identical for both backends: jupyter_ray accepts include_dashboard and ignores it.
INIT_KWARGS: dict[str, Any] = {"num_cpus": 2, "include_dashboard": False}

MIB = 1 << 20
GIB = 1 << 30

# The order of the groups in a run and in the table; a new group goes in here.
GROUPS: tuple[str, ...] = ("startup", "tasks", "objects", "actors", "pool", "cluster")

TargetKind = Literal["at_most", "vs_ray", "vs_reference"]


@dataclass(frozen=True)
class Target:
    """A goal for jupyter_ray's figure of one benchmark.

    ``at_most``: the figure (lower is better) is at most ``value``.
    ``vs_ray``: jupyter_ray is at least ``value`` times better than Ray in the same run.
    ``vs_reference``: the figure is at least ``value`` times the figure of the benchmark
    named ``reference`` measured in the same process (a plain numpy copy, say).
    """

    kind: TargetKind
    value: float
    reference: str = ""

    def describe(self, unit: str) -> str:
        if self.kind == "at_most":
            return f"<= {self.value:g} {unit}"
        if self.kind == "vs_ray":
            return f">= {self.value:g}x Ray"
        return f">= {self.value:g}x {self.reference}"


VS_RAY_2X = Target("vs_ray", 2.0)


@dataclass(frozen=True)
class Benchmark:
    """One registered benchmark; see :func:`benchmark` for the fields."""

    name: str
    title: str
    unit: str
    group: str
    fn: Callable[[Context], list[float]]
    higher_is_better: bool
    needs_init: bool
    requires: str | None
    targets: tuple[Target, ...]
    show_best: bool
    own_process: bool
    doc: str


REGISTRY: dict[str, Benchmark] = {}

# feature name -> a probe that raises when the backend lacks it (see ``requires``).
FEATURES: dict[str, Callable[[Context], None]] = {}


def benchmark(
    name: str,
    title: str,
    *,
    unit: str,
    group: str,
    higher_is_better: bool = True,
    needs_init: bool = True,
    requires: str | None = None,
    targets: tuple[Target, ...] = (),
    show_best: bool = False,
    own_process: bool = False,
) -> Callable[[Callable[[Context], list[float]]], Callable[[Context], list[float]]]:
    """Register ``fn`` as the benchmark ``name``.

    ``title`` is the table's label; ``group`` selects it with ``--group``; ``needs_init``
    false runs it without calling ``init()`` first (start-up and reference figures);
    ``requires`` names a feature (``"actors"``) the backend must have, else the benchmark
    is reported as skipped; ``show_best`` prints the best round next to the median;
    ``own_process`` runs it in a fresh process of its own (``run.py`` does that), for
    figures that depend on what ran before, such as the state of the object store.
    The function's docstring is what the figure means (``run.py --list`` shows it).
    """

    def register(fn: Callable[[Context], list[float]]) -> Callable[[Context], list[float]]:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Benchmark(
            name=name,
            title=title,
            unit=unit,
            group=group,
            fn=fn,
            higher_is_better=higher_is_better,
            needs_init=needs_init,
            requires=requires,
            targets=targets,
            show_best=show_best,
            own_process=own_process,
            doc=" ".join((fn.__doc__ or "").split()),
        )
        return fn

    return register


def feature(name: str) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register a probe for ``name``: it exercises the feature once and raises if the
    backend lacks it; benchmarks that declare ``requires=name`` are then skipped."""

    def register(fn: Callable[[Context], None]) -> Callable[[Context], None]:
        FEATURES[name] = fn
        return fn

    return register


@dataclass
class Context:
    """What one suite process knows: the backend, its module once imported, the mode.

    Runs in the suite's main thread; benchmarks may keep state for later ones in
    ``shared`` (the start-up benchmark leaves the runtime initialized, for instance).
    """

    backend: str
    quick: bool
    slow: bool = False
    module: ModuleType | None = None
    initialized: bool = False
    init_error: str = ""
    shared: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    current: str = ""

    @property
    def api(self) -> Any:
        """The backend's module, used like ``ray``; imported by the start-up benchmark."""
        if self.module is None:
            raise RuntimeError(f"{self.backend} is not imported yet")
        return self.module

    def n(self, full: int, quick: int) -> int:
        """A size: ``full`` normally, ``quick`` under ``--quick``."""
        return quick if self.quick else full

    def note(self, text: str) -> None:
        """Attach a short note (a size, say) to the running benchmark's row."""
        self.notes[self.current] = text

    def init(self) -> None:
        """Call the backend's ``init`` once; a failure is remembered, not retried (a
        half-started runtime would make every later benchmark fail for another reason).
        """
        if self.init_error:
            raise RuntimeError(f"init() failed earlier: {self.init_error}")
        self.initialized = True  # from here on shutdown() is owed, even if init fails
        try:
            self.api.init(**INIT_KWARGS)
        except KeyboardInterrupt:
            self.init_error = "interrupted (past the benchmark's deadline, or Ctrl-C)"
            raise
        except Exception as exc:
            self.init_error = f"{type(exc).__name__}: {exc}"
            raise

    def ensure_init(self) -> None:
        if not self.initialized or self.init_error:
            self.init()

    def rounds(
        self,
        once: Callable[[], object],
        *,
        ops: float,
        repeats: int | None = None,
        warmup: int = 1,
    ) -> list[float]:
        """Run ``once`` ``warmup`` times untimed, then ``repeats`` times timed.

        Returns one figure per timed round: ``ops`` divided by the round's seconds (so
        ``ops`` is the operations, or GiB, one call of ``once`` does).
        """
        count = repeats if repeats is not None else self.n(5, 2)
        for _ in range(warmup):
            once()
        samples: list[float] = []
        for _ in range(count):
            start = time.perf_counter()
            once()
            samples.append(ops / (time.perf_counter() - start))
        return samples


def ordered() -> list[Benchmark]:
    """Every registered benchmark: by group (``GROUPS`` order), then registration order."""
    rank = {group: i for i, group in enumerate(GROUPS)}
    return sorted(REGISTRY.values(), key=lambda b: rank.get(b.group, len(GROUPS)))


def select(only: list[str], groups: list[str]) -> list[Benchmark]:
    """The benchmarks named in ``only`` and in ``groups`` (empty: no filter), in order."""
    unknown = [name for name in only if name not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown benchmark(s): {', '.join(unknown)}; see run.py --list")
    return [
        bench
        for bench in ordered()
        if (not only or bench.name in only) and (not groups or bench.group in groups)
    ]


def summarize(samples: list[float], higher_is_better: bool) -> tuple[float, float]:
    """(median, best) of the samples."""
    best = max(samples) if higher_is_better else min(samples)
    return statistics.median(samples), best
