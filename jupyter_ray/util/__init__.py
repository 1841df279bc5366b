"""Utilities built on the public API: ``ActorPool``, ``queue.Queue``,
``multiprocessing.Pool``, ``as_completed`` and ``map_unordered``, placement groups,
named-actor listing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _lazy
from .._client import auto_client
from ..runtime.client import context
from . import scheduling_strategies

# (imported here, not on first use: importing the submodule ``placement_group`` would
# otherwise leave the module, not the function, under that name in this package)
from .placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

if TYPE_CHECKING:
    from . import multiprocessing, queue, state
    from .actor_pool import ActorPool
    from .completion import as_completed, map_unordered

__all__ = [
    "ActorPool",
    "PlacementGroup",
    "as_completed",
    "get_current_placement_group",
    "get_node_ip_address",
    "get_placement_group",
    "list_named_actors",
    "map_unordered",
    "multiprocessing",
    "placement_group",
    "placement_group_table",
    "queue",
    "remove_placement_group",
    "scheduling_strategies",
    "state",
]


def list_named_actors(all_namespaces: bool = False) -> list[Any]:
    """Names of live named actors (in the default namespace), as in Ray.

    With ``all_namespaces=True``, a list of ``{"name": ..., "namespace": ...}`` dicts.
    """
    here = context.current_namespace() or "default"
    entries = auto_client().query("list_named_actors", True if all_namespaces else here)
    if all_namespaces:
        return list(entries)
    return [e["name"] for e in entries]


def get_node_ip_address() -> str:
    """The address of the node this process runs on, as in Ray (127.0.0.1 on one machine)."""
    client = auto_client()
    assert client.welcome is not None
    for node in client.query("nodes"):
        if node["NodeID"] == client.welcome.node_id:
            return str(node["NodeManagerAddress"])
    return "127.0.0.1"


# Public name -> the submodule that defines it ("" for the submodule of that name). Loaded
# on first use, as the package above does: the facade's option checks import
# ``util.placement_group`` and ``util.scheduling_strategies``, which must not pull in the
# pool, queue and completion helpers built on the whole API (they import the checks).
_WHERE = {
    "ActorPool": "actor_pool",
    "as_completed": "completion",
    "map_unordered": "completion",
    "multiprocessing": "",
    "queue": "",
    "state": "",
}


__getattr__, __dir__ = _lazy.attach(__name__, _WHERE, __all__)
