"""Hosting one actor in a worker process: its creation, the threads, event loops and
concurrency groups its calls run on, the methods every actor has, and its exit.

A mixin of :class:`worker.Worker`. Calls reach an actor in its caller's order (see
``actors.py``) and run on the worker's main thread (the default), on a thread pool
(``max_concurrency > 1``), or as coroutines on an event loop (an actor with any
``async def`` method). Each concurrency group has its own pool of threads, or its own
event loop on a thread of its own (async), so a call that blocks holds up only its group;
in a sync actor with groups, the default group keeps the main thread and taking calls
moves to a thread (``Worker._dispatch``), for the same reason.

``exit_actor()`` raises :class:`ActorExit`: the call that made it fails with the actor's
death (as in Ray), calls still queued fail, calls running on other threads and loops
finish, the actor's ``atexit`` handlers run, and the process ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import queue
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from ..client import context
from ..client.context import ActorExit
from ..client.generators import DYNAMIC
from ..common import protocol as p
from ..common.exceptions import ActorDiedError, TaskCancelledError
from ..common.transport import endpoint_path
from .generators import collect_async, stream_async
from .lane_server import CallerLane, DirectServer

if TYPE_CHECKING:
    from ..client.core import CoreClient


class ActorHost:
    """The actor-hosting half of a worker; see the module docstring."""

    client: CoreClient
    worker_id: str
    _cancel_lock: threading.Lock
    _report_lock: threading.Lock
    _running: int
    _running_since: dict[bytes, list[Any]]

    if TYPE_CHECKING:

        def _context(self, msg: p.ExecuteTask, lane: CallerLane | None) -> context.TaskContext: ...
        def _arguments(self, msg: p.ExecuteTask) -> tuple[list[Any], dict[str, Any]]: ...
        def _results(self, spec: p.TaskSpec, result: Any) -> p.TaskDone: ...
        def _wrap(self, spec: p.TaskSpec, err: BaseException) -> Any: ...
        def _failed(
            self, spec: p.TaskSpec, err: BaseException, retries_left: int, unpickling: bool = ...
        ) -> p.TaskDone: ...
        def _error_done(self, spec: p.TaskSpec, err: BaseException) -> p.TaskDone: ...
        def _reply(self, done: p.TaskDone, lane: CallerLane | None) -> bool: ...
        def _send_done(
            self, done: p.TaskDone, lane: CallerLane | None, *before: object
        ) -> None: ...
        def _run_and_reply(self, msg: p.ExecuteTask, lane: CallerLane | None = ...) -> bool: ...

    def _init_host(self) -> None:
        self.actor: Any = None
        self.actor_options: p.ActorOptions | None = None
        # The actor's creation task: its runtime env, placement group and resources are
        # what every call of the actor sees (None: not an actor, or not one yet)
        self.actor_spec: p.TaskSpec | None = None
        self.actor_gpu_ids: list[int] = []
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.semaphore: asyncio.Semaphore | None = None
        # concurrency groups: a pool of threads (or a loop and a semaphore, async) each
        self.method_groups: dict[str, str] = {}
        self.group_pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
        self.group_semaphores: dict[str, asyncio.Semaphore] = {}
        self.group_loops: dict[str, asyncio.AbstractEventLoop] = {}
        # A sync actor with concurrency groups: its default group's calls, for the main
        # thread (None: calls run where the dispatch loop is).
        self.main_calls: queue.SimpleQueue[Any] | None = None
        self.exit_reason: str | None = None
        # Direct calls (client/lanes.py): the callers' lanes to this actor
        self.lanes: DirectServer | None = None
        # An async actor's running coroutines, for cancel
        self._coroutines: dict[bytes, asyncio.Task[Any]] = {}

    def _create_actor(
        self, msg: p.ExecuteTask, cls: Any, args: list[Any], kwargs: dict[str, Any]
    ) -> p.TaskDone:
        spec = msg.spec
        opts = msg.actor_options
        assert opts is not None
        context.actor_id = spec.task_id
        context.actor_name = opts.name
        context.actor_restarts = msg.attempt
        set_title(f"ray::{opts.class_name}")
        try:
            self.actor = cls(*args, **kwargs)
        except Exception as err:
            return self._failed(spec, err, 0)
        context.actor_instance = self.actor
        self.actor_options = opts
        self.actor_spec = spec
        if not opts.hold_resources:
            spec.resources = {}  # only needed to place it; given back once it runs
        if opts.hold_resources:
            self.actor_gpu_ids = list(msg.gpu_ids)  # what the node gives each call
        path = endpoint_path(self.client.welcome.session_dir, self.worker_id)  # type: ignore[union-attr]
        if path is not None and self.worker_id:
            try:
                self.lanes = DirectServer(path, self.client.tasks.put)
            except OSError as err:  # calls still come through the node
                print(f"jupyter_ray: no direct calls to this actor: {err}", file=sys.__stderr__)
        self.method_groups = dict(opts.method_groups)
        if opts.is_async:
            # Each concurrency group gets an event loop (and thread) of its own, as in
            # Ray: a call that blocks its loop holds up only its own group.
            self.loop = _loop_thread("actor-loop")
            self.semaphore = asyncio.Semaphore(opts.max_concurrency)
            for name, size in opts.concurrency_groups.items():
                self.group_loops[name] = _loop_thread(f"actor-{name}")
                self.group_semaphores[name] = asyncio.Semaphore(size)
        else:
            if opts.max_concurrency > 1:
                self.pool = concurrent.futures.ThreadPoolExecutor(
                    opts.max_concurrency, thread_name_prefix="actor"
                )
            elif opts.concurrency_groups:
                self.main_calls = queue.SimpleQueue()  # see _dispatch
            for name, size in opts.concurrency_groups.items():
                self.group_pools[name] = concurrent.futures.ThreadPoolExecutor(
                    size, thread_name_prefix=f"actor-{name}"
                )
        return self._results(spec, None)

    def _method(self, name: str) -> Any:
        """The callable behind an actor call: a method, or one every actor has."""
        if name.startswith("__ray_"):
            if name == "__ray_terminate__":
                return _terminate
            if name == "__ray_ready__":
                return _ready
            if name == "__ray_call__":
                actor = self.actor
                return lambda fn, *args, **kwargs: fn(actor, *args, **kwargs)
        return getattr(self.actor, name)

    def _exiting(self, spec: p.TaskSpec, stop: ActorExit) -> p.TaskDone:
        """``exit_actor()`` was called: the process ends once this call is answered, and
        the caller sees the actor's death rather than a value (as in Ray)."""
        self.exit_reason = stop.reason
        name = self.actor_options.class_name if self.actor_options else spec.name
        return self._error_done(
            spec, ActorDiedError(f"The actor {name} exited on purpose: {stop.reason}.")
        )

    def _start_in_group(self, msg: p.ExecuteTask, lane: CallerLane | None, group: str) -> bool:
        if group in self.group_loops:
            sem = self.group_semaphores[group]
            loop = self.group_loops[group]
            asyncio.run_coroutine_threadsafe(self._run_async(msg, lane, sem), loop)
        elif group in self.group_pools:
            self.group_pools[group].submit(self._run_and_reply, msg, lane)
        else:
            known = ", ".join(sorted(self.group_pools or self.group_semaphores)) or "none"
            error = ValueError(
                f"concurrency group {group!r} is not defined for this actor (defined: "
                f"{known}); create the actor with concurrency_groups={{{group!r}: N}}"
            )
            self._send_done(self._failed(msg.spec, error, 0), lane)
        return False

    def _serve_main_calls(self) -> None:
        """Main thread of an actor with concurrency groups: run its default group's calls."""
        assert self.main_calls is not None
        while True:
            item = self.main_calls.get()
            if item is None or self._run_and_reply(*item):
                return

    async def _run_async(
        self,
        msg: p.ExecuteTask,
        lane: CallerLane | None = None,
        semaphore: asyncio.Semaphore | None = None,
    ) -> None:
        """Event-loop thread of an async actor: run one call under the concurrency limit
        (its concurrency group's, or the actor's)."""
        spec = msg.spec
        sem = semaphore or self.semaphore
        assert sem is not None
        async with sem:
            if self.exit_reason is not None:
                # exit_actor() came first: a call still queued fails with the actor's
                # death (the node fails it once the process is gone), as in Ray
                with self._report_lock:
                    self._running -= 1
                return
            started = time.time()
            self._running_since[spec.task_id] = [started, 0]
            ctx = self._context(msg, lane)
            context._task.set(ctx)  # this coroutine runs in its own copy of the context
            current = asyncio.current_task()
            assert current is not None
            with self._cancel_lock:
                self._coroutines[spec.task_id] = current
            try:
                fn = ctx.function = self._method(spec.method)
                args, kwargs = self._arguments(msg)
                result = fn(*args, **kwargs)
                if spec.generator == DYNAMIC:
                    result = await collect_async(
                        self.client, spec, result, lambda err: self._wrap(spec, err)
                    )
                elif spec.generator:
                    await stream_async(self.client, spec, result, ctx)
                    result = None
                elif inspect.isawaitable(result):
                    result = await result
                done = self._results(spec, result)
            except ActorExit as stop:
                done = self._exiting(spec, stop)
            except asyncio.CancelledError:
                done = self._error_done(spec, TaskCancelledError(spec.name))
            except Exception as err:
                done = self._failed(spec, err, 0)
            finally:
                with self._cancel_lock:
                    self._coroutines.pop(spec.task_id, None)
            done.started, done.ended = started, time.time()
            self._running_since.pop(spec.task_id, None)
        self._reply(done, lane)

    def _stop_actor(self) -> None:
        """The actor exits on purpose: calls still queued here are dropped (the node
        fails them), calls running on the actor's threads and loops finish first."""
        if self.lanes is not None:
            self.lanes.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        for pool in self.group_pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        while self._coroutines:
            time.sleep(0.01)
        for loop in [self.loop, *self.group_loops.values()]:
            if loop is not None:
                loop.call_soon_threadsafe(loop.stop)

    # --- cancellation -----------------------------------------------------------------


def _terminate() -> None:
    """``handle.__ray_terminate__.remote()``: stop after the calls queued before it."""
    raise ActorExit("it was stopped with __ray_terminate__")


def _ready() -> bool:
    """``handle.__ray_ready__.remote()``: True once the actor runs."""
    return True


_title = ""


def set_title(title: str) -> None:
    """Name this process as ``ps``/``top`` show it (``ray::Counter``, ``ray::train``), as
    Ray names its workers: ``setproctitle`` when installed, else the kernel's 15-character
    thread name of the main thread (``prctl``). Free when the title does not change."""
    global _title
    if title == _title:
        return
    _title = title
    try:
        import setproctitle  # type: ignore[import-not-found,unused-ignore]

        setproctitle.setproctitle(title)
        return
    except ImportError:
        pass
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, title.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # not Linux: keep the interpreter's name
        pass


def _loop_thread(name: str) -> asyncio.AbstractEventLoop:
    """A new event loop, running on a daemon thread of its own."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name=name, daemon=True).start()
    return loop
