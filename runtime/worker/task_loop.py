"""A worker process: runs tasks sent by its node manager, one at a time, on its main thread.

Started by the node manager as ``python -m jupyter_ray.runtime worker SOCKET WORKER_ID``.
The reader thread of its :class:`CoreClient` queues tasks; the main thread runs them, so
user code sees an ordinary main thread (signals, ``KeyboardInterrupt``). Cancelling a
running task raises :class:`TaskCancelledError` inside it through a signal aimed at the
main thread. ``print`` inside a task reaches the driver that submitted it.

A worker may instead host one actor (see :mod:`actor_host`).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import pickle
import queue
import signal
import sys
import threading
import time
from typing import Any

from ..client import context
from ..client.context import ActorExit
from ..client.core import CoreClient
from ..client.generators import DYNAMIC
from ..client.submit import _NO_ARGS, Dep
from ..common import interrupts
from ..common import protocol as p
from ..common.exceptions import (
    RayError,
    RayTaskError,
    RemoteSection,
    TaskCancelledError,
    capture_traceback,
    format_sections,
)
from ..common.ids import object_id_for
from ..common.serialization import deserialize, dumps, serialize, type_name
from .actor_host import ActorHost, set_title
from .generators import collect, stream
from .lane_server import CallerLane, LaneClosed
from .task_env import TaskOutput, enter_runtime_env, task_context

CANCEL_SIGNAL = signal.SIGUSR1
REPORT_BATCH = 64
STARTED_AFTER = (0.1, 1.0)
"""Ages (s) at which a running call is reported started: the node shows it RUNNING. The
second report covers a direct call whose caller's note reached the node late."""


class Worker(ActorHost):
    """Executes tasks, or hosts one actor (see actor_host.py); holds the function cache
    and call counts."""

    def __init__(self, client: CoreClient, worker_id: str = "") -> None:
        self.client = client
        self.worker_id = worker_id
        self.functions: dict[bytes, Any] = {}
        self.calls: dict[bytes, int] = {}
        self.main_ident = threading.get_ident()
        self._cancel_lock = threading.Lock()
        self._cancel_early: set[bytes] = set()
        self._init_host()
        # Direct calls (client/lanes.py): the number of each caller's last direct call seen,
        # and calls from the node held until that direct call has arrived.
        self._seen: dict[int, int] = {}
        self._held: dict[int, list[p.ExecuteTask]] = {}
        # Reports to the node of direct calls whose caller has the value: sent in one
        # message once no call is running or queued (or REPORT_BATCH piled up).
        self._reports: list[p.TaskDone] = []
        self._running = 0
        self._report_lock = threading.Lock()
        # Calls running now: task id -> [start time, reports of it sent]. Quick calls are
        # done before anyone could look; the flusher thread reports the others.
        self._running_since: dict[bytes, list[Any]] = {}
        # Generator calls running off the main thread: cancel reaches them here (the
        # main thread gets a signal instead; an async actor's coroutine, Task.cancel).
        self._off_main: dict[bytes, context.TaskContext] = {}
        client.on_tick = self._report_started
        client.set_cancel_handler(self._on_cancel_message)
        # The values a call returned, kept until its TaskDone is sent: a ref a task made
        # and returned (``return [ray.put(x)]``) must not die, and its removal reach the
        # node manager, before the result that holds it is sealed there.
        self._returned = threading.local()
        signal.signal(CANCEL_SIGNAL, self._on_cancel_signal)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def run(self) -> None:
        """The main thread: take calls in order and run or hand out each, until the
        process should end."""
        self._dispatch(on_main=True)
        if self.exit_reason is not None:
            self._stop_actor()

    def _dispatch(self, on_main: bool) -> None:
        tasks = self.client.tasks
        while self.exit_reason is None:
            try:
                item = tasks.get_nowait()
            except queue.Empty:
                self._flush_reports()
                item = tasks.get()
            if item is None:
                break
            if type(item) is tuple:  # (lane, DirectCall)
                lane, call = item
                msg = p.ExecuteTask(
                    spec=call.spec,
                    fn_payload=None,
                    dep_payloads=[],
                    gpu_ids=self.actor_gpu_ids,
                    retries_left=0,
                )
                self._seen[lane.caller] = call.seq
                if self._start(msg, lane):
                    break
                if not self._release_held(lane.caller, call.seq):
                    break
                continue
            if type(item) is LaneClosed:
                self._seen.pop(item.lane.caller, None)
                if not self._release_held(item.lane.caller, None):
                    break
                continue
            after = item.spec.after
            if after is not None and after[0] == self.worker_id:
                owner = item.spec.owner
                if self._seen.get(owner, 0) < after[1]:
                    # its caller's earlier direct calls have not all arrived yet
                    self._held.setdefault(owner, []).append(item)
                    continue
            if self._start(item, None):
                break
            if on_main and self.main_calls is not None:
                # An actor with concurrency groups was just made here: its default
                # group's calls keep the main thread, and taking calls moves to a thread
                # of its own, so a blocked default call never holds up another group's.
                threading.Thread(
                    target=self._dispatch, args=(False,), name="actor-dispatch", daemon=True
                ).start()
                self._serve_main_calls()
                return
        if self.main_calls is not None:
            self.main_calls.put(None)

    def _start(self, msg: p.ExecuteTask, lane: CallerLane | None) -> bool:
        """Run a call here or hand it to the actor's threads; True: the process ends."""
        with self._report_lock:
            self._running += 1
        spec = msg.spec
        group = spec.concurrency_group or (
            self.method_groups.get(spec.method) if self.method_groups else None
        )
        if group is not None and spec.kind == p.ACTOR_METHOD:
            return self._start_in_group(msg, lane, group)
        if spec.kind == p.ACTOR_METHOD and self.pool is not None:
            self.pool.submit(self._run_and_reply, msg, lane)
        elif spec.kind == p.ACTOR_METHOD and self.loop is not None:
            asyncio.run_coroutine_threadsafe(self._run_async(msg, lane), self.loop)
        elif spec.kind == p.ACTOR_METHOD and self.main_calls is not None:
            self.main_calls.put((msg, lane))
        else:
            return self._run_and_reply(msg, lane)
        return False

    def _release_held(self, caller: int, seq: int | None) -> bool:
        """Start held calls whose direct call came (all of them: ``seq`` None); False
        when the process ends."""
        held = self._held.get(caller)
        if not held:
            return True
        ready = [m for m in held if seq is None or m.spec.after[1] <= seq]  # type: ignore[index]
        rest = [m for m in held if m not in ready]
        if rest:
            self._held[caller] = rest
        else:
            del self._held[caller]
        return all(not self._start(msg, None) for msg in ready)

    def _run_and_reply(self, msg: p.ExecuteTask, lane: CallerLane | None = None) -> bool:
        """Run one call and send its result; True when the process should exit."""
        started = time.time()
        task_id = msg.spec.task_id
        self._running_since[task_id] = [started, 0]
        try:
            done = self.execute(msg, lane)
        finally:
            self._running_since.pop(task_id, None)
        done.started, done.ended = started, time.time()
        if self._reply(done, lane):
            return True
        return done.exit_after

    def _reply(self, done: p.TaskDone, lane: CallerLane | None) -> bool:
        """Send a call's outcome; True when it was the actor's last (``exit_actor``)."""
        if self.exit_reason is not None and self.actor_options is not None:
            assert context.actor_id is not None
            self._send_done(
                done, lane, p.ActorExiting(actor_id=context.actor_id, reason=self.exit_reason)
            )
            self.client.tasks.put(None)  # wake the main loop so it exits
            return True
        self._send_done(done, lane)
        return False

    def _send_done(self, done: p.TaskDone, lane: CallerLane | None, *before: object) -> None:
        """Report a call's outcome: to the node, and first to its caller if direct."""
        try:
            later = False
            if lane is not None:
                result = done.results[0]
                direct = result.data is not None and not (done.contained and done.contained[0])
                lane.send(p.DirectResult(task_id=done.task_id, payload=result if direct else None))
                done.direct_caller = lane.caller
                # The caller has the value: the node's copy may wait for a batch. A value
                # the caller must fetch from the node goes now.
                later = direct and not before
            with self._report_lock:
                self._running -= 1
                self._reports.append(done)
                if (
                    later
                    and len(self._reports) < REPORT_BATCH
                    and (self._running or not self.client.tasks.empty())
                ):
                    return  # a call still running or queued will send them
                batch, self._reports = self._reports, []
            self.client.send(*before, *batch)
        finally:
            self._returned.values = None

    def _report_started(self) -> None:
        """Flusher thread: tell the node which calls have been running a while."""
        if not self._running_since:
            return
        now = time.time()
        due: list[tuple[bytes, float]] = []
        for task_id, entry in list(self._running_since.items()):
            sent = entry[1]
            if sent < len(STARTED_AFTER) and now - entry[0] >= STARTED_AFTER[sent]:
                entry[1] = sent + 1
                due.append((task_id, entry[0]))
        if due:
            self.client.send(p.TaskStarted(started=due))

    def _flush_reports(self) -> None:
        with self._report_lock:
            batch, self._reports = self._reports, []
        if batch:
            self.client.send(*batch)

    def _on_cancel_message(self, msg: p.CancelTask) -> None:
        """Reader thread: interrupt the main thread if it still runs that task."""
        with self._cancel_lock:
            ctx = context_of_main.get("ctx")
            if ctx is not None and ctx.task_id == msg.task_id:
                if not ctx.cancel_requested:
                    ctx.cancel_requested = True
                    signal.pthread_kill(self.main_ident, CANCEL_SIGNAL)
            elif msg.task_id in self._coroutines:
                coroutine = self._coroutines[msg.task_id]
                coroutine.get_loop().call_soon_threadsafe(coroutine.cancel)
            elif msg.task_id in self._off_main:  # a generator checks after each item
                self._off_main[msg.task_id].cancel_requested = True
            else:  # not started yet (still queued here): cancel it when it comes up
                if len(self._cancel_early) > 1000:  # ids of tasks that finished meanwhile
                    self._cancel_early.clear()
                self._cancel_early.add(msg.task_id)

    def _on_cancel_signal(self, signum: int, frame: Any) -> None:
        ctx = context.current_task()
        if ctx is not None and ctx.cancel_requested:
            # not in the middle of the task's own submit or send (common/interrupts.py)
            interrupts.deliver(TaskCancelledError(ctx.name), frame)

    # --- execution --------------------------------------------------------------------

    def _resolve(self, msg: p.ExecuteTask) -> Any:
        """The callable for this message, or a TaskDone describing why there is none."""
        spec = msg.spec
        if spec.kind == p.ACTOR_METHOD:
            return self._method(spec.method)
        fn = self.functions.get(spec.fn_id)
        if fn is None:
            if msg.fn_payload is None:
                return self._error_done(
                    spec, RayError(f"function {spec.name} was never sent to this worker")
                )
            try:
                fn = pickle.loads(msg.fn_payload)
            except Exception as err:
                return self._failed(spec, err, msg.retries_left, unpickling=True)
            self.functions[spec.fn_id] = fn
        return fn

    def _context(self, msg: p.ExecuteTask, lane: CallerLane | None) -> context.TaskContext:
        return task_context(msg, lane, self.actor_spec)

    def _arguments(self, msg: p.ExecuteTask) -> tuple[list[Any], dict[str, Any]]:
        spec = msg.spec
        if spec.args == _NO_ARGS:
            return [], {}
        values = [
            self.client.load_arg(oid, payload)
            for oid, payload in zip(spec.deps, msg.dep_payloads, strict=True)
        ]
        args, kwargs = deserialize(memoryview(spec.args))
        args = [values[a.index] if isinstance(a, Dep) else a for a in args]
        kwargs = {k: values[v.index] if isinstance(v, Dep) else v for k, v in kwargs.items()}
        return args, kwargs

    def execute(self, msg: p.ExecuteTask, lane: CallerLane | None = None) -> p.TaskDone:
        spec = msg.spec
        if spec.runtime_env and spec.kind != p.ACTOR_METHOD:
            # before the function and its arguments are unpickled: they may need it
            undo = enter_runtime_env(spec.runtime_env)
            if spec.kind != p.ACTOR_CREATION:
                try:
                    return self._execute(msg, lane)
                finally:
                    undo()
        return self._execute(msg, lane)

    def _execute(self, msg: p.ExecuteTask, lane: CallerLane | None) -> p.TaskDone:
        spec = msg.spec
        fn = self._resolve(msg)
        if isinstance(fn, p.TaskDone):
            return fn
        ctx = self._context(msg, lane)
        ctx.function = fn
        main = threading.get_ident() == self.main_ident
        # os.environ lookups cost microseconds; a task without GPUs needs none
        old_cuda = os.environ.get("CUDA_VISIBLE_DEVICES") if msg.gpu_ids else None
        if msg.gpu_ids and spec.kind != p.ACTOR_METHOD:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in msg.gpu_ids)
        token = context._task.set(ctx)
        if main:
            with self._cancel_lock:
                context_of_main["ctx"] = ctx
                if spec.task_id in self._cancel_early:
                    self._cancel_early.discard(spec.task_id)
                    ctx.cancel_requested = True
        try:
            if ctx.cancel_requested:
                raise TaskCancelledError(spec.name)
            try:
                args, kwargs = self._arguments(msg)
            except RayError as err:  # an upstream task failed: propagate its error
                return self._error_done(spec, err)
            except Exception as err:
                return self._failed(spec, err, msg.retries_left, unpickling=True)
            if spec.kind == p.ACTOR_CREATION:
                return self._create_actor(msg, fn, args, kwargs)
            if main and spec.kind == p.TASK:
                set_title(f"ray::{spec.name}")  # (as Ray: .options(name=...) shows here)
            result = fn(*args, **kwargs)
            del args, kwargs
            if spec.generator:
                result = self._drive(spec, result, ctx, main)
        except TaskCancelledError as err:
            return self._error_done(spec, err)
        except ActorExit as stop:
            return self._exiting(spec, stop)
        except Exception as err:
            if ctx.cancel_requested:
                return self._error_done(spec, TaskCancelledError(spec.name))
            return self._failed(spec, err, msg.retries_left)
        finally:
            if main:
                with self._cancel_lock:
                    context_of_main["ctx"] = None
            sys.stdout.flush()
            sys.stderr.flush()
            context._task.reset(token)
            if msg.gpu_ids and spec.kind == p.TASK:
                if old_cuda is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = old_cuda
        return self._results(spec, result)

    def _drive(self, spec: p.TaskSpec, gen: Any, ctx: context.TaskContext, main: bool) -> Any:
        """Run a generator call (see client/generators.py): report each value as it comes
        (streaming; the result is None) or return the refs of all (dynamic)."""
        if spec.generator == DYNAMIC:
            return collect(self.client, spec, gen, lambda err: self._wrap(spec, err))
        if main:
            stream(self.client, spec, gen, ctx)
            return None
        with self._cancel_lock:
            self._off_main[spec.task_id] = ctx
        try:
            stream(self.client, spec, gen, ctx)
        finally:
            with self._cancel_lock:
                self._off_main.pop(spec.task_id, None)
        return None

    def _results(self, spec: p.TaskSpec, result: Any) -> p.TaskDone:
        n = spec.num_returns
        exit_after = False
        if spec.max_calls > 0:
            count = self.calls.get(spec.fn_id, 0) + 1
            self.calls[spec.fn_id] = count
            exit_after = count >= spec.max_calls
        if n == 0:
            outputs = []
        elif n == 1:
            outputs = [result]
        else:
            try:
                outputs = list(result)
            except TypeError:
                outputs = []
            if len(outputs) != n:
                mismatch = ValueError(
                    f"{spec.name}() was declared with num_returns={n} but returned "
                    f"{type(result).__name__} {_short(result)}; return a tuple or list of "
                    f"{n} values."
                )
                return self._failed(spec, mismatch, 0)
        results: list[p.Payload] = []
        contained: list[list[bytes]] = []
        self._returned.values = outputs  # until sent (see __init__)
        for i, value in enumerate(outputs):
            try:
                so = serialize(value)
                if so.size < p.INLINE_LIMIT:
                    data = so.to_bytes()
                    results.append(p.Payload(data=data, size=len(data), type_name=so.type_name))
                else:
                    results.append(self.client.write_object(object_id_for(spec.task_id, i), so))
            except Exception as err:
                return self._failed(spec, err, 0)
            contained.append(so.contained)
        return p.TaskDone(
            task_id=spec.task_id, results=results, contained=contained, exit_after=exit_after
        )

    def _wrap(self, spec: p.TaskSpec, err: BaseException) -> RayTaskError:
        """The error a task's caller gets for ``err``: a RayTaskError with the remote
        traceback that carries ``err`` itself as its cause, or, when ``err`` cannot be
        pickled, a RayError with its text in its place (as in Ray)."""
        tb, sections = _format_remote_traceback(err)
        if isinstance(err, RayTaskError) and err.cause is not None:
            err = err.cause  # raised by a task this one waited for: the user's error
        try:
            # cloudpickle, as the error will travel: an exception class defined in the
            # driver's __main__ exists here only by value, and the standard pickler,
            # which looks classes up by name, would drop the user's class from the error.
            dumps(err)
        except Exception as why:
            stand_in = RayError(
                f"{type(err).__module__}.{type(err).__qualname__} raised in {spec.name}() "
                f"cannot be pickled ({why}), so it reaches you as this RayError. Its "
                f"message: {err}"
            )
            return RayTaskError(spec.name, tb, stand_in, os.getpid(), repr(err), sections)
        return RayTaskError(spec.name, tb, err, os.getpid(), sections=sections)

    def _failed(
        self, spec: p.TaskSpec, err: BaseException, retries_left: int, unpickling: bool = False
    ) -> p.TaskDone:
        error = self._wrap(spec, err)
        retry = False
        if retries_left > 0 and not unpickling and spec.retry_exceptions:
            if spec.retry_exceptions is True:
                retry = True
            else:
                assert isinstance(spec.retry_exceptions, bytes)
                allowed = tuple(pickle.loads(spec.retry_exceptions))
                retry = isinstance(err, allowed)
        done = self._error_done(spec, error)
        done.retry = retry
        return done

    def _error_done(self, spec: p.TaskSpec, err: BaseException) -> p.TaskDone:
        data = serialize(err).to_bytes()
        payload = p.Payload(data=data, size=len(data), error=True, type_name=type_name(err))
        done = p.TaskDone(task_id=spec.task_id, results=[payload] * spec.num_returns, contained=[])
        cause = err.cause if isinstance(err, RayTaskError) else err
        done.error_type = type(cause).__name__ if cause is not None else type(err).__name__
        message = str(cause) if cause is not None else getattr(err, "cause_repr", str(err))
        done.error_message = message[:1000]
        return done


context_of_main: dict[str, context.TaskContext | None] = {"ctx": None}


def _format_remote_traceback(err: BaseException) -> tuple[str, list[RemoteSection]]:
    """The traceback of a task's error, without the frames of this module: as text (what
    this worker can render) and as data, which the driver renders again with its own
    source cache (a notebook cell's source is only in the kernel)."""
    sections = capture_traceback(err, frozenset({__file__}))
    return "\n".join(format_sections(sections)) + "\n", sections


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _setup_paths() -> None:
    extra = os.environ.get("JUPYTER_RAY_SYS_PATH")
    if extra:
        for entry in reversed(json.loads(extra)):
            if entry not in sys.path:
                sys.path.insert(0, entry)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    socket_path, worker_id = args[0], args[1]
    _setup_paths()
    set_title("ray::IDLE")
    client = CoreClient(socket_path, "worker", worker_id)
    context.set_client(client)
    sys.stdout = TaskOutput(client, 1, sys.stdout)
    sys.stderr = TaskOutput(client, 2, sys.stderr)
    # A worker forked from the zygote inherits the zygote's atexit handlers; its own
    # (an actor's) run when it ends, as in Ray, also though it leaves with os._exit.
    atexit._clear()
    try:
        Worker(client, worker_id).run()
        atexit._run_exitfuncs()
    finally:
        client.close()
