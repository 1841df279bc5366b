"""The worker zygote: a process that has imported the worker code and forks new workers.

Starting a fresh interpreter and importing the runtime costs ~0.2 s of CPU here; forking
this already-warm, single-threaded process costs a few milliseconds. That is what makes
starting many actors, or replacing dead workers, cheap.

Protocol on stdin/stdout, one line each:

- node manager -> zygote: ``spawn WORKER_ID LOG_PATH``
- zygote -> node manager: ``started WORKER_ID PID`` and ``exited PID CODE``

The zygote never starts a thread, so forking it is safe. When its stdin closes (the node
manager is gone) it terminates the workers it forked and exits.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import select
import signal
import sys
import time

from ..client.launch import PRELOAD_ENV
from . import task_loop as worker

POLL = 0.2


def _child(socket_path: str, worker_id: str, log_path: str) -> None:
    """In the forked child: become a worker. Never returns."""
    code = 0
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        worker.main([socket_path, worker_id])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _report(line: str) -> None:
    os.write(1, (line + "\n").encode())


def _preload() -> None:
    """Import the modules tasks will almost surely import, once, before any fork.

    A worker's first task that took a numpy array spent ~60 ms importing numpy; imported
    here, every worker has it already (its pages shared with the zygote).
    """
    for name in os.environ.get(PRELOAD_ENV, "").split(","):
        if name.strip():
            try:
                importlib.import_module(name.strip())
            except Exception as err:  # a broken optional package must not stop workers
                print(f"jupyter_ray: could not preload {name!r}: {err}", file=sys.stderr)


def main(argv: list[str]) -> None:
    socket_path = argv[0]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _preload()
    # What the zygote holds now (the runtime, the preloaded modules) lives as long as every
    # worker: out of the collector's sight, each worker's collections skip it and do not
    # write to (and so copy) the pages it shares with the zygote.
    gc.collect()
    gc.freeze()
    children: set[int] = set()
    buf = b""
    stdin = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([stdin], [], [], POLL)
        if ready:
            chunk = os.read(stdin, 4096)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                parts = line.decode().split()
                if len(parts) == 3 and parts[0] == "spawn":
                    pid = os.fork()
                    if pid == 0:
                        _child(socket_path, parts[1], parts[2])
                    children.add(pid)
                    _report(f"started {parts[1]} {pid}")
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            _report(f"exited {pid} {os.waitstatus_to_exitcode(status)}")
    # The node manager is gone: take the workers down with us.
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 2.0
    while children and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            children.discard(pid)
        else:
            time.sleep(0.01)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
