"""The node's pool of worker processes: starting them, handing an idle one to a task,
taking it back, retiring surplus ones (a component of the node manager, on its loop).

The pool keeps ``pool_size`` task workers (actors' dedicated workers do not count) and
grows only by what queued work can use (the counting is the task state machine's,
:mod:`task_machine`). GPU and CPU work never share a process
(``WorkerState.gpu``), as in Ray: a library that opened a GPU keeps it, and its memory,
for the life of the process. What happens to the task of a worker that dies is the
tasks component's business (:mod:`tasks`), to an actor's, :mod:`actor_manager`'s.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..common.ids import random_id
from .processes import WorkerProcesses
from .records import WorkerState

if TYPE_CHECKING:
    from ..common.transport import ServerConnection

IDLE_WORKER_TTL = 30.0


def _unwired() -> None:
    raise RuntimeError("WorkerPool.never_came was not wired by the node manager")


class WorkerPool:
    """The worker processes of one node; see the module docstring."""

    def __init__(
        self,
        socket_path: str,
        logs_dir: str,
        env: dict[str, str],
        pool_size: int,
        stopping: asyncio.Event,
    ) -> None:
        self.workers: dict[int, WorkerState] = {}  # by connection id
        self.idle: deque[WorkerState] = deque()
        self.processes = WorkerProcesses(socket_path, logs_dir, env, self._process_exited)
        self.logs_dir = logs_dir
        self.pool_size = pool_size
        self.starting = 0
        self.stopping = stopping  # set when the node manager shuts down
        self._said_hello: set[int] = set()
        # A process exited before it said hello: the tasks component starts another if
        # the pool needs one, and dispatches.
        self.never_came: Callable[[], None] = _unwired

    def joined(self, conn: ServerConnection, pid: int, worker_id: str) -> WorkerState:
        """A worker process said hello: it is idle until a task comes."""
        self.starting = max(0, self.starting - 1)
        self._said_hello.add(pid)
        worker = WorkerState(conn, pid, worker_id)
        self.workers[conn.conn_id] = worker
        self.idle.append(worker)
        return worker

    def _process_exited(self, pid: int) -> None:
        if not any(w.pid == pid for w in self.workers.values()) and pid not in self._said_hello:
            # it died before it said hello: stop waiting for it
            self.starting = max(0, self.starting - 1)
            self.never_came()
        self._said_hello.discard(pid)

    def start_worker(self) -> None:
        self.processes.spawn(random_id(8))
        self.starting += 1

    def take_idle(self, gpu: bool) -> WorkerState | None:
        """An idle worker that may run GPU work (``gpu``) or CPU work, newest first."""
        idle = self.idle
        for i in range(len(idle) - 1, -1, -1):
            worker = idle[i]
            if worker.gpu is None or worker.gpu is gpu:
                del idle[i]
                worker.gpu = gpu
                return worker
        return None

    def free(self, worker: WorkerState, exiting: bool) -> None:
        """The worker finished its task: idle again, unless it is on its way out."""
        if worker.lent_cpus:
            worker.lent_cpus = 0.0
        worker.task = None
        worker.idle_since = time.monotonic()
        if exiting:
            worker.exiting = True
        elif not worker.exiting:
            self.idle.append(worker)

    def lost(self, conn_id: int) -> WorkerState | None:
        """The worker's connection dropped: it is no longer in the pool."""
        worker = self.workers.pop(conn_id, None)
        if worker is not None and worker in self.idle:
            self.idle.remove(worker)
        return worker

    def stopping_now(self) -> bool:
        """Whether the node manager is shutting down (no new workers then)."""
        return self.stopping.is_set()

    def retire_idle(self, now: float) -> None:
        """Close surplus workers idle longer than ``IDLE_WORKER_TTL``."""
        surplus = len(self.workers) - self.pool_size
        for w in list(self.idle):
            if surplus <= 0:
                break
            if now - w.idle_since > IDLE_WORKER_TTL:
                self.idle.remove(w)
                w.exiting = True
                w.conn.close()
                surplus -= 1

    def kill(self, worker: WorkerState, sig: int = signal.SIGKILL) -> None:
        self.processes.kill(worker.pid, sig)
