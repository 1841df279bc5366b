"""The drivers (jobs) a node manager has seen: plain bookkeeping, no I/O.

Every driver connection is a job with an id the driver makes itself (tasks carry it, see
``context.driver_job_id``). A driver announces it with ``JobInfo`` right after it
connects, with metadata such as the notebook kernel it runs in, so that a view of "this
kernel's tasks" can find the job ids that belong to a kernel.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from ..common.state_schema import JobState


class JobTable:
    """Jobs by id: the connected ones, and the last ``keep_ended`` that disconnected."""

    def __init__(self, keep_ended: int = 100) -> None:
        self.keep_ended = keep_ended
        self._jobs: OrderedDict[str, JobState] = OrderedDict()
        self._by_conn: dict[int, str] = {}

    def started(self, conn_id: int, job_id: str, pid: int, metadata: dict[str, str]) -> None:
        """A driver on connection ``conn_id`` announced job ``job_id``."""
        previous = self._by_conn.get(conn_id)
        if previous is not None and previous != job_id:
            self._end(previous)
        self._by_conn[conn_id] = job_id
        self._jobs[job_id] = JobState(job_id, pid, time.time(), None, dict(metadata))
        self._jobs.move_to_end(job_id)

    def connection_lost(self, conn_id: int) -> None:
        job_id = self._by_conn.pop(conn_id, None)
        if job_id is not None:
            self._end(job_id)

    def _end(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is not None and job.end_time is None:
            job.end_time = time.time()
        ended = [j for j in self._jobs.values() if j.end_time is not None]
        for old in ended[: max(0, len(ended) - self.keep_ended)]:
            del self._jobs[old.job_id]

    def states(self) -> list[JobState]:
        """Every job known, oldest first (copies: callers may keep them)."""
        return [
            JobState(j.job_id, j.pid, j.start_time, j.end_time, dict(j.metadata))
            for j in self._jobs.values()
        ]
