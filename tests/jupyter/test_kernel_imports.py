"""In a plain script, jupyter_ray imports nothing of Jupyter, and output looks as before."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# The roots of the Jupyter stack (each would bring traitlets, comm, jupyter_core along)
JUPYTER = {"IPython", "ipykernel", "ipywidgets", "jupyter_client", "jupyter_server", "tornado"}


def test_a_script_using_the_api_loads_no_jupyter_module(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            import jupyter_ray as ray
            from jupyter_ray import state
            from jupyter_ray.kernel.remote_cell import run_cell

            JUPYTER = {sorted(JUPYTER)!r}

            def jupyter_modules():
                return sorted(m for m in sys.modules if m.split(".")[0] in JUPYTER)

            @ray.remote
            def shout(x):
                print("hello from", x)
                return jupyter_modules()

            @ray.remote
            def fail():
                raise ValueError("script failure")

            ray.init(num_cpus=1)
            in_worker = ray.get(shout.remote(1))
            # what %%ray_remote runs in a worker
            cell = ray.get(ray.remote(run_cell).remote("x = 2\\nx * 21", "cell.py", {{}}))
            ready, _ = ray.wait([ray.put(1)], timeout=5)
            state.list_tasks()
            try:
                ray.get(fail.remote())
            except ValueError as err:
                print("ERROR", err)
            ray.shutdown()
            print("IN WORKER", in_worker)
            print("CELL", cell)
            print("IN SCRIPT", jupyter_modules())
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "IN SCRIPT []" in out.stdout
    assert "IN WORKER []" in out.stdout
    assert "CELL 42" in out.stdout
    # a script's task output keeps its task-and-pid prefix on the script's stdout
    assert "(shout pid=" in out.stdout and ") hello from 1" in out.stdout
    assert 'raise ValueError("script failure")' in out.stdout
