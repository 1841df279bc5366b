"""Results as they finish: ``as_completed`` and ``map_unordered``, as in ``ray.util``.

Both wait in batches (``chunk_size`` results per ``wait``) rather than one at a time,
and ``map_unordered`` keeps at most ``backpressure_size`` tasks in flight, so a long
iterable of items never floods the cluster with tasks at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .. import api
from ..runtime.client.object_ref import ObjectRef


def _check_size(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _batches(
    refs: list[ObjectRef], chunk_size: int, yield_obj_refs: bool, wait_kwargs: dict[str, Any]
) -> Iterator[tuple[list[Any], list[ObjectRef]]]:
    while refs:
        ready, refs = api.wait(refs, num_returns=min(chunk_size, len(refs)), **wait_kwargs)
        yield (ready if yield_obj_refs else api.get(ready)), refs


def as_completed(
    refs: Sequence[ObjectRef],
    *,
    chunk_size: int = 10,
    yield_obj_refs: bool = False,
    **kwargs: Any,
) -> Iterator[Any]:
    """Yield the results of ``refs`` (or the refs, with ``yield_obj_refs``) as they become
    ready, ``chunk_size`` at a time; extra keyword arguments go to ``wait``.

    >>> for value in as_completed([f.remote(x) for x in (3, 1, 2)], chunk_size=1):
    ...     print(value)   # doctest: +SKIP
    """
    _check_size("chunk_size", chunk_size)
    pending = list(refs)
    if not all(isinstance(r, ObjectRef) for r in pending):
        raise TypeError("as_completed() takes a list of ObjectRefs")
    for values, _ in _batches(pending, chunk_size, yield_obj_refs, kwargs):
        yield from values


def map_unordered(
    fn: Any,
    items: Iterable[Any],
    *,
    backpressure_size: int | None = 100,
    chunk_size: int = 10,
    yield_obj_refs: bool = False,
    **kwargs: Any,
) -> Iterator[Any]:
    """``fn.remote(item)`` for every item, yielding results as they finish, with at most
    ``backpressure_size`` tasks in flight (None: no limit). Extra keyword arguments go to
    ``wait``."""
    if not hasattr(fn, "remote"):
        raise TypeError(
            f"map_unordered() takes a remote function (decorated with @ray.remote), got {fn!r}"
        )
    _check_size("chunk_size", chunk_size)
    _check_size("backpressure_size", backpressure_size, allow_none=True)
    in_flight: list[ObjectRef] = []
    for item in items:
        if backpressure_size is not None and len(in_flight) >= backpressure_size:
            ready, in_flight = api.wait(
                in_flight, num_returns=min(chunk_size, len(in_flight)), **kwargs
            )
            yield from ready if yield_obj_refs else api.get(ready)
        in_flight.append(fn.remote(item))
    for values, _ in _batches(in_flight, chunk_size, yield_obj_refs, kwargs):
        yield from values
