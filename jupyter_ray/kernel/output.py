"""Task output under the cell that submitted the task, even after that cell finished.

Worker output comes back as ``LogLines`` that carry the id of the cell that submitted the
task. The router keeps each cell run's lines and shows them in a display of that cell,
made with a display id: while the cell runs, when its first line arrives; when it ends
(IPython's ``post_run_cell``, still inside the cell), if it has tasks that may print
later. Lines arriving after that are sent as ``update_display_data`` for that display id:
JupyterLab routes such an update to the cell that made the display whichever cell runs
now, and nbclient applies it to the earlier cell's output, so nothing lands in the wrong
cell. A cell whose tasks never print gets no display at all.

A flood (a task printing in a tight loop) costs the kernel a list append per line: the
buffer keeps a cell's first and last lines with a count of what was dropped between
them, and displays are redrawn at most every ``FLUSH_INTERVAL`` seconds, so neither the
kernel nor the browser drowns.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..runtime.common import protocol as p
from .cells import CellRun

HEAD_LINES = 200
"""A cell keeps its first this many lines of task output ..."""
TAIL_LINES = 200
"""... and its last this many; the lines between are counted, not kept."""
MAX_LINE = 2000
"""Characters kept of one line."""
FLUSH_INTERVAL = 0.2
"""Seconds between two updates of one notebook's task output displays."""
MAX_RUNS = 500
"""Cell runs whose display is remembered (the oldest are forgotten first)."""

Publish = Callable[[str, str, bool], None]
"""``publish(display_id, text, update)``: show ``text`` in a new display, or update it."""


@dataclass(slots=True, eq=False)
class CellOutput:
    """The task output of one cell run: what its display shows."""

    run: CellRun
    display_id: str | None = None  # made once there is something to show
    open: bool = True  # the cell still runs: a display can still be made in it
    head: list[str] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    dropped: int = 0

    def add(self, lines: list[str]) -> None:
        for line in lines:
            if len(line) > MAX_LINE:
                line = line[:MAX_LINE] + f"... [{len(line) - MAX_LINE:,} characters cut]"
            if len(self.head) < HEAD_LINES:
                self.head.append(line)
            else:
                if len(self.tail) == TAIL_LINES:
                    self.dropped += 1
                self.tail.append(line)

    def text(self) -> str:
        parts = list(self.head)
        if self.dropped:
            parts.append(
                f"... {self.dropped:,} more lines of task output not shown (a cell keeps its "
                f"first {HEAD_LINES} and last {TAIL_LINES} lines) ..."
            )
        parts.extend(self.tail)
        return "\n".join(parts)

    def take_text(self) -> str:
        """The lines so far, forgotten (for output printed instead of displayed)."""
        text = self.text()
        self.head, self.dropped = [], 0
        self.tail.clear()
        return text


class OutputRouter:
    """Puts each task's output in its cell's display; see the module docstring.

    ``on_log`` runs on the runtime's reader thread (or an actor lane's), ``open`` on the
    thread that submits a cell's first task, ``close_runs`` on the kernel's main thread
    as a cell ends, the flusher on a thread of its own. ``fallback(text)`` prints output
    that has no display to go to (a task submitted from a widget callback, say), with
    the task-and-pid prefix, as in a script.
    """

    def __init__(self, publish: Publish, fallback: Callable[[str], None]) -> None:
        self._publish = publish
        self._fallback = fallback
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._runs: OrderedDict[tuple[str, int | None], CellOutput] = OrderedDict()
        self._latest: dict[str, CellOutput] = {}  # cell id -> its newest run's output
        self._dirty: set[CellOutput] = set()
        # One publisher at a time: an older text never overwrites a newer one, and a
        # display is made once, either by the flusher or as its cell ends.
        self._publishing = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.published = 0  # display messages sent, for tests and curiosity

    def open(self, run: CellRun) -> None:
        """A cell run submitted its first task: its output has a place from now on."""
        out = CellOutput(run)
        with self._lock:
            self._runs[(run.cell_id, run.execution_count)] = out
            self._latest[run.cell_id] = out
            while len(self._runs) > MAX_RUNS:
                (cell_id, _), old = self._runs.popitem(last=False)
                if self._latest.get(cell_id) is old:
                    del self._latest[cell_id]
                self._dirty.discard(old)

    def on_log(self, msg: p.LogLines) -> None:
        """A task's output arrived: queue it for its cell's display."""
        key = (msg.cell_id or "", msg.cell_execution_count)
        prefix = f"({msg.name} pid={msg.pid}) "
        lines = [prefix + line for line in msg.text.splitlines()]
        with self._lock:
            out = None if self._closed else self._runs.get(key)
            newest = self._latest.get(key[0])
            if out is not None and newest is not out and newest is not None:
                # The cell ran again, which cleared its old output: show it with the new
                out = newest if newest.display_id is not None or newest.open else None
            if out is not None and out.display_id is None and not out.open:
                out = None  # its cell ended without a display: print it instead
            if out is not None:
                out.add(lines)
                self._dirty.add(out)
        if out is None:
            self._fallback("\n".join(lines) + "\n")
            return
        if self._thread is None:
            self._start()
        self._wake.set()

    def close_runs(self, busy: Callable[[CellRun], bool]) -> None:
        """The running cell ends (kernel main thread, still inside the cell): give each
        open run a display now if it has lines, or tasks that may print later
        (``busy(run)``); after this, its output can only update that display."""
        with self._publishing:
            with self._lock:
                runs = [out for out in self._runs.values() if out.open]
            for out in runs:
                with self._lock:
                    pending = out.display_id is None and out in self._dirty
                make = out.display_id is None and (pending or busy(out.run))
                with self._lock:
                    out.open = False
                    if make:
                        out.display_id = _new_display_id()
                        self._dirty.discard(out)
                        text = out.text()
                if make:
                    self._send(out.display_id, text, False)  # type: ignore[arg-type]
        with self._lock:
            self._changed.notify_all()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._flush_loop, name="jupyter-ray-cell-output", daemon=True
            )
        self._thread.start()

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            self._publish_dirty()
            # at most one round of updates per interval, however fast lines come
            time.sleep(FLUSH_INTERVAL)

    def _publish_dirty(self) -> None:
        with self._publishing:
            with self._lock:
                batch: list[tuple[str | None, bool, str]] = []
                for out in self._dirty:
                    if out.display_id is not None:
                        batch.append((out.display_id, True, out.text()))
                    elif out.open:  # the cell still runs: show its first lines there
                        out.display_id = _new_display_id()
                        batch.append((out.display_id, False, out.text()))
                    else:  # came while its cell ended without a display
                        batch.append((None, False, out.take_text()))
                self._dirty.clear()
            for display_id, update, text in batch:
                if display_id is None:
                    self._fallback(text + "\n")
                else:
                    self._send(display_id, text, update)
        with self._lock:
            self._changed.notify_all()

    def _send(self, display_id: str, text: str, update: bool) -> None:
        try:
            self._publish(display_id, text, update)
        except Exception:  # the kernel is shutting down: nobody to show it to
            return
        self.published += 1

    def flush(self, timeout: float = 5.0) -> bool:
        """Send pending output now; True once every display is up to date."""
        deadline = time.monotonic() + timeout
        self._publish_dirty()
        with self._lock:
            return self._changed.wait_for(
                lambda: not self._dirty, max(0.0, deadline - time.monotonic())
            )

    def close(self) -> None:
        """Stop the flusher thread; later output is printed as in a script."""
        with self._lock:
            self._closed = True
        self._wake.set()


def _new_display_id() -> str:
    return f"jupyter-ray-output-{uuid.uuid4().hex}"
