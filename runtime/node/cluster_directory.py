"""The head's directory of the cluster's actors: every actor's owner node, and the names.

Plain bookkeeping, no I/O; members ask the head with ``Query`` messages
(:mod:`cluster_actors`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..common import protocol as p


@dataclass(slots=True)
class DirectoryEntry:
    info: p.ActorInfo
    node_id: str  # the owner


class ActorNameDirectory:
    """The head's directory: every actor's owner node, and the cluster's names.

    Plain bookkeeping, no I/O. Entries come from owners when actors are created and go
    when they die, or when the owner's node leaves the cluster.
    """

    def __init__(self) -> None:
        self.entries: dict[bytes, DirectoryEntry] = {}
        self.named: dict[tuple[str, str], bytes] = {}

    def register(self, info: p.ActorInfo, node_id: str) -> p.ActorInfo | None:
        """Record an actor; returns the other live actor that has its name, if one has."""
        opts = info.options
        if opts.name:
            key = (opts.namespace, opts.name)
            existing = self.named.get(key)
            if existing is not None and existing != info.actor_id:
                return self.entries[existing].info
            self.named[key] = info.actor_id
        self.entries[info.actor_id] = DirectoryEntry(info, node_id)
        return None

    def unregister(self, actor_id: bytes) -> None:
        entry = self.entries.pop(actor_id, None)
        if entry is not None and entry.info.options.name:
            key = (entry.info.options.namespace, entry.info.options.name)
            if self.named.get(key) == actor_id:
                del self.named[key]

    def owner_of(self, actor_id: bytes) -> str | None:
        entry = self.entries.get(actor_id)
        return entry.node_id if entry is not None else None

    def lookup(self, name: str, namespace: str) -> p.ActorInfo | None:
        actor_id = self.named.get((namespace, name))
        return self.entries[actor_id].info if actor_id is not None else None

    def names(self, namespace: str | None) -> list[dict[str, str]]:
        return [
            {"name": name, "namespace": ns}
            for (ns, name) in self.named
            if namespace is None or ns == namespace
        ]

    def drop_node(self, node_id: str) -> None:
        """The node left: its actors died with it."""
        for actor_id in [a for a, e in self.entries.items() if e.node_id == node_id]:
            self.unregister(actor_id)
