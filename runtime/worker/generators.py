"""Generator tasks as the worker runs them: streaming reports each value as it is
yielded (``GeneratorItem``), dynamic puts each as its own object and returns a
:class:`DynamicObjectRefGenerator`. The whole story is in ``client/generators.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..client.generators import DynamicObjectRefGenerator
from ..client.object_ref import ObjectRef
from ..common import protocol as p
from ..common.exceptions import TaskCancelledError
from ..common.ids import object_id_for
from ..common.serialization import serialize

if TYPE_CHECKING:
    from ..client.context import TaskContext
    from ..client.core import CoreClient


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
    client.send(
        p.GeneratorItem(task_id=task_id, index=index, payload=payload, contained=so.contained)
    )
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
