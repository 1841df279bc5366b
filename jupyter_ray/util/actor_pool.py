"""``ActorPool``: spread work over a fixed set of actors, as ``ray.util.ActorPool`` does."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..actor import ActorHandle
from ..api import get, wait
from ..runtime.client.object_ref import ObjectRef

Future = ObjectRef | list[ObjectRef]  # one result, or a call's several returns
Submit = Callable[[ActorHandle, Any], Future]


class ActorPool:
    """Run ``fn(actor, value)`` on whichever actor of the pool is free.

    ``fn`` returns the ObjectRef of an actor call (or the list of refs of a method with
    several returns; its result is then the list of values).

    >>> pool = ActorPool([Worker.remote(), Worker.remote()])
    >>> list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3]))
    [2, 4, 6]
    """

    def __init__(self, actors: Iterable[ActorHandle]) -> None:
        self._idle: list[ActorHandle] = list(actors)
        self._running: dict[bytes, tuple[int, ActorHandle]] = {}  # first ref -> index, actor
        self._futures: dict[int, Future] = {}  # submitted, result not handed out yet
        self._finished: set[int] = set()  # of those, done (their actor is free again)
        self._backlog: deque[tuple[int, Submit, Any]] = deque()
        self._ignored: set[int] = set()  # results nobody will be handed (see map)
        self._next_index = 0
        self._next_return = 0

    # --- submitting ---------------------------------------------------------------------

    def submit(self, fn: Submit, value: Any) -> None:
        """Schedule ``fn(actor, value)`` on a free actor, or queue it until one frees up."""
        if not callable(fn):
            raise TypeError(f"submit() takes a function (actor, value) -> ObjectRef, got {fn!r}")
        index = self._next_index
        self._next_index += 1
        if self._idle:
            self._start(index, fn, value, self._idle.pop())
        else:
            self._backlog.append((index, fn, value))

    def _start(self, index: int, fn: Submit, value: Any, actor: ActorHandle) -> None:
        future = fn(actor, value)
        refs = future if isinstance(future, list | tuple) else [future]
        if not refs or not all(isinstance(r, ObjectRef) for r in refs):
            self._idle.append(actor)
            raise TypeError(
                "the function given to ActorPool must return the ObjectRef of an actor "
                f"call (actor.method.remote(value)), or a list of them; got {future!r}"
            )
        self._futures[index] = list(refs) if isinstance(future, list | tuple) else future
        # a call's returns are all ready together: its first ref says when
        self._running[refs[0].binary()] = (index, actor)

    def _first(self, index: int) -> ObjectRef:
        future = self._futures[index]
        return future[0] if isinstance(future, list) else future

    def _finish(self, ready: list[ObjectRef]) -> None:
        """Calls that are done: free their actors, start queued work on them."""
        for ref in ready:
            entry = self._running.pop(ref.binary(), None)
            if entry is None:
                continue
            index, actor = entry
            if index in self._ignored:
                self._ignored.discard(index)
                del self._futures[index]
            else:
                self._finished.add(index)
            self._idle.append(actor)
        while self._backlog and self._idle:
            index, fn, value = self._backlog.popleft()
            self._start(index, fn, value, self._idle.pop())

    def _wait_any(self, timeout: float | None) -> bool:
        """Wait until some running call is done (False: ``timeout`` passed first)."""
        firsts = [self._first(index) for index, _ in self._running.values()]
        ready, _ = wait(firsts, num_returns=1, timeout=timeout, fetch_local=False)
        ready, _ = wait(firsts, num_returns=len(firsts), timeout=0, fetch_local=False)
        self._finish(ready)
        return bool(ready)

    # --- results ------------------------------------------------------------------------

    def has_next(self) -> bool:
        """True while submitted work has results not yet returned."""
        return any(i not in self._ignored for i in self._futures) or any(
            i not in self._ignored for i, _, _ in self._backlog
        )

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in submission order."""
        while self._next_return < self._next_index and (
            self._next_return in self._ignored
            or (
                self._next_return not in self._futures
                and all(i != self._next_return for i, _, _ in self._backlog)
            )
        ):
            self._next_return += 1  # ignored, or already taken by get_next_unordered
        if self._next_return >= self._next_index:
            raise StopIteration("No more results to get")
        index = self._next_return
        while index not in self._futures:  # still queued: wait for an actor to free up
            if not self._wait_any(timeout):
                raise TimeoutError(f"no result within {timeout} s")
        if index not in self._finished:
            ready, _ = wait([self._first(index)], timeout=timeout, fetch_local=False)
            if not ready:
                if ignore_if_timedout:
                    self._ignored.add(index)
                    self._next_return += 1
                raise TimeoutError(f"no result within {timeout} s")
            self._finish(ready)
        self._next_return += 1
        return self._hand_out(index)

    def get_next_unordered(
        self, timeout: float | None = None, ignore_if_timedout: bool = False
    ) -> Any:
        """Whichever result is ready first."""
        while True:
            done = [i for i in self._finished if i not in self._ignored]
            if done:
                return self._hand_out(min(done))
            if not self.has_next():
                raise StopIteration("No more results to get")
            if not self._wait_any(timeout):
                raise TimeoutError(f"no result within {timeout} s")

    def _hand_out(self, index: int) -> Any:
        self._finished.discard(index)
        return get(self._futures.pop(index))

    def map(self, fn: Submit, values: Iterable[Any]) -> Iterator[Any]:
        """Apply ``fn`` to every value; results in the order of ``values``.

        Submits everything at once (before the first result is asked for), and never
        yields the results of work submitted before the call, as in Ray."""
        self._ignore_earlier()
        for value in values:
            self.submit(fn, value)
        return self._drain(ordered=True)

    def map_unordered(self, fn: Submit, values: Iterable[Any]) -> Iterator[Any]:
        """Apply ``fn`` to every value; results as they finish."""
        self._ignore_earlier()
        for value in values:
            self.submit(fn, value)
        return self._drain(ordered=False)

    def _ignore_earlier(self) -> None:
        for index in list(self._futures) + [i for i, _, _ in self._backlog]:
            if index in self._finished:
                self._finished.discard(index)
                del self._futures[index]
            else:
                self._ignored.add(index)
        self._next_return = self._next_index

    def _drain(self, ordered: bool) -> Iterator[Any]:
        while self.has_next():
            yield self.get_next() if ordered else self.get_next_unordered()

    # --- actors ---------------------------------------------------------------------------

    def has_free(self) -> bool:
        """True when an actor is idle and nothing waits for one."""
        return bool(self._idle) and not self._backlog

    def pop_idle(self) -> ActorHandle | None:
        """Remove and return an idle actor, or None when all are busy."""
        return self._idle.pop() if self.has_free() else None

    def push(self, actor: ActorHandle) -> None:
        """Add an actor to the pool; it starts taking queued work at once."""
        busy = {a for _, a in self._running.values()}
        if actor in self._idle or actor in busy:
            raise ValueError("this actor is already in the pool")
        self._idle.append(actor)
        self._finish([])
