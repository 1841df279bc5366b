"""Which notebook cell is running: the ids that tasks carry and that output follows.

:class:`CellTracker` is what ``runtime.client.context.cell_id_provider`` asks each time a task
is submitted. In a kernel the cell is the execute request being handled (ipykernel's
``kernel.get_parent("shell")``): JupyterLab and Notebook 7 put the cell's id in its
metadata (``cellId``), which is what the Lab sidebar matches tasks with; a frontend that
sends none (nbclient, the console) gets the request's message id instead, unique per run.
In a terminal IPython, ``In[N]`` names the cell.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CellRun:
    """One execution of one cell."""

    request_id: str  # msg_id of the execute request (In[N] in a terminal)
    cell_id: str
    execution_count: int | None


class CellTracker:
    """Answers "which cell run is this?" for the thread that submits a task.

    ``on_first_task`` is called once per cell run, on the submitting thread, the first
    time that run submits a task or creates an actor: the output router makes its display
    there, while the cell still runs, so later output has a place in that cell.
    """

    def __init__(self, shell: Any, on_first_task: Callable[[CellRun], None] | None = None):
        self.shell = shell
        self.kernel = getattr(shell, "kernel", None)
        self.on_first_task = on_first_task
        self._lock = threading.Lock()
        self._last: CellRun | None = None  # the run that last submitted a task

    def peek(self) -> CellRun | None:
        """The cell run now in progress (None outside any execute request)."""
        if self.kernel is None:
            count = execution_count(self.shell)
            if count is None:
                return None
            return CellRun(f"In[{count}]", f"In[{count}]", count)
        try:
            parent = self.kernel.get_parent("shell")
        except Exception:  # an ipykernel without get_parent; no cell then
            return None
        if not isinstance(parent, dict):
            return None
        header = parent.get("header") or {}
        if header.get("msg_type") != "execute_request":
            return None  # a widget callback (comm_msg) or nothing yet: no cell to show in
        request_id = str(header.get("msg_id", ""))
        last = self._last
        if last is not None and last.request_id == request_id:
            return last
        metadata = parent.get("metadata") or {}
        cell_id = metadata.get("cellId") if isinstance(metadata, dict) else None
        return CellRun(request_id, str(cell_id or request_id), execution_count(self.shell))

    def current(self) -> tuple[str | None, int | None]:
        """``(cell id, execution count)`` to stamp on a task submitted now."""
        run = self.peek()
        if run is None:
            return None, None
        if run is not self._last:
            first = False
            with self._lock:
                if self._last is None or self._last.request_id != run.request_id:
                    self._last = run
                    first = True
            if first and self.on_first_task is not None:
                self.on_first_task(run)
        return run.cell_id, run.execution_count


def execution_count(shell: Any) -> int | None:
    """The number of the cell now running (its ``In[N]``).

    The result IPython fills for the running cell knows it; ``shell.execution_count`` is
    already the next number while a cell runs (IPython 9 counts up before running it).
    """
    result = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    count = getattr(result, "execution_count", None)
    if count is not None:
        return int(count)
    return getattr(shell, "execution_count", None)


def frame_label(shell: Any) -> Callable[[str, int], str | None]:
    """How a traceback frame in a cell's code is named: ``Cell In[5], line 3``, as
    IPython names it (its compiler remembers which file name each cell got)."""

    def label(filename: str, lineno: int) -> str | None:
        named = shell.compile.format_code_name(filename)
        if not named:
            return None
        kind, name = named
        return f"{kind} {name}, line {lineno}"

    return label
