"""Actors across the nodes of a CLI-started cluster: placement, calls, names, node death.

Each test starts a head and worker nodes through the command line (``_cluster.head``),
each node with resources of its own, so where an actor runs is decided by resources and
checked with ``get_runtime_context().get_node_id()`` inside it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

import cloudpickle
import psutil
import pytest
from _cluster import Head, head_fixture  # noqa: F401 - provides the head fixture

import jupyter_ray as ray
from jupyter_ray.exceptions import ActorDiedError, RayActorError

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

# Worker nodes cannot import this module: its functions and classes travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _node() -> str:
    return str(ray.get_runtime_context().get_node_id())


@ray.remote
class Recorder:
    """Remembers every item in the order calls arrived."""

    def __init__(self, start: int = 0) -> None:
        self.items: list[Any] = []
        self.start = start

    def add(self, item: Any) -> int:
        self.items.append(item)
        return self.start + len(self.items)

    def log(self) -> list[Any]:
        return self.items

    def where(self) -> str:
        return _node()

    def slow(self, seconds: float) -> str:
        time.sleep(seconds)
        return _node()


@ray.remote
class Broken:
    def __init__(self) -> None:
        raise KeyError("no config on this node")

    def ping(self) -> str:
        return "pong"


@ray.remote(resources={"c": 1})
def call_from_c(handle: Any, n: int) -> tuple[str, list[int]]:
    refs = [handle.add.remote(("task", i)) for i in range(n)]
    return _node(), ray.get(refs)


@ray.remote(resources={"c": 1})
def use_named_from_c(name: str) -> tuple[str, str, int]:
    actor = ray.get_actor(name)
    return _node(), ray.get(actor.where.remote()), ray.get(actor.add.remote("from c"))


@ray.remote(resources={"c": 1})
def create_named_on_c(name: str) -> str:
    try:
        actor = Recorder.options(name=name, lifetime="detached").remote()
    except ValueError as err:
        return f"ValueError: {err}"
    ray.get(actor.add.remote("born on c"))
    return _node()


@ray.remote(resources={"c": 1})
def names_seen_from_c() -> list[str]:
    return sorted(ray.util.list_named_actors())


def _node_with(resource: str) -> str:
    found = [n["NodeID"] for n in ray.nodes() if n["Alive"] and resource in n["Resources"]]
    assert len(found) == 1, ray.nodes()
    return found[0]


def _wait_for(predicate: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_actors_are_placed_by_resource_and_reachable_from_every_node(head: Head) -> None:
    head.add_node("--num-cpus", "1", "--resources", '{"b": 1}')
    head.add_node("--num-cpus", "1", "--resources", '{"c": 1}')
    ray.init(address=head.address)
    head.wait_nodes(3)
    node_b, node_c = _node_with("b"), _node_with("c")

    # placed on the only node that has "b"; the driver is attached to the head
    rec = Recorder.options(resources={"b": 1}, name="shared").remote()
    assert ray.get(rec.where.remote(), timeout=60) == node_b
    listed = {a.actor_id: a for a in ray.state.list_actors()}
    assert listed[rec._ray_actor_id].node_id == node_b

    # calls from the driver and from a task on node C interleave, each in its own order
    from_driver = [rec.add.remote(("driver", i)) for i in range(30)]
    task = call_from_c.remote(rec, 30)
    more = [rec.add.remote(("driver", i)) for i in range(30, 60)]
    where_task_ran, task_results = ray.get(task, timeout=120)
    assert where_task_ran == node_c
    driver_results = ray.get(from_driver + more, timeout=120)
    assert driver_results == sorted(driver_results) and task_results == sorted(task_results)
    log = ray.get(rec.log.remote())
    assert [i for who, i in log if who == "driver"] == list(range(60))
    assert [i for who, i in log if who == "task"] == list(range(30))

    # a task on C finds the named actor through the head's directory
    ran_on, actor_on, count = ray.get(use_named_from_c.remote("shared"), timeout=60)
    assert (ran_on, actor_on, count) == (node_c, node_b, 91)

    # names are unique across the cluster, in both directions
    clash = ray.get(create_named_on_c.remote("shared"), timeout=60)
    assert clash.startswith("ValueError") and "already exists" in clash
    assert ray.get(create_named_on_c.remote("from_c"), timeout=60) == node_c
    with pytest.raises(ValueError, match="already exists"):
        Recorder.options(name="from_c").remote()
    same = Recorder.options(name="from_c", get_if_exists=True).remote()
    assert ray.get(same.log.remote(), timeout=60) == ["born on c"]
    on_c = ray.get_actor("from_c")
    assert ray.get(on_c.add.remote("from the driver"), timeout=60) == 2
    expected = ["from_c", "shared"]
    assert sorted(ray.util.list_named_actors()) == expected
    assert ray.get(names_seen_from_c.remote(), timeout=60) == expected

    # kill from the driver's node reaches the owner on C; the name is freed cluster-wide
    ray.kill(on_c)

    def dead_and_name_freed() -> bool:
        try:
            ray.get(on_c.add.remote("too late"), timeout=60)
        except RayActorError:
            return ray.util.list_named_actors() == ["shared"]
        return False

    _wait_for(dead_and_name_freed, "the killed actor to die and free its name")

    # a constructor that raises on another node: calls say so, and its owner knows
    broken = Broken.options(resources={"c": 1}).remote()
    with pytest.raises(ActorDiedError, match="no config on this node"):
        ray.get(broken.ping.remote(), timeout=60)

    def owner_knows() -> bool:
        states = {a.actor_id: a.state for a in ray.state.list_actors()}
        return states.get(broken._ray_actor_id) == "DEAD"

    _wait_for(owner_knows, "the owner to mark the broken actor dead")


def _kill_node(pid: int) -> None:
    """SIGKILL a node manager and everything it started, as a machine that dies would."""
    family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for proc in family:
        with contextlib.suppress(psutil.NoSuchProcess):  # (one that just exited by itself)
            proc.kill()
    psutil.wait_procs(family, timeout=30)


def test_actors_on_a_node_that_dies_restart_elsewhere_or_name_it(head: Head) -> None:
    victim = head.add_node("--num-cpus", "2", "--resources", '{"x": 2}')
    ray.init(address=head.address)
    head.wait_nodes(2)
    victim_id = _node_with("x")
    survivor = Recorder.options(resources={"x": 1}, max_restarts=1, max_task_retries=1).remote(100)
    mortal = Recorder.options(resources={"x": 1}, max_restarts=0).remote()
    assert ray.get([survivor.where.remote(), mortal.where.remote()], timeout=60) == [
        victim_id,
        victim_id,
    ]
    assert ray.get([survivor.add.remote("a"), survivor.add.remote("b")]) == [101, 102]
    assert ray.get(mortal.add.remote("a")) == 1

    # only now a second node with "x" joins: the restart can go nowhere else
    head.add_node("--num-cpus", "2", "--resources", '{"x": 2}')
    head.wait_nodes(3)
    in_flight = survivor.slow.remote(3.0)
    doomed = mortal.slow.remote(3.0)
    time.sleep(0.5)  # let both calls reach the victim
    _kill_node(victim)

    # restarted elsewhere: __init__ ran again with the same argument, state is fresh
    new_home = ray.get(in_flight, timeout=120)  # retried once (max_task_retries=1)
    assert new_home not in (victim_id, "")
    assert ray.get(survivor.where.remote(), timeout=60) == new_home
    assert ray.get(survivor.log.remote()) == []
    assert ray.get(survivor.add.remote("again")) == 101

    # no restarts left: calls in flight and new ones fail, naming the node that died
    for ref in (doomed, mortal.add.remote("b")):
        with pytest.raises(RayActorError, match=victim_id):
            ray.get(ref, timeout=120)


@ray.remote
class SlowToFail:
    def __init__(self) -> None:
        time.sleep(0.05)  # calls pile up on the owner meanwhile
        raise KeyError("no config on this node")

    def ping(self) -> str:
        return "pong"


def test_every_call_fails_when_a_constructor_fails_on_another_node(head: Head) -> None:
    # Calls released towards the host but not sent yet when the constructor's failure
    # came back used to be skipped by the sender and never answered (a hang under load).
    head.add_node("--num-cpus", "1", "--resources", '{"c": 1}')
    ray.init(address=head.address)
    head.wait_nodes(2)
    for _ in range(5):  # the race is in timing: more rounds, more chances to catch it
        broken = SlowToFail.options(resources={"c": 1}).remote()
        refs = []
        for _ in range(200):
            refs.append(broken.ping.remote())
            time.sleep(0.001)
        for ref in refs:
            with pytest.raises(ActorDiedError, match="no config on this node"):
                ray.get(ref, timeout=60)
