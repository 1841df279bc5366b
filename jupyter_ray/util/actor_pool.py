"""``ActorPool``: spread work over a fixed set of actors, as ``ray.util.ActorPool`` does."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..actor import ActorHandle
from ..api import get, wait
from ..runtime.exceptions import GetTimeoutError
from ..runtime.object_ref import ObjectRef

Submit = Callable[[ActorHandle, Any], ObjectRef]


class ActorPool:
    """Run ``fn(actor, value)`` on whichever actor of the pool is free.

    >>> pool = ActorPool([Worker.remote(), Worker.remote()])
    >>> list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3]))
    [2, 4, 6]
    """

    def __init__(self, actors: Iterable[ActorHandle]) -> None:
        self._idle: list[ActorHandle] = list(actors)
        self._busy: dict[ObjectRef, tuple[int, ActorHandle]] = {}
        self._by_index: dict[int, ObjectRef] = {}
        self._backlog: deque[tuple[Submit, Any]] = deque()
        self._next_index = 0
        self._next_return = 0

    def submit(self, fn: Submit, value: Any) -> None:
        """Schedule ``fn(actor, value)`` on a free actor, or queue it until one frees up."""
        if not callable(fn):
            raise TypeError(f"submit() takes a function (actor, value) -> ObjectRef, got {fn!r}")
        if not self._idle:
            self._backlog.append((fn, value))
            return
        actor = self._idle.pop()
        ref = fn(actor, value)
        if not isinstance(ref, ObjectRef):
            self._idle.append(actor)
            raise TypeError(
                "the function given to ActorPool must return the ObjectRef of an actor "
                f"call (actor.method.remote(value)), got {type(ref).__name__}"
            )
        self._busy[ref] = (self._next_index, actor)
        self._by_index[self._next_index] = ref
        self._next_index += 1

    def has_next(self) -> bool:
        """True while submitted work has results not yet returned."""
        return bool(self._busy) or bool(self._backlog)

    def _release(self, ref: ObjectRef) -> None:
        index, actor = self._busy.pop(ref)
        self._by_index.pop(index, None)
        self._idle.append(actor)
        if self._backlog:
            fn, value = self._backlog.popleft()
            self.submit(fn, value)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in submission order."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        while self._next_return not in self._by_index:
            if self._next_return >= self._next_index and not self._backlog:
                raise StopIteration("No more results to get")
            if self._next_return < self._next_index:
                self._next_return += 1  # already taken by get_next_unordered
                continue
            self._wait_any(timeout)
        ref = self._by_index[self._next_return]
        ready, _ = wait([ref], timeout=timeout)
        if not ready:
            if ignore_if_timedout:
                self._next_return += 1
            raise TimeoutError(f"no result within {timeout} s")
        self._next_return += 1
        self._release(ref)
        return get(ref)

    def _wait_any(self, timeout: float | None) -> None:
        ready, _ = wait(list(self._busy), num_returns=1, timeout=timeout)
        if not ready:
            raise TimeoutError(f"no result within {timeout} s")

    def get_next_unordered(
        self, timeout: float | None = None, ignore_if_timedout: bool = False
    ) -> Any:
        """Whichever result is ready first."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        ready, _ = wait(list(self._busy), num_returns=1, timeout=timeout)
        if not ready:
            raise TimeoutError(f"no result within {timeout} s")
        ref = ready[0]
        self._release(ref)
        return get(ref)

    def map(self, fn: Submit, values: Iterable[Any]) -> Iterator[Any]:
        """Apply ``fn`` to every value; yields results in the order of ``values``."""
        while self.has_next():  # results of earlier submits are dropped, as in Ray
            try:
                self.get_next_unordered(timeout=0)
            except (TimeoutError, GetTimeoutError):
                break
        for value in values:
            self.submit(fn, value)
        while self.has_next():
            yield self.get_next()

    def map_unordered(self, fn: Submit, values: Iterable[Any]) -> Iterator[Any]:
        """Apply ``fn`` to every value; yields results as they finish."""
        for value in values:
            self.submit(fn, value)
        while self.has_next():
            yield self.get_next_unordered()

    def has_free(self) -> bool:
        """True when an actor is idle and nothing waits for one."""
        return bool(self._idle) and not self._backlog

    def pop_idle(self) -> ActorHandle | None:
        """Remove and return an idle actor, or None when all are busy."""
        return self._idle.pop() if self.has_free() else None

    def push(self, actor: ActorHandle) -> None:
        """Add an actor to the pool; it starts taking queued work at once."""
        busy = {a for _, a in self._busy.values()}
        if actor in self._idle or actor in busy:
            raise ValueError("this actor is already in the pool")
        self._idle.append(actor)
        if self._backlog:
            fn, value = self._backlog.popleft()
            self.submit(fn, value)
