"""What each tutorial notebook must show once nbclient has run it, cell by cell.

The notebooks assert their own results inside their cells; these checks look at what a
reader sees: printed lines, HTML views, remote tracebacks, task output that arrived in
an earlier cell's display while a later cell ran, widgets and how they ended.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _cell(nb: Any, cell_id: str) -> Any:
    for cell in nb.cells:
        if cell.get("id") == cell_id:
            return cell
    raise AssertionError(f"no cell {cell_id!r} in the notebook")


def text(nb: Any, cell_id: str) -> str:
    """Everything a cell printed or showed as plain text (streams, displays, its value).

    Back-to-back stream outputs of one stream are one text, as a notebook shows them: a
    ``print`` can reach the kernel's stream in two writes that are flushed apart."""
    parts = []
    last_stream = None
    for out in _cell(nb, cell_id).outputs:
        if out.output_type == "stream":
            if last_stream == out.name:
                parts[-1] += out.text
            else:
                parts.append(out.text)
            last_stream = out.name
            continue
        last_stream = None
        if out.output_type in ("display_data", "execute_result"):
            parts.append(out.data.get("text/plain", ""))
    return ANSI.sub("", "\n".join(parts))


def html(nb: Any, cell_id: str) -> str:
    return "\n".join(
        out.data.get("text/html", "")
        for out in _cell(nb, cell_id).outputs
        if out.output_type in ("display_data", "execute_result")
    )


def error(nb: Any, cell_id: str) -> str:
    errors = [o for o in _cell(nb, cell_id).outputs if o.output_type == "error"]
    assert errors, f"cell {cell_id} was expected to fail"
    return ANSI.sub("", "\n".join(errors[0].traceback))


def no_error(nb: Any) -> None:
    for cell in nb.cells:
        tagged = "raises-exception" in cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and not tagged:
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.id


def widget_states(nb: Any, cell_id: str) -> list[dict[str, Any]]:
    """The final states of the widgets a cell displayed, children included."""
    store = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    states = store.get("state", {})
    found = []
    todo = [
        out.data["application/vnd.jupyter.widget-view+json"]["model_id"]
        for out in _cell(nb, cell_id).outputs
        if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
    ]
    while todo:
        model = states.get(todo.pop(0))
        if model is None:
            continue
        found.append(model["state"] | {"_model_name": model["model_name"]})
        todo += [c.removeprefix("IPY_MODEL_") for c in model["state"].get("children", [])]
    return found


def check_01(nb: Any) -> None:
    assert "local:  sorted 4 lists in" in text(nb, "01-05")
    assert "remote: sorted 4 lists in" in text(nb, "01-08")
    assert "speed-up:" in text(nb, "01-08")
    assert "jupyter_ray" in html(nb, "01-01")  # init() shows the runtime's summary


def check_02(nb: Any) -> None:
    assert "8 partial sums submitted" in text(nb, "02-05")
    assert "sum of squares below 800" in text(nb, "02-07")


def check_03(nb: Any) -> None:
    assert "array of 2,000,000 float64 values, 15 MiB" in text(nb, "03-02")
    assert "by value:" in text(nb, "03-04") and "put once:" in text(nb, "03-06")


def check_04(nb: Any) -> None:
    assert "finished in order:" in text(nb, "04-03")
    assert "get timed out; the task is still running" in text(nb, "04-06")
    assert "within the deadline: ['t0', 't1']" in text(nb, "04-08")


def check_05(nb: Any) -> None:
    assert "[11, 12, 13, 14, 15]" in text(nb, "d0e6d872")
    assert "final value: 55" in text(nb, "a5dce9df")
    assert "caught: RayTaskError(TypeError)" in text(nb, "dbb2d087")


def check_06(nb: Any) -> None:
    summary = html(nb, "06-01")
    assert "jupyter_ray" in summary and "sensor 1" in summary and "sidebar" in summary
    status = widget_states(nb, "06-03")
    assert [s["_model_name"] for s in status][:1] == ["VBoxModel"]
    assert any("this kernel's tasks" in str(s.get("value", "")) for s in status)
    assert "local:  sorted 4 lists" in text(nb, "06-05")
    assert "remote: sorted 4 lists" in text(nb, "06-07")
    ref = html(nb, "06-09")
    assert "ObjectRef" in ref and "ready" in ref and "bubble_sort()" in ref
    assert "sum of squares below 800: 170,346,800" in text(nb, "06-11")
    assert "8 chunk sums of one shared 15 MiB array" in text(nb, "06-13")
    assert "finished in order: quick, middle, slow" in text(nb, "06-15")
    assert "[('worker-0', 3), ('worker-1', 3)]" in text(nb, "06-17")
    assert "Supervisor" in html(nb, "06-17") and "ALIVE" in html(nb, "06-17")
    assert "caught a RayTaskError(ValueError)" in text(nb, "06-19")
    failure = error(nb, "06-20")
    assert re.search(r"Cell In\[\d+\], line 2, in parse\n    return int\(text\)", failure)
    assert "ValueError: invalid literal for int() with base 10: 'eight'" in failure
    assert "sensor free again: 1.0" in text(nb, "06-22")
    remote = text(nb, "06-24")
    assert re.search(r"\(In\[\d+\] pid=\d+\) sorting in worker process \d+", remote)
    assert remote.rstrip().endswith("]")  # the cell's value: the five smallest numbers
    assert "Download the timeline" in html(nb, "06-26")
    assert "Stopped this kernel's jupyter_ray runtime." in text(nb, "06-28")
    no_error(nb)


def check_07(nb: Any) -> None:
    ticks = text(nb, "07-03")  # arrived while 07-05 ran, shown under 07-03
    for line in ("tick 0", "tick 3", "a log record", "UserWarning: background: a warning"):
        assert line in ticks, ticks
    meanwhile = text(nb, "07-05")
    assert "meanwhile, in another cell: 45" in meanwhile and "tick" not in meanwhile
    flood = text(nb, "07-07").splitlines()
    assert flood[0].endswith(") line 0") and flood[-1].endswith(") line 19999")
    assert "19,600 more lines of task output not shown" in flood[200]
    assert len(flood) == 401
    failure = error(nb, "07-09")
    assert re.search(r"Cell In\[\d+\], line 3, in divide\n    return a / b", failure)
    stopped = error(nb, "07-13")
    assert stopped == (
        "KeyboardInterrupt: interrupted get(); cancelled 3 tasks of this cell. The runtime, "
        "and other cells' tasks, keep running."
    )
    bar = [s for s in widget_states(nb, "07-13") if s["_model_name"] == "IntProgressModel"]
    assert bar and bar[0]["bar_style"] == "warning"  # the bar ended "cancelled"
    assert "survivor: 3" in text(nb, "07-15") and "cancelled: 3" in text(nb, "07-15")
    no_error(nb)


OUTPUT_CHECKS: dict[str, Callable[[Any], None]] = {
    "01_remote_functions.ipynb": check_01,
    "02_dependent_tasks.ipynb": check_02,
    "03_put_once_share_many.ipynb": check_03,
    "04_wait_loop.ipynb": check_04,
    "05_actors.ipynb": check_05,
    "00_getting_started.ipynb": check_06,
    "07_cell_output_and_interrupts.ipynb": check_07,
}
