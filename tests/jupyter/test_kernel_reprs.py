"""HTML views of refs, actors and state records, as a notebook renders them."""

from __future__ import annotations

from _kernel import KernelSession

MAKE = """
@ray.remote
def make():
    return list(range(10))

@ray.remote
class Counter:
    def incr(self):
        return 1

ref = make.remote()
ray.get(ref)
counter = Counter.options(name="the-counter").remote()
ray.get(counter.incr.remote())
"""


def _html(kernel: KernelSession, code: str) -> str:
    run = kernel.execute(code, cell_id=f"show-{code}")
    results = run.of_type("execute_result")
    assert results, f"{code} showed nothing"
    return str(results[0]["content"]["data"].get("text/html", ""))


def test_refs_actors_and_records_render_as_html(ray_kernel: KernelSession) -> None:
    made = ray_kernel.execute(MAKE, cell_id="make")
    n = made.reply["content"]["execution_count"]  # type: ignore[index]
    ref = _html(ray_kernel, "ref")
    for part in ("ObjectRef", "ready", "list", "inline", f"pid {ray_kernel.pid}", "make()"):
        assert part in ref, f"{part!r} missing:\n{ref}"
    assert f"In[{n}]" in ref and "FINISHED" in ref
    actor = _html(ray_kernel, "counter")
    for part in ("Actor", "Counter", "ALIVE", "the-counter"):
        assert part in actor, f"{part!r} missing:\n{actor}"
    tasks = _html(ray_kernel, "ray.state.list_tasks()")
    assert "TaskState" in tasks and "<th>name</th>" in tasks and "Counter.incr" in tasks
    summary = _html(ray_kernel, "ray.state.summarize_tasks()")
    assert "submitted" in summary and "FINISHED" in summary
    node = _html(ray_kernel, "ray.state.list_nodes()[0]")
    assert "NodeState" in node and "object_store_capacity" in node
    info = _html(ray_kernel, "ray.init()")  # init() again: reuses, and shows the summary
    assert "jupyter_ray" in info and "running" in info
    # other lists keep IPython's own view
    plain = ray_kernel.execute("[1, 2, 3]", cell_id="plain").of_type("execute_result")
    assert "text/html" not in plain[0]["content"]["data"]
