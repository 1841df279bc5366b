"""The node manager's actor directory: actor records, names, and per-caller call queues.

Plain bookkeeping, no I/O. Calls from one caller run in the order they were submitted:
each caller has a FIFO, and only its head is released to the actor, once the head's
arguments are ready. Calls of different callers do not wait for each other.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..common.protocol import ActorInfo, ActorOptions, Payload, TaskSpec
from ..common.serialization import serialize

if TYPE_CHECKING:
    from .scheduler import Grant


class ActorStatus(str, Enum):
    """An actor's state; the values are the state API's strings (``ActorState.state``)."""

    PENDING = "PENDING_CREATION"
    ALIVE = "ALIVE"
    RESTARTING = "RESTARTING"
    DEAD = "DEAD"


PENDING = ActorStatus.PENDING
ALIVE = ActorStatus.ALIVE
RESTARTING = ActorStatus.RESTARTING
DEAD = ActorStatus.DEAD

_NONE = serialize(None).to_bytes()


def alive_cookie() -> Payload:
    """The value an actor's cookie gets once the actor runs (a fresh, mutable payload)."""
    return Payload(data=_NONE, size=len(_NONE))


@dataclass(slots=True, eq=False)
class ActorRecord:
    actor_id: bytes
    cookie: bytes
    spec: TaskSpec  # the creation task, kept to restart the actor
    options: ActorOptions
    owner: int
    state: ActorStatus = PENDING
    worker: Any = None  # records.WorkerState while the actor has a process
    pid: int = 0
    grant: Grant | None = None
    restarts: int = 0
    death_cause: str = ""
    death_error: BaseException | None = None  # what the constructor raised
    no_restart: bool = False
    exiting_reason: str = ""
    queues: dict[int, deque[Any]] = field(default_factory=dict)  # caller -> TaskRecords
    inflight: dict[bytes, Any] = field(default_factory=dict)  # task id -> TaskRecord
    # Across nodes (see cluster_actors.py): calls go to ``route`` instead of a local
    # worker; to the host node for an actor placed elsewhere, to the owner for a proxy.
    route: str | None = None
    route_ready: bool = False  # its creation (or owner lookup) went out first
    outbox: deque[Any] = field(default_factory=deque)  # released calls not yet sent
    sending: bool = False
    proxy: bool = False  # another node owns the actor; this record only forwards calls
    for_peer: bool = False  # hosted here for an owner on another node

    @property
    def name(self) -> str | None:
        return self.options.name

    def info(self) -> ActorInfo:
        return ActorInfo(self.actor_id, self.cookie, self.options)

    def queued(self) -> int:
        return sum(len(q) for q in self.queues.values())


class ActorDirectory:
    """Every actor this node knows, with the named-actor registry."""

    def __init__(self) -> None:
        self.actors: dict[bytes, ActorRecord] = {}
        self.by_cookie: dict[bytes, ActorRecord] = {}
        self.named: dict[tuple[str, str], bytes] = {}
        self.proxies: dict[bytes, ActorRecord] = {}  # actors other nodes own, by id

    def add(self, record: ActorRecord) -> None:
        self.actors[record.actor_id] = record
        self.by_cookie[record.cookie] = record
        if record.options.name:
            self.named[(record.options.namespace, record.options.name)] = record.actor_id

    def lookup(self, name: str, namespace: str) -> ActorRecord | None:
        actor_id = self.named.get((namespace, name))
        return self.actors.get(actor_id) if actor_id is not None else None

    def mark_dead(self, record: ActorRecord, cause: str) -> None:
        record.state = DEAD
        record.death_cause = record.death_cause or cause
        record.worker = None
        key = (record.options.namespace, record.options.name or "")
        if record.options.name and self.named.get(key) == record.actor_id:
            del self.named[key]

    def forget(self, record: ActorRecord) -> None:
        """Drop a dead actor once nothing refers to it."""
        if record.proxy:
            if self.proxies.get(record.actor_id) is record:
                del self.proxies[record.actor_id]
            return
        self.actors.pop(record.actor_id, None)
        self.by_cookie.pop(record.cookie, None)

    def enqueue(self, record: ActorRecord, caller: int, task: Any) -> None:
        q = record.queues.get(caller)
        if q is None:
            q = record.queues[caller] = deque()
        q.append(task)

    def releasable(self, record: ActorRecord) -> list[Any]:
        """Pop the calls whose turn has come and whose arguments are ready: each
        caller's in order, or, for an actor that runs calls out of order (threaded and
        async ones, as in Ray), every call whose arguments are ready."""
        out: list[Any] = []
        for caller, q in list(record.queues.items()):
            while q and q[0].missing == 0:
                out.append(q.popleft())
            if q and record.options.out_of_order:
                waiting = deque(t for t in q if t.missing)
                if len(waiting) < len(q):
                    out += [t for t in q if not t.missing]
                    record.queues[caller] = q = waiting
            if not q:
                del record.queues[caller]
        return out

    def drain(self, record: ActorRecord) -> list[Any]:
        """Remove and return every queued call (the actor died)."""
        out = [t for q in record.queues.values() for t in q]
        record.queues.clear()
        return out

    def names(self, namespace: str | None) -> list[dict[str, str]]:
        return [
            {"name": name, "namespace": ns}
            for (ns, name), _ in self.named.items()
            if namespace is None or ns == namespace
        ]
