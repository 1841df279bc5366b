"""Drive a real ipykernel the way JupyterLab does, and check what it sent where.

:class:`KernelSession` starts a kernel with jupyter_client, sends execute requests that
carry a cell id in their metadata (``cellId``, as JupyterLab sends it) and records every
IOPub message, so a test can ask which messages a given execution produced, including
display updates and widget messages that arrive while *another* cell runs.

Processes: the kernel is this test's child; the runtime it starts is the kernel's. The
session remembers every descendant of the kernel it sees (after each execution) and, when
closed, waits for them to exit, kills the rest by pid and reports them.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STARTUP_TIMEOUT_S = 60
EXECUTE_TIMEOUT_S = 120
EXIT_GRACE_S = 10.0


def plain(text: str) -> str:
    """``text`` without ANSI colour codes."""
    return ANSI.sub("", text)


@dataclass
class Execution:
    """One execute request and what came back for it."""

    msg_id: str
    cell_id: str | None
    reply: dict[str, Any] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] in types]

    @property
    def stream_text(self) -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream"))

    @property
    def error(self) -> dict[str, Any] | None:
        errors = self.of_type("error")
        return errors[0]["content"] if errors else None

    @property
    def error_text(self) -> str:
        err = self.error
        return plain("\n".join(err["traceback"])) if err else ""

    def display_ids(self) -> list[str]:
        return [
            m["content"]["transient"]["display_id"]
            for m in self.of_type("display_data")
            if (m["content"].get("transient") or {}).get("display_id")
        ]

    def widget_models(self) -> list[str]:
        """Model names of the widgets this execution opened."""
        return [
            m["content"]["data"]["state"].get("_model_name", "")
            for m in self.of_type("comm_open")
            if m["content"].get("target_name") == "jupyter.widget"
        ]

    def text_plain(self) -> str:
        """Every non-empty text/plain this execution displayed or returned."""
        parts = [
            m["content"]["data"].get("text/plain", "")
            for m in self.of_type("display_data", "execute_result")
        ]
        return "\n".join(p for p in parts if p)

    @property
    def result(self) -> str | None:
        """The cell's value (``Out[N]``) as text/plain, if it had one."""
        results = self.of_type("execute_result")
        return results[0]["content"]["data"]["text/plain"] if results else None


class KernelSession:
    """A running kernel and a record of its IOPub messages; see the module docstring."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        kernel_env = dict(os.environ)
        kernel_env.pop("JUPYTER_RAY_ADDRESS", None)
        kernel_env.update(
            {
                "IPYTHONDIR": str(workdir / "ipython"),  # no user profile or startup files
                "PYTHONUNBUFFERED": "1",
            }
        )
        kernel_env.update(env or {})
        # ipykernel's own spec, which runs this interpreter; never a "python3" kernel
        # installed elsewhere on the machine
        specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
        # Unix sockets, not TCP ports: no port races with tests running beside us
        # Named as Jupyter's own kernel managers name it: kernel-<id>.json
        self.kernel_id = str(uuid.uuid4())
        self.km = KernelManager(
            kernel_name="python3",
            kernel_spec_manager=specs,
            transport="ipc",
            ip=str(workdir / "k"),
            connection_file=str(workdir / f"kernel-{self.kernel_id}.json"),
        )
        self.km.start_kernel(env=kernel_env, cwd=str(workdir))
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=STARTUP_TIMEOUT_S)
        self.pid: int = self.km.provisioner.pid  # type: ignore[union-attr]
        self.messages: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._replies: dict[str, dict[str, Any]] = {}
        self._seen: set[psutil.Process] = set()
        self._stop = threading.Event()
        self._reader = self._start_reader()

    def _start_reader(self) -> threading.Thread:
        # The only thread that reads IOPub while it runs: a zmq socket read from two
        # threads at once splits its multipart messages (wait_for_ready reads IOPub too).
        self._stop.clear()
        reader = threading.Thread(target=self._read_iopub, name="iopub-reader", daemon=True)
        reader.start()
        return reader

    # --- messages ---------------------------------------------------------------------

    def _read_iopub(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.kc.iopub_channel.get_msg(timeout=0.2)
            except queue.Empty:
                continue
            except Exception:  # the channel closed under us at shutdown
                return
            msg["received"] = time.monotonic()
            with self._cond:
                self.messages.append(msg)
                self._cond.notify_all()

    def for_parent(self, msg_id: str) -> list[dict[str, Any]]:
        with self._cond:
            return [m for m in self.messages if m["parent_header"].get("msg_id") == msg_id]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Block until ``predicate()`` holds, re-checked whenever a message arrives."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self._cond.wait(min(left, 0.5))

    def submit(self, code: str, cell_id: str | None = None) -> Execution:
        """Send an execute request without waiting for it."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        metadata = {"cellId": cell_id} if cell_id is not None else {}
        msg = self.kc.session.msg("execute_request", content, metadata=metadata)
        self.kc.shell_channel.send(msg)
        return Execution(msg["header"]["msg_id"], cell_id)

    def finish(self, run: Execution, timeout: float = EXECUTE_TIMEOUT_S) -> Execution:
        """Wait for ``run``'s reply and for the kernel to go idle on it."""
        deadline = time.monotonic() + timeout
        while run.msg_id not in self._replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no execute reply within {timeout} s")
            try:
                reply = self.kc.shell_channel.get_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            self._replies[reply["parent_header"].get("msg_id", "")] = reply
        run.reply = self._replies[run.msg_id]

        def idle() -> bool:
            return any(
                m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                for m in self.messages
                if m["parent_header"].get("msg_id") == run.msg_id
            )

        self.wait_for(idle, max(deadline - time.monotonic(), 5.0), "the kernel to go idle")
        run.messages = self.for_parent(run.msg_id)
        self.note_descendants()
        return run

    def execute(
        self, code: str, cell_id: str | None = None, timeout: float = EXECUTE_TIMEOUT_S
    ) -> Execution:
        """Run ``code`` and wait for it; an error in it fails the test (see ``run``)."""
        run = self.finish(self.submit(code, cell_id), timeout)
        if run.error is not None:
            raise AssertionError(f"cell failed:\n{code}\n{run.error_text}")
        return run

    def run(
        self, code: str, cell_id: str | None = None, timeout: float = EXECUTE_TIMEOUT_S
    ) -> Execution:
        """Run ``code`` and wait for it, errors included (the test looks at them)."""
        return self.finish(self.submit(code, cell_id), timeout)

    def value(self, expression: str) -> Any:
        """Evaluate ``expression`` in the kernel; it must print as JSON-able Python."""
        run = self.execute(f"import json as _json; print(_json.dumps({expression}))")
        return json.loads(run.stream_text.strip().splitlines()[-1])

    def updates_of(self, display_id: str) -> list[dict[str, Any]]:
        """Every update_display_data for ``display_id``, whichever request it came with."""
        return self.shows_of(display_id, ("update_display_data",))

    def shows_of(
        self, display_id: str, types: tuple[str, ...] = ("display_data", "update_display_data")
    ) -> list[dict[str, Any]]:
        """The messages that made or changed the display ``display_id``, in order."""
        with self._cond:
            return [
                m
                for m in self.messages
                if m["msg_type"] in types
                and (m["content"].get("transient") or {}).get("display_id") == display_id
            ]

    def display_text(self, display_id: str) -> str:
        """What the display ``display_id`` shows now (its last text/plain)."""
        shows = self.shows_of(display_id)
        assert shows, f"no display {display_id}"
        return str(shows[-1]["content"]["data"].get("text/plain", ""))

    # --- processes --------------------------------------------------------------------

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []

    def note_descendants(self) -> None:
        self._seen.update(self.descendants())

    def interrupt(self) -> None:
        """The stop button: what JupyterLab asks the server to do (SIGINT to the kernel)."""
        self.km.interrupt_kernel()

    def restart(self) -> None:
        """Restart the kernel as JupyterLab's restart does (a shutdown request, then a
        new process); the old kernel's descendants are remembered for the leak check."""
        self.note_descendants()
        old = psutil.Process(self.pid)
        self._seen.add(old)
        self._stop.set()
        self._reader.join(5)
        self.km.restart_kernel(now=False)
        self.kc.wait_for_ready(timeout=STARTUP_TIMEOUT_S)
        self.pid = self.km.provisioner.pid  # type: ignore[union-attr]
        self._reader = self._start_reader()

    def leftovers(self, grace_s: float = EXIT_GRACE_S) -> list[str]:
        """Processes seen that outlive the kernel by ``grace_s``: killed by pid, named."""
        alive = [p for p in self._seen if _running(p)]
        _, alive = psutil.wait_procs(alive, timeout=grace_s)
        alive = [p for p in alive if _running(p)]
        names = [f"pid {p.pid}: {' '.join(_cmdline(p))[:120]}" for p in alive]
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        return names

    def close(self) -> list[str]:
        """Shut the kernel down (as closing a notebook does); returns leftover processes,
        and names the kernel among them when it did not end on its own: jupyter_client
        waits half its grace period, then sends SIGTERM."""
        self.note_descendants()
        with contextlib.suppress(psutil.Error):
            self._seen.add(psutil.Process(self.pid))
        process = getattr(self.km.provisioner, "process", None)
        try:
            self.km.shutdown_kernel(now=False)
        finally:
            self._stop.set()
            self.kc.stop_channels()
            self._reader.join(5)
        left = self.leftovers()
        code = None if process is None else process.poll()
        if code not in (None, 0):
            left.append(f"kernel pid {self.pid} did not exit on its own (exit code {code})")
        return left


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return ["?"]


@contextlib.contextmanager
def kernel_session(workdir: Path, env: dict[str, str] | None = None) -> Iterator[KernelSession]:
    """A kernel for one test; shut down afterwards, failing the test on leftovers."""
    session = KernelSession(workdir, env)
    leftovers: list[str] = []
    try:
        yield session
    finally:
        leftovers = session.close()
    if leftovers:
        raise AssertionError(
            "the kernel left processes running (now killed):\n  " + "\n  ".join(leftovers)
        )
