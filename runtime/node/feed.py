"""The change feed: a snapshot, then batched updates with sequence numbers.

Plain bookkeeping plus a flush driven by the node manager's loop. Changes are coalesced
per entity (a task that went through five states in one interval is sent once, in its
latest state) and flushed at most every ``interval`` seconds. A subscriber whose socket
backs up stops receiving updates; once it drains, it gets a fresh snapshot instead of a
stale stream, so it never shows a wrong picture. Nothing is recorded while nobody
subscribes, and an entity that came and went between two flushes (most results of
short tasks) is never sent at all: neither its record nor its removal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..common.protocol import FeedSnapshot, FeedUpdate
from ..common.state_schema import ID_FIELDS, KINDS

LAG_HIGH = 1 << 20  # bytes queued for a subscriber before it counts as lagging
LAG_LOW = 64 << 10  # ... and below which it gets a snapshot and resumes


class Peer(Protocol):
    conn_id: int
    closed: bool

    def send(self, msg: object) -> None: ...
    def backlog(self) -> int: ...


@dataclass(slots=True, eq=False)
class _Subscriber:
    peer: Peer
    lagging: bool = False


@dataclass(slots=True)
class ChangeFeed:
    interval: float = 0.25
    seq: int = 0
    subscribers: dict[int, _Subscriber] = field(default_factory=dict)
    changed: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    removed: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    # ids some subscriber has a record of (sent in a snapshot or an update, not removed)
    known: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})

    @property
    def active(self) -> bool:
        return bool(self.subscribers)

    def touch(self, kind: str, key: str) -> None:
        if self.subscribers:
            self.changed[kind].add(key)
            self.removed[kind].discard(key)

    def gone(self, kind: str, key: str) -> None:
        if self.subscribers:
            self.changed[kind].discard(key)
            if key in self.known[kind]:
                self.removed[kind].add(key)

    def subscribe(self, peer: Peer, snapshot: Callable[[], dict[str, list[Any]]]) -> None:
        self.subscribers[peer.conn_id] = _Subscriber(peer)
        self._send_snapshot(peer, snapshot)

    def unsubscribe(self, conn_id: int) -> None:
        self.subscribers.pop(conn_id, None)
        if not self.subscribers:
            for kind in KINDS:
                self.changed[kind].clear()
                self.removed[kind].clear()
                self.known[kind].clear()

    def resync(self, conn_id: int, snapshot: Callable[[], dict[str, list[Any]]]) -> None:
        sub = self.subscribers.get(conn_id)
        if sub is not None:
            self._send_snapshot(sub.peer, snapshot)

    def _send_snapshot(self, peer: Peer, snapshot: Callable[[], dict[str, list[Any]]]) -> None:
        records = snapshot()
        for kind, recs in records.items():
            field_name = ID_FIELDS[kind]
            self.known[kind].update(getattr(r, field_name) for r in recs)
        peer.send(FeedSnapshot(self.seq, records))

    def flush(
        self,
        lookup: Callable[[str, str], Any],
        snapshot: Callable[[], dict[str, list[Any]]],
    ) -> None:
        """Send pending changes; ``lookup(kind, id)`` gives a record or None if gone."""
        changed: dict[str, list[Any]] = {}
        removed: dict[str, list[str]] = {}
        for kind in KINDS:
            records = []
            known = self.known[kind]
            gone = self.removed[kind]
            for key in self.changed[kind]:
                record = lookup(kind, key)
                if record is None:
                    if key in known:
                        gone.add(key)
                else:
                    records.append(record)
                    known.add(key)
            if records:
                changed[kind] = records
            if gone:
                known.difference_update(gone)
                removed[kind] = sorted(gone)
            self.changed[kind].clear()
            gone.clear()
        has_news = bool(changed or removed)
        if has_news:
            self.seq += 1
        update = FeedUpdate(self.seq, changed, removed) if has_news else None
        for conn_id, sub in list(self.subscribers.items()):
            peer = sub.peer
            if peer.closed:
                del self.subscribers[conn_id]
                continue
            backlog = peer.backlog()
            if sub.lagging:
                if backlog <= LAG_LOW:
                    sub.lagging = False
                    self._send_snapshot(peer, snapshot)  # (what it names is known)
                continue
            if backlog > LAG_HIGH:
                sub.lagging = True
                continue
            if update is not None:
                peer.send(update)
