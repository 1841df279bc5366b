"""A worker process: runs tasks sent by its node manager, one at a time, on its main thread.

Started by the node manager as ``python -m jupyter_ray.runtime.worker SOCKET WORKER_ID``.
The reader thread of its :class:`CoreClient` queues tasks; the main thread runs them, so
user code sees an ordinary main thread (signals, ``KeyboardInterrupt``). Cancelling a
running task raises :class:`TaskCancelledError` inside it through a signal aimed at the
main thread. ``print`` inside a task reaches the driver that submitted it.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import sys
import threading
import traceback
from typing import Any

from . import context
from . import protocol as p
from .core import CoreClient, Dep
from .exceptions import RayError, RayTaskError, TaskCancelledError
from .ids import object_id_for
from .serialization import deserialize, serialize

CANCEL_SIGNAL = signal.SIGUSR1


class TaskOutput(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` of a worker: lines go to the task's driver."""

    def __init__(self, client: CoreClient, stream: int, fallback: Any) -> None:
        self._client = client
        self._stream = stream
        self._fallback = fallback
        self._buf: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        ctx = context.current_task()
        if ctx is None:
            return int(self._fallback.write(text))
        self._buf.append(text)
        if "\n" in text:
            self.flush()
        return len(text)

    def flush(self) -> None:
        ctx = context.current_task()
        if not self._buf:
            return
        text = "".join(self._buf)
        self._buf.clear()
        if ctx is None:
            self._fallback.write(text)
            return
        try:
            self._client.send(p.LogLines(ctx.task_id, ctx.name, os.getpid(), self._stream, text))
        except (ConnectionError, OSError):
            self._fallback.write(text)


class Worker:
    """Executes tasks; holds the function cache and the per-function call counts."""

    def __init__(self, client: CoreClient) -> None:
        self.client = client
        self.functions: dict[bytes, Any] = {}
        self.calls: dict[bytes, int] = {}
        self.main_ident = threading.get_ident()
        self._cancel_lock = threading.Lock()
        client.on_cancel = self._on_cancel_message
        signal.signal(CANCEL_SIGNAL, self._on_cancel_signal)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def run(self) -> None:
        while True:
            msg = self.client.tasks.get()
            if msg is None:
                return
            done = self.execute(msg)
            self.client.send(done)
            if done.exit_after:
                return

    # --- cancellation -----------------------------------------------------------------

    def _on_cancel_message(self, msg: p.CancelTask) -> None:
        """Reader thread: interrupt the main thread if it still runs that task."""
        with self._cancel_lock:
            ctx = context_of_main.get("ctx")
            if ctx is not None and ctx.task_id == msg.task_id and not ctx.cancel_requested:
                ctx.cancel_requested = True
                signal.pthread_kill(self.main_ident, CANCEL_SIGNAL)

    def _on_cancel_signal(self, signum: int, frame: Any) -> None:
        ctx = context.current_task()
        if ctx is not None and ctx.cancel_requested:
            raise TaskCancelledError(ctx.name)

    # --- execution --------------------------------------------------------------------

    def execute(self, msg: p.ExecuteTask) -> p.TaskDone:
        spec = msg.spec
        n = spec.num_returns
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
        ctx = context.TaskContext(spec.task_id, spec.name, list(msg.gpu_ids), spec.cell_id)
        try:
            values = [
                self.client.load_arg(oid, payload)
                for oid, payload in zip(spec.deps, msg.dep_payloads, strict=True)
            ]
        except RayError as err:  # an upstream task failed: propagate its error
            return self._error_done(spec, err)
        except Exception as err:
            return self._failed(spec, err, msg.retries_left, unpickling=True)
        old_cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
        if msg.gpu_ids:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in msg.gpu_ids)
        context.set_current_task(ctx)
        context_of_main["ctx"] = ctx
        try:
            args, kwargs = deserialize(memoryview(spec.args))
            args = [values[a.index] if isinstance(a, Dep) else a for a in args]
            kwargs = {k: values[v.index] if isinstance(v, Dep) else v for k, v in kwargs.items()}
            del values
            result = fn(*args, **kwargs)
            del args, kwargs
        except TaskCancelledError as err:
            return self._error_done(spec, err)
        except Exception as err:
            if ctx.cancel_requested:
                return self._error_done(spec, TaskCancelledError(spec.name))
            return self._failed(spec, err, msg.retries_left)
        finally:
            with self._cancel_lock:
                context_of_main["ctx"] = None
            sys.stdout.flush()
            sys.stderr.flush()
            context.set_current_task(None)
            if msg.gpu_ids:
                if old_cuda is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = old_cuda
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
        for i, value in enumerate(outputs):
            try:
                so = serialize(value)
                if so.size < p.INLINE_LIMIT:
                    data = so.to_bytes()
                    results.append(p.Payload(data=data, size=len(data)))
                else:
                    results.append(self.client.write_object(object_id_for(spec.task_id, i), so))
            except Exception as err:
                return self._failed(spec, err, 0)
            contained.append(so.contained)
        return p.TaskDone(spec.task_id, results, contained, exit_after=exit_after)

    def _failed(
        self, spec: p.TaskSpec, err: BaseException, retries_left: int, unpickling: bool = False
    ) -> p.TaskDone:
        tb = _format_remote_traceback(err)
        error = RayTaskError(spec.name, tb, err, os.getpid())
        try:
            pickle.dumps(err)
        except Exception:
            error = RayTaskError(spec.name, tb, None, os.getpid(), repr(err))
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
        payload = p.Payload(data=data, size=len(data), error=True)
        return p.TaskDone(spec.task_id, [payload] * spec.num_returns, [])


context_of_main: dict[str, context.TaskContext | None] = {"ctx": None}


def _format_remote_traceback(err: BaseException) -> str:
    """The traceback of a task's error, without the frames of this module."""
    te = traceback.TracebackException.from_exception(err)
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename != __file__])
    return "".join(te.format())


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
    client = CoreClient(socket_path, "worker", worker_id)
    context.set_client(client)
    sys.stdout = TaskOutput(client, 1, sys.stdout)
    sys.stderr = TaskOutput(client, 2, sys.stderr)
    try:
        Worker(client).run()
    finally:
        client.close()


if __name__ == "__main__":
    main()
