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

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from . import _lazy

if TYPE_CHECKING:
    from . import actor, exceptions, job_config, state, util
    from ._remote import remote
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
        shutdown,
        wait,
    )
    from .remote_function import RemoteFunction
    from .runtime.client.generators import DynamicObjectRefGenerator, ObjectRefGenerator
    from .runtime.client.object_ref import ObjectID, ObjectRef
    from .runtime_context import (
        ActorID,
        JobID,
        NodeID,
        RuntimeContext,
        TaskID,
        get_runtime_context,
    )
    from .state import timeline

# Public name -> the module that defines it ("" for the submodule of that name). The
# facade loads on first use: the runtime's own processes (node manager, zygote) import
# the ``jupyter_ray`` package on their way to ``jupyter_ray.runtime`` and need none of
# it, and every millisecond there delays a fresh runtime's first result.
_WHERE = {
    "ActorClass": "actor",
    "ActorHandle": "actor",
    "get_actor": "actor",
    "kill": "actor",
    "method": "actor",
    "RuntimeInfo": "api",
    "available_resources": "api",
    "cancel": "api",
    "cluster_resources": "api",
    "get": "api",
    "get_gpu_ids": "api",
    "init": "api",
    "is_initialized": "api",
    "nodes": "api",
    "put": "api",
    "remote": "_remote",
    "shutdown": "api",
    "wait": "api",
    "RemoteFunction": "remote_function",
    "ObjectRef": "runtime.client.object_ref",
    "ObjectID": "runtime.client.object_ref",
    "ObjectRefGenerator": "runtime.client.generators",
    "DynamicObjectRefGenerator": "runtime.client.generators",
    "ActorID": "runtime_context",
    "JobID": "runtime_context",
    "NodeID": "runtime_context",
    "TaskID": "runtime_context",
    "RuntimeContext": "runtime_context",
    "get_runtime_context": "runtime_context",
    "timeline": "state",
    "actor": "",
    "exceptions": "",
    "job_config": "",
    "state": "",
    "util": "",
}


if "ray" in sys.modules:  # imported inside a Ray worker: use Ray there (jupyter_ray.on_ray)
    from .on_ray.backend import adopt_if_worker

    adopt_if_worker()


# --- entry points for Jupyter; each imports its (Jupyter-dependent) subpackage lazily ---


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_ray``: the magics and the notebook integration."""
    from .kernel import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .kernel import unload_ipython_extension as unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The jupyter_server extension that owns the runtime (``jupyter_ray.server``)."""
    from .server.app import JupyterRay

    return [{"module": "jupyter_ray", "app": JupyterRay}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the built JupyterLab extension sits inside this package."""
    return [{"src": "labextension", "dest": "jupyter-ray"}]


__version__ = "0.1.0"

__all__ = [
    "ActorClass",
    "ActorHandle",
    "ActorID",
    "DynamicObjectRefGenerator",
    "JobID",
    "NodeID",
    "ObjectID",
    "ObjectRef",
    "ObjectRefGenerator",
    "RemoteFunction",
    "RuntimeContext",
    "RuntimeInfo",
    "TaskID",
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
    "job_config",
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

__getattr__, __dir__ = _lazy.attach(__name__, _WHERE, __all__)
