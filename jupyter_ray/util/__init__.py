"""Utilities built on the public API: ``ActorPool``, ``queue.Queue``,
``multiprocessing.Pool``, ``as_completed`` and ``map_unordered``, placement groups,
named-actor listing."""

from __future__ import annotations

from typing import Any

from . import multiprocessing, queue, scheduling_strategies, state
from .actor_pool import ActorPool
from .completion import as_completed, map_unordered
from .placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

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
    from ..remote_function import _client
    from ..runtime.client import context

    here = context.current_namespace() or "default"
    entries = _client().query("list_named_actors", True if all_namespaces else here)
    if all_namespaces:
        return list(entries)
    return [e["name"] for e in entries]


def get_node_ip_address() -> str:
    """The address of the node this process runs on, as in Ray (127.0.0.1 on one machine)."""
    from ..remote_function import _client

    client = _client()
    assert client.welcome is not None
    for node in client.query("nodes"):
        if node["NodeID"] == client.welcome.node_id:
            return str(node["NodeManagerAddress"])
    return "127.0.0.1"
