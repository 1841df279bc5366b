"""ipywidgets in the kernel: ``%ray_status`` keeps updating, long waits show a progress bar.

The test reads the widget messages the kernel sends (``comm_open`` with the widget's
model, ``comm_msg`` with state updates), which is what the frontend would draw.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from _kernel import Execution, KernelSession

SLOW = """
import os, time

@ray.remote
def nap(seconds):
    time.sleep(seconds)
    return seconds

@ray.remote
def until(path):
    while not os.path.exists(path):
        time.sleep(0.01)
    return path
"""


def _states(messages: list[dict[str, Any]], comm_id: str | None = None) -> list[dict[str, Any]]:
    """The widget state updates in ``messages`` (of one widget when ``comm_id`` is given)."""
    return [
        m["content"]["data"].get("state", {})
        for m in messages
        if m["msg_type"] == "comm_msg" and (comm_id is None or m["content"]["comm_id"] == comm_id)
    ]


def _comm_of(run: Execution, model: str) -> str:
    opened = [
        m
        for m in run.of_type("comm_open")
        if m["content"]["data"]["state"].get("_model_name") == model
    ]
    assert opened, f"no {model} opened; models: {run.widget_models()}"
    return str(opened[0]["content"]["comm_id"])


def _final(run: Execution, comm_id: str) -> dict[str, Any]:
    """A widget's state after every update this execution sent."""
    opened = next(m for m in run.of_type("comm_open") if m["content"]["comm_id"] == comm_id)
    state = dict(opened["content"]["data"]["state"])
    for update in _states(run.messages, comm_id):
        state.update(update)
    return state


def test_ray_status_is_a_live_view(ray_kernel: KernelSession, tmp_path: Path) -> None:
    status = ray_kernel.execute("%ray_status", cell_id="status")
    models = status.widget_models()
    assert "VBoxModel" in models and models.count("HTMLModel") == 3
    first = " ".join(str(s.get("value", "")) for s in _states(status.messages)) + " ".join(
        str(m["content"]["data"]["state"].get("value", "")) for m in status.of_type("comm_open")
    )
    assert "jupyter_ray status" in first and "object store" in first
    ray_kernel.execute(SLOW, cell_id="define")
    go = tmp_path / "go"
    # A later cell: tasks wait on a file while the status view refreshes twice, on its own
    later = ray_kernel.execute(
        "from jupyter_ray.kernel import integration\n"
        "service = integration.active().status\n"
        f"refs = [until.remote({str(go)!r}) for _ in range(2)]\n"
        "start = service.rounds\n"
        "deadline = time.monotonic() + 30\n"
        "while service.rounds < start + 2:\n"
        "    assert time.monotonic() < deadline, 'the status view stopped updating'\n"
        "    time.sleep(0.05)\n"
        f"open({str(go)!r}, 'w').close()\n"
        "ray.get(refs)\n",
        cell_id="later",
    )
    # the updates travel with the later cell's request, and show this kernel's tasks
    updates = [str(s.get("value", "")) for s in _states(later.messages)]
    assert any("this kernel's tasks" in u and "In[" in u for u in updates), updates


def test_a_long_get_shows_a_progress_bar_that_ends_complete(ray_kernel: KernelSession) -> None:
    ray_kernel.execute(SLOW, cell_id="define")
    quick = ray_kernel.execute("ray.get(nap.remote(0))", cell_id="quick")
    assert quick.widget_models() == []  # a quick get draws nothing
    run = ray_kernel.execute("ray.get([nap.remote(0.6) for _ in range(4)])", cell_id="long")
    bar = _final(run, _comm_of(run, "IntProgressModel"))
    assert bar["bar_style"] == "success" and bar["value"] == bar["max"] == 4
    label = _final(run, _comm_of(run, "HTMLModel"))["value"]
    assert label.startswith("complete in ") and label.endswith(" s · 4/4 done")


def test_a_get_on_many_refs_shows_a_bar_before_a_second(ray_kernel: KernelSession) -> None:
    ray_kernel.execute(SLOW, cell_id="define")
    run = ray_kernel.execute("ray.get([nap.remote(0.005) for _ in range(300)])", cell_id="many")
    bar = _final(run, _comm_of(run, "IntProgressModel"))
    assert bar["value"] == bar["max"] == 300 and bar["bar_style"] == "success"


def test_a_failed_or_interrupted_get_ends_its_bar_so(ray_kernel: KernelSession) -> None:
    ray_kernel.execute(
        SLOW
        + "\n@ray.remote\ndef late_failure():\n    time.sleep(1.5)\n    raise ValueError('no')",
        cell_id="define",
    )
    failed = ray_kernel.run("ray.get(late_failure.remote())", cell_id="failed")
    assert failed.error is not None
    bar = _final(failed, _comm_of(failed, "IntProgressModel"))
    assert bar["bar_style"] == "danger"
    assert _final(failed, _comm_of(failed, "HTMLModel"))["value"].startswith("failed in ")

    run = ray_kernel.submit("ray.get([nap.remote(60) for _ in range(3)])", cell_id="stopped")
    ray_kernel.wait_for(
        lambda: any(
            m["msg_type"] == "comm_open"
            and m["content"]["data"]["state"].get("_model_name") == "IntProgressModel"
            for m in ray_kernel.for_parent(run.msg_id)
        ),
        timeout=30,
        what="the progress bar",
    )
    started = time.monotonic()
    ray_kernel.interrupt()
    ray_kernel.finish(run)
    assert time.monotonic() - started < 5
    bar = _final(run, _comm_of(run, "IntProgressModel"))
    label = _final(run, _comm_of(run, "HTMLModel"))["value"]
    assert bar["bar_style"] == "warning"
    assert label.startswith("cancelled in ") and label.endswith("3 tasks cancelled")
