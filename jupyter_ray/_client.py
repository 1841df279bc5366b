"""This driver's connection to a runtime, and the lookup every facade module uses.

``init`` starts a local runtime or attaches to one (or, with the Ray backend, to Ray);
``shutdown`` ends it. ``require_client()`` is the connection or a RaySystemError that
says to call ``init``; ``auto_client()`` starts a local runtime first when there is none,
as Ray does on the first remote call or ``put``. Every facade module that needs the
connection comes here, so this module imports nothing of the facade above it.

Blocking calls, made on the user's thread (in a notebook, the kernel's).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._checks import ACCELERATOR_PREFIX, validate_resources, validate_runtime_env
from .job_config import JobConfig
from .on_ray import backend as _on_ray
from .runtime.client import context
from .runtime.client.core import CoreClient
from .runtime.client.launch import LocalNode, default_object_store_memory, start_local_node
from .runtime.common import discovery
from .runtime.common import protocol as p
from .runtime.common.auth import TOKEN_ENV
from .runtime.common.exceptions import RaySystemError
from .runtime.common.gpus import detect_accelerator_type
from .runtime.common.interrupts import HELD, guarded, release
from .runtime.common.labels import check_node_labels

_lock = threading.RLock()
_node: LocalNode | None = None

# --- hooks for the notebook layer (jupyter_ray.kernel sets them) -----------------------

connect_hooks: list[Callable[[CoreClient], None]] = []
"""Called with each new connection of this driver, before any task is submitted (the
notebook layer routes task output to cells)."""

reinit_reuses = False
"""True in a notebook: ``init()`` again reuses the runtime with a note instead of raising
(notebooks are re-run all the time)."""


@dataclass
class RuntimeInfo:
    """What ``init()`` returns: where the runtime is and what it has."""

    address: str
    node_id: str
    session_dir: str
    resources: dict[str, float] = field(default_factory=dict)
    dashboard_url: str | None = None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __enter__(self) -> RuntimeInfo:
        return self

    def __exit__(self, *exc: object) -> None:
        shutdown()


def _detect_gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def _count(name: str, value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def node_resources(
    num_cpus: Any, num_gpus: Any, resources: Any, object_store_memory: Any
) -> tuple[dict[str, float], int]:
    """Validated resource totals of a node and its store size (shared with the CLI)."""
    cpus = _count("num_cpus", num_cpus, float(os.cpu_count() or 1))
    gpus = _count("num_gpus", num_gpus, float(_detect_gpus()))
    custom = validate_resources(resources)
    if object_store_memory is None:
        store = default_object_store_memory()
    else:
        store = int(_count("object_store_memory", object_store_memory, 0))
        if store < 1 << 20:
            raise ValueError(
                f"object_store_memory must be at least 1 MiB, got {object_store_memory}"
            )
    import psutil

    totals = {
        "CPU": cpus,
        "GPU": gpus,
        "memory": float(int(psutil.virtual_memory().available * 0.7)),
        "object_store_memory": float(store),
        "node:127.0.0.1": 1.0,
        **custom,
    }
    if gpus and not any(k.startswith(ACCELERATOR_PREFIX) for k in custom):
        model = detect_accelerator_type()  # as Ray: tasks may ask for a GPU model
        if model:
            totals[ACCELERATOR_PREFIX + model] = 1.0
    return totals, store


def init(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    resources: dict[str, float] | None = None,
    object_store_memory: int | None = None,
    ignore_reinit_error: bool = False,
    include_dashboard: bool | None = None,
    namespace: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    log_to_driver: bool = True,
    logging_level: Any = None,
    configure_logging: bool = True,
    _system_config: dict[str, Any] | None = None,
    _token: str | None = None,
    _backend: str | None = None,
    job_config: Any = None,
    labels: dict[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """Start a local runtime (``address=None``) or attach to one, and connect this process.

    >>> import jupyter_ray as ray
    >>> ray.init(num_cpus=2)          # doctest: +SKIP

    ``address="auto"`` attaches to the newest cluster running on this machine (through
    its head, never a worker node, so the driver outlives worker nodes; or a runtime
    started by another process or a notebook server); so does
    ``address=None`` when the ``JUPYTER_RAY_ADDRESS`` environment variable is set.
    ``_system_config={"task_history": N}`` sets how many finished tasks the state API
    remembers (default 10,000); ``{"record_tasks": False}`` turns task records off.
    ``runtime_env={"env_vars": {...}, "working_dir": path}`` applies to every task and
    actor of this driver (a task's own ``runtime_env`` option is merged over it).
    ``namespace`` is where this driver's named actors are created and looked up (and
    its tasks'). ``job_config`` (a ``jupyter_ray.job_config.JobConfig``) gives the job's
    runtime env, namespace, metadata and default actor lifetime (``runtime_env`` and
    ``namespace`` given here win). ``labels`` are the local node's (see
    ``label_selector``). ``include_dashboard``, ``logging_level`` and
    ``configure_logging`` are accepted for compatibility with Ray.

    On Ray: ``address="ray://HOST:PORT"``, ``_backend="ray"`` (with ``address`` a Ray
    cluster's, or ``"auto"``), ``JUPYTER_RAY_BACKEND=ray``, or a Jupyter server whose
    backend is Ray make this a Ray driver (``ray.init``; Ray's context is returned), and
    jupyter_ray's names then resolve to Ray's (``jupyter_ray.on_ray``).
    """
    global _node
    if "redis_address" in kwargs:
        warnings.warn(
            "init(redis_address=...) is deprecated; use init(address=...) instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        redis_address = kwargs.pop("redis_address")
        if address is None:
            address = redis_address
    kwargs.pop("_temp_dir", None)
    if kwargs:
        names = ", ".join(sorted(kwargs))
        raise TypeError(
            f"init() got unexpected keyword argument(s) {names}. See help(jupyter_ray.init) "
            "for the supported arguments."
        )
    if job_config is not None:
        runtime_env, namespace = _from_job_config(job_config, runtime_env, namespace)
    job_env = validate_runtime_env(runtime_env)
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise ValueError(f"namespace must be a non-empty string, got {namespace!r}")
    node_labels = check_node_labels(labels)
    with _lock:
        if context.get_client() is None:
            _notebook_integration()
        if context.get_client() is not None:
            if ignore_reinit_error:
                return info()
            if reinit_reuses:
                print(
                    "jupyter_ray is already running in this kernel; reusing it "
                    "(jupyter_ray.shutdown() or %ray_stop first to start another one).",
                    file=sys.stderr,
                )
                return info()
            raise RuntimeError(
                "Maybe you called jupyter_ray.init twice by accident? Call "
                "jupyter_ray.shutdown() first, or pass ignore_reinit_error=True."
            )
        if address is None:
            address = os.environ.get("JUPYTER_RAY_ADDRESS") or None
        if address is not None and address.endswith(".json"):
            address, server_backend = _read_connection_file(address)
            _backend = _backend or server_backend
        if _on_ray.ray is not None or _on_ray.wants_ray(address, _backend):
            return _init_on_ray(
                address,
                ignore_reinit_error=ignore_reinit_error or reinit_reuses,
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                resources=resources,
                object_store_memory=object_store_memory,
                namespace=namespace,
                runtime_env=runtime_env,
                log_to_driver=log_to_driver,
                include_dashboard=include_dashboard,
            )
        context.job_runtime_env = job_env
        context.job_namespace = namespace if namespace != "default" else None
        job_settings.update(_job_config_settings(job_config))
        if address not in (None, "local"):
            return _attach(address, log_to_driver, _token)
        totals, store = node_resources(num_cpus, num_gpus, resources, object_store_memory)
        config = dict(_system_config or {})
        history = int(config.pop("task_history", 10_000))
        if history < 0:
            raise ValueError(f"_system_config['task_history'] must be >= 0, got {history}")
        if not config.pop("record_tasks", True):
            history = -1  # no task records at all (used to measure their cost)
        if config:
            raise ValueError(
                f"unknown _system_config keys {sorted(config)}; supported: task_history, "
                "record_tasks"
            )
        _start_owned_node(totals, store, history, node_labels, log_to_driver)
        return info()


@guarded
def _start_owned_node(
    totals: dict[str, float],
    store: int,
    history: int,
    labels: dict[str, str] | None,
    log_to_driver: bool,
) -> None:
    """Start a node manager and connect to it as this driver, its owner. One step for an
    interrupt (``runtime/common/interrupts.py``): a node started but not yet connected to
    would run on with no owner, one connected to but not made this driver's connection
    until the process exits. (A second Ctrl-C still gets out: what was started is
    stopped by ``start_local_node`` and ``CoreClient.owning``.)"""
    global _node
    try:
        about = context.job_metadata  # in a kernel: its id and label (kernel/identity.py)
        node = start_local_node(
            totals,
            store,
            task_history=history,
            origin=about.get("origin", "script"),
            label=about.get("label", about.get("kernel_id", "")),
            labels=labels,
        )
        client = CoreClient.owning(node)
        if not log_to_driver:
            client.on_log = lambda msg: None
        _node = node
        _connected(client)
    finally:
        if HELD:
            release()


def _init_on_ray(address: str | None, **options: Any) -> Any:
    """``init`` on the Ray backend (see ``jupyter_ray.on_ray``)."""
    if address in (None, "local"):
        address = None  # Ray starts a local cluster of its own, as ray.init() does
    if _on_ray.ray is not None and _on_ray.ray.is_initialized():
        if not options.get("ignore_reinit_error"):
            raise RuntimeError(
                "Maybe you called jupyter_ray.init twice by accident? This process is "
                "already a Ray driver; call jupyter_ray.shutdown() first, or pass "
                "ignore_reinit_error=True."
            )
        return _on_ray.ray.get_runtime_context()
    metadata = {"origin": "script", **context.job_metadata}
    job_config = _on_ray.require_ray().job_config.JobConfig(
        metadata={k: str(v) for k, v in metadata.items()}
    )
    if address is not None:  # attaching: the cluster's resources are what they are
        for name in ("num_cpus", "num_gpus", "resources", "object_store_memory"):
            options.pop(name, None)
    return _on_ray.connect(address, job_config=job_config, **options)


job_settings: dict[str, Any] = {}
"""This driver's job's settings from ``init(job_config=...)``: ``metadata`` and
``default_actor_lifetime`` (cleared by ``shutdown``)."""


def _from_job_config(
    job_config: Any, runtime_env: Any, namespace: str | None
) -> tuple[Any, str | None]:
    """The runtime env and namespace a job gets: ``init``'s own, else the config's."""
    if not isinstance(job_config, JobConfig):
        raise TypeError(
            "job_config must be a jupyter_ray.job_config.JobConfig, got "
            f"{type(job_config).__name__}"
        )
    return runtime_env or job_config.runtime_env or None, namespace or job_config.ray_namespace


def _job_config_settings(job_config: Any) -> dict[str, Any]:
    if job_config is None:
        return {}
    return {
        "metadata": dict(job_config.metadata),
        "default_actor_lifetime": job_config.default_actor_lifetime,
    }


def _notebook_integration() -> None:
    """In IPython (a notebook kernel, a terminal), install ``jupyter_ray.kernel`` before
    connecting: the job says which kernel it is, tasks carry their cell, output and
    interrupts follow the cell. Imports nothing Jupyter where IPython is not running."""
    if "IPython" not in sys.modules:
        return
    from .kernel import activate

    activate()


def _attach(address: str, log_to_driver: bool, token: str | None) -> RuntimeInfo:
    """Connect this process to a runtime it did not start."""
    target, token = resolve_address(address, token)
    _connect_driver(target, address, log_to_driver, token)
    return info()


@guarded
def _connect_driver(
    target: str | tuple[str, int], address: str, log_to_driver: bool, token: str | None
) -> None:
    """Connect to ``target`` and make that this driver's connection: one step for an
    interrupt, so that no connection is left open that is not this driver's."""
    try:
        try:
            client = CoreClient(target, "driver", token=token)
        except OSError as err:
            raise ConnectionError(
                f"Could not connect to a jupyter_ray cluster at {address!r}: {err}. Is "
                "'jupyter-ray start --head' running there, and is the port reachable?"
            ) from err
        if not log_to_driver:
            client.on_log = lambda msg: None
        _connected(client)
    finally:
        if HELD:
            release()


def resolve_address(
    address: str, token: str | None = None
) -> tuple[str | tuple[str, int], str | None]:
    """Where ``address`` points: a Unix socket path, or (host, port) and the token for it.

    ``"auto"``: the runtime ``JUPYTER_RAY_ADDRESS`` names, else the newest cluster on this
    machine. A path ending in ``.json``: the connection file of a Jupyter server's runtime
    (the server points its kernels' ``JUPYTER_RAY_ADDRESS`` at it). A runtime on this
    machine is reached through its Unix socket (shared memory, zero copy); any other
    ``HOST:PORT`` over TCP with the cluster token.
    """
    target: str | tuple[str, int]
    sessions = discovery.find_sessions()  # (through the module: tests replace it)
    if address == "auto" and os.environ.get("JUPYTER_RAY_ADDRESS", "auto") != "auto":
        # as Ray's RAY_ADDRESS: set by whoever started this process next to a runtime
        # (the Jupyter server sets it for the kernels it starts)
        address = os.environ["JUPYTER_RAY_ADDRESS"]
    if address.endswith(".json"):
        address, _ = _read_connection_file(address)
    if address == "auto":
        cluster = discovery.find_cluster()
        if cluster is None:
            raise ConnectionError(
                "init(address='auto') found no jupyter_ray runtime running on this machine. "
                "Start one with 'jupyter-ray start --head' or from a notebook server, or "
                "call init() with no address to run one inside this process."
            )
        target = cluster.socket
    elif address.endswith(".sock") and os.path.exists(address):
        target = address
    elif ":" in address:
        host, _, port_text = address.rpartition(":")
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"address must be 'auto' or HOST:PORT, got {address!r}") from None
        local = [s for s in sessions if s.tcp_address and _same_address(s.tcp_address, address)]
        if local:
            target = local[0].socket
        else:
            target = (host, port)
            token = token or os.environ.get(TOKEN_ENV)
    else:
        raise ConnectionError(
            f"Could not find a running jupyter_ray cluster at {address!r}. Start one "
            "with 'jupyter-ray start --head', use address='auto' for one on this machine, "
            "or call init() with no address to run a local runtime inside this session."
        )
    return target, token


def _read_connection_file(path: str) -> tuple[str, str | None]:
    """(address, backend) in a Jupyter server's connection file (``jupyter_ray.server``)."""
    try:
        with open(path) as f:
            info = json.load(f)
    except (OSError, ValueError) as err:
        raise ConnectionError(
            f"Could not read the Jupyter server's runtime connection file {path!r} ({err}); "
            "is that server still running? Unset JUPYTER_RAY_ADDRESS to start a runtime "
            "of your own."
        ) from err
    address = info.get("address") if isinstance(info, dict) else None
    if not isinstance(address, str) or not address:
        state = info.get("state", "stopped") if isinstance(info, dict) else "unknown"
        raise ConnectionError(
            f"The Jupyter server's jupyter_ray runtime is not running (it is {state}). "
            "Start it from the jupyter_ray sidebar (or POST jupyter-ray/api/cluster), or "
            "unset JUPYTER_RAY_ADDRESS to start a runtime of your own."
        )
    backend = info.get("backend")
    return address, backend if isinstance(backend, str) else None


def _connected(client: CoreClient) -> None:
    """Make ``client`` this driver's connection; each connection is a new job."""
    context.set_client(client)
    # Random rather than counted: drivers on different nodes of a cluster need no
    # coordination to get distinct ids. 4 bytes, as Ray's job ids.
    context.driver_job_id = os.urandom(4).hex()
    metadata = {"origin": "script", "entrypoint": " ".join(sys.argv)[:200]}
    metadata.update(job_settings.get("metadata", {}))
    metadata.update(context.job_metadata)
    client.send(p.JobInfo(job_id=context.driver_job_id, metadata=metadata))
    for hook in connect_hooks:
        hook(client)


def _same_address(a: str, b: str) -> bool:
    loopback = {"127.0.0.1", "localhost", "::1"}
    ha, _, pa = a.rpartition(":")
    hb, _, pb = b.rpartition(":")
    return pa == pb and (ha == hb or (ha in loopback and hb in loopback))


def info() -> RuntimeInfo:
    client = require_client()
    assert client.welcome is not None
    w = client.welcome
    return RuntimeInfo(
        address=w.session_dir, node_id=w.node_id, session_dir=w.session_dir, resources=w.resources
    )


def is_initialized() -> bool:
    """True while this process is connected to a runtime."""
    if _on_ray.ray is not None:
        return bool(_on_ray.ray.is_initialized())
    return context.get_client() is not None


def shutdown() -> None:
    """Disconnect; stop the local runtime if this process started it. Safe to call twice."""
    global _node
    with _lock:
        if _on_ray.ray is not None:
            _on_ray.disconnect()
        client = context.get_client()
        context.set_client(None)
        context.driver_job_id = None
        context.job_runtime_env = None
        context.job_namespace = None
        job_settings.clear()
        if client is not None:
            client.close()
        node, _node = _node, None
        if node is not None:
            node.stop()


atexit.register(shutdown)


def require_client() -> CoreClient:
    client = context.get_client()
    if client is None:
        raise RaySystemError(
            "jupyter_ray is not initialized: call jupyter_ray.init() first (in a notebook, "
            "or %ray_start)."
        )
    if client.closed:
        raise RaySystemError(
            "the jupyter_ray runtime has stopped; call jupyter_ray.shutdown() and then "
            "jupyter_ray.init() to start a new one."
        )
    return client


def auto_client() -> CoreClient:
    """The runtime's client, starting a local runtime first when there is none (as Ray's
    calls do); RaySystemError when it has stopped."""
    client = context.get_client()
    if client is not None and not client.closed:
        return client  # (every task and get comes here)
    if client is None:
        init()
    return require_client()
