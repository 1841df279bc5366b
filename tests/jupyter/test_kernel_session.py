"""A notebook that never loads the extension still gets the kernel integration, and the
runtime knows which kernel and which cell each task came from."""

from __future__ import annotations

from _kernel import KernelSession


def test_the_api_alone_starts_a_runtime_and_the_kernel_integration(
    kernel: KernelSession,
) -> None:
    define = kernel.execute(
        "import jupyter_ray as ray\n\n@ray.remote\ndef f(x):\n    print('hi', x)\n    return x + 1",
        cell_id="cell-define",
    )
    assert define.stream_text == ""
    # no init(), no %ray_start: the first use starts a local runtime, as in Ray
    use = kernel.execute("ray.get(f.remote(1))", cell_id="cell-use")
    assert use.result == "2"
    assert len(use.display_ids()) == 1  # the output display of the cell's tasks
    jobs = kernel.value(
        "[j.metadata for j in __import__('jupyter_ray').state.list_jobs() if j.end_time is None]"
    )
    assert (
        jobs
        == [
            {
                "origin": "kernel",
                "kernel_id": kernel.kernel_id,  # what Jupyter calls the kernel
                "label": f"kernel {kernel.kernel_id[:8]}",
                "entrypoint": jobs[0]["entrypoint"],
            }
        ]
    )
    # tasks carry the cell (JupyterLab's cellId) and its execution count
    tasks = kernel.value("[(t.cell_id, t.cell_execution_count) for t in ray.state.list_tasks()]")
    assert tasks == [["cell-use", use.reply["content"]["execution_count"]]]  # type: ignore[index]
    # the magics came along
    status = kernel.execute("%ray_status", cell_id="cell-status")
    assert "VBoxModel" in status.widget_models()


def test_a_request_without_a_cell_id_still_gets_its_own_cell(kernel: KernelSession) -> None:
    """nbclient and the console send no cellId: the request's id stands in for it."""
    kernel.execute("import jupyter_ray as ray\nray.init(num_cpus=1)")
    run = kernel.execute("ref = ray.remote(lambda: 1).remote()\nray.get(ref)")
    cell = kernel.value("ray.state.list_tasks()[0].cell_id")
    assert cell == run.msg_id
