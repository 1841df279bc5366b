"""``RemoteFunction``: what ``@jupyter_ray.remote`` makes of a function."""

from __future__ import annotations

import functools
import hashlib
import pickle
from typing import Any, Generic, TypeVar

from ._options import merge_runtime_env, normalize_task_options, place, with_accelerator
from .runtime import context
from .runtime.core import CoreClient
from .runtime.object_ref import ObjectRef
from .runtime.serialization import dumps_function

R = TypeVar("R")

DEFAULTS: dict[str, Any] = {
    "num_returns": 1,
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


def _client() -> CoreClient:
    client = context.get_client()
    if client is None:
        from . import api

        api.init()  # as Ray does: the first remote call starts a local runtime
        client = context.get_client()
        assert client is not None
    return client


class RemoteFunction(Generic[R]):
    """A function that runs as a task: call ``.remote(...)`` to get an ObjectRef.

    >>> @jupyter_ray.remote(num_cpus=1)
    ... def square(x):
    ...     return x * x
    >>> jupyter_ray.get(square.remote(4))
    16
    """

    def __init__(self, function: Any, options: dict[str, Any]) -> None:
        self._function = function
        self._options = normalize_task_options(options, "remote functions")
        self._name = getattr(function, "__name__", None) or repr(function)
        self._pickled: tuple[bytes, bytes] | None = None
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running "
            f"'{self._name}()', try '{self._name}.remote()'."
        )

    def options(self, **options: Any) -> _BoundOptions:
        """Override options for one call: ``f.options(num_cpus=2).remote(x)``."""
        return _BoundOptions(self, normalize_task_options(options, "remote functions"))

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Submit the task; returns an ObjectRef (a list of them if num_returns > 1)."""
        return self._submit(self._options, args, kwargs)

    def _function_payload(self) -> tuple[bytes, bytes]:
        if self._pickled is None:
            payload = dumps_function(self._function)
            self._pickled = (hashlib.sha1(payload).digest()[:16], payload)
        return self._pickled

    def _submit(self, overrides: dict[str, Any], args: Any, kwargs: Any) -> Any:
        opts = {**DEFAULTS, **self._options, **overrides}
        client = _client()
        try:
            fn_id, payload = self._function_payload()
        except Exception as err:
            raise TypeError(
                f"Could not serialize the function {self._name}: {err}. Remote functions "
                "travel to workers with cloudpickle; avoid capturing locks, open files, "
                "sockets or similar objects in its closure or globals."
            ) from err
        demand = dict(opts["resources"] or {})
        if opts["num_cpus"]:
            demand["CPU"] = opts["num_cpus"]
        if opts["num_gpus"]:
            demand["GPU"] = opts["num_gpus"]
        if opts["memory"]:
            demand["memory"] = opts["memory"]
        demand = place(demand, opts.get("scheduling_strategy"))
        demand = with_accelerator(demand, opts.get("accelerator_type"))
        retry_exceptions = opts["retry_exceptions"]
        if isinstance(retry_exceptions, list | tuple):
            retry_exceptions = pickle.dumps(list(retry_exceptions)) if retry_exceptions else False
        max_retries = opts["max_retries"]
        if max_retries == -1:
            max_retries = INFINITE_RETRIES
        num_returns = opts["num_returns"]
        refs = client.submit(
            fn_id,
            payload,
            opts["name"] or self._name,
            args,
            kwargs,
            num_returns,
            demand,
            max_retries,
            retry_exceptions,
            opts["max_calls"],
            runtime_env=merge_runtime_env(context.current_runtime_env(), opts["runtime_env"]),
        )
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

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn._submit(self._overrides, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)


__all__ = ["ObjectRef", "RemoteFunction"]
