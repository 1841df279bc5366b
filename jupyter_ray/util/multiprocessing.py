"""``Pool``: the standard library's ``multiprocessing.Pool`` on jupyter_ray actors, as
``ray.util.multiprocessing.Pool`` offers it.

Each of the pool's processes is an actor that ran ``initializer(*initargs)`` once. Work
goes to them in chunks of ``chunksize`` items, one actor call per chunk, round robin.
Functions travel with cloudpickle, so a function defined in a notebook cell works, which
the standard library's pool cannot import in its worker processes under ``spawn``.

>>> with Pool(4) as pool:
...     pool.map(lambda x: x * x, range(5))
[0, 1, 4, 9, 16]
"""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .. import api
from .._remote import remote
from ..actor import ActorHandle, kill
from ..runtime.client.object_ref import ObjectRef
from ..runtime.common.exceptions import GetTimeoutError

__all__ = ["AsyncResult", "IMapIterator", "Pool", "TimeoutError"]

TimeoutError = multiprocessing.TimeoutError  # what AsyncResult.get(timeout) raises

RUN, CLOSE, TERMINATE = "running", "closed", "terminated"
PRUNE_AT = 256


class _PoolProcess:
    """One process of a pool (an actor): runs the initializer, then chunks of work."""

    def __init__(self, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]):
        if initializer is not None:
            initializer(*initargs)

    def run(self, func: Callable[..., Any], items: list[Any], star: bool) -> list[Any]:
        if star:
            return [func(*item) for item in items]
        return [func(item) for item in items]

    def pid(self) -> int:
        return os.getpid()


class AsyncResult:
    """The result of ``apply_async``/``map_async``/``starmap_async``."""

    def __init__(
        self,
        refs: list[ObjectRef],
        single: bool,
        callback: Callable[[Any], Any] | None,
        error_callback: Callable[[BaseException], Any] | None,
        callbacks: queue.SimpleQueue[Any] | None,
    ) -> None:
        self._refs = refs
        self._single = single
        if callback is not None or error_callback is not None:
            assert callbacks is not None
            self._watch(callback, error_callback, callbacks)

    def _watch(
        self,
        callback: Callable[[Any], Any] | None,
        error_callback: Callable[[BaseException], Any] | None,
        callbacks: queue.SimpleQueue[Any],
    ) -> None:
        futures = [ref.future() for ref in self._refs]
        left = [len(futures)]
        lock = threading.Lock()

        def one_done(_: concurrent.futures.Future[Any]) -> None:
            with lock:
                left[0] -= 1
                if left[0]:
                    return
            # the pool's callback thread runs it, as the standard library's handler does
            callbacks.put((futures, callback, error_callback, self._single))

        if not futures:
            callbacks.put((futures, callback, error_callback, self._single))
        for fut in futures:
            fut.add_done_callback(one_done)

    def get(self, timeout: float | None = None) -> Any:
        """The result; raises what the function raised, or TimeoutError."""
        try:
            chunks = api.get(self._refs, timeout=timeout)
        except GetTimeoutError as err:
            raise TimeoutError(str(err)) from None
        return _join(chunks, self._single)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the result is ready, or ``timeout`` seconds."""
        api.wait(self._refs, num_returns=len(self._refs), timeout=timeout, fetch_local=False)

    def ready(self) -> bool:
        ready, _ = api.wait(self._refs, num_returns=len(self._refs), timeout=0, fetch_local=False)
        return len(ready) == len(self._refs)

    def successful(self) -> bool:
        """Whether the call completed without raising; ValueError if not ready yet."""
        if not self.ready():
            raise ValueError("the result is not ready yet; call wait() or get() first")
        try:
            api.get(self._refs)
        except Exception:
            return False
        return True


def _join(chunks: list[list[Any]], single: bool) -> Any:
    if single:
        return chunks[0][0]
    return [value for chunk in chunks for value in chunk]


def _run_callbacks(callbacks: queue.SimpleQueue[Any]) -> None:
    while True:
        item = callbacks.get()
        if item is None:
            return
        futures, callback, error_callback, single = item
        try:
            value = _join([f.result() for f in futures], single)
        except Exception as err:
            if error_callback is not None:
                error_callback(err)
            continue
        if callback is not None:
            callback(value)


class Pool:
    """A pool of ``processes`` worker processes (actors); see the module docstring.

    ``processes`` defaults to the cluster's CPUs. ``maxtasksperchild``: an actor is
    replaced after that many chunks. ``context`` is accepted for compatibility and
    ignored. ``ray_address`` is passed to ``init()`` when jupyter_ray is not running
    yet; ``ray_remote_args`` are the actors' options (``num_cpus``, ``resources``...).
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] | None = None,
        maxtasksperchild: int | None = None,
        context: Any = None,
        ray_address: str | None = None,
        ray_remote_args: dict[str, Any] | None = None,
    ) -> None:
        if processes is not None and (not isinstance(processes, int) or processes < 1):
            raise ValueError(f"processes must be a positive integer or None, got {processes!r}")
        if maxtasksperchild is not None and (
            not isinstance(maxtasksperchild, int) or maxtasksperchild < 1
        ):
            raise ValueError(
                f"maxtasksperchild must be a positive integer or None, got {maxtasksperchild!r}"
            )
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable, got {initializer!r}")
        if not api.is_initialized():
            api.init(address=ray_address)
        if processes is None:
            processes = max(1, int(api.cluster_resources().get("CPU", 1)))
        self._initializer = initializer
        self._initargs = tuple(initargs or ())
        self._max_tasks = maxtasksperchild
        if ray_remote_args:
            self._actor_class = remote(**ray_remote_args)(_PoolProcess)
        else:
            self._actor_class = remote(_PoolProcess)
        self._actors: list[ActorHandle] = [self._new_actor() for _ in range(processes)]
        # As the standard library's: the pool is started (every initializer has run, or
        # raised here) when the constructor returns.
        api.get([actor.pid.remote() for actor in self._actors])
        self._given = [0] * processes  # chunks given to each actor (maxtasksperchild)
        self._turn = itertools.cycle(range(processes))
        self._outstanding: list[ObjectRef] = []  # for join(); done ones pruned now and then
        self._prune_at = PRUNE_AT
        self._state = RUN
        self._callbacks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._callback_thread = threading.Thread(
            target=_run_callbacks, args=(self._callbacks,), name="pool-callbacks", daemon=True
        )
        self._callback_thread.start()

    def _new_actor(self) -> ActorHandle:
        handle: ActorHandle = self._actor_class.remote(self._initializer, self._initargs)
        return handle

    def __len__(self) -> int:
        return len(self._actors)

    # --- submission -------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._state != RUN:
            raise ValueError(f"Pool not running (it was {self._state}); make a new Pool")

    def _submit(self, func: Callable[..., Any], items: list[Any], star: bool) -> ObjectRef:
        i = next(self._turn)
        ref: ObjectRef = self._actors[i].run.remote(func, items, star)
        self._given[i] += 1
        if self._max_tasks is not None and self._given[i] >= self._max_tasks:
            # it leaves after the calls queued before this: a fresh process takes over
            self._actors[i].__ray_terminate__.remote()
            self._actors[i] = self._new_actor()
            self._given[i] = 0
        self._outstanding.append(ref)
        if len(self._outstanding) >= self._prune_at:  # forget what is done, now and then
            _, pending = api.wait(
                self._outstanding, num_returns=len(self._outstanding), timeout=0, fetch_local=False
            )
            self._outstanding = pending
            self._prune_at = max(PRUNE_AT, 2 * len(pending))
        return ref

    def _chunks(
        self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None, star: bool
    ) -> list[ObjectRef]:
        self._check_running()
        if not callable(func):
            raise TypeError(f"the function to run must be callable, got {func!r}")
        items = list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), len(self._actors) * 4)
            chunksize += 1 if extra or not chunksize else 0
        elif not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError(f"chunksize must be a positive integer, got {chunksize!r}")
        return [
            self._submit(func, items[i : i + chunksize], star)
            for i in range(0, len(items), chunksize)
        ]

    def apply(self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: Any = None) -> Any:
        """``func(*args, **kwds)`` in one of the pool's processes; its result."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] = (),
        kwds: Any = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        self._check_running()
        if not callable(func):
            raise TypeError(f"the function to run must be callable, got {func!r}")
        call = _Call(func, dict(kwds or {}))
        ref = self._submit(call, [tuple(args)], True)
        return AsyncResult([ref], True, callback, error_callback, self._callbacks)

    def map(
        self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None
    ) -> list[Any]:
        """``[func(x) for x in iterable]``, computed in the pool; in order."""
        return self.map_async(func, iterable, chunksize).get()

    def map_async(
        self,
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        refs = self._chunks(func, iterable, chunksize, False)
        return AsyncResult(refs, False, callback, error_callback, self._callbacks)

    def starmap(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
    ) -> list[Any]:
        """``[func(*args) for args in iterable]``, computed in the pool; in order."""
        return self.starmap_async(func, iterable, chunksize).get()

    def starmap_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        refs = self._chunks(func, (tuple(a) for a in iterable), chunksize, True)
        return AsyncResult(refs, False, callback, error_callback, self._callbacks)

    def imap(
        self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1
    ) -> IMapIterator:
        """Results in order, each as soon as it and those before it are done."""
        return IMapIterator(self._chunks(func, iterable, chunksize, False), ordered=True)

    def imap_unordered(
        self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1
    ) -> IMapIterator:
        """Results as they are done, in any order."""
        return IMapIterator(self._chunks(func, iterable, chunksize, False), ordered=False)

    # --- life cycle -------------------------------------------------------------------

    def close(self) -> None:
        """Take no more work; what was submitted still runs (``join()`` waits for it)."""
        if self._state == RUN:
            self._state = CLOSE

    def terminate(self) -> None:
        """Stop the pool's processes now; work not done is lost."""
        self._state = TERMINATE
        for actor in self._actors:
            kill(actor)
        self._outstanding = []
        self._callbacks.put(None)

    def join(self) -> None:
        """Wait for submitted work to finish, then let the processes go (after close())."""
        if self._state == RUN:
            raise ValueError("Pool is still running; call close() or terminate() first")
        if self._outstanding:
            api.wait(self._outstanding, num_returns=len(self._outstanding), fetch_local=False)
            self._outstanding = []
        if self._state == CLOSE:
            for actor in self._actors:
                actor.__ray_terminate__.remote()
            self._callbacks.put(None)
            self._state = TERMINATE

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()


class IMapIterator(Iterator[Any]):
    """What ``imap`` and ``imap_unordered`` return: an iterator whose ``next(timeout)``
    raises ``TimeoutError`` when no result comes in time, as the standard library's."""

    def __init__(self, refs: list[ObjectRef], ordered: bool) -> None:
        self._refs = list(refs)  # chunks not taken yet, in submission order
        self._ordered = ordered
        self._values: list[Any] = []  # results of taken chunks, not yielded yet (reversed)

    def __iter__(self) -> IMapIterator:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        """The next result; waits up to ``timeout`` seconds (None: for ever)."""
        if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
            raise ValueError(f"timeout must be a non-negative number or None, got {timeout!r}")
        while not self._values:
            if not self._refs:
                raise StopIteration
            self._take(timeout)
        return self._values.pop()

    def _take(self, timeout: float | None) -> None:
        if self._ordered:
            ready, _ = api.wait(self._refs[:1], timeout=timeout, fetch_local=False)
        else:
            # everything done by now in one look, else block for the next one
            ready, _ = api.wait(self._refs, num_returns=len(self._refs), timeout=0)
            if not ready:
                ready, _ = api.wait(self._refs, num_returns=1, timeout=timeout)
        if not ready:
            raise TimeoutError(f"no result within {timeout} s")
        taken = {ref.binary() for ref in ready}
        self._refs = [ref for ref in self._refs if ref.binary() not in taken]
        values = [value for chunk in api.get(ready) for value in chunk]
        self._values = values[::-1]


class _Call:
    """``func`` with keyword arguments bound, for ``apply``: runs as ``call(*args)``."""

    __slots__ = ("func", "kwds")

    def __init__(self, func: Callable[..., Any], kwds: dict[str, Any]) -> None:
        self.func = func
        self.kwds = kwds

    def __call__(self, *args: Any) -> Any:
        return self.func(*args, **self.kwds)
