"""The magics in a real kernel: %ray_start, %ray_stop, %ray_timeline, %%ray_remote, and
what they say about bad input."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import psutil
from _kernel import KernelSession, plain

LOAD = "%load_ext jupyter_ray\n"


def _html(run_messages: list[dict]) -> str:  # type: ignore[type-arg]
    return "".join(
        m["content"]["data"].get("text/html", "")
        for m in run_messages
        if m["msg_type"] in ("display_data", "execute_result")
    )


def test_ray_start_shows_a_summary_and_a_second_start_reuses_it(kernel: KernelSession) -> None:
    first = kernel.execute(LOAD + "%ray_start --num-cpus 2 --resources '{\"box\": 3}'")
    html = _html(first.messages)
    for part in ("jupyter_ray", "node.sock", "CPU 2", "box 3", "object store", "sidebar"):
        assert part in html, f"{part!r} missing from the summary:\n{html}"
    assert "it stops when this kernel stops" in html
    node = kernel.value("__import__('jupyter_ray')._client.info().node_id")
    again = kernel.execute("%ray_start --num-cpus 1")
    assert again.stream_text.strip() == (
        "jupyter_ray is already running in this kernel; reusing it (%ray_stop first to start "
        "another one)."
    )
    script_style = kernel.execute("import jupyter_ray as ray\nray.init(num_cpus=1)")
    assert "already running in this kernel; reusing it" in script_style.stream_text
    assert kernel.value("ray._client.info().node_id") == node


def test_bad_options_print_the_usage_not_a_traceback(kernel: KernelSession) -> None:
    run = kernel.run(LOAD + "%ray_start --num-cpu 2")
    text = plain(run.stream_text)
    assert text.startswith("UsageError: unrecognized arguments: --num-cpu 2\n")
    assert "%ray_start [--address ADDRESS] [--num-cpus NUM_CPUS]" in text
    assert "Traceback" not in text and run.error is None
    bad_json = kernel.run("%ray_start --resources '{box: 1}'")
    assert plain(bad_json.stream_text).startswith("UsageError: --resources takes a JSON object")
    bad_number = kernel.run("%ray_start --num-cpus many")
    assert "argument --num-cpus: invalid float value: 'many'" in bad_number.stream_text
    assert kernel.value("__import__('jupyter_ray').is_initialized()") is False


def test_a_dead_or_wrong_address_is_one_line_within_seconds(
    kernel: KernelSession, tmp_path: Path
) -> None:
    kernel.execute(LOAD)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead_port = free.getsockname()[1]
    with socket.create_server(("127.0.0.1", 0)) as mute:  # listens, never speaks
        cases = {
            f"127.0.0.1:{dead_port}": "no jupyter_ray runtime at 127.0.0.1:",
            f"127.0.0.1:{mute.getsockname()[1]}": "no jupyter_ray runtime answered at",
            str(tmp_path / "nothing.sock"): "Could not find a running jupyter_ray cluster",
        }
        for address, says in cases.items():
            started = time.monotonic()
            run = kernel.run(f"%ray_start --address {address}")
            took = time.monotonic() - started
            text = plain(run.stream_text).strip()
            assert took < 6, f"{address}: {took:.1f} s"
            assert text.startswith("UsageError:") and says in text, text
            assert len(text.splitlines()) == 1, text
    assert kernel.value("__import__('jupyter_ray').is_initialized()") is False


def test_ray_stop_stops_the_kernels_runtime(ray_kernel: KernelSession) -> None:
    node = psutil.Process(ray_kernel.value("ray._client._node.proc.pid"))
    stop = ray_kernel.execute("%ray_stop")
    assert stop.stream_text == "Stopped this kernel's jupyter_ray runtime.\n"
    assert psutil.wait_procs([node], timeout=10)[1] == []
    again = ray_kernel.execute("%ray_stop")
    assert again.stream_text == "jupyter_ray is not running in this kernel.\n"
    # the API starts a new runtime on first use, as Ray does
    assert ray_kernel.execute("ray.get(ray.put(7))").result == "7"


def test_ray_timeline_writes_a_file_or_offers_a_link(
    ray_kernel: KernelSession, tmp_path: Path
) -> None:
    ray_kernel.execute("ray.get([ray.remote(lambda i: i).remote(i) for i in range(3)])")
    path = tmp_path / "trace.json"
    wrote = ray_kernel.execute(f"%ray_timeline {path}")
    assert wrote.stream_text.startswith(f"Wrote 3 task events to {path}")
    events = json.loads(path.read_text())
    assert len(events) == 3 and all(e["ph"] == "X" for e in events)
    link = _html(ray_kernel.execute("%ray_timeline").messages)
    assert 'href="data:application/json;base64,' in link and "download=" in link


def test_ray_remote_runs_the_cell_as_one_task(ray_kernel: KernelSession) -> None:
    ray_kernel.execute("factor = 6", cell_id="vars")
    run = ray_kernel.execute(
        "%%ray_remote --num-cpus 1\n"
        "import os\n"
        "print('in a worker', os.getpid() != int(KERNEL_PID))\n"
        "factor * 7".replace("KERNEL_PID", str(ray_kernel.pid)),
        cell_id="remote",
    )
    assert run.result == "42"
    ray_kernel.execute("import jupyter_ray.kernel\nassert jupyter_ray.kernel.flush_output()")
    [display_id] = run.display_ids()
    text = ray_kernel.display_text(display_id)
    n = run.reply["content"]["execution_count"]  # type: ignore[index]
    assert f"(In[{n}] pid=" in text and "in a worker True" in text
    failed = ray_kernel.run("%%ray_remote\nx = 1\nraise ValueError('from the cell')")
    n = failed.reply["content"]["execution_count"]  # type: ignore[index]
    assert f"Cell In[{n}], line 3, in <module>" in failed.error_text
    assert "    raise ValueError('from the cell')" in failed.error_text
    unsendable = ray_kernel.run("import threading\nlock = threading.Lock()\n")
    assert unsendable.error is None
    refused = ray_kernel.run("%%ray_remote\nlock.locked()")
    assert "UsageError: %%ray_remote: the cell uses 'lock' (lock)" in plain(refused.stream_text)
