"""The stop button while a cell waits in get/wait cancels exactly that cell's tasks.

The kernel is interrupted as JupyterLab's stop button does it (jupyter_client sends the
kernel SIGINT); the tasks drop a file when they start, and the cell drops one once it
has submitted them all, so the test interrupts only once the tasks surely run and the
cell is about to wait (an interrupt while it still submits is a plain KeyboardInterrupt).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _kernel import Execution, KernelSession

SLOW = """
import os, time
from jupyter_ray import state

@ray.remote
def slow(marker):
    open(marker, "w").close()
    time.sleep(120)
"""


def _wait_for_files(paths: list[Path], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"tasks never started: {paths}"
        time.sleep(0.02)


def _interrupt(kernel: KernelSession, run: Execution) -> float:
    """Press stop; seconds until the cell gave control back."""
    started = time.monotonic()
    kernel.interrupt()
    kernel.finish(run, timeout=30)
    return time.monotonic() - started


@pytest.mark.parametrize("call", ["ray.get(refs)", "ray.wait(refs, num_returns=len(refs))"])
def test_interrupt_cancels_the_waiting_cells_tasks_only(
    ray_kernel: KernelSession, tmp_path: Path, call: str
) -> None:
    ray_kernel.execute(SLOW, cell_id="define")
    # another cell's task, not waited for: it must survive the interrupt
    ray_kernel.execute(f"other = slow.remote({str(tmp_path / 'other')!r})", cell_id="other")
    _wait_for_files([tmp_path / "other"])
    markers = [tmp_path / f"mine-{i}" for i in range(3)]
    submitted = tmp_path / "submitted"  # (a file: a print's flush could take the interrupt)
    # one task runs, two wait for a CPU: the cancel must reach queued tasks too
    run = ray_kernel.submit(
        f"refs = [slow.remote(m) for m in {[str(m) for m in markers]!r}]\n"
        f"open({str(submitted)!r}, 'w').close()\n{call}",
        cell_id="waiting",
    )
    _wait_for_files([markers[0], submitted])
    took = _interrupt(ray_kernel, run)
    print(f"{call}: control back {took * 1000:.0f} ms after the interrupt")
    assert took < 5.0
    text = run.error_text
    kind = call.split("(")[0].split(".")[1]
    assert text == f"KeyboardInterrupt: interrupted {kind}(); cancelled 3 tasks of this cell. " + (
        "The runtime, and other cells' tasks, keep running."
    )
    assert run.error is not None and run.error["ename"] == "CellInterrupted"
    # the runtime is fine, the other cell's task runs on, and the next cell works
    # (a running task is CANCELLED once its worker has stopped it: wait for that)
    after = ray_kernel.execute(
        "deadline = time.monotonic() + 30\n"
        "while True:\n"
        "    tasks = state.list_tasks(filters=[('name', '=', 'slow')])\n"
        "    mine = [t.state for t in tasks if t.cell_id == 'waiting']\n"
        "    if mine == ['CANCELLED'] * 3 or time.monotonic() > deadline:\n"
        "        break\n"
        "    time.sleep(0.02)\n"
        "print(sorted((t.cell_id, t.state) for t in tasks))\n"
        "print(ray.wait([other], timeout=0)[0] == [])\n"
        "print(ray.get(ray.put(41)) + 1)",
        cell_id="after",
    )
    listed, other_pending, answer = after.stream_text.strip().splitlines()
    states = eval(listed)
    # the other cell's task still runs (RUNNING once its worker reported it, at 0.1 s)
    assert [s for c, s in states if c == "other"] in (["RUNNING"], ["SCHEDULED"])
    assert other_pending == "True"
    assert [s for c, s in states if c == "waiting"] == ["CANCELLED"] * 3
    assert answer == "42"
    rerun = ray_kernel.execute("ray.get(ray.remote(lambda: 'fine').remote())", cell_id="waiting")
    assert rerun.result == "'fine'"


LOOP = """
@ray.remote
def size(blob):
    return len(blob)

@ray.remote
class Keeper:
    def size(self, blob):
        return len(blob)

keeper = Keeper.remote()
blob = b"x" * 60_000  # inline arguments: each submit writes 60 kB to the socket
"""


def _interrupt_after(kernel: KernelSession, code: str, line: str) -> Execution:
    """Run ``code``, which prints ``line`` once it is under way; press stop then."""
    run = kernel.submit(code)
    kernel.wait_for(
        lambda: any(
            m["msg_type"] == "stream" and line in m["content"]["text"]
            for m in kernel.for_parent(run.msg_id)
        ),
        timeout=30,
        what=f"the cell to print {line!r}",
    )
    _interrupt(kernel, run)
    return run


def test_stop_while_a_cell_submits_leaves_the_runtime_whole(ray_kernel: KernelSession) -> None:
    """The stop button lands mid-submit (in the loop's time, most of it is spent there):
    the message on its way is sent whole first, so the session keeps its runtime."""
    ray_kernel.execute(LOOP, cell_id="define")
    for _ in range(5):
        run = _interrupt_after(
            ray_kernel,
            "refs = []\nwhile True:\n"
            "    refs.append(size.remote(blob))\n    refs.append(keeper.size.remote(blob))\n"
            "    if len(refs) == 20:\n        print('looping', flush=True)",
            "looping",
        )
        assert run.error is not None and run.error["ename"] == "KeyboardInterrupt"
        # down to the cell's line it stopped at: no frames of the handler or the runtime
        shown = run.error_text
        assert "Cell In[" in shown
        for internal in ("interrupts.py", "submit.py", "remote_function.py", "actor.py"):
            assert internal not in shown, shown
        after = ray_kernel.execute(
            "print(ray.get(size.remote(b'abc'), timeout=30), "
            "ray.get(keeper.size.remote(b'ab'), timeout=30), "
            "sorted(set(ray.get(refs[-4:], timeout=60))))"
        )
        assert after.stream_text.strip() == "3 2 [60000]"


def test_stop_outside_the_runtime_shows_the_plain_keyboard_interrupt(
    ray_kernel: KernelSession, tmp_path: Path
) -> None:
    """The runtime's SIGINT handler is in place for every cell: a plain interrupt looks
    as it always does, down to the line it stopped, without the handler's frames."""
    marker = tmp_path / "napping"
    run = ray_kernel.submit(f"import time\nopen({str(marker)!r}, 'w').close()\ntime.sleep(60)")
    _wait_for_files([marker])
    _interrupt(ray_kernel, run)
    assert run.error is not None and run.error["ename"] == "KeyboardInterrupt"
    text = run.error_text
    assert "----> 3 time.sleep(60)" in text and text.rstrip().endswith("KeyboardInterrupt:")
    assert "interrupts.py" not in text and "on_sigint" not in text


def test_stop_during_puts_leaves_no_room_taken_in_the_store(ray_kernel: KernelSession) -> None:
    """A put stopped between allocating its room and sealing the object would hold that
    room until the kernel disconnects; stopped, the put completes and the room is freed
    once the value is unreferenced."""
    ray_kernel.execute("import time\nfrom jupyter_ray import state\nblob = b'x' * (32 << 20)")
    for _ in range(3):
        run = _interrupt_after(
            ray_kernel,
            "n = 0\nwhile True:\n    x = ray.put(blob)\n    n += 1\n"
            "    if n == 3:\n        print('putting', flush=True)",
            "putting",
        )
        assert run.error is not None and run.error["ename"] == "KeyboardInterrupt"
    after = ray_kernel.execute(
        "x = None\n"
        "deadline = time.monotonic() + 30\n"
        "while state.list_nodes()[0].object_store_used and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print(state.list_nodes()[0].object_store_used, ray.get(ray.put(blob)) == blob)"
    )
    assert after.stream_text.strip() == "0 True"
