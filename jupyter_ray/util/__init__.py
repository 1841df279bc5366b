"""Utilities built on the public API: ``ActorPool``, ``queue.Queue``,
``multiprocessing.Pool``, named-actor listing."""

from __future__ import annotations

from typing import Any

from . import multiprocessing, queue
from .actor_pool import ActorPool

__all__ = ["ActorPool", "list_named_actors", "multiprocessing", "queue"]


def list_named_actors(all_namespaces: bool = False) -> list[Any]:
    """Names of live named actors (in the default namespace), as in Ray.

    With ``all_namespaces=True``, a list of ``{"name": ..., "namespace": ...}`` dicts.
    """
    from ..remote_function import _client

    entries = _client().query("list_named_actors", all_namespaces)
    if all_namespaces:
        return list(entries)
    return [e["name"] for e in entries]
