"""The notebook side on the Ray backend: ``%ray_start --backend ray``, and a cell's task
output routed to that cell there too (Ray's worker output, matched by the task name that
carries the cell)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _kernel import KernelSession, kernel_session

pytestmark = pytest.mark.slow

CHATTY = """
import os, time

@ray.remote
def chatty(go_file):
    print("early line")
    deadline = time.monotonic() + 60
    while not os.path.exists(go_file):  # until the next cell says so
        assert time.monotonic() < deadline, "the next cell never said go"
        time.sleep(0.01)
    print("late line")
    return 1
"""


@pytest.fixture
def ray_backend_kernel(ray_cluster: Any, tmp_path: Path) -> Iterator[KernelSession]:
    with kernel_session(tmp_path, env=ray_cluster.env) as session:
        session.execute(
            "%load_ext jupyter_ray\n"
            f"%ray_start --backend ray --address {ray_cluster.address}\n"
            "import jupyter_ray as ray",
            cell_id="setup",
        )
        yield session
        session.execute("%ray_stop", cell_id="teardown")


def test_a_cells_late_output_reaches_it_on_ray(
    ray_backend_kernel: KernelSession, tmp_path: Path
) -> None:
    kernel = ray_backend_kernel
    assert kernel.value("type(ray.put(1)).__module__").startswith("ray")
    kernel.execute(CHATTY, cell_id="define")
    go = tmp_path / "go"
    first = kernel.execute(f"ref = chatty.remote({str(go)!r})", cell_id="cell-A")
    second = kernel.execute(
        f"open({str(go)!r}, 'w').close()\nassert ray.get(ref) == 1\nprint('cell B done')",
        cell_id="cell-B",
    )

    def routed() -> bool:
        shown = " ".join(kernel.display_text(d) for d in first.display_ids())
        return "early line" in shown and "late line" in shown

    kernel.wait_for(routed, 60, "cell A's task output to reach cell A's display on Ray")
    assert "late line" not in second.text_plain() and "late line" not in second.stream_text
    (display_id,) = first.display_ids()
    assert "(chatty pid=" in kernel.display_text(display_id)
