"""``RemoteFunction``: what ``@jupyter_ray.remote`` makes of a function."""

from __future__ import annotations

import functools
import hashlib
import inspect
import pickle
import warnings
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._client import auto_client
from ._options import (
    DYNAMIC,
    STREAMING,
    merge_runtime_env,
    normalize_task_options,
    place,
    placement,
    with_accelerator,
    with_labels,
)
from ._signature import check_call, plain_count, shape_of
from .on_ray import backend as _on_ray
from .runtime.client import context
from .runtime.client.generators import DYNAMIC as DYNAMIC_KIND
from .runtime.client.generators import STREAMING as STREAMING_KIND
from .runtime.client.generators import ObjectRefGenerator, StreamState
from .runtime.client.object_ref import ObjectRef
from .runtime.common.serialization import dumps_function

R = TypeVar("R")

DEFAULTS: dict[str, Any] = {
    "num_returns": None,  # 1, or "streaming" for a generator function
    "num_cpus": 1.0,
    "num_gpus": 0.0,
    "memory": 0.0,
    "resources": {},
    "max_retries": 3,
    "retry_exceptions": False,
    "max_calls": 0,
    "name": None,
    "runtime_env": None,
}

INFINITE_RETRIES = 1 << 30

FUNCTION_SIZE_WARN = 10**7
FUNCTION_SIZE_ERROR = 10**8
"""Pickled sizes (bytes) at which a remote function or actor class gets Ray's warning,
and its error: such a size almost always means it captured a large object by accident."""


def check_pickled_size(payload: bytes, kind: str, name: str) -> None:
    """Ray's warning for a very large pickled function or class, and its error for a
    too large one."""
    size = len(payload)
    tip = (
        "Check that its definition is not implicitly capturing a large array or other "
        "object in scope. Tip: use jupyter_ray.put() to put large objects in the object "
        "store, and pass the ref."
    )
    if size >= FUNCTION_SIZE_ERROR:
        raise ValueError(
            f"The {kind} {name} is too large ({size >> 20} MiB > "
            f"{FUNCTION_SIZE_ERROR >> 20} MiB). {tip}"
        )
    if size > FUNCTION_SIZE_WARN:
        warnings.warn(
            f"The {kind} {name} is very large ({size >> 20} MiB). {tip}",
            UserWarning,
            stacklevel=5,
        )


class RemoteFunction(Generic[R]):
    """A function that runs as a task: call ``.remote(...)`` to get an ObjectRef.

    >>> @jupyter_ray.remote(num_cpus=1)
    ... def square(x):
    ...     return x * x
    >>> jupyter_ray.get(square.remote(4))
    16
    """

    _hint_call_remote = True
    """``get()`` given one of these hints at ``.remote()`` (read by ``api.get``, which does
    not import this module: remote functions sit above the object calls)."""

    def __init__(self, function: Any, options: dict[str, Any]) -> None:
        if inspect.iscoroutinefunction(function):
            raise ValueError(
                "'async def' should not be used for remote tasks. You can wrap the async "
                "function with `asyncio.run(f())`, or make it a method of an actor (async "
                "actors run async def methods on an event loop)."
            )
        self._function = function
        self._name = getattr(function, "__name__", None) or repr(function)
        self._generator = inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(
            function
        )
        self._options = self._checked(normalize_task_options(options, "remote functions"))
        self._shape = shape_of(function)
        # the only shape checked without inspect: this many positional arguments
        self._positional = -2 if self._shape is None else plain_count(self._shape)
        self._pickled: tuple[bytes, bytes] | None = None
        self._default_plan: _TaskPlan | None = None
        functools.update_wrapper(self, function)

    def _checked(self, options: dict[str, Any]) -> dict[str, Any]:
        n = options.get("num_returns")
        if n in (STREAMING, DYNAMIC) and not self._generator:
            raise ValueError(
                f"num_returns={n!r} can only be used with generator functions (functions "
                f"that use 'yield'); {self._name} is not one."
            )
        return options

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running "
            f"'{self._name}()', try '{self._name}.remote()'."
        )

    def options(self, **options: Any) -> _BoundOptions:
        """Override options for one call: ``f.options(num_cpus=2).remote(x)``."""
        return _BoundOptions(
            self, self._checked(normalize_task_options(options, "remote functions"))
        )

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Submit the task; returns an ObjectRef (a list of them if num_returns > 1, an
        ObjectRefGenerator for a generator function)."""
        if self._positional != -2 and (kwargs or len(args) != self._positional):
            check_call(self._shape, args, kwargs, self._name)
        plan = self._default_plan
        if plan is None and _on_ray.ray is None:
            plan = self._default_plan = self._plan({})
        return self._submit({}, args, kwargs, plan)

    def _function_payload(self) -> tuple[bytes, bytes]:
        if self._pickled is None:
            payload = dumps_function(self._function)
            check_pickled_size(payload, "remote function", self._name)
            self._pickled = (hashlib.sha1(payload).digest()[:16], payload)
        return self._pickled

    def _plan(self, overrides: dict[str, Any]) -> _TaskPlan:
        """The options of a call with ``overrides``, resolved as far as they do not depend
        on the calling task (its placement group and runtime env are read per call)."""
        opts = {**DEFAULTS, **self._options, **overrides}
        demand = dict(opts["resources"] or {})
        if opts["num_cpus"]:
            demand["CPU"] = opts["num_cpus"]
        if opts["num_gpus"]:
            demand["GPU"] = opts["num_gpus"]
        if opts["memory"]:
            demand["memory"] = opts["memory"]
        markers = with_labels(
            with_accelerator({}, opts.get("accelerator_type")),
            opts.get("label_selector"),
            opts.get("fallback_strategy"),
        )
        retry_exceptions = opts["retry_exceptions"]
        if isinstance(retry_exceptions, list | tuple):
            retry_exceptions = pickle.dumps(list(retry_exceptions)) if retry_exceptions else False
        max_retries = opts["max_retries"]
        if max_retries == -1:
            max_retries = INFINITE_RETRIES
        num_returns = opts["num_returns"]
        if num_returns is None:
            num_returns = STREAMING if self._generator else 1
        generator = 0
        if num_returns in (STREAMING, DYNAMIC):
            generator = STREAMING_KIND if num_returns == STREAMING else DYNAMIC_KIND
        return _TaskPlan(
            name=opts["name"] or self._name,
            demand=demand,
            unplaced={**demand, **markers},
            markers=markers,
            strategy=opts.get("scheduling_strategy"),
            no_group=opts.get("placement_group", "default") is None,
            max_retries=max_retries,
            retry_exceptions=retry_exceptions,
            max_calls=opts["max_calls"],
            num_returns=1 if generator else num_returns,
            streaming=num_returns == STREAMING,
            generator=generator,
            runtime_env=opts["runtime_env"],
        )

    def _submit(
        self, overrides: dict[str, Any], args: Any, kwargs: Any, plan: _TaskPlan | None = None
    ) -> Any:
        if _on_ray.ray is not None:  # the Ray backend: Ray runs it (jupyter_ray.on_ray)
            options = {**self._options, **overrides}
            return _on_ray.submit_function(self, self._function, self._name, options, args, kwargs)
        if plan is None:
            plan = self._plan(overrides)
        client = auto_client()
        try:
            fn_id, payload = self._function_payload()
        except ValueError:
            raise
        except Exception as err:
            raise TypeError(
                f"Could not serialize the function {self._name}: {err}. Remote functions "
                "travel to workers with cloudpickle; avoid capturing locks, open files, "
                "sockets or similar objects in its closure or globals."
            ) from err
        strategy, capture = placement(plan.strategy, plan.no_group)
        if strategy is None or isinstance(strategy, str):
            demand = plan.unplaced
        else:  # in a placement group: its bundles' resources stand in for the demand
            demand = {**place(plan.demand, strategy, self._name), **plan.markers}
        stream = StreamState() if plan.streaming else None
        num_returns = plan.num_returns
        refs = client.submit(
            fn_id,
            payload,
            plan.name,
            args,
            kwargs,
            num_returns,
            demand,
            plan.max_retries,
            plan.retry_exceptions,
            plan.max_calls,
            runtime_env=merge_runtime_env(context.current_runtime_env(), plan.runtime_env),
            generator=plan.generator,
            stream=stream,
            capture_group=capture,
        )
        if stream is not None:
            return ObjectRefGenerator(client, stream)
        if num_returns == 1:
            return refs[0]
        if num_returns == 0:
            return None
        return refs

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteFunction, (self._function, self._options))

    def __repr__(self) -> str:
        return f"<jupyter_ray remote function {self._name}>"


class _BoundOptions:
    """The result of ``.options(...)``: call ``.remote`` on it."""

    def __init__(self, fn: RemoteFunction[Any], overrides: dict[str, Any]) -> None:
        self._fn = fn
        self._overrides = overrides
        self._plan: _TaskPlan | None = None

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        fn = self._fn
        check_call(fn._shape, args, kwargs, fn._name)
        if self._plan is None and _on_ray.ray is None:
            self._plan = fn._plan(self._overrides)
        return fn._submit(self._overrides, args, kwargs, self._plan)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class _TaskPlan:
    """A remote function's call options, resolved (see ``RemoteFunction._plan``)."""

    name: str  # the task's name
    demand: dict[str, float]  # resources, before any placement group
    unplaced: dict[str, float]  # what is sent outside a placement group
    markers: dict[str, float]  # accelerator and label markers (see _options)
    strategy: Any  # the scheduling_strategy option
    no_group: bool  # placement_group=None: not even the calling task's group
    max_retries: int
    retry_exceptions: bool | bytes
    max_calls: int
    num_returns: int
    streaming: bool
    generator: int  # 0, or STREAMING_KIND / DYNAMIC_KIND
    runtime_env: dict[str, Any] | None


__all__ = ["ObjectRef", "RemoteFunction"]
