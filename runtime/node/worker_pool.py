"""The node's pool of worker processes: starting them, handing an idle one to a task,
taking it back, and what happens when one dies (a mixin of ``NodeManager``; every method
runs on its event loop).

The pool keeps ``pool_size`` task workers (actors' dedicated workers do not count) and
grows only by what queued work can use. GPU and CPU work never share a process
(``WorkerState.gpu``), as in Ray: a library that opened a GPU keeps it, and its memory,
for the life of the process. A worker that dies mid-task has its task re-queued while
``max_retries`` lasts; an actor's worker, see ``actor_manager.py``.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from typing import TYPE_CHECKING

from ..exceptions import TaskCancelledError, WorkerCrashedError
from ..ids import random_id

if TYPE_CHECKING:
    import asyncio

    from .actors import ActorRecord
    from .manager import TaskRecord, WorkerState
    from .processes import WorkerProcesses
    from .scheduler import ResourceLedger

MAX_WORKERS = 256


class WorkerPool:
    """Worker-pool handling of the node manager; see the module docstring."""

    workers: dict[int, WorkerState]
    idle: deque[WorkerState]
    processes: WorkerProcesses
    ledger: ResourceLedger
    starting: int
    pool_size: int
    logs_dir: str
    _said_hello: set[int]
    _stopping: asyncio.Event

    if TYPE_CHECKING:

        def _dispatch_tasks(self) -> None: ...
        def _enqueue(self, rec: TaskRecord) -> None: ...
        def _fail(self, rec: TaskRecord, error: BaseException) -> None: ...
        def actor_process_lost(
            self, record: ActorRecord, exit_code: int | None, cause: str | None = ...
        ) -> None: ...

    def _process_exited(self, pid: int) -> None:
        if not any(w.pid == pid for w in self.workers.values()) and pid not in self._said_hello:
            # it died before it said hello: stop waiting for it
            self.starting = max(0, self.starting - 1)
            self._maintain_pool()
            self._dispatch_tasks()
        self._said_hello.discard(pid)

    def _start_worker(self) -> None:
        self.processes.spawn(random_id(8))
        self.starting += 1

    def _idle_worker(self, gpu: bool) -> WorkerState | None:
        """An idle worker that may run GPU work (``gpu``) or CPU work, newest first."""
        idle = self.idle
        for i in range(len(idle) - 1, -1, -1):
            worker = idle[i]
            if worker.gpu is None or worker.gpu is gpu:
                del idle[i]
                worker.gpu = gpu
                return worker
        return None

    def _free_worker(self, worker: WorkerState, exiting: bool) -> None:
        if worker.lent_cpus:
            worker.lent_cpus = 0.0
        worker.task = None
        worker.idle_since = time.monotonic()
        if exiting:
            worker.exiting = True
        elif not worker.exiting:
            self.idle.append(worker)

    def _on_worker_lost(self, worker: WorkerState) -> None:
        if worker in self.idle:
            self.idle.remove(worker)
        rec = worker.task
        code = self.processes.exit_code(worker.pid)
        if worker.actor is not None:
            self.actor_process_lost(worker.actor, code)
        elif rec is not None:
            if rec.grant is not None:
                self.ledger.release(rec.grant)
                rec.grant = None
            rec.worker = None
            if rec.cancelled:
                self._fail(rec, TaskCancelledError(rec.spec.name))
            elif rec.retries_left > 0:
                rec.retries_left -= 1
                rec.attempt += 1
                self._enqueue(rec)
            else:
                tries = rec.spec.max_retries + 1
                self._fail(
                    rec,
                    WorkerCrashedError(
                        f"The worker (pid {worker.pid}) running {rec.spec.name}() died"
                        f"{f' with exit code {code}' if code is not None else ''} after "
                        f"{tries} attempt{'s' if tries > 1 else ''}. Its log is in "
                        f"{self.logs_dir}. If the task runs out of memory or crashes the "
                        "interpreter, fix that or raise max_retries."
                    ),
                )
        # Also after a max_calls exit; retiring surplus idle workers leaves pool_size.
        self._maintain_pool()
        self._dispatch_tasks()

    def _maintain_pool(self) -> None:
        """Keep ``pool_size`` task workers (actors' dedicated workers do not count)."""
        if self._stopping.is_set():
            return
        pool = sum(1 for w in self.workers.values() if w.actor is None and not w.exiting)
        for _ in range(self.pool_size - pool - self.starting):
            self._start_worker()

    def _kill_worker(self, worker: WorkerState, sig: int = signal.SIGKILL) -> None:
        self.processes.kill(worker.pid, sig)
