"""Local scheduling: resource accounting and the queue of tasks ready to run.

Plain bookkeeping with no I/O, driven by the node manager and by unit tests. A task is
queued here once its arguments are available; it leaves when its resources can be taken
and a worker is free. A task whose demand exceeds the node's total waits (it may become
feasible when resources are added); it is never failed for that.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..common.labels import MARKER, satisfied

EPS = 1e-9
MAX_ZERO_RESOURCE_BURST = 64  # tasks needing no resources: start at most this many workers


@dataclass(slots=True)
class Grant:
    """Resources held by one running task."""

    demand: dict[str, float]
    gpu_ids: list[int] = field(default_factory=list)
    gpu_shares: list[tuple[int, float]] = field(default_factory=list)


class ResourceLedger:
    """Totals and availability of CPU, GPU, memory and custom resources on one node.

    GPUs are also tracked by index, so each task learns which devices are its own
    (``CUDA_VISIBLE_DEVICES``); a fractional GPU demand shares one device.
    """

    def __init__(self, total: dict[str, float], labels: dict[str, str] | None = None) -> None:
        self.total = {k: float(v) for k, v in total.items() if v > 0}
        self.available = dict(self.total)
        self._gpu_free = [1.0] * int(self.total.get("GPU", 0))
        # This node's labels: a label selector in a demand (a marker key, see labels.py)
        # counts as available when they match. Markers are looked at only when the
        # ordinary comparison fails, so other demands pay nothing for them.
        self.labels = dict(labels or {})

    def feasible(self, demand: dict[str, float]) -> bool:
        """Could the demand ever run on this node?"""
        return all(
            self.total.get(k, 0.0) + EPS >= v or satisfied(k, self.labels)
            for k, v in demand.items()
            if v > 0
        )

    def fits(self, demand: dict[str, float]) -> bool:
        if not all(
            self.available.get(k, 0.0) + EPS >= v or satisfied(k, self.labels)
            for k, v in demand.items()
            if v > 0
        ):
            return False
        return self._pick_gpus(demand.get("GPU", 0.0)) is not None

    def how_many_fit(self, demand: dict[str, float]) -> int:
        """How many tasks of this demand could start now (CPU/custom bound; a cap)."""
        counts = [
            int((self.available.get(k, 0.0) + EPS) // v)
            for k, v in demand.items()
            if v > 0 and not k.startswith(MARKER)
        ]
        return min(counts) if counts else MAX_ZERO_RESOURCE_BURST

    def _pick_gpus(self, amount: float) -> list[tuple[int, float]] | None:
        if amount <= 0:
            return []
        if amount < 1:
            for i, free in enumerate(self._gpu_free):
                if free + EPS >= amount:
                    return [(i, amount)]
            return None
        whole = round(amount)
        picked = [(i, 1.0) for i, free in enumerate(self._gpu_free) if free >= 1 - EPS][:whole]
        return picked if len(picked) == whole else None

    def acquire(self, demand: dict[str, float]) -> Grant | None:
        """Take the demand if it fits now; return the grant, else None."""
        if not self.fits(demand):
            return None
        shares = self._pick_gpus(demand.get("GPU", 0.0)) or []
        for i, share in shares:
            self._gpu_free[i] -= share
        for k, v in demand.items():
            if v > 0 and k in self.available:  # (a label marker is never held)
                self.available[k] -= v
        return Grant(dict(demand), [i for i, _ in shares], shares)

    def release(self, grant: Grant) -> None:
        for k, v in grant.demand.items():
            if v > 0 and k in self.total:  # (a removed placement group's are gone)
                self.available[k] = self.available.get(k, 0.0) + v
        for i, share in grant.gpu_shares:
            self._gpu_free[i] += share
        grant.demand = {}
        grant.gpu_shares = []

    def lend_cpu(self, grant: Grant) -> float:
        """A worker blocked in ``get`` gives its CPUs back so others can run."""
        cpus = grant.demand.get("CPU", 0.0)
        if cpus > 0:
            self.available["CPU"] = self.available.get("CPU", 0.0) + cpus
        return cpus

    def reclaim_cpu(self, cpus: float) -> None:
        """Take the lent CPUs back; may go below zero until running tasks finish."""
        if cpus > 0:
            self.available["CPU"] = self.available.get("CPU", 0.0) - cpus

    def add(self, extra: dict[str, float]) -> None:
        for k, v in extra.items():
            self.total[k] = self.total.get(k, 0.0) + v
            self.available[k] = self.available.get(k, 0.0) + v
        if "GPU" in extra:
            self._gpu_free.extend([1.0] * int(extra["GPU"]))

    def remove(self, extra: dict[str, float]) -> None:
        """Take away resources ``add`` gave (a placement group's, when it is removed)."""
        for k, v in extra.items():
            left = self.total.get(k, 0.0) - v
            if left <= EPS:
                self.total.pop(k, None)
                self.available.pop(k, None)
            else:
                self.total[k] = left
                self.available[k] = self.available.get(k, 0.0) - v


def shape_of(demand: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, v) for k, v in demand.items() if v > 0))


class ReadyQueue:
    """Tasks whose arguments are ready, grouped by resource shape, FIFO within a shape.

    Grouping keeps dispatch O(1) per task when thousands of tasks of one shape wait, and
    lets a small task pass a large one that does not fit yet.
    """

    def __init__(self) -> None:
        self._queues: OrderedDict[tuple[tuple[str, float], ...], deque[object]] = OrderedDict()
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def push(self, demand: dict[str, float], item: object) -> None:
        key = shape_of(demand)
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = deque()
        q.append(item)
        self._len += 1

    def shapes(self) -> Iterator[tuple[dict[str, float], deque[object]]]:
        for key, q in list(self._queues.items()):
            if q:
                yield dict(key), q
            else:
                del self._queues[key]

    def popleft(self, q: deque[object]) -> object:
        self._len -= 1
        return q.popleft()

    def remove(self, item: object) -> bool:
        for q in self._queues.values():
            try:
                q.remove(item)
            except ValueError:
                continue
            self._len -= 1
            return True
        return False

    def remove_all(self, items: list[object]) -> int:
        """Remove these items (by identity) in one pass over the queue; how many were in.
        ``remove`` per item costs a pass each, too slow to cancel thousands at once."""
        gone = {id(item) for item in items}
        removed = 0
        for key, q in self._queues.items():
            kept = deque(item for item in q if id(item) not in gone)
            removed += len(q) - len(kept)
            self._queues[key] = kept
        self._len -= removed
        return removed

    def demands(self) -> list[dict[str, float]]:
        return [dict(key) for key, q in self._queues.items() for _ in q]
