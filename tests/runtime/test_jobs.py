"""JobTable: which drivers a node has seen, without processes."""

from __future__ import annotations

from jupyter_ray.runtime.node.jobs import JobTable


def test_jobs_start_end_and_old_ones_are_forgotten() -> None:
    table = JobTable(keep_ended=2)
    table.started(1, "aa", 100, {"origin": "kernel", "kernel_id": "k1"})
    table.started(2, "bb", 200, {"origin": "script"})
    a, _ = table.states()
    assert (a.job_id, a.pid, a.metadata["kernel_id"], a.end_time) == ("aa", 100, "k1", None)
    table.connection_lost(1)
    assert table.states()[0].end_time is not None
    for conn, job in ((3, "cc"), (4, "dd")):
        table.started(conn, job, 1, {})
        table.connection_lost(conn)
    ids = [j.job_id for j in table.states()]
    assert ids == ["bb", "cc", "dd"]  # "aa" ended first and is forgotten; "bb" still runs


def test_a_connection_that_announces_a_new_job_ends_the_old_one() -> None:
    table = JobTable()
    table.started(1, "aa", 1, {})
    table.started(1, "bb", 1, {})
    states = {j.job_id: j for j in table.states()}
    assert states["aa"].end_time is not None and states["bb"].end_time is None
    states["bb"].metadata["x"] = "changed"  # a copy: the table is not changed
    assert "x" not in table.states()[1].metadata
