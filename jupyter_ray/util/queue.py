"""``Queue``: a first-in first-out queue shared by tasks and actors, backed by an actor.

``Empty`` and ``Full`` subclass the standard library's, so code written for
``queue.Queue`` catches them unchanged.
"""

from __future__ import annotations

import asyncio
import queue as _stdlib_queue
from collections.abc import Iterable
from typing import Any

from .._remote import remote
from ..actor import kill
from ..api import get, wait
from ..runtime.common.exceptions import RayTaskError


class Empty(_stdlib_queue.Empty):
    """Raised by ``get`` when nothing arrives in time, or by ``get_nowait`` on an empty queue."""


class Full(_stdlib_queue.Full):
    """Raised by ``put`` when no slot frees in time, or by ``put_nowait`` on a full queue."""


class _QueueActor:
    """The actor behind a Queue; its async methods let blocked getters and putters wait."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)

    def qsize(self) -> int:
        return self.queue.qsize()

    async def put(self, item: Any, timeout: float | None = None) -> None:
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except asyncio.TimeoutError:
            raise Full(f"the queue stayed full for {timeout} s") from None

    async def get(self, timeout: float | None = None) -> Any:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise Empty(f"nothing arrived in the queue within {timeout} s") from None

    def put_nowait_batch(self, items: list[Any]) -> None:
        if self.maxsize > 0 and len(items) + self.queue.qsize() > self.maxsize:
            raise Full(
                f"cannot add {len(items)} items: {self.queue.qsize()} of {self.maxsize} "
                "slots are taken"
            )
        for item in items:
            self.queue.put_nowait(item)

    def get_nowait_batch(self, n: int) -> list[Any]:
        if n > self.queue.qsize():
            raise Empty(f"asked for {n} items but the queue holds {self.queue.qsize()}")
        return [self.queue.get_nowait() for _ in range(n)]


def _unwrap(ref: Any) -> Any:
    try:
        return get(ref)
    except RayTaskError as err:
        if isinstance(err.cause, Empty | Full):
            raise type(err.cause)(str(err.cause)) from None
        raise


async def _unwrap_async(ref: Any) -> Any:
    try:
        return await ref
    except RayTaskError as err:
        if isinstance(err.cause, Empty | Full):
            raise type(err.cause)(str(err.cause)) from None
        raise


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
    ):
        raise ValueError(f"timeout must be a non-negative number or None, got {timeout!r}")


class Queue:
    """A FIFO queue usable from the driver, tasks and actors (pass it as an argument).

    >>> q = Queue(maxsize=10)
    >>> q.put(1)
    >>> q.get()
    1
    """

    def __init__(self, maxsize: int = 0, actor_options: dict[str, Any] | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise ValueError(f"maxsize must be an int >= 0 (0: unbounded), got {maxsize!r}")
        self.maxsize = maxsize
        options = {"num_cpus": 0, **(actor_options or {})}
        self.actor = remote(**options)(_QueueActor).remote(maxsize)

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        return int(get(self._handle().qsize.remote()))

    qsize = size

    def empty(self) -> bool:
        return self.size() == 0

    def full(self) -> bool:
        return self.maxsize > 0 and self.size() >= self.maxsize

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add an item; waits for a free slot up to ``timeout`` when ``block``."""
        _check_timeout(timeout)
        if not block:
            self.put_nowait(item)
            return
        _unwrap(self._handle().put.remote(item, timeout))

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """``put`` for asyncio code (an async actor, a notebook's ``await``)."""
        _check_timeout(timeout)
        if not block:
            await _unwrap_async(self._handle().put_nowait_batch.remote([item]))
        else:
            await _unwrap_async(self._handle().put.remote(item, timeout))

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item; waits up to ``timeout`` when ``block``."""
        _check_timeout(timeout)
        if not block:
            return self.get_nowait()
        return _unwrap(self._handle().get.remote(timeout))

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """``get`` for asyncio code."""
        _check_timeout(timeout)
        if not block:
            return (await _unwrap_async(self._handle().get_nowait_batch.remote(1)))[0]
        return await _unwrap_async(self._handle().get.remote(timeout))

    def _handle(self) -> Any:
        if self.actor is None:
            raise RuntimeError("this Queue was shut down; create a new Queue to go on")
        return self.actor

    def put_nowait(self, item: Any) -> None:
        self.put_nowait_batch([item])

    def put_nowait_batch(self, items: Iterable[Any]) -> None:
        _unwrap(self._handle().put_nowait_batch.remote(list(items)))

    def get_nowait(self) -> Any:
        return self.get_nowait_batch(1)[0]

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        if isinstance(num_items, bool) or not isinstance(num_items, int) or num_items < 0:
            raise ValueError(f"num_items must be an int >= 0, got {num_items!r}")
        return list(_unwrap(self._handle().get_nowait_batch.remote(num_items)))

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """Stop the queue's actor; the queue cannot be used afterwards. Without ``force``
        the actor ends after the calls already sent to it, or is killed after
        ``grace_period_s`` seconds, as in Ray."""
        if self.actor is None:
            return
        actor, self.actor = self.actor, None
        if force:
            kill(actor, no_restart=True)
            return
        done = actor.__ray_terminate__.remote()
        ready, _ = wait([done], timeout=grace_period_s)
        if not ready:
            kill(actor, no_restart=True)
