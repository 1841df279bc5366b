"""The stop button while a cell waits in ``get``/``wait``: cancel that cell's tasks.

An interrupt (SIGINT: the kernel's stop button, Ctrl-C in a terminal) raises
KeyboardInterrupt in the main thread wherever it is blocked, the runtime's waits
included. The wait hook catches it there, asks the node to cancel every live task of the
cell (and their children; other cells' tasks and the actors the cell made live on), and
raises :class:`CellInterrupted`, a KeyboardInterrupt that says how many were cancelled.
"""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from .. import runtime
from ..runtime.client import context
from .cells import CellRun

# jupyter_ray's folder, and the runtime's (a folder of its own in a source checkout)
_OWN_DIRS = tuple(
    str(folder) + os.sep for folder in (Path(__file__).parents[1], Path(runtime.__file__).parent)
)


class KeyboardInterrupt(builtins.KeyboardInterrupt):  # (the name users see)
    """The stop button's KeyboardInterrupt in a shell with the runtime's SIGINT handler
    (``runtime/common/interrupts.py``: it holds an interrupt until a step of the runtime
    is done). Shown as Python's own, down to the line of the user's code it stopped:
    the frames of jupyter_ray under that line (the handler's, a step that held it) are
    left out, as the frames of a builtin would be."""

    def _render_traceback_(self) -> list[str]:
        from IPython import get_ipython

        shell: Any = get_ipython()
        lines: list[str] = shell.InteractiveTB.structured_traceback(
            builtins.KeyboardInterrupt, self, _without_own_tail(self.__traceback__)
        )
        return lines


def _without_own_tail(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` cut after its innermost frame outside jupyter_ray (if it has one)."""
    last_user = None
    entry = tb
    while entry is not None:
        if not entry.tb_frame.f_code.co_filename.startswith(_OWN_DIRS):
            last_user = entry
        entry = entry.tb_next
    if last_user is not None:
        last_user.tb_next = None
    return tb


class CellInterrupted(builtins.KeyboardInterrupt):
    """A KeyboardInterrupt raised while a cell waited on its tasks, after cancelling them.

    ``cancelled`` is how many live tasks of the cell the runtime cancelled.
    """

    def __init__(self, message: str, cancelled: int = 0) -> None:
        super().__init__(message)
        self.cancelled = cancelled

    def __reduce__(self) -> tuple[object, ...]:
        return (CellInterrupted, (str(self), self.cancelled))

    def _render_traceback_(self) -> list[str]:
        """IPython hook: one line instead of the frames of the runtime's wait loop."""
        return [f"KeyboardInterrupt: {self}"]


def cancel_cell_tasks(run: CellRun | None, kind: str) -> CellInterrupted | None:
    """Cancel the live tasks of ``run``'s cell; the exception that says so, or None when
    there is no cell or runtime to cancel in (then the plain KeyboardInterrupt stands)."""
    client = context.get_client()
    if run is None or client is None or client.closed:
        return None
    try:
        count = client.cancel_cell(run.cell_id, wait=True) or 0
    except Exception as err:  # the runtime went away: the interrupt still stands
        return CellInterrupted(f"interrupted {kind}(); could not cancel this cell's tasks: {err}")
    tasks = "task" if count == 1 else "tasks"
    return CellInterrupted(
        f"interrupted {kind}(); cancelled {count} {tasks} of this cell. The runtime, and "
        "other cells' tasks, keep running.",
        count,
    )
