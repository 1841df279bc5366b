"""Label selectors in the scheduler's bookkeeping (runtime/common/labels.py), without processes."""

from __future__ import annotations

import pytest
from jupyter_ray.runtime.common import protocol as p
from jupyter_ray.runtime.common.labels import (
    MARKER_AMOUNT,
    check_label_selector,
    choose,
    node_labels,
    satisfied,
    selector_marker,
)
from jupyter_ray.runtime.node.scheduler import ReadyQueue, ResourceLedger

LABELS = {"zone": "a", "disk": "ssd", "ray.io/node-id": "n1"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ({"zone": "a"}, True),
        ({"zone": "b"}, False),
        ({"zone": "!b"}, True),
        ({"zone": "!a"}, False),
        ({"zone": "in(a, b)"}, True),
        ({"zone": "!in(a,b)"}, False),
        ({"gpu": "!h100"}, True),  # absent: not equal
        ({"gpu": "h100"}, False),
        ({"zone": "a", "disk": "hdd"}, False),  # every condition must hold
        ({"ray.io/node-id": "n1"}, True),
        ({}, True),
    ],
)
def test_selector_conditions(selector: dict[str, str], matches: bool) -> None:
    assert satisfied(selector_marker(selector, []), LABELS) is matches


def test_the_ledger_counts_a_marker_as_available_only_where_labels_match() -> None:
    marker = selector_marker({"zone": "a"}, [])
    demand = {"CPU": 1.0, marker: MARKER_AMOUNT}
    here = ResourceLedger({"CPU": 2}, {"zone": "a"})
    elsewhere = ResourceLedger({"CPU": 2}, {"zone": "b"})
    assert here.feasible(demand) and here.fits(demand) and here.how_many_fit(demand) == 2
    assert not elsewhere.feasible(demand) and not elsewhere.fits(demand)
    grant = here.acquire(demand)
    assert grant is not None and marker not in here.available  # never held
    here.release(grant)
    assert here.available == {"CPU": 2.0}
    view = p.NodeView("n", "", {"CPU": 2}, {"CPU": 2}, labels={"zone": "a"})
    assert view.fits(demand) and view.feasible(demand)
    queue = ReadyQueue()
    queue.push(demand, "task")
    assert [d for d, _ in queue.shapes()] == [demand]  # the marker is part of the shape


def test_a_fallback_is_chosen_by_the_labels_nodes_have() -> None:
    marker = selector_marker({"zone": "c"}, [{"label_selector": {"disk": "ssd"}}])
    assert satisfied(choose(marker, [LABELS]), LABELS)
    assert choose(marker, [{"zone": "x"}]) == selector_marker({"zone": "c"}, [])
    single = selector_marker({"zone": "a"}, [])
    assert choose(single, []) == single
    assert not satisfied("label_selector:not json", LABELS)  # malformed: matches nothing


def test_bad_selectors() -> None:
    with pytest.raises(TypeError):
        check_label_selector(["zone"], "label_selector")
    with pytest.raises(ValueError, match="Invalid label key"):
        check_label_selector({"-zone": "a"}, "label_selector")
    with pytest.raises(ValueError, match="label selector value"):
        check_label_selector({"zone": "in()"}, "label_selector")


def test_a_node_has_rays_own_labels_that_apply_here() -> None:
    labels = node_labels("n2", {"CPU": 4, "GPU": 1, "accelerator_type:H100": 1}, {"zone": "a"})
    assert labels == {"zone": "a", "ray.io/node-id": "n2", "ray.io/accelerator-type": "H100"}
