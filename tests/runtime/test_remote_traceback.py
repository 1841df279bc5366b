"""Remote tracebacks travel as data and are rendered where they are shown.

The worker that ran a notebook-defined function has no source for the cell's file; the
kernel does (IPython keeps each cell in ``linecache``). Here one process plays both: the
"cell" is in ``linecache`` only while the error is rendered, not while it is captured.
"""

from __future__ import annotations

import linecache
import pickle

from jupyter_ray.runtime.common import exceptions
from jupyter_ray.runtime.common.exceptions import RayTaskError, capture_traceback

CELL = "/tmp/ipykernel_0/cell-for-test.py"
SOURCE = """\
def parse(text):
    return int(text)


def check(text):
    try:
        return parse(text)
    except ValueError as err:
        raise RuntimeError('bad') from err
"""


def _raise_from_cell() -> BaseException:
    namespace: dict[str, object] = {}
    exec(compile(SOURCE, CELL, "exec"), namespace)
    try:
        namespace["check"]("x")  # type: ignore[operator]
    except RuntimeError as err:
        return err
    raise AssertionError("the cell's function did not raise")


def test_the_driver_fills_in_the_source_the_worker_did_not_have() -> None:
    linecache.cache.pop(CELL, None)
    err = _raise_from_cell()
    sections = capture_traceback(err, frozenset({__file__}))
    assert [s.frames[-1][3] for s in sections] == ["", ""]  # no source here, "in the worker"
    error = RayTaskError("check", "", err, 42, sections=sections)
    shipped = pickle.loads(pickle.dumps(error))
    assert isinstance(shipped, RuntimeError) and shipped.sections == sections
    linecache.cache[CELL] = (len(SOURCE), None, SOURCE.splitlines(True), CELL)
    try:
        text = shipped.traceback_str
    finally:
        del linecache.cache[CELL]
    assert f'  File "{CELL}", line 2, in parse\n    return int(text)\n' in text
    assert "The above exception was the direct cause of the following exception:" in text
    assert "    raise RuntimeError('bad') from err\nRuntimeError: bad" in text
    assert __file__ not in text


def test_a_frame_label_hook_names_cells_as_ipython_does() -> None:
    err = _raise_from_cell()
    error = RayTaskError("check", "", err, 42, sections=capture_traceback(err, frozenset()))
    before = exceptions.frame_label
    exceptions.frame_label = lambda name, line: f"Cell In[7], line {line}" if name == CELL else None
    try:
        lines = error._render_traceback_()
    finally:
        exceptions.frame_label = before
    assert lines[0] == "RayTaskError: check() failed in a worker (pid=42)"
    assert "  Cell In[7], line 2, in parse" in lines
    assert any(line.startswith(f'  File "{__file__}"') for line in lines)
