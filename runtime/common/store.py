"""The node's shared-memory object store: one arena file, an allocator, and spill files.

The arena is a single file in ``/dev/shm`` that every process on the node maps once.
Writers ask the node manager for a range, copy their bytes in, and seal; readers map the
same range with no copy. Reusing ranges of one long-lived mapping keeps pages touched,
which is what makes large puts fast (fresh shared memory costs a page fault per 4 KiB).
When the arena is full, the node manager spills unpinned objects to files and readers
map those files instead; an object larger than the whole arena goes straight to a file.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os

ALIGN = 64

# Python 3.11 lacks the constant; its value is fixed in the kernel ABI.
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)


def aligned(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


class Allocator:
    """First-fit allocator over ``[0, capacity)`` with coalescing of free ranges.

    First fit reuses low, recently freed ranges, whose pages are already touched.
    Pure bookkeeping: no memory is touched here.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._starts: list[int] = [0] if capacity > 0 else []
        self._sizes: dict[int, int] = {0: capacity} if capacity > 0 else {}
        self.used = 0

    def alloc(self, size: int) -> int | None:
        """Return the offset of a free range of ``size`` bytes, or None when none fits."""
        size = aligned(max(size, 1))
        for start in self._starts:
            free = self._sizes[start]
            if free >= size:
                i = bisect.bisect_left(self._starts, start)
                del self._starts[i]
                del self._sizes[start]
                if free > size:
                    rest = start + size
                    self._starts.insert(i, rest)
                    self._sizes[rest] = free - size
                self.used += size
                return start
        return None

    def free(self, offset: int, size: int) -> None:
        size = aligned(max(size, 1))
        self.used -= size
        i = bisect.bisect_left(self._starts, offset)
        # merge with the next free range
        if i < len(self._starts) and self._starts[i] == offset + size:
            nxt = self._starts.pop(i)
            size += self._sizes.pop(nxt)
        # merge with the previous free range
        if i > 0:
            prev = self._starts[i - 1]
            if prev + self._sizes[prev] == offset:
                self._sizes[prev] += size
                return
        self._starts.insert(i, offset)
        self._sizes[offset] = size

    def largest_free(self) -> int:
        return max(self._sizes.values(), default=0)

    def check(self) -> None:
        """Raise AssertionError when the free list is inconsistent (used by tests)."""
        total = 0
        prev_end = -1
        for start in self._starts:
            size = self._sizes[start]
            assert size > 0 and start > prev_end, (start, size, prev_end)
            prev_end = start + size
            total += size
        assert prev_end <= self.capacity
        assert total + self.used == self.capacity, (total, self.used, self.capacity)


class Arena:
    """A shared-memory file mapped into this process."""

    def __init__(self, path: str, size: int, create: bool = False) -> None:
        self.path = path
        self.size = size
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, size)
            self._mmap = mmap.mmap(fd, size) if size else None
        finally:
            os.close(fd)
        self.view = memoryview(self._mmap) if self._mmap is not None else memoryview(b"")

    def populate(self, offset: int, length: int) -> None:
        """Map a range this process is about to write, in bulk (see :func:`populate`)."""
        if self._mmap is not None:
            populate(self._mmap, offset, length)

    def close(self) -> None:
        """Drop this process's mapping; views still held elsewhere keep it alive."""
        self.view.release()

    def unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def populate(mm: mmap.mmap, offset: int, length: int) -> None:
    """Map ``[offset, offset + length)`` of ``mm`` for writing in one system call.

    Faulting the pages in one by one from Python's copy costs a trap per 4 KiB;
    ``MADV_POPULATE_WRITE`` (Linux 5.14+) does them in bulk: a 100 MiB put into fresh
    store memory took ~68 ms instead of 75-90 ms (and up to 300 ms) here. Allocating the
    pages ahead from the node manager (``fallocate`` on a thread) was tried and dropped:
    concurrent with a writer it slowed both, down to 0.4 GiB/s. A no-op where unsupported.
    """
    start = offset - offset % mmap.PAGESIZE
    end = min(len(mm), offset + length)
    if end <= start:
        return
    with contextlib.suppress(OSError, ValueError):
        mm.madvise(MADV_POPULATE_WRITE, start, end - start)


def map_file_readonly(path: str, size: int) -> memoryview:
    """Map a spill or fallback file; the mapping lives as long as views of it do."""
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) if size else None
    return memoryview(mm) if mm is not None else memoryview(b"")


def write_file(path: str, data: memoryview) -> None:
    """Write ``data`` to a new file (spilling); runs on an executor thread, not the loop."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def create_file(path: str, size: int) -> None:
    """Create a file of ``size`` bytes for an object too large for the arena."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def map_file_writable(path: str, size: int) -> memoryview:
    fd = os.open(path, os.O_RDWR)
    try:
        mm = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    return memoryview(mm)
