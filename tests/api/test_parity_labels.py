"""Node labels from ``jupyter-ray start --labels``, and the ``label_selector`` and
``fallback_strategy`` options (Ray 2.60) that place tasks and actors by them."""

from __future__ import annotations

import sys
from typing import Any

import cloudpickle
import pytest
from _cluster import Head, head_fixture  # noqa: F401 - head fixture
from jupyter_ray.runtime.common.labels import parse_node_labels

import jupyter_ray as ray

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ray.remote(num_cpus=0.5)
def node_of_task() -> str:
    return str(ray.get_runtime_context().get_node_id())


@ray.remote(num_cpus=0)
class Placed:
    def node(self) -> str:
        return str(ray.get_runtime_context().get_node_id())


def test_tasks_and_actors_go_to_the_node_whose_labels_match(head: Head) -> None:
    head.add_node("--num-cpus", "1", "--labels", "zone=b,disk=ssd")
    ray.init(address=head.address)
    head.wait_nodes(2)
    here = ray.get_runtime_context().get_node_id()
    (other,) = [n["NodeID"] for n in ray.nodes() if n["NodeID"] != here]
    on_b = node_of_task.options(label_selector={"zone": "b"})
    assert set(ray.get([on_b.remote() for _ in range(4)], timeout=60)) == {other}
    not_b = node_of_task.options(label_selector={"zone": "!b"})
    assert set(ray.get([not_b.remote() for _ in range(4)], timeout=60)) == {here}
    fallback = node_of_task.options(
        label_selector={"zone": "c"}, fallback_strategy=[{"label_selector": {"disk": "ssd"}}]
    )
    assert ray.get(fallback.remote(), timeout=60) == other
    actor = Placed.options(label_selector={"zone": "in(b,c)"}).remote()
    assert ray.get(actor.node.remote(), timeout=60) == other


def test_label_syntax_on_the_command_line() -> None:
    assert parse_node_labels("zone=a, disk=ssd") == {"zone": "a", "disk": "ssd"}
    assert parse_node_labels('{"zone": "a"}') == {"zone": "a"}
    with pytest.raises(ValueError, match="key=value"):
        parse_node_labels("zone")
    with pytest.raises(ValueError, match="reserved"):
        parse_node_labels("ray.io/node-id=x")


def test_init_labels_are_checked(ray_start: Any) -> None:
    with pytest.raises(ValueError, match="Invalid label key"):
        ray_start(labels={"bad key": "a"})
    with pytest.raises(TypeError, match="labels must be a dict"):
        ray_start(labels=["zone=a"])
