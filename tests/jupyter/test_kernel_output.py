"""A task's output belongs to the cell that submitted it, even when it comes late.

The kernel is driven as JupyterLab drives it (execute requests carrying ``cellId``), and
the test reads the IOPub messages: which display each line of output went to, and with
which request it arrived.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _kernel import KernelSession

from jupyter_ray.kernel.output import HEAD_LINES, TAIL_LINES, CellOutput

DEFINE = """
import logging, os, time, warnings

@ray.remote
def chatty(go_file):
    print("early line")
    deadline = time.monotonic() + 60
    while not os.path.exists(go_file):  # until the next cell says so
        assert time.monotonic() < deadline, "the next cell never said go"
        time.sleep(0.01)
    print("late line")
    logging.warning("late log record")
    warnings.warn("late warning")
    return 1
"""


def test_late_output_goes_to_the_cell_that_submitted_the_task(
    ray_kernel: KernelSession, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    ray_kernel.execute(DEFINE, cell_id="define")
    first = ray_kernel.execute(f"ref = chatty.remote({str(go)!r})", cell_id="cell-A")
    # cell A is over: its task still runs, and has a display to print into
    [display_id] = first.display_ids()
    assert first.stream_text == ""
    second = ray_kernel.execute(
        f"open({str(go)!r}, 'w').close()\n"
        "assert ray.get(ref) == 1\n"
        "import jupyter_ray.kernel\n"
        "assert jupyter_ray.kernel.flush_output()\n"
        "print('cell B done')",
        cell_id="cell-B",
    )
    text = ray_kernel.display_text(display_id)
    for line in ("early line", "late line", "late log record", "late warning"):
        assert line in text, f"{line!r} missing from cell A's display:\n{text}"
    assert "(chatty pid=" in text
    # nothing of it in cell B, which was running when it came ...
    assert second.stream_text == "cell B done\n"
    assert "late line" not in second.text_plain()
    assert not second.display_ids()
    # ... and it did come while cell B ran: the update travelled with B's request
    late = [u for u in ray_kernel.updates_of(display_id) if "late line" in str(u["content"])]
    assert late[0]["parent_header"]["msg_id"] == second.msg_id


def test_each_cell_gets_its_own_tasks_output(ray_kernel: KernelSession) -> None:
    ray_kernel.execute(
        "@ray.remote\ndef say(word):\n    print(word)\n    return word", cell_id="define"
    )
    one = ray_kernel.execute("ray.get(say.remote('from-one'))", cell_id="one")
    two = ray_kernel.execute(
        "ray.get(say.remote('from-two'))\nimport jupyter_ray.kernel\n"
        "assert jupyter_ray.kernel.flush_output()",
        cell_id="two",
    )
    ray_kernel.execute("assert jupyter_ray.kernel.flush_output()", cell_id="three")
    text_one = ray_kernel.display_text(one.display_ids()[0])
    text_two = ray_kernel.display_text(two.display_ids()[0])
    assert "from-one" in text_one and "from-two" not in text_one
    assert "from-two" in text_two and "from-one" not in text_two
    # a cell whose tasks print nothing gets no output display at all
    quiet = ray_kernel.execute("ray.get(ray.remote(lambda: 1).remote())", cell_id="quiet")
    assert quiet.display_ids() == [] and quiet.result == "1"


def test_output_of_nested_tasks_and_actor_calls_reaches_the_cell(
    ray_kernel: KernelSession,
) -> None:
    ray_kernel.execute(
        "@ray.remote\n"
        "def leaf(i):\n"
        "    print('leaf', i)\n"
        "    return i\n\n"
        "@ray.remote\n"
        "def branch():\n"
        "    print('branch')\n"
        "    return sum(ray.get([leaf.remote(i) for i in range(2)]))\n\n"
        "@ray.remote\n"
        "class Speaker:\n"
        "    def say(self, word):\n"
        "        print('actor says', word)\n"
        "        return word",
        cell_id="define",
    )
    ray_kernel.execute("speaker = Speaker.remote()", cell_id="make")
    run = ray_kernel.execute(
        "assert ray.get(branch.remote()) == 1\n"
        "assert ray.get([speaker.say.remote(w) for w in ('one', 'two')]) == ['one', 'two']\n"
        "import jupyter_ray.kernel\n"
        "assert jupyter_ray.kernel.flush_output()",
        cell_id="use",
    )
    [display_id] = run.display_ids()
    text = ray_kernel.display_text(display_id)
    for line in ("(branch pid=", ") branch", ") leaf 0", ") leaf 1", ") actor says two"):
        assert line in text, f"{line!r} missing:\n{text}"
    assert "(leaf pid=" in text and "(Speaker.say pid=" in text


@pytest.mark.slow
def test_a_flood_is_capped_and_the_kernel_stays_responsive(ray_kernel: KernelSession) -> None:
    lines = 300_000
    ray_kernel.execute(
        "@ray.remote\n"
        "def flood(n):\n"
        "    for i in range(n):\n"
        "        print('line', i)\n"
        "    return n",
        cell_id="define",
    )
    started = time.monotonic()
    flood = ray_kernel.execute(f"ref = flood.remote({lines})", cell_id="flood")
    [display_id] = flood.display_ids()
    # the notebook keeps answering while the flood pours in
    slowest = 0.0
    for i in range(5):
        t0 = time.monotonic()
        assert ray_kernel.execute(f"{i} + 1", cell_id=f"quick-{i}").text_plain() == str(i + 1)
        slowest = max(slowest, time.monotonic() - t0)
    done = ray_kernel.execute(
        f"assert ray.get(ref) == {lines}\nimport jupyter_ray.kernel\n"
        "assert jupyter_ray.kernel.flush_output()",
        cell_id="wait",
    )
    elapsed = time.monotonic() - started
    print(f"flood of {lines:,} lines: {elapsed:.1f} s; slowest quick cell {slowest * 1000:.0f} ms")
    assert slowest < 2.0, f"a trivial cell took {slowest:.2f} s during the flood"
    updates = ray_kernel.updates_of(display_id)
    # batched: about one update per 0.2 s, not one per line
    assert len(updates) <= elapsed / 0.2 + 5, f"{len(updates)} updates in {elapsed:.1f} s"
    shown = ray_kernel.display_text(display_id).splitlines()
    assert len(shown) == HEAD_LINES + TAIL_LINES + 1
    assert shown[0].endswith(" line 0")
    assert shown[-1].endswith(f" line {lines - 1}")
    dropped = lines - HEAD_LINES - TAIL_LINES
    assert f"{dropped:,} more lines of task output not shown" in shown[HEAD_LINES]
    assert "flood" not in done.stream_text


def test_cell_output_keeps_head_and_tail_and_counts_the_rest() -> None:
    out = CellOutput("d")
    out.add([f"l{i}" for i in range(HEAD_LINES + TAIL_LINES + 7)])
    out.add(["x" * 5000])
    lines = out.text().splitlines()
    assert lines[0] == "l0" and lines[HEAD_LINES - 1] == f"l{HEAD_LINES - 1}"
    assert "8 more lines" in lines[HEAD_LINES]
    assert lines[-1].startswith("xxx") and lines[-1].endswith("characters cut]")
    assert len(lines) == HEAD_LINES + TAIL_LINES + 1
