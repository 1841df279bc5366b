"""Resource accounting and the ready queue, driven without processes."""

from __future__ import annotations

from jupyter_ray.runtime.node.scheduler import ReadyQueue, ResourceLedger


def test_cpu_and_custom_resources_are_taken_and_given_back() -> None:
    ledger = ResourceLedger({"CPU": 2, "slot": 1})
    g1 = ledger.acquire({"CPU": 1, "slot": 1})
    assert g1 is not None
    assert ledger.acquire({"CPU": 1, "slot": 1}) is None
    g2 = ledger.acquire({"CPU": 1})
    assert g2 is not None
    assert ledger.available["CPU"] == 0
    ledger.release(g1)
    ledger.release(g2)
    assert ledger.available == {"CPU": 2, "slot": 1}


def test_whole_gpus_get_distinct_ids_and_fractions_share_one() -> None:
    ledger = ResourceLedger({"CPU": 4, "GPU": 2})
    a = ledger.acquire({"GPU": 1})
    b = ledger.acquire({"GPU": 1})
    assert a is not None and b is not None
    assert sorted(a.gpu_ids + b.gpu_ids) == [0, 1]
    assert ledger.acquire({"GPU": 0.5}) is None
    ledger.release(a)
    h1 = ledger.acquire({"GPU": 0.5})
    h2 = ledger.acquire({"GPU": 0.5})
    assert h1 is not None and h2 is not None
    assert h1.gpu_ids == h2.gpu_ids == a.gpu_ids
    assert ledger.acquire({"GPU": 0.5}) is None


def test_infeasible_demand_is_reported_but_not_an_error() -> None:
    ledger = ResourceLedger({"CPU": 2})
    assert not ledger.feasible({"CPU": 4})
    assert not ledger.feasible({"tpu": 1})
    assert ledger.acquire({"CPU": 4}) is None
    assert ledger.feasible({"CPU": 2})


def test_blocked_worker_lends_its_cpu() -> None:
    ledger = ResourceLedger({"CPU": 1})
    g = ledger.acquire({"CPU": 1})
    assert g is not None
    lent = ledger.lend_cpu(g)
    assert ledger.acquire({"CPU": 1}) is not None  # a nested task can run
    ledger.reclaim_cpu(lent)
    assert ledger.available["CPU"] == -1  # oversubscribed until a task ends


def test_ready_queue_groups_by_shape_in_fifo_order() -> None:
    q = ReadyQueue()
    q.push({"CPU": 1}, "a")
    q.push({"CPU": 2}, "big")
    q.push({"CPU": 1}, "b")
    shapes = {tuple(sorted(d.items())): list(items) for d, items in q.shapes()}
    assert shapes[(("CPU", 1),)] == ["a", "b"]
    assert len(q) == 3
    assert q.remove("big")
    assert len(q) == 2
    assert not q.remove("missing")


def test_how_many_fit_bounds_worker_start_up() -> None:
    ledger = ResourceLedger({"CPU": 2, "slot": 3})
    assert ledger.how_many_fit({"CPU": 1}) == 2
    assert ledger.how_many_fit({"CPU": 0.5, "slot": 1}) == 3
    assert ledger.how_many_fit({"CPU": 4}) == 0
    assert ledger.how_many_fit({}) > 2  # zero-resource tasks are bounded elsewhere


def test_ready_queue_removes_many_items_in_one_pass() -> None:
    q = ReadyQueue()
    items = [object() for _ in range(6)]
    for i, item in enumerate(items):
        q.push({"CPU": 1.0} if i % 2 else {"GPU": 1.0}, item)
    assert q.remove_all([items[0], items[3], object()]) == 2
    assert len(q) == 4
    left = [x for _, queue in q.shapes() for x in queue]
    assert sorted(map(id, left)) == sorted(map(id, [items[1], items[2], items[4], items[5]]))
