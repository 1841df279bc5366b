"""Checking a remote call's arguments against the function's signature, in the caller.

As in Ray, ``f.remote(1, 2, 3)`` for ``def f(x)`` raises TypeError at once, where calling
``f`` locally would, instead of failing later inside a worker. A signature is kept as a
*shape*, a tuple of ``(name, kind, has_default)`` per parameter: it pickles (default
values may not), so actor handles carry their methods' shapes to every process.

The common shape (only positional parameters without defaults) is checked by counting;
anything else goes through :meth:`inspect.Signature.bind`, once per call, ~2 us.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

Shape = tuple[tuple[str, int, bool], ...]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_KIND: Any = type(inspect.Parameter.POSITIONAL_ONLY)  # inspect's _ParameterKind


def shape_of(fn: Any, drop_first: bool = False) -> Shape | None:
    """The shape of ``fn``'s signature (without its first parameter, ``self``, when
    ``drop_first``); None when it has none Python can tell (some builtins)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if drop_first:
        if not params or params[0].kind not in _POSITIONAL:
            # def method(*args): self arrives in args; nothing to check reliably
            return None if not params or params[0].kind != inspect.Parameter.VAR_POSITIONAL else ()
        params = params[1:]
    return tuple((p.name, int(p.kind), p.default is not inspect.Parameter.empty) for p in params)


@functools.lru_cache(maxsize=1024)
def _signature(shape: Shape) -> inspect.Signature:
    return inspect.Signature(
        [
            inspect.Parameter(
                name,
                _KIND(kind),
                default=None if has_default else inspect.Parameter.empty,
            )
            for name, kind, has_default in shape
        ]
    )


@functools.lru_cache(maxsize=1024)
def plain_count(shape: Shape) -> int:
    """How many positional arguments a shape takes when that is all it takes, else -1."""
    if all(kind in _POSITIONAL and not has_default for _, kind, has_default in shape):
        return len(shape)
    return -1


def check_call(
    shape: Shape | None, args: tuple[Any, ...], kwargs: dict[str, Any], name: str
) -> None:
    """TypeError, as a local call would raise, when ``args``/``kwargs`` do not fit."""
    if shape is None:
        return
    if not kwargs and plain_count(shape) == len(args):
        return
    try:
        _signature(shape).bind(*args, **kwargs)
    except TypeError as err:
        raise TypeError(f"{name}() got arguments that do not fit its signature: {err}") from None
