"""Reference counting in the node manager's object table."""

from __future__ import annotations

from jupyter_ray.runtime.common.protocol import Payload
from jupyter_ray.runtime.node.objects import ObjectEntry, ObjectTable

A, B, C = b"a" * 20, b"b" * 20, b"c" * 20


def _sealed(table: ObjectTable, oid: bytes, owner: int, contained: tuple[bytes, ...] = ()) -> None:
    table.create(oid, owner)
    table.seal(oid, Payload(offset=0, size=10), list(contained))


def test_object_lives_while_any_process_holds_a_ref() -> None:
    t = ObjectTable()
    _sealed(t, A, owner=1)
    t.add_ref(A, 2)
    freed: list[ObjectEntry] = []
    t.remove_ref(A, 1, freed)
    assert not freed and A in t
    t.remove_ref(A, 2, freed)
    assert [e.object_id for e in freed] == [A]
    t.validate()


def test_task_hold_keeps_argument_alive_after_owner_drops_it() -> None:
    t = ObjectTable()
    _sealed(t, A, owner=1)
    t.hold(A)  # a task in flight takes A as an argument
    freed: list[ObjectEntry] = []
    t.remove_ref(A, 1, freed)
    assert not freed
    t.release(A, freed)
    assert [e.object_id for e in freed] == [A]


def test_contained_objects_live_as_long_as_their_container() -> None:
    t = ObjectTable()
    _sealed(t, A, owner=1)
    _sealed(t, B, owner=1, contained=(A,))  # B is a list holding a ref to A
    freed: list[ObjectEntry] = []
    t.remove_ref(A, 1, freed)
    assert not freed
    t.remove_ref(B, 1, freed)
    assert {e.object_id for e in freed} == {A, B}
    t.validate()


def test_freed_but_mapped_object_is_reclaimed_on_last_unpin() -> None:
    t = ObjectTable()
    _sealed(t, A, owner=1)
    entry = t.get(A)
    assert entry is not None
    t.pin(entry, 5)
    t.pin(entry, 5)
    freed: list[ObjectEntry] = []
    t.remove_ref(A, 1, freed)
    assert not freed and A in t.zombies
    assert t.unpin(A, 5, 1) is None
    reclaimed = t.unpin(A, 5, 1)
    assert reclaimed is entry and not t.zombies
    t.validate()


def test_process_exit_drops_its_refs_and_pins() -> None:
    t = ObjectTable()
    _sealed(t, A, owner=1)
    _sealed(t, C, owner=2)
    entry = t.get(C)
    assert entry is not None
    t.pin(entry, 1)
    t.add_ref(C, 1)
    freed: list[ObjectEntry] = []
    t.remove_ref(C, 2, freed)
    assert not freed
    reclaim = t.drop_connection(1, freed)
    assert {e.object_id for e in freed} == {A, C}  # C's pin went with the process
    assert reclaim == []
    assert not t.entries
    t.validate()


def test_a_process_waits_on_an_object_once() -> None:
    t = ObjectTable()
    entry = t.create(A, 1)  # a task result, not sealed yet
    assert t.add_waiter(entry, 7, want_value=False)
    assert not t.add_waiter(entry, 7, want_value=False)  # a second wait() on the same ref
    assert t.add_waiter(entry, 7, want_value=True)  # a get() upgrades it
    assert not t.add_waiter(entry, 7, want_value=False)  # and nothing downgrades it
    assert t.add_waiter(entry, 8, want_value=False)
    assert entry.waiters == {7: True, 8: False}
    freed: list[ObjectEntry] = []
    t.drop_connection(7, freed)
    assert entry.waiters == {8: False}
