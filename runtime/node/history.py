"""Bounded history of finished tasks, for the state API, summaries and the timeline.

Plain bookkeeping. Finished tasks go into a ring of fixed size, so a job of a million
tasks does not grow the node manager's memory without limit; counters keep totals for
what the ring dropped.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator

from ..common.state_schema import TaskState


class TaskHistory:
    """The last ``capacity`` finished tasks, plus per-state totals of all of them."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 0:
            raise ValueError(f"task history capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._ring: deque[TaskState] = deque()
        self._index: dict[str, TaskState] = {}
        self.submitted = 0
        self.dropped: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._ring)

    def add(self, task: TaskState) -> TaskState | None:
        """Record a finished task; returns the task pushed out of the ring, if any."""
        if self.capacity == 0:
            self.dropped[task.state] += 1
            return task
        old = self._index.pop(task.task_id, None)
        if old is not None:  # a retried task finishing twice keeps one entry
            self._ring.remove(old)
        self._ring.append(task)
        self._index[task.task_id] = task
        if len(self._ring) > self.capacity:
            gone = self._ring.popleft()
            self._index.pop(gone.task_id, None)
            self.dropped[gone.state] += 1
            return gone
        return None

    def get(self, task_id: str) -> TaskState | None:
        return self._index.get(task_id)

    def __iter__(self) -> Iterator[TaskState]:
        return iter(self._ring)

    def summary(self, live: Iterable[TaskState]) -> tuple[Counter[str], dict[str, Counter[str]]]:
        by_state: Counter[str] = Counter()
        by_name: dict[str, Counter[str]] = {}
        for task in [*self._ring, *live]:
            by_state[task.state] += 1
            by_name.setdefault(task.name, Counter())[task.state] += 1
        return by_state, by_name
