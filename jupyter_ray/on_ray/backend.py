"""The Ray backend: the same program and notebook on a real Ray cluster.

``init(address="ray://...")``, ``init(_backend="ray")``, ``JUPYTER_RAY_BACKEND=ray`` or a
Jupyter server whose backend is Ray make this process a Ray driver instead of a
jupyter_ray one. From then on ``jupyter_ray``'s public names resolve to Ray's own where
Ray has them (``get``, ``put``, ``wait``, ``ObjectRef``, ``exceptions``, ``util``...):
the package attributes are pointed at Ray's, and the facade functions that code may
hold from before delegate to Ray. What this project adds keeps working where Ray allows:
``@remote`` functions submitted from a notebook cell carry the cell in their task name
(``f@cell:<id>#<n>``, see ``records.py``), so the sidebar's per-cell views and output
routing find them; ``jupyter_ray.state`` reads Ray's state API.

A Ray worker that imports ``jupyter_ray`` (a function defined with ``import jupyter_ray
as ray`` travels by reference to that module) switches to Ray the same way when it
imports it (``adopt_if_worker``).
"""

from __future__ import annotations

import importlib
import ipaddress
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ..runtime.client import context
from .records import split_name, tagged_name

ray: Any = None
"""Ray's module while this process runs on Ray, else None (checked by the facade)."""

connect_hooks: list[Callable[[Any], None]] = []
"""Called with Ray's module when this driver connects (the notebook layer routes Ray's
worker output to cells)."""

# package attribute -> where Ray keeps the same thing
_SWAPS: dict[str, str] = {
    "get": "get",
    "put": "put",
    "wait": "wait",
    "cancel": "cancel",
    "kill": "kill",
    "get_actor": "get_actor",
    "nodes": "nodes",
    "cluster_resources": "cluster_resources",
    "available_resources": "available_resources",
    "get_gpu_ids": "get_gpu_ids",
    "get_runtime_context": "get_runtime_context",
    "timeline": "timeline",
    "ObjectRef": "ObjectRef",
    "ObjectID": "ObjectRef",
    "ActorHandle": "actor.ActorHandle",
    "exceptions": "exceptions",
    "util": "util",
}
_saved: dict[str, Any] = {}
_MISSING = object()


def require_ray() -> ModuleType:
    """Ray's module, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError as err:
        raise ImportError(
            "the Ray backend needs Ray: pip install 'jupyter_ray[ray]' (or pip install "
            f"ray[default]) in this environment ({err})"
        ) from err


def wants_ray(address: str | None, backend: str | None) -> bool:
    """Whether ``init`` with this address and backend means Ray."""
    if backend not in (None, "jupyter_ray", "ray"):
        raise ValueError(f"_backend must be 'jupyter_ray' or 'ray', got {backend!r}")
    if backend is not None:
        return backend == "ray"
    if isinstance(address, str) and address.startswith("ray://"):
        return True
    import os

    return os.environ.get("JUPYTER_RAY_BACKEND", "") == "ray"


def connect(address: str | None, **options: Any) -> Any:
    """``ray.init`` with the options Ray takes; makes this process a Ray driver."""
    mod = require_ray()
    kwargs = {k: v for k, v in options.items() if v is not None}
    if isinstance(address, str) and address not in ("auto", "local") and _loopback(address):
        # Ray otherwise advertises this machine's outside address to a loopback cluster
        kwargs.setdefault("_node_ip_address", "127.0.0.1")
    kwargs.setdefault("logging_level", "ERROR")
    info = mod.init(address=address, **kwargs)
    _activate(mod)
    for hook in list(connect_hooks):
        hook(mod)
    return info


def disconnect() -> None:
    """``ray.shutdown``, and the package's names back to jupyter_ray's own."""
    mod = ray
    if mod is None:
        return
    try:
        mod.shutdown()
    finally:
        _deactivate()


def adopt_if_worker() -> None:
    """In a Ray worker (Ray imported and initialized in worker mode): use Ray."""
    mod = sys.modules.get("ray")
    if mod is None or ray is not None or context.get_client() is not None:
        return
    try:
        worker = mod._private.worker.global_worker
        in_worker = mod.is_initialized() and worker.mode == mod.WORKER_MODE
    except AttributeError:  # another Ray layout: then only an explicit init switches
        return
    if in_worker:
        _activate(mod)


def _activate(mod: Any) -> None:
    global ray
    ray = mod
    package = sys.modules["jupyter_ray"]
    for name, where in _SWAPS.items():
        target: Any = mod
        for part in where.split("."):
            target = getattr(target, part, _MISSING)
            if target is _MISSING:
                break
        if target is _MISSING:
            continue
        _saved.setdefault(name, package.__dict__.get(name, _MISSING))
        package.__dict__[name] = target


def _deactivate() -> None:
    global ray
    ray = None
    package = sys.modules["jupyter_ray"]
    for name, value in _saved.items():
        if value is _MISSING:
            package.__dict__.pop(name, None)  # the lazy loader finds ours again
        else:
            package.__dict__[name] = value
    _saved.clear()


def _loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rpartition(":")[0] or address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- what the facade delegates --------------------------------------------------------


def _cell_name(name: str) -> str:
    """``name`` tagged with the cell that submits it: the notebook's running cell in a
    driver; in a Ray worker, the cell of the task running there (nested tasks belong to
    the cell of the task that made them, as on jupyter_ray's runtime)."""
    cell_id, count = context.current_cell()
    if cell_id is None and ray is not None:
        try:
            running = ray.get_runtime_context().get_task_name()
        except Exception:  # not in a task (a driver), or an older Ray
            running = None
        if running:
            _, cell_id, count = split_name(running)
    return tagged_name(name, cell_id, count)


_RAY_TASK_OPTIONS = (
    "num_returns",
    "num_cpus",
    "num_gpus",
    "memory",
    "resources",
    "max_retries",
    "retry_exceptions",
    "max_calls",
    "runtime_env",
    "scheduling_strategy",
    "accelerator_type",
    "label_selector",
    "fallback_strategy",
)


def submit_function(
    fn: Any, function: Any, name: str, options: dict[str, Any], args: Any, kwargs: Any
) -> Any:
    """``f.remote(...)`` on Ray: Ray's remote function (made once per function and
    session), named after the cell it is submitted from."""
    remote = getattr(fn, "_ray_function", None)
    if remote is None or getattr(fn, "_ray_module", None) is not ray:
        remote = ray.remote(function)
        fn._ray_function, fn._ray_module = remote, ray
    opts = {k: options[k] for k in _RAY_TASK_OPTIONS if options.get(k) is not None}
    if opts.get("max_calls") == 0:
        del opts["max_calls"]
    opts["name"] = _cell_name(options.get("name") or name)
    return remote.options(**opts).remote(*args, **kwargs)


_RAY_ACTOR_OPTIONS = (
    "num_cpus",
    "num_gpus",
    "memory",
    "resources",
    "name",
    "namespace",
    "lifetime",
    "get_if_exists",
    "max_restarts",
    "max_task_retries",
    "max_concurrency",
    "max_pending_calls",
    "concurrency_groups",
    "runtime_env",
    "scheduling_strategy",
    "accelerator_type",
    "label_selector",
    "fallback_strategy",
)


def create_actor(
    actor_class: Any, cls: type, options: dict[str, Any], args: Any, kwargs: Any
) -> Any:
    """``Cls.remote(...)`` on Ray: Ray's actor class, made once per class and session."""
    remote = getattr(actor_class, "_ray_class", None)
    if remote is None or getattr(actor_class, "_ray_module", None) is not ray:
        remote = ray.remote(cls)
        actor_class._ray_class, actor_class._ray_module = remote, ray
    opts = {k: options[k] for k in _RAY_ACTOR_OPTIONS if options.get(k) is not None}
    if opts.get("lifetime") is None:
        opts.pop("lifetime", None)
    return (
        remote.options(**opts).remote(*args, **kwargs) if opts else remote.remote(*args, **kwargs)
    )
