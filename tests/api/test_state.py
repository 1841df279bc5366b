"""The state API, the change feed, the timeline and the state command line."""

from __future__ import annotations

import gc
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest
from _wait import eventually as _eventually
from jupyter_ray.runtime.client import context
from jupyter_ray.runtime.common import protocol as p
from jupyter_ray.runtime.common.gpus import parse_nvidia_smi

import jupyter_ray as ray
from jupyter_ray import state

MiB = 1 << 20


def _task(task_id: str) -> state.TaskState:
    (found,) = state.list_tasks(filters=[("task_id", "=", task_id)])
    return found


@ray.remote
def inc(x: int) -> int:
    return x + 1


def test_graph_edges_for_dependent_nested_and_actor_tasks(ray_2cpu: Any) -> None:
    @ray.remote
    def parent() -> int:
        return int(ray.get(inc.remote(10)))

    @ray.remote
    class Acc:
        def add(self, x: int) -> int:
            return x

    a = inc.remote(1)
    b = inc.remote(a)
    p = parent.remote()
    acc = Acc.remote()
    call = acc.add.remote(b)
    assert ray.get([b, p, call]) == [3, 11, 3]
    graph = state.task_graph()
    edges = {(e["source"], e["target"], e["kind"]) for e in graph["edges"]}
    a_id, b_id, p_id, call_id = (r.task_id().hex() for r in (a, b, p, call))
    assert (a_id, b_id, "data") in edges
    assert (b_id, call_id, "data") in edges
    children = [e for e in graph["edges"] if e["source"] == p_id and e["kind"] == "submitted"]
    assert len(children) == 1
    assert _task(children[0]["target"]).name == "inc"
    assert (acc._ray_actor_id, call_id, "actor") in edges
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    assert kinds[call_id] == "actor_method" and kinds[acc._ray_actor_id] == "actor_creation"


def test_task_records_carry_states_times_and_placement(ray_2cpu: Any) -> None:
    ref = inc.remote(1)
    ray.get(ref)
    t = _task(ref.task_id().hex())
    assert t.state == "FINISHED" and t.name == "inc" and t.kind == "task"
    order = ["PENDING_ARGS", "PENDING_RESOURCES", "SCHEDULED", "RUNNING", "FINISHED"]
    assert list(t.times) == order
    assert all(t.times[x] <= t.times[y] + 1e-3 for x, y in itertools.pairwise(order))
    assert t.owner_pid == os.getpid() and t.worker_pid and t.resources == {"CPU": 1.0}
    assert t.returns == [ref.hex()] and t.node_id == ray.get_runtime_context().get_node_id()


def test_running_tasks_and_actor_calls_show_running(ray_2cpu: Any, tmp_path: Any) -> None:
    @ray.remote
    def wait_for(path: str) -> str:
        while not os.path.exists(path):
            time.sleep(0.01)
        return "done"

    @ray.remote
    class Waiter:
        def ping(self) -> int:
            return 1

        def wait_for(self, path: str) -> str:
            while not os.path.exists(path):
                time.sleep(0.01)
            return "done"

    release = str(tmp_path / "release")
    waiter = Waiter.remote()
    ray.get([waiter.ping.remote() for _ in range(3)])  # later calls go straight to it
    refs = [wait_for.remote(release), waiter.wait_for.remote(release)]
    ids = [r.task_id().hex() for r in refs]
    try:
        _eventually(lambda: all(_task(i).state == "RUNNING" for i in ids))
        for i in ids:
            t = _task(i)
            assert t.times["SCHEDULED"] <= t.times["RUNNING"] + 1e-3 <= time.time() + 1e-3
    finally:
        open(release, "w").close()
    assert ray.get(refs) == ["done", "done"]
    _eventually(lambda: all(_task(i).state == "FINISHED" for i in ids))


def test_failed_cancelled_and_retried_tasks(ray_2cpu: Any, tmp_path: Any) -> None:
    @ray.remote
    def boom() -> None:
        raise KeyError("missing")

    @ray.remote(max_retries=2)
    def crash_once(marker: str) -> str:
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return "ok"

    @ray.remote
    def sleepy() -> None:
        time.sleep(30)

    failed = boom.remote()
    with pytest.raises(KeyError):
        ray.get(failed)
    retried = crash_once.remote(str(tmp_path / "m"))
    assert ray.get(retried) == "ok"
    cancelled = sleepy.remote()
    _eventually(lambda: _task(cancelled.task_id().hex()).state == "SCHEDULED")
    ray.cancel(cancelled)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(cancelled)
    f = _task(failed.task_id().hex())
    assert (f.state, f.error_type) == ("FAILED", "KeyError")
    assert "missing" in (f.error_message or "")
    r = _task(retried.task_id().hex())
    assert (r.state, r.attempt) == ("FINISHED", 1)
    c = _task(cancelled.task_id().hex())
    assert (c.state, c.error_type) == ("CANCELLED", "TaskCancelledError")
    summary = state.summarize_tasks()
    assert summary.by_name["boom"] == {"FAILED": 1}
    assert summary.by_state["CANCELLED"] == 1


def test_objects_sizes_locations_refcounts_after_put_spill_and_free(ray_start: Any) -> None:
    ray_start(object_store_memory=24 * MiB)
    small = ray.put({"a": 1})
    big = [ray.put(np.zeros(8 * MiB // 8)) for _ in range(4)]  # 32 MiB > 24 MiB: spills
    objects = {o.object_id: o for o in state.list_objects(limit=None)}
    s = objects[small.hex()]
    assert (s.location, s.type_name, s.preview) == ("inline", "dict", "{'a': 1}")
    assert s.local_refs == 1 and s.owner_pid == os.getpid()
    locations = sorted(objects[r.hex()].location for r in big)
    assert "spilled" in locations and "shared_memory" in locations
    assert all(objects[r.hex()].size >= 8 * MiB for r in big)
    assert objects[big[0].hex()].type_name == "numpy.ndarray"
    holder = ray.put([small])
    _eventually(lambda: _objects()[small.hex()].contained_in == 1)
    gone = big[0].hex()
    del big, holder
    gc.collect()
    _eventually(lambda: gone not in _objects())


def _objects() -> dict[str, state.ObjectState]:
    return {o.object_id: o for o in state.list_objects(limit=None)}


def test_node_telemetry_fields(ray_start: Any) -> None:
    ray_start(num_gpus=1, resources={"tpu": 2})
    (node,) = state.list_nodes()
    assert node.alive and node.is_head
    assert node.resources_total["GPU"] == 1 and node.resources_total["tpu"] == 2
    assert 0 <= node.cpu_percent <= 100
    assert 0 < node.memory_used < node.memory_total
    assert node.object_store_capacity == 256 * MiB
    assert node.num_workers >= 0
    # no GPU tooling on this machine: gpus is absent rather than an error
    assert node.gpus is None or all(g.memory_total > 0 for g in node.gpus)


def test_nvidia_smi_output_is_parsed() -> None:
    text = "0, NVIDIA H100 80GB HBM3, 37, 1024, 81559\n1, NVIDIA H100 80GB HBM3, 0, 3, 81559\n"
    gpus = parse_nvidia_smi(text)
    assert gpus is not None and [g.index for g in gpus] == [0, 1]
    assert gpus[0].utilization == 37.0 and gpus[0].memory_used == 1024 * MiB
    assert parse_nvidia_smi("") is None


def test_timeline_has_one_event_per_executed_task(ray_2cpu: Any, tmp_path: Any) -> None:
    ray.get([inc.remote(i) for i in range(7)])
    path = tmp_path / "trace.json"
    ray.timeline(str(path))
    events = json.loads(path.read_text())
    assert len([e for e in events if e["name"] == "inc"]) == 7
    assert all(e["ph"] == "X" and e["dur"] >= 0 and e["tid"].startswith("worker") for e in events)


def test_cell_id_is_stamped_and_inherited_by_nested_tasks(ray_2cpu: Any) -> None:
    @ray.remote
    def outer() -> str | None:
        ray.get(inc.remote(1))
        return ray.get_runtime_context().get_cell_id()

    context.cell_id_provider = lambda: ("cell-42", 7)
    try:
        ref = outer.remote()
        assert ray.get(ref) == "cell-42"
    finally:
        context.cell_id_provider = None
    ray.get(inc.remote(0))
    graph = state.task_graph(cell_id="cell-42")
    assert sorted(n["name"] for n in graph["nodes"]) == ["inc", "outer"]
    t = _task(ref.task_id().hex())
    assert (t.cell_id, t.cell_execution_count) == ("cell-42", 7)


def test_job_id_is_per_driver_and_inherited_by_nested_tasks_and_actor_calls(
    ray_2cpu: Any,
) -> None:
    @ray.remote
    def outer() -> str:
        ray.get(inc.remote(1))
        return str(ray.get_runtime_context().get_job_id())

    @ray.remote
    class Probe:
        def job(self) -> str:
            return str(ray.get_runtime_context().get_job_id())

    mine = ray.get_runtime_context().get_job_id()
    assert ray.get(outer.remote()) == mine
    probe = Probe.remote()
    assert ray.get(probe.job.remote()) == mine
    # A second driver, in its own process, attached to the same runtime: another job.
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import jupyter_ray as ray\n"
            f"ray.init(address={ray_2cpu.session_dir + '/node.sock'!r})\n"
            "@ray.remote\ndef g(): return 1\n"
            "ray.get(g.remote())\n"
            "print(ray.get_runtime_context().get_job_id())\n"
            "ray.shutdown()\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 0, other.stderr
    other_job = other.stdout.strip()
    assert other_job and other_job != mine
    names = sorted(n["name"] for n in state.task_graph(job_id=mine)["nodes"])
    assert names == ["Probe", "Probe.job", "inc", "outer"], names
    assert [n["name"] for n in state.task_graph(job_id=other_job)["nodes"]] == ["g"]
    assert {t.job_id for t in state.list_tasks(filters=[("name", "=", "g")])} == {other_job}
    with pytest.raises(TypeError, match="job_id"):
        state.task_graph(job_id=3)  # type: ignore[arg-type]


def test_history_is_bounded_and_summaries_count_what_was_dropped(ray_start: Any) -> None:
    ray_start(_system_config={"task_history": 20})
    ray.get([inc.remote(i) for i in range(120)])
    _eventually(lambda: state.summarize_tasks().by_state.get("FINISHED", 0) == 20)
    assert len(state.list_tasks(limit=None)) == 20
    summary = state.summarize_tasks()
    assert summary.total_submitted == 120
    assert summary.dropped_from_history == {"FINISHED": 100}


def test_filters_and_limits_are_checked(ray_2cpu: Any) -> None:
    ray.get([inc.remote(i) for i in range(5)])
    assert len(state.list_tasks(limit=2)) == 2
    assert state.list_tasks(filters=[("name", "!=", "inc")]) == []
    with pytest.raises(ValueError, match="each filter is"):
        state.list_tasks(filters=[("name", "~", "inc")])
    with pytest.raises(ValueError, match="limit"):
        state.list_tasks(limit=-1)


def test_feed_gives_snapshot_then_ordered_updates(ray_2cpu: Any) -> None:
    feed = state.subscribe()
    try:
        assert feed.wait_for(lambda v: v.seq >= 0, timeout=30)
        refs = [inc.remote(i) for i in range(20)]
        ray.get(refs)
        ids = {r.task_id().hex() for r in refs}

        def all_finished(view: state.FeedView) -> bool:
            tasks = view.records["tasks"]
            return all(i in tasks and tasks[i].state == "FINISHED" for i in ids)

        assert feed.wait_for(all_finished, timeout=30)
        assert feed.view.snapshots == 1 and feed.resyncs == 0
        assert feed.view.records["nodes"]
    finally:
        feed.close()


def test_feed_sends_no_removal_for_what_it_never_sent(ray_2cpu: Any) -> None:
    # The results of quick sync tasks live for well under one flush interval: the feed
    # should neither send them nor their removal. An object it did send gets a removal.
    sent: set[str] = set()
    stray: list[str] = []

    def on_message(msg: Any, view: state.FeedView) -> None:
        if isinstance(msg, p.FeedSnapshot):
            sent.update(r.object_id for r in msg.records.get("objects", []))
        else:
            sent.update(r.object_id for r in msg.changed.get("objects", []))
            stray.extend(i for i in msg.removed.get("objects", []) if i not in sent)

    feed = state.subscribe(on_message)
    try:
        assert feed.wait_for(lambda v: v.seq >= 0, timeout=30)
        for i in range(40):
            ray.get(inc.remote(i))
        kept = ray.put("kept a while")
        oid = kept.hex()
        assert feed.wait_for(lambda v: oid in v.records["objects"], timeout=30)
        del kept
        assert feed.wait_for(lambda v: oid not in v.records["objects"], timeout=30)
        assert not stray, f"{len(stray)} removals of objects the feed never sent"
    finally:
        feed.close()


def test_feed_catches_up_after_a_slow_subscriber(ray_2cpu: Any) -> None:
    feed = state.subscribe()
    try:
        assert feed.wait_for(lambda v: v.seq >= 0, timeout=30)
        feed.pause_reading()
        # enough churn to back up the socket while nobody reads it
        for _ in range(6):
            ray.get([inc.remote(i) for i in range(1500)])
        last = [inc.remote(-1) for _ in range(3)]
        ray.get(last)
        feed.resume_reading()
        ids = {r.task_id().hex() for r in last}
        assert feed.wait_for(
            lambda v: all(
                i in v.records["tasks"] and v.records["tasks"][i].state == "FINISHED" for i in ids
            ),
            timeout=60,
        )
        assert feed.view.snapshots >= 2, "a lagging subscriber should get a fresh snapshot"
        truth = {t.task_id: t.state for t in state.list_tasks(limit=None)}
        view = {k: v.state for k, v in feed.view.records["tasks"].items()}
        assert feed.wait_for(
            lambda v: {k: t.state for k, t in v.records["tasks"].items()} == truth, timeout=30
        ), f"{len(view)} vs {len(truth)}"
    finally:
        feed.close()


def test_cli_lists_and_summarizes_a_running_runtime(ray_2cpu: Any, tmp_path: Any) -> None:
    ray.get([inc.remote(i) for i in range(3)])
    client = ray._client.require_client()
    assert client.welcome is not None
    address = client.welcome.session_dir + "/node.sock"

    def cli(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "jupyter_ray.cli", "--address", address, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    tasks = json.loads(cli("list", "tasks", "--json", "--filter", "name=inc"))
    assert len(tasks) == 3 and {t["state"] for t in tasks} == {"FINISHED"}
    assert "inc" in cli("summary")
    assert "object store" in cli("status")
    trace = tmp_path / "t.json"
    assert "wrote 3 task events" in cli("timeline", str(trace))
    assert len(json.loads(trace.read_text())) == 3
    assert "CLASS_NAME" in cli("list", "actors")


def test_ray_names_for_the_state_api_and_node_address(ray_2cpu: Any) -> None:
    ray.get(inc.remote(1))
    from jupyter_ray.util import state as util_state

    assert {t.task_id for t in util_state.list_tasks()} == {t.task_id for t in state.list_tasks()}
    assert util_state.summarize_tasks().by_state == state.summarize_tasks().by_state

    @ray.remote
    def address() -> str:
        return ray.util.get_node_ip_address()

    (node,) = ray.nodes()
    assert ray.util.get_node_ip_address() == node["NodeManagerAddress"]
    assert ray.get(address.remote()) == node["NodeManagerAddress"]


def test_jobs_list_every_driver_with_its_metadata(ray_2cpu: Any, tmp_path: Any) -> None:
    me = ray.get_runtime_context().get_job_id()
    (mine,) = [j for j in state.list_jobs() if j.job_id == me]
    assert mine.pid == os.getpid() and mine.end_time is None
    assert mine.metadata["origin"] == "script"
    # a second driver, as a kernel would announce itself
    script = tmp_path / "other.py"
    script.write_text(
        "import sys, jupyter_ray as ray\n"
        "from jupyter_ray.runtime.client import context\n"
        "context.job_metadata['kernel_id'] = 'kernel-123'\n"
        "ray.init(address=sys.argv[1])\n"
        "print(ray.get_runtime_context().get_job_id())\n"
    )
    out = subprocess.run(
        [sys.executable, str(script), ray_2cpu.address + "/node.sock"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    other_id = out.stdout.strip()

    def other() -> state.JobState | None:
        return next((j for j in state.list_jobs() if j.job_id == other_id), None)

    _eventually(lambda: (job := other()) is not None and job.end_time is not None)
    job = other()
    assert job is not None and job.metadata["kernel_id"] == "kernel-123"


def test_a_feed_nobody_iterates_keeps_no_messages(ray_2cpu: Any) -> None:
    # A subscriber that only reads the view (the Jupyter server) used to queue every
    # message unread: gigabytes after a day.
    feed = state.subscribe(lambda msg, view: None)
    try:
        ray.get([inc.remote(i) for i in range(200)])
        assert feed.wait_for(lambda v: len(v.records["tasks"]) >= 200, timeout=30)
        assert feed.messages.qsize() == 0
    finally:
        feed.close()
    feed = state.subscribe()
    try:
        messages = iter(feed)
        ray.get(inc.remote(1))
        assert next(messages) is not None  # iterating still yields what comes
    finally:
        feed.close()
