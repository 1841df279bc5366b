"""Microbenchmarks that run the same code on jupyter_ray and on Ray.

Importing the package registers every benchmark. The table lists them by group (the
order of ``GROUPS``), then in the order they were registered. To add one, write a
function in the module of its group (or in a new module imported below) and decorate it
with :func:`~microbench.registry.benchmark`.
"""

from __future__ import annotations

from . import actors, objects, pool, startup, tasks
from .registry import FEATURES, GROUPS, INIT_KWARGS, REGISTRY, Benchmark, Context, Target, ordered

__all__ = [
    "FEATURES",
    "GROUPS",
    "INIT_KWARGS",
    "REGISTRY",
    "Benchmark",
    "Context",
    "Target",
    "actors",
    "objects",
    "ordered",
    "pool",
    "startup",
    "tasks",
]
