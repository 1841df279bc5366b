"""jupyter_ray: Ray's API on a runtime made for Jupyter.

``import jupyter_ray as ray`` runs ordinary Ray programs::

    import jupyter_ray as ray

    @ray.remote
    def square(x):
        return x * x

    ray.init()
    print(ray.get([square.remote(i) for i in range(4)]))   # [0, 1, 4, 9]

Importing is cheap and has no side effects; nothing starts until ``init()`` (or the first
``.remote()`` call).
"""

from . import actor, exceptions, state, util
from .actor import ActorClass, ActorHandle, get_actor, kill, method
from .api import (
    RuntimeInfo,
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_gpu_ids,
    init,
    is_initialized,
    nodes,
    put,
    remote,
    shutdown,
    wait,
)
from .remote_function import RemoteFunction
from .runtime.object_ref import ObjectRef
from .runtime_context import RuntimeContext, get_runtime_context
from .state import timeline

__version__ = "0.1.0"

__all__ = [
    "ActorClass",
    "ActorHandle",
    "ObjectRef",
    "RemoteFunction",
    "RuntimeContext",
    "RuntimeInfo",
    "__version__",
    "actor",
    "available_resources",
    "cancel",
    "cluster_resources",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "state",
    "timeline",
    "util",
    "wait",
]
