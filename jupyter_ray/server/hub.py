"""The live feed for browsers: one subscription to the runtime, fanned out to WebSockets.

The server subscribes once to the head's change feed (``StateFeed``, a socket of its own)
and keeps every browser current from it: a ``status`` message when the runtime starts,
stops or dies, a ``snapshot`` when a browser connects (or asks, or fell behind), then at
most ``rate`` ``update`` messages a second with what changed since the last one,
coalesced per record.

``Fanout`` is the bookkeeping (no I/O): changes absorbed from the feed, and the messages
each browser gets given its filter. ``FeedHub`` is the shell on the server's event loop.
Threads: ``StateFeed`` calls ``Fanout.absorb`` on its reader thread; everything else runs
on the loop. One lock in ``Fanout`` makes a snapshot and the pending changes agree: a
record in the pending changes is never older than the one a snapshot sent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from ..runtime.common import protocol as p
from ..runtime.common.state_schema import ID_FIELDS, KINDS
from .manager import RuntimeManager

log = logging.getLogger("jupyter_ray.server")

MAX_PENDING_WRITES = 2
"""Messages a browser may have unwritten before it counts as behind (then it gets no
updates until it drains, and a fresh snapshot after): the server never queues more."""


def record_json(record: Any) -> dict[str, Any]:
    """A state record as JSON-ready data (flat records shallowly: thousands per snapshot)."""
    if type(record).__name__ == "NodeState":
        return asdict(record)  # holds GpuState records
    return {f.name: getattr(record, f.name) for f in fields(record)}


@dataclass
class Subscription:
    """What one browser sees: every task, or one cell's, or one kernel's."""

    cell_id: str | None = None
    kernel_id: str | None = None
    needs_snapshot: bool = True
    seq: int = 0  # of the last message sent: numbered per browser, with no gaps

    def wants(self, task: Any, kernel_jobs: dict[str, set[str]]) -> bool:
        if self.cell_id is not None and task.cell_id != self.cell_id:
            return False
        if self.kernel_id is not None:
            return task.job_id in kernel_jobs.get(self.kernel_id, ())
        return True


@dataclass
class Fanout:
    """Changes since the last update, and the messages made from them; no I/O."""

    seq: int = 0
    changed: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: {} for k in KINDS})
    removed: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    jobs: list[Any] = field(default_factory=list)  # JobState records
    jobs_changed: bool = False
    resynced: bool = False  # the runtime's feed sent a snapshot: every browser needs one
    lock: threading.Lock = field(default_factory=threading.Lock)

    def absorb(self, msg: Any) -> None:
        """A message of the runtime's feed (runs on the feed's reader thread)."""
        with self.lock:
            if isinstance(msg, p.FeedSnapshot):
                self.clear()
                self.resynced = True
                return
            for kind, records in msg.changed.items():
                table, gone = self.changed[kind], self.removed[kind]
                key = ID_FIELDS[kind]
                for record in records:
                    table[getattr(record, key)] = record
                    gone.discard(getattr(record, key))
            for kind, ids in msg.removed.items():
                table, gone = self.changed[kind], self.removed[kind]
                for key in ids:
                    table.pop(key, None)
                    gone.add(key)

    def clear(self) -> None:
        for kind in KINDS:
            self.changed[kind].clear()
            self.removed[kind].clear()

    def set_jobs(self, jobs: list[Any]) -> None:
        if [record_json(j) for j in jobs] != [record_json(j) for j in self.jobs]:
            self.jobs = jobs
            self.jobs_changed = True

    def kernel_jobs(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for job in self.jobs:
            kernel = job.metadata.get("kernel_id")
            if kernel:
                out.setdefault(kernel, set()).add(job.job_id)
        return out

    def take(self) -> tuple[dict[str, list[Any]], dict[str, list[str]], bool] | None:
        """Swap out what changed since the last call: (changed, removed, jobs changed)."""
        with self.lock:
            has = self.jobs_changed or any(self.changed[k] or self.removed[k] for k in KINDS)
            if not has:
                return None
            changed = {k: list(v.values()) for k, v in self.changed.items() if v}
            removed = {k: sorted(v) for k, v in self.removed.items() if v}
            jobs, self.jobs_changed = self.jobs_changed, False
            self.clear()
            self.seq += 1
            return changed, removed, jobs

    def snapshot(
        self, records: dict[str, list[Any]], sub: Subscription, kernel_jobs: dict[str, set[str]]
    ) -> dict[str, Any]:
        sub.seq += 1
        msg: dict[str, Any] = {"type": "snapshot", "seq": sub.seq}
        for kind in KINDS:
            rows: Iterable[Any] = records.get(kind, [])
            if kind == "tasks":
                rows = [t for t in rows if sub.wants(t, kernel_jobs)]
            msg[kind] = [record_json(r) for r in rows]
        msg["jobs"] = [record_json(j) for j in self.jobs]
        return msg

    def update_for(
        self,
        sub: Subscription,
        changed: dict[str, list[Any]],
        removed: dict[str, list[str]],
        jobs_changed: bool,
        kernel_jobs: dict[str, set[str]],
    ) -> dict[str, Any] | None:
        out_changed: dict[str, list[dict[str, Any]]] = {}
        for kind, rows in changed.items():
            if kind == "tasks":
                rows = [t for t in rows if sub.wants(t, kernel_jobs)]
            if rows:
                out_changed[kind] = [record_json(r) for r in rows]
        if jobs_changed:
            out_changed["jobs"] = [record_json(j) for j in self.jobs]
        if not out_changed and not removed:
            return None
        sub.seq += 1
        return {"type": "update", "seq": sub.seq, "changed": out_changed, "removed": removed}


class Client(Protocol):
    """A browser's WebSocket, as the hub sees it (``websocket.EventsHandler``)."""

    subscription: Subscription

    def deliver(self, message: dict[str, Any]) -> bool:
        """Send unless behind; False when the message was not sent."""
        ...

    def behind(self) -> bool: ...


class FeedHub:
    """Keeps every connected browser current; runs on the server's event loop."""

    def __init__(self, manager: RuntimeManager, rate: float = 4.0) -> None:
        self.manager = manager
        self.interval = 1.0 / rate
        self.clients: set[Client] = set()
        self.fanout = Fanout()
        self._feed: Any = None  # the manager's subscription: copy_records() and close()
        self._generation = -1
        self._last_status: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._jobs_every = max(1, round(1.0 / self.interval))  # ticks between job refreshes
        self._ticks = 0
        self.on_status: Callable[[dict[str, Any]], None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._close_feed()

    def add(self, client: Client) -> None:
        self.clients.add(client)
        client.deliver({"type": "status", "cluster": self.manager.status()})
        client.subscription.needs_snapshot = True
        self.poke()

    def remove(self, client: Client) -> None:
        self.clients.discard(client)

    def poke(self) -> None:
        """Run a tick soon (a new browser, a filter change, a start or stop)."""
        asyncio.get_event_loop().call_soon(lambda: asyncio.ensure_future(self.tick()))

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a bad tick must not end the feed for everyone
                log.exception("jupyter_ray: the live feed failed one update")
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        """Notice status changes, follow the runtime, send snapshots and updates."""
        manager = self.manager
        manager.check()
        if manager.generation != self._generation:
            self._generation = manager.generation
            self._resubscribe()
        status = manager.status()
        if status != self._last_status:
            self._last_status = status
            for client in list(self.clients):
                client.deliver({"type": "status", "cluster": status})
            if self.on_status is not None:
                self.on_status(status)
        if self._feed is None:
            return
        self._ticks += 1
        if self._ticks % self._jobs_every == 1 or any(
            c.subscription.kernel_id for c in self.clients
        ):
            await self._refresh_jobs()
        if self.fanout.resynced:
            self.fanout.resynced = False
            for client in self.clients:
                client.subscription.needs_snapshot = True
        taken = self.fanout.take()
        kernel_jobs = self.fanout.kernel_jobs()
        snapshot: tuple[int, dict[str, list[Any]]] | None = None
        for client in list(self.clients):
            sub = client.subscription
            if sub.needs_snapshot:
                if client.behind():
                    continue
                if snapshot is None:
                    with self.fanout.lock:
                        snapshot = self._feed.copy_records()
                if client.deliver(self.fanout.snapshot(snapshot[1], sub, kernel_jobs)):
                    sub.needs_snapshot = False
            elif taken is not None:
                msg = self.fanout.update_for(sub, *taken, kernel_jobs)
                if msg is not None and not client.deliver(msg):
                    sub.needs_snapshot = True  # it fell behind: a fresh picture when it drains

    async def _refresh_jobs(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            jobs = await loop.run_in_executor(None, self.manager.query, "list_jobs")
        except Exception:  # the runtime went away meanwhile; check() will say so
            return
        self.fanout.set_jobs(list(jobs))

    def _resubscribe(self) -> None:
        self._close_feed()
        self.fanout = Fanout()
        for client in self.clients:
            client.subscription.needs_snapshot = True
        fanout = self.fanout
        try:
            # None: not running, or attached over TCP (no live feed; REST still works)
            self._feed = self.manager.subscribe(fanout.absorb)
        except OSError as err:
            log.warning("jupyter_ray: could not subscribe to the runtime's feed: %s", err)

    def _close_feed(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.close()
