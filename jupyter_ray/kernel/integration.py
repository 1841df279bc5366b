"""What ``%load_ext jupyter_ray`` installs in an IPython shell, and takes out again.

The runtime offers hooks and this module fills them: ``context.cell_id_provider`` (tasks
carry their cell), ``context.job_metadata`` (the job says which kernel it is),
``CoreClient.on_log`` (output goes to its cell), ``api.wait_hook`` (progress bars and
interrupts), ``exceptions.frame_label`` (remote tracebacks name cells as IPython does),
and IPython's HTML formatter (reprs). ``init()`` installs it too when IPython runs, so a
notebook that never loads the extension still gets all of it.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import _client, api, state
from ..on_ray import backend as on_ray
from ..on_ray.output import route_worker_logs
from ..runtime.client import context
from ..runtime.client.core import CoreClient
from ..runtime.client.object_ref import ObjectRef
from ..runtime.common import exceptions as runtime_exceptions
from ..runtime.common import interrupts
from ..runtime.common.exceptions import GetTimeoutError
from ..runtime.common.state_schema import DONE_STATES
from . import identity, reprs
from .cells import CellRun, CellTracker, frame_label
from .interrupt import KeyboardInterrupt as StopButton
from .interrupt import cancel_cell_tasks
from .output import OutputRouter
from .progress import Bar, Counts, ProgressWatcher, TextBar, WidgetBar
from .status import StatusService

RUNNING_STATES = ("SCHEDULED", "RUNNING")


class RunningTasks:
    """Ids of this driver's tasks that a worker runs now, asked of the runtime at most
    every half second (less often when asking takes long): for progress bars."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._next = 0.0

    def ids(self) -> set[str]:
        now = time.monotonic()
        job = context.driver_job_id
        if now < self._next or job is None:
            return self._ids
        ids: set[str] = set()
        for st in RUNNING_STATES:
            ids.update(
                t.task_id
                for t in state.list_tasks([("job_id", "=", job), ("state", "=", st)], limit=None)
            )
        spent = time.monotonic() - now
        self._ids = ids
        self._next = now + max(0.5, 10 * spent)
        return ids


class KernelIntegration:
    """The notebook side of one IPython shell; see the module docstring."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.in_kernel = getattr(shell, "kernel", None) is not None
        self.router = OutputRouter(_publish, _print_text) if self.in_kernel else None
        self.tracker = CellTracker(shell, self.router.open if self.router is not None else None)
        self.running = RunningTasks()
        make_bar = _bar_maker(self.in_kernel)
        self.progress = ProgressWatcher(make_bar, self.count) if make_bar is not None else None
        self.status = StatusService()
        self._saved: dict[str, Any] = {}

    # --- installing -------------------------------------------------------------------

    def install(self) -> None:
        """Fill the runtime's hooks (what they held before is kept for ``uninstall``)."""
        self._saved = {
            "provider": context.cell_id_provider,
            "frame_label": runtime_exceptions.frame_label,
            "wait_hook": api.wait_hook,
            "reinit": _client.reinit_reuses,
        }
        context.cell_id_provider = self.tracker.current
        runtime_exceptions.frame_label = frame_label(self.shell)
        api.wait_hook = self.wait
        _client.reinit_reuses = True
        _client.connect_hooks.append(self.on_connect)
        on_ray.connect_hooks.append(self.on_ray_connect)
        for key, value in identity.job_metadata().items():
            context.job_metadata.setdefault(key, value)
        reprs.register(self.shell)
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        interrupts.install(StopButton)  # (this cell's pre_run_cell has been)
        if self.router is not None:
            self.shell.events.register("post_run_cell", self.post_run_cell)
        client = context.get_client()
        if client is not None:  # connected before the extension was loaded
            self.on_connect(client)

    def uninstall(self) -> None:
        """Give the hooks back what they held, and stop this integration's threads."""
        context.cell_id_provider = self._saved.get("provider")
        runtime_exceptions.frame_label = self._saved.get("frame_label")
        api.wait_hook = self._saved.get("wait_hook")
        _client.reinit_reuses = bool(self._saved.get("reinit", False))
        if self.on_connect in _client.connect_hooks:
            _client.connect_hooks.remove(self.on_connect)
        if self.on_ray_connect in on_ray.connect_hooks:
            on_ray.connect_hooks.remove(self.on_ray_connect)
        reprs.unregister(self.shell)
        with contextlib.suppress(ValueError):
            self.shell.events.unregister("pre_run_cell", self.pre_run_cell)
        interrupts.uninstall()
        if self.router is not None:
            with contextlib.suppress(ValueError):
                self.shell.events.unregister("post_run_cell", self.post_run_cell)
        client = context.get_client()
        if client is not None and self.router is not None and client.on_log == self.router.on_log:
            client.on_log = None
        if self.router is not None:
            self.router.close()
        if self.progress is not None:
            self.progress.close()
        self.status.close()

    def pre_run_cell(self, info: Any = None) -> None:
        """IPython event, as every cell starts: an interrupt must not cut one of the
        runtime's steps in two (ipykernel restores Python's own SIGINT handler for each
        request it handles, so this is done again for each cell)."""
        interrupts.install(StopButton)

    def post_run_cell(self, result: Any = None) -> None:
        """IPython event, at the end of every cell (still inside it): the cell's task
        output gets its display now if it will need one (see ``output.py``)."""
        if self.router is not None:
            self.router.close_runs(_cell_busy)

    def on_connect(self, client: CoreClient) -> None:
        """A new connection: its task output goes to cells (unless ``log_to_driver=False``
        already silenced it)."""
        if self.router is not None and client.on_log is None:
            client.on_log = self.router.on_log

    def on_ray_connect(self, ray: Any) -> None:
        """This kernel became a Ray driver (the Ray backend): Ray's worker output of the
        cells' tasks goes to their cells too, where this Ray allows (``on_ray.output``)."""
        if self.router is not None:
            route_worker_logs(self.router.on_log)

    # --- waiting ----------------------------------------------------------------------

    def wait(self, kind: str, refs: list[ObjectRef], call: Callable[[], Any]) -> Any:
        """``api.wait_hook``: a progress bar for long waits; on an interrupt, cancel the
        cell's tasks and say how many (see ``interrupt.py``). Main thread only: an
        interrupt reaches no other thread, and bars belong to the running cell."""
        if threading.current_thread() is not threading.main_thread():
            return call()
        progress = self.progress
        watch = progress.begin(kind, refs) if progress is not None else None
        outcome, note = "failed", ""
        try:
            result = call()
            outcome = "done"
            return result
        except KeyboardInterrupt:
            outcome = "cancelled"
            interrupted = cancel_cell_tasks(self.tracker.peek(), kind)
            if interrupted is None:
                raise
            note = (
                f"{interrupted.cancelled} task{'s' if interrupted.cancelled != 1 else ''} cancelled"
            )
            raise interrupted from None
        except GetTimeoutError:
            outcome = "timeout"
            raise
        finally:
            if watch is not None and progress is not None:
                progress.end(watch, outcome, note)

    def count(self, refs: list[ObjectRef], running: bool = True) -> Counts:
        """Where ``refs`` stand, for a progress bar; how many run only if ``running``."""
        client = context.get_client()
        if client is None or client.closed:
            return Counts(len(refs))
        done, failed = client.readiness(refs)
        if not running:
            return Counts(len(refs), done, failed)
        running_ids = self.running.ids()
        now = sum(1 for r in refs if r.task_id().hex() in running_ids)
        return Counts(len(refs), done, failed, min(now, len(refs) - done))

    def flush_output(self, timeout: float = 5.0) -> bool:
        """See :func:`jupyter_ray.kernel.flush_output`."""
        return self.router.flush(timeout) if self.router is not None else True


def _cell_busy(run: CellRun) -> bool:
    """Whether tasks of this cell run are still live (and so may print later)."""
    if on_ray.ray is not None:
        # Ray's state API lags its tasks by a second or so: a cell that submitted tasks
        # keeps a place for their output, empty if they never print.
        return True
    job = context.driver_job_id
    client = context.get_client()
    if job is None or client is None or client.closed:
        return False
    try:
        tasks = state.list_tasks([("job_id", "=", job), ("cell_id", "=", run.cell_id)], limit=None)
    except Exception:  # the runtime is going away: nothing more will print
        return False
    return any(
        t.state not in DONE_STATES and t.cell_execution_count == run.execution_count for t in tasks
    )


def _print_text(text: str) -> None:
    """Output with no display to go to: printed in the running cell, as in a script."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (ValueError, OSError):  # the kernel is exiting
        pass


def _publish(display_id: str, text: str, update: bool) -> None:
    """Show task output in its display: created in the running cell, later updated."""
    from IPython.display import display

    display({"text/plain": text}, raw=True, display_id=display_id, update=update)


def _bar_maker(in_kernel: bool) -> Callable[[str, int, float], Bar] | None:
    """Widgets in a notebook, text on a terminal, nothing otherwise."""
    if in_kernel:
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return TextBar
        return WidgetBar
    isatty = getattr(sys.stderr, "isatty", None)
    return TextBar if isatty is not None and isatty() else None


_active: KernelIntegration | None = None
_lock = threading.Lock()


def install(shell: Any) -> KernelIntegration:
    """Install in ``shell`` (once; installing again keeps what is there)."""
    global _active
    with _lock:
        if _active is not None and _active.shell is shell:
            return _active
        if _active is not None:
            _active.uninstall()
        _active = KernelIntegration(shell)
        _active.install()
        return _active


def uninstall(shell: Any) -> None:
    """Take the integration out of ``shell`` (``%unload_ext jupyter_ray``)."""
    global _active
    with _lock:
        if _active is not None and _active.shell is shell:
            _active.uninstall()
            _active = None


def active() -> KernelIntegration | None:
    """The integration installed in this process, if any."""
    return _active
