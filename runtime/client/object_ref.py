"""``ObjectRef``: a handle to a value in the object store (a task result or a put).

Every live ``ObjectRef`` in a process counts one local reference; the process tells its
node manager only when its count for an object goes from 0 to 1 or back. A ref pickled
into a value or a task's arguments is recorded, so the object outlives the ref that made
it for as long as the containing value or task needs it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ..common.serialization import note_contained_ref
from . import context

if TYPE_CHECKING:
    from .core import CoreClient


class ObjectRef:
    """A reference to an object; pass it to tasks, ``get`` it, ``await`` it.

    >>> ref = jupyter_ray.put(41)
    >>> jupyter_ray.get(ref) + 1
    42
    """

    __slots__ = ("__weakref__", "_client", "_id")

    def __init__(self, object_id: bytes, client: CoreClient | None = None, _owned: bool = False):
        if not isinstance(object_id, bytes):
            raise TypeError(f"ObjectRef takes bytes, not {type(object_id).__name__}")
        self._id = object_id
        self._client = client if client is not None else context.get_client()
        if self._client is not None and not _owned:
            self._client.add_local_ref(object_id)

    def __del__(self) -> None:
        client = self._client
        if client is not None:
            client.dead_refs.append(self._id)

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def task_id(self) -> bytes:
        return self._id[:16]

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def __copy__(self) -> ObjectRef:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ObjectRef:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        note_contained_ref(self._id)
        return (_rebuild, (self._id,))

    def __bool__(self) -> bool:
        return True

    def future(self) -> concurrent.futures.Future[Any]:
        """A ``concurrent.futures.Future`` that completes with the value (or its error)."""
        client = self._client or context.get_client()
        if client is None:
            raise RuntimeError("jupyter_ray is not initialized: call jupyter_ray.init() first")
        return client.future_of(self)

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self.future()).__await__()

    def as_future(self) -> asyncio.Future[Any]:
        """An ``asyncio.Future`` of the value, on the running event loop (as Ray's)."""
        return asyncio.wrap_future(self.future())


def _rebuild(object_id: bytes) -> ObjectRef:
    return ObjectRef(object_id)


ObjectID = ObjectRef
"""Ray's older name for ``ObjectRef``, kept for programs that still use it."""
