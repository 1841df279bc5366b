"""The head's actor directory: owners and cluster-wide names, driven without sockets."""

from __future__ import annotations

from jupyter_ray.runtime.common import protocol as p
from jupyter_ray.runtime.node.cluster_directory import ActorNameDirectory


def _info(actor_id: bytes, name: str | None = None, namespace: str = "default") -> p.ActorInfo:
    options = p.ActorOptions("Cls", b"", name=name, namespace=namespace)
    return p.ActorInfo(actor_id, actor_id + b"\0\0\0\0", options)


def test_names_are_unique_per_namespace_and_freed_with_their_actor() -> None:
    d = ActorNameDirectory()
    first = _info(b"a" * 16, "x")
    assert d.register(first, "node-1") is None
    assert d.register(first, "node-1") is None  # registering again is harmless
    assert d.register(_info(b"b" * 16, "x"), "node-2") is first
    assert d.register(_info(b"c" * 16, "x", namespace="other"), "node-2") is None
    assert d.lookup("x", "default") is first and d.owner_of(b"a" * 16) == "node-1"
    assert d.names("default") == [{"name": "x", "namespace": "default"}]
    assert len(d.names(None)) == 2
    d.unregister(b"a" * 16)
    assert d.lookup("x", "default") is None and d.owner_of(b"a" * 16) is None
    assert d.register(_info(b"b" * 16, "x"), "node-2") is None


def test_a_node_that_leaves_takes_its_actors_and_names_along() -> None:
    d = ActorNameDirectory()
    d.register(_info(b"a" * 16, "x"), "node-1")
    d.register(_info(b"b" * 16), "node-1")
    d.register(_info(b"c" * 16, "y"), "node-2")
    d.drop_node("node-1")
    assert d.owner_of(b"a" * 16) is None and d.owner_of(b"b" * 16) is None
    assert [n["name"] for n in d.names(None)] == ["y"]
