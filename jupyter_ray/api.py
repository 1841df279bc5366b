"""The driver API: ``init``, ``shutdown``, ``get``, ``put``, ``wait``, ``cancel`` and friends.

Names, arguments and behaviour follow Ray 2.x, so Ray's documentation applies. These are
blocking calls made on the user's thread (in a notebook, the kernel's); the I/O they wait
for happens on the runtime's own threads and processes. ``init`` and ``shutdown`` live in
``_client.py`` with the connection they manage; ``remote`` in ``_remote.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from ._client import (
    RuntimeInfo,
    auto_client,
    init,
    is_initialized,
    node_resources,
    require_client,
    resolve_address,
    shutdown,
)
from .on_ray import backend as _on_ray
from .runtime.client import context
from .runtime.client.generators import ObjectRefGenerator
from .runtime.client.object_ref import ObjectRef

__all__ = [
    "RuntimeInfo",
    "available_resources",
    "cancel",
    "cluster_resources",
    "get",
    "get_gpu_ids",
    "init",
    "is_initialized",
    "node_resources",
    "nodes",
    "put",
    "resolve_address",
    "shutdown",
    "wait",
    "wait_hook",
]

T = TypeVar("T")

# --- hook for the notebook layer (jupyter_ray.kernel sets it; None in a script) ---------

wait_hook: Callable[[str, list[ObjectRef], Callable[[], Any]], Any] | None = None
"""Runs each blocking ``get``/``wait`` as ``hook(kind, refs, call)``, which must return
``call()``: in a notebook it draws a progress bar and turns an interrupt into cancelling
the cell's tasks."""


def put(value: Any, *, _owner: Any = None) -> ObjectRef:
    """Store ``value`` in the object store once; returns an ObjectRef to pass around."""
    if _on_ray.ray is not None:
        return _on_ray.ray.put(value)
    return auto_client().put(value)


@overload
def get(object_refs: ObjectRef, *, timeout: float | None = None) -> Any: ...
@overload
def get(object_refs: list[ObjectRef], *, timeout: float | None = None) -> list[Any]: ...


def get(object_refs: Any, *, timeout: float | None = None) -> Any:
    """Return the value of one ref, or a list of values for a list of refs.

    Raises the task's error (a RayTaskError that is also the original exception type),
    or GetTimeoutError when ``timeout`` seconds pass first.
    """
    if _on_ray.ray is not None:
        return _on_ray.ray.get(object_refs, timeout=timeout)
    single = isinstance(object_refs, ObjectRef)
    refs = [object_refs] if single else object_refs
    if not isinstance(refs, list | tuple) or not all(isinstance(r, ObjectRef) for r in refs):
        bad = (
            object_refs
            if not isinstance(refs, list | tuple)
            else next(r for r in refs if not isinstance(r, ObjectRef))
        )
        hint = ""
        if inspect.isfunction(bad) or getattr(type(bad), "_hint_call_remote", False):
            hint = " Did you forget to call .remote() on the function?"
        raise ValueError(
            f"get() takes an ObjectRef or a list of ObjectRefs, got {type(bad).__name__} "
            f"{_short(bad)}.{hint} Values that are not refs need no get()."
        )
    _check_timeout(timeout)
    client = auto_client()
    refs = list(refs)
    hook = wait_hook
    if hook is None:
        values = client.get(refs, timeout)
    else:
        values = hook("get", refs, lambda: client.get(refs, timeout))
    return values[0] if single else values


def wait(
    object_refs: Sequence[ObjectRef],
    *,
    num_returns: int = 1,
    timeout: float | None = None,
    fetch_local: bool = True,
) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Return ``(ready, not_ready)`` once ``num_returns`` refs are ready or time runs out.

    Ready refs come in the order they were given, at most ``num_returns`` of them.
    """
    if _on_ray.ray is not None:
        on_ray: tuple[list[Any], list[Any]] = _on_ray.ray.wait(
            list(object_refs), num_returns=num_returns, timeout=timeout, fetch_local=fetch_local
        )
        return on_ray
    if isinstance(object_refs, ObjectRef):
        raise TypeError(
            "wait() takes a list of ObjectRefs, got a single ObjectRef: use "
            "wait([ref]) or get(ref)."
        )
    if not isinstance(object_refs, list | tuple):
        raise TypeError(f"wait() takes a list of ObjectRefs, got {type(object_refs).__name__}")
    refs = list(object_refs)
    for r in refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(
                f"wait() takes a list of ObjectRefs, but it contains {type(r).__name__} {_short(r)}"
            )
    if not refs:
        return [], []  # as Ray: nothing to wait for
    if len(set(refs)) != len(refs):
        raise ValueError("wait() requires a list of unique ObjectRefs; remove the duplicates.")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int):
        raise TypeError(f"num_returns must be an int, got {num_returns!r}")
    if num_returns <= 0:
        raise ValueError(f"num_returns must be at least 1, got {num_returns}")
    if num_returns > len(refs):
        raise ValueError(
            f"num_returns ({num_returns}) cannot be larger than the number of refs "
            f"({len(refs)}) passed to wait()."
        )
    _check_timeout(timeout)
    client = auto_client()
    hook = wait_hook
    if hook is None:
        ready_ids = client.wait_ready(refs, num_returns, timeout, fetch_local)
    else:
        ready_ids = hook(
            "wait", refs, lambda: client.wait_ready(refs, num_returns, timeout, fetch_local)
        )
    ready: list[ObjectRef] = []
    rest: list[ObjectRef] = []
    for r in refs:
        if len(ready) < num_returns and r.binary() in ready_ids:
            ready.append(r)
        else:
            rest.append(r)
    return ready, rest


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that makes ``object_ref``; ``get`` then raises TaskCancelledError.

    A pending task is dropped; a running one gets TaskCancelledError raised inside it, or
    with ``force=True`` its worker process is killed.
    """
    if _on_ray.ray is not None:
        _on_ray.ray.cancel(object_ref, force=force, recursive=recursive)
        return
    if isinstance(object_ref, ObjectRefGenerator):
        object_ref = object_ref.completed()  # (a generator task: stop it where it is)
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(
            f"cancel() takes the ObjectRef returned by f.remote(), got {type(object_ref).__name__}"
        )
    require_client().cancel(object_ref, force, recursive)


def _check_timeout(timeout: Any) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds, got {timeout}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def get_gpu_ids() -> list[int]:
    """GPU ids assigned to the current task (empty in the driver)."""
    if _on_ray.ray is not None:
        return list(_on_ray.ray.get_gpu_ids())
    ctx = context.current_task()
    return list(ctx.gpu_ids) if ctx is not None else []


def cluster_resources() -> dict[str, float]:
    """Total resources of every node in the cluster."""
    if _on_ray.ray is not None:
        return dict(_on_ray.ray.cluster_resources())
    return dict(require_client().query("cluster_resources"))


def available_resources() -> dict[str, float]:
    """Resources not in use right now (those fully used are left out, as in Ray)."""
    if _on_ray.ray is not None:
        return dict(_on_ray.ray.available_resources())
    return dict(require_client().query("available_resources"))


def nodes() -> list[dict[str, Any]]:
    """One dict per node: ``NodeID``, ``Alive``, ``Resources`` and addresses."""
    if _on_ray.ray is not None:
        return list(_on_ray.ray.nodes())
    return list(require_client().query("nodes"))
