"""Generator tasks: ``num_returns="streaming"`` and ``num_returns="dynamic"``, as in Ray.

Streaming, step by step (the owner is the process that called ``.remote()``):

1. The owner registers a :class:`StreamState` under the task id *before* it submits the
   task, and gets an :class:`ObjectRefGenerator`. The task has one ordinary return object,
   index 0, the *end* object: ``None`` when the generator finished, the error when it
   raised, was cancelled, or its worker or actor died.
2. The worker runs the generator and reports each value as soon as it is yielded:
   ``GeneratorItem(task id, index, payload)``, index 1, 2, ... (object ids
   ``object_id_for(task, index)``); small values inline, large ones written to the store
   first, like a task result. Then ``TaskDone`` seals the end object.
3. The node creates each item's object owned by the owner (so the owner holds the ref
   the node counts) and seals it, which pushes it to the owner like a task result (value
   inline when small, readiness when large). Items and the end reach the owner in order
   on one connection. An index the node already has is dropped: a retried generator
   (its worker died, ``max_retries``) yields again from the start, and only new items go
   on.
4. The owner's reader thread adopts each arriving item as an ``ObjectRef`` and queues it
   in the stream; ``next()`` returns the queued refs in order, waits while none is
   there, and after the end returns the end ref once if it holds an error (so ``get``
   of the next ref raises, as in Ray), then stops.

A generator dropped before its end leaves the stream registered until the end object
arrives, dropping items as they come, so nothing stays referenced. Cancelling
(``cancel(gen)``) interrupts the task where it is (a signal on a task's main thread; a
flag checked after each item in a threaded actor; ``Task.cancel()`` in an async actor).

Dynamic: the worker puts each value as its own object (an error as a failed object) and
returns a :class:`DynamicObjectRefGenerator` of their refs as the task's one result; the
refs inside it keep the objects alive, as for any value that contains refs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import protocol as p
from .exceptions import RaySystemError, TaskCancelledError
from .ids import TASK_ID_SIZE, object_id_for
from .object_ref import ObjectRef
from .serialization import serialize

if TYPE_CHECKING:
    from .context import TaskContext
    from .core import CoreClient

STREAMING = 1
DYNAMIC = 2
"""``TaskSpec.generator``: how a generator task reports what it yields (0: not one)."""


# --- the owner's side ------------------------------------------------------------------


class StreamState:
    """What the owner knows of one streaming task; guarded by the client's lock."""

    __slots__ = ("abandoned", "end", "ended", "error_given", "items", "received", "waiters")

    def __init__(self) -> None:
        self.end: ObjectRef | None = None  # the end object (index 0); set at submission
        self.items: deque[ObjectRef] = deque()  # arrived, not yet handed out
        self.received = 0  # highest item index seen
        self.ended = False
        self.error_given = False
        self.abandoned = False  # the generator is gone: drop items as they come
        self.waiters: list[concurrent.futures.Future[None]] = []  # async ``__anext__``s

    def arrived(self, client: CoreClient, oid: bytes) -> list[concurrent.futures.Future[None]]:
        """Reader thread, client lock held: an object of this task reached the owner.
        Returns the async waiters to wake (outside the lock)."""
        index = int.from_bytes(oid[TASK_ID_SIZE:], "big")
        if index == 0:
            self.ended = True
        elif index > self.received:  # (older indexes: answers to a later subscribe)
            self.received = index
            # The node created it with the owner holding one ref: this ref is that one.
            client._local_refs[oid] = client._local_refs.get(oid, 0) + 1
            ref = ObjectRef(oid, client, _owned=True)
            if not self.abandoned:
                self.items.append(ref)
        else:
            return []
        waiters, self.waiters = self.waiters, []
        return waiters

    def take(self, client: CoreClient) -> ObjectRef | None:
        """Client lock held: the next ref to hand out, or None (nothing yet, or done)."""
        if self.items:
            return self.items.popleft()
        if self.ended and not self.error_given and self.end is not None:
            self.error_given = True
            if client._is_error(self.end.binary()):
                return self.end  # its get raises the task's error
        return None

    def done(self) -> bool:
        return self.ended and not self.items and self.error_given


class ObjectRefGenerator:
    """What ``.remote()`` returns for a generator task (``num_returns="streaming"``, the
    default for generator functions): iterate it, synchronously or with ``async for``,
    to get an ObjectRef per yielded value as soon as the task yields it.

    >>> @jupyter_ray.remote
    ... def count(n):
    ...     for i in range(n):
    ...         yield i
    >>> [jupyter_ray.get(ref) for ref in count.remote(3)]
    [0, 1, 2]

    When the task raises (or is cancelled, or its worker dies), the next ref's ``get``
    raises that error, and iteration stops after it. ``jupyter_ray.cancel(gen)`` cancels
    the task. A generator cannot be pickled or passed to other tasks (as in Ray).
    """

    def __init__(self, client: CoreClient, state: StreamState) -> None:
        assert state.end is not None
        self._client = client
        self._state = state
        self._end = state.end

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        return self._next(None)

    def _next(self, timeout: float | None) -> ObjectRef:
        state, client = self._state, self._client
        out: list[ObjectRef | None] = [None]

        def ready() -> bool:
            out[0] = state.take(client)
            return out[0] is not None or state.done()

        if not client.wait_until(ready, timeout):
            raise TimeoutError(f"no new value from the generator task within {timeout} s")
        ref = out[0]
        if ref is None:
            raise StopIteration
        return ref

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        state, client = self._state, self._client
        while True:
            with client._lock:
                ref = state.take(client)
                if ref is None and state.done():
                    raise StopAsyncIteration
                if ref is None:
                    if client.closed:
                        raise RaySystemError("lost the connection to the jupyter_ray node manager")
                    waiter: concurrent.futures.Future[None] = concurrent.futures.Future()
                    state.waiters.append(waiter)
            if ref is not None:
                return ref
            await asyncio.wrap_future(waiter)

    def completed(self) -> ObjectRef:
        """A ref that is ready when the task has finished (its ``get`` raises the task's
        error, if it failed)."""
        return self._end

    def is_finished(self) -> bool:
        """Whether the task has finished and every ref has been handed out."""
        with self._client._lock:
            return self._state.ended and not self._state.items

    def next_ready(self) -> bool:
        """Whether ``next()`` would return (or stop) without waiting."""
        with self._client._lock:
            state = self._state
            return bool(state.items) or state.ended

    def task_id(self) -> bytes:
        return self._end.binary()[:TASK_ID_SIZE]

    def __reduce__(self) -> Any:
        raise TypeError(
            "You cannot return or pass a generator to other task. Serializing an "
            "ObjectRefGenerator is not allowed: iterate it here and pass the refs it yields."
        )

    def __del__(self) -> None:
        # No lock here: the garbage collector may run this on any thread at any moment.
        state = self._state
        state.abandoned = True
        state.items.clear()

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self.task_id().hex()})"


class DynamicObjectRefGenerator:
    """The value of a ``num_returns="dynamic"`` task: the refs of the values it yielded.

    >>> refs = jupyter_ray.get(make_items.options(num_returns="dynamic").remote())
    >>> [jupyter_ray.get(r) for r in refs]     # doctest: +SKIP
    """

    def __init__(self, refs: list[ObjectRef]) -> None:
        self._refs = list(refs)

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __reduce__(self) -> Any:
        return (DynamicObjectRefGenerator, (self._refs,))

    def __repr__(self) -> str:
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"


# --- the worker's side -----------------------------------------------------------------


def not_a_generator(name: str, result: Any) -> TypeError:
    return TypeError(
        f"{name}() was called with num_returns='streaming' or 'dynamic' but returned "
        f"{type(result).__name__}, not a generator: use 'yield' in it, or drop num_returns."
    )


def report_item(client: CoreClient, task_id: bytes, index: int, value: Any) -> None:
    """Send one yielded value to the node as the task's item ``index``."""
    so = serialize(value)
    if so.size < p.INLINE_LIMIT:
        data = so.to_bytes()
        payload = p.Payload(data=data, size=len(data), type_name=so.type_name)
    else:
        payload = client.write_object(object_id_for(task_id, index), so)
    client.send(p.GeneratorItem(task_id, index, payload, so.contained))
    del value  # the item message is out: refs inside the value may go now


def stream(client: CoreClient, spec: p.TaskSpec, gen: Any, ctx: TaskContext) -> None:
    """Run a generator to its end, reporting each value as it comes (streaming)."""
    if not hasattr(gen, "__next__"):
        raise not_a_generator(spec.name, gen)
    for index, value in enumerate(gen, 1):
        report_item(client, spec.task_id, index, value)
        if ctx.cancel_requested:  # (a threaded actor's calls are not interrupted)
            gen.close()
            raise TaskCancelledError(spec.name)


async def stream_async(client: CoreClient, spec: p.TaskSpec, gen: Any, ctx: TaskContext) -> None:
    """``stream`` for an async actor: async generators, and plain ones too."""
    if not hasattr(gen, "__anext__"):
        stream(client, spec, gen, ctx)
        return
    index = 0
    async for value in gen:
        index += 1
        report_item(client, spec.task_id, index, value)


Wrap = Callable[[BaseException], BaseException]
"""How the worker turns an error a task raised into the error its caller gets."""


def collect(
    client: CoreClient, spec: p.TaskSpec, gen: Any, wrap: Wrap
) -> DynamicObjectRefGenerator:
    """Run a generator to its end, putting each value (dynamic); an error it raises
    becomes its last object, whose ``get`` raises it, as in Ray."""
    if not hasattr(gen, "__next__"):
        raise not_a_generator(spec.name, gen)
    refs: list[ObjectRef] = []
    try:
        for value in gen:
            refs.append(client.put_serialized(serialize(value)))
    except TaskCancelledError:
        raise
    except Exception as err:
        refs.append(client.put_error(wrap(err)))
    return DynamicObjectRefGenerator(refs)


async def collect_async(
    client: CoreClient, spec: p.TaskSpec, gen: Any, wrap: Wrap
) -> DynamicObjectRefGenerator:
    """``collect`` for an async actor: async generators, and plain ones too."""
    if not hasattr(gen, "__anext__"):
        return collect(client, spec, gen, wrap)
    refs: list[ObjectRef] = []
    try:
        async for value in gen:
            refs.append(client.put_serialized(serialize(value)))
    except Exception as err:
        refs.append(client.put_error(wrap(err)))
    return DynamicObjectRefGenerator(refs)


__all__ = [
    "DYNAMIC",
    "STREAMING",
    "DynamicObjectRefGenerator",
    "ObjectRefGenerator",
    "StreamState",
]
