"""Client side of the change feed: a live view kept current by snapshot + updates.

``FeedView`` is plain bookkeeping (apply a snapshot, apply updates, notice a gap in the
sequence numbers). ``StateFeed`` connects to a node manager on its own socket, so a slow
consumer never delays the driver's own traffic, and keeps a ``FeedView`` current from its
reader thread. The callback runs on that reader thread: a server extension should hop to
its event loop from there (``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..common import protocol as p
from ..common.state_schema import ID_FIELDS, KINDS
from ..common.transport import ClientConnection


class FeedView:
    """The subscriber's picture: every record by kind and id, and the last sequence."""

    def __init__(self) -> None:
        self.seq = -1
        self.records: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
        self.snapshots = 0  # how many snapshots were applied (1 + resyncs)

    def apply(self, msg: p.FeedSnapshot | p.FeedUpdate) -> bool:
        """Apply one message; False when an update does not follow the last one."""
        if isinstance(msg, p.FeedSnapshot):
            self.records = {
                kind: {getattr(r, ID_FIELDS[kind]): r for r in msg.records.get(kind, [])}
                for kind in KINDS
            }
            self.seq = msg.seq
            self.snapshots += 1
            return True
        if self.seq < 0 or msg.seq != self.seq + 1:
            return False
        for kind, records in msg.changed.items():
            table = self.records[kind]
            for r in records:
                table[getattr(r, ID_FIELDS[kind])] = r
        for kind, ids in msg.removed.items():
            table = self.records[kind]
            for key in ids:
                table.pop(key, None)
        self.seq = msg.seq
        return True


class StateFeed:
    """Subscribe to a node manager's change feed.

    >>> feed = StateFeed(socket_path)
    >>> feed.wait_for(lambda view: len(view.records["tasks"]) > 0, timeout=10)
    >>> feed.close()
    """

    def __init__(
        self, socket_path: str, on_message: Callable[[Any, FeedView], None] | None = None
    ) -> None:
        self.view = FeedView()
        # Kept only for someone iterating over the feed: queued unread, they would grow
        # without bound (a server subscribed for days had gigabytes of them).
        self.messages: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._iterating = False
        self._on_message = on_message
        self._cond = threading.Condition()
        self.closed = False
        self.resyncs = 0
        self._conn = ClientConnection(
            socket_path, self._receive, self._closed, name="jupyter-ray-feed"
        )
        self._conn.start()
        self._conn.send(p.Hello(role="subscriber", pid=os.getpid()), p.FeedSubscribe())

    def _receive(self, msg: Any) -> None:
        if not isinstance(msg, p.FeedSnapshot | p.FeedUpdate):
            return  # the Welcome
        with self._cond:
            if not self.view.apply(msg):
                self.resyncs += 1
                self._conn.send(p.FeedResync())
                return
            self._cond.notify_all()
        if self._iterating:
            self.messages.put(msg)
        if self._on_message is not None:
            self._on_message(msg, self.view)

    def _closed(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self.messages.put(None)

    def copy_records(self) -> tuple[int, dict[str, list[Any]]]:
        """(sequence number, every record by kind) as of now, taken under the view's lock
        (the reader thread applies updates meanwhile)."""
        with self._cond:
            return self.view.seq, {k: list(t.values()) for k, t in self.view.records.items()}

    def wait_for(self, predicate: Callable[[FeedView], bool], timeout: float) -> bool:
        """Block until ``predicate(view)`` holds (True) or ``timeout`` passes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.closed or predicate(self.view), timeout)

    def __iter__(self) -> Iterator[Any]:
        """Each message from now on (the view already holds what came before)."""
        self._iterating = True
        if self.closed:
            return
        while True:
            msg = self.messages.get()
            if msg is None:
                return
            yield msg

    def pause_reading(self) -> None:
        """Stop taking data off the socket (tests use it to play a slow subscriber)."""
        self._conn.pause()

    def resume_reading(self) -> None:
        self._conn.resume()

    def close(self) -> None:
        self._conn.close()
        self._conn.join(2)
