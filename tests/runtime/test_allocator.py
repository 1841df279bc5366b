"""The arena: first-fit allocation, coalescing, populating ranges before writes."""

from __future__ import annotations

import random
from typing import Any

from jupyter_ray.runtime.common.store import ALIGN, Allocator, Arena


def test_alloc_free_coalesces_back_to_one_range() -> None:
    a = Allocator(1 << 20)
    offs = [a.alloc(1000) for _ in range(10)]
    assert all(o is not None for o in offs)
    assert len(set(offs)) == 10
    for o in offs[::2] + offs[1::2]:
        assert o is not None
        a.free(o, 1000)
    a.check()
    assert a.used == 0
    assert a.largest_free() == 1 << 20


def test_first_fit_reuses_freed_low_range() -> None:
    a = Allocator(1 << 20)
    first = a.alloc(4096)
    a.alloc(4096)
    assert first is not None
    a.free(first, 4096)
    assert a.alloc(4000) == first


def test_full_arena_returns_none_and_offsets_are_aligned() -> None:
    a = Allocator(10 * ALIGN)
    got = [a.alloc(1) for _ in range(10)]
    assert got == [i * ALIGN for i in range(10)]
    assert a.alloc(1) is None
    a.check()


def test_random_workload_stays_consistent() -> None:
    rng = random.Random(7)
    a = Allocator(1 << 16)
    live: dict[int, int] = {}
    for _ in range(3000):
        if live and rng.random() < 0.45:
            off = rng.choice(list(live))
            a.free(off, live.pop(off))
        else:
            size = rng.randint(1, 3000)
            off = a.alloc(size)
            if off is not None:
                for o, s in live.items():  # no overlap with live ranges
                    assert off + size <= o or o + s <= off
                live[off] = size
        a.check()
    for off, size in live.items():
        a.free(off, size)
    a.check()
    assert a.used == 0


def test_populate_maps_a_range_that_is_then_written(tmp_path: Any) -> None:
    arena = Arena(str(tmp_path / "arena"), 1 << 20, create=True)
    try:
        arena.populate(1 << 20, 4096)  # past the end: nothing to do, no error
        arena.populate(100, 5000)  # unaligned start: rounded down to the page
        arena.view[100:105] = b"hello"
        assert bytes(arena.view[100:105]) == b"hello"
    finally:
        arena.close()
        arena.unlink()
