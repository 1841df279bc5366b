"""The ``@remote`` decorator: a :class:`RemoteFunction` for a function, an
:class:`ActorClass` for a class."""

from __future__ import annotations

import inspect
from typing import Any

from .actor import ActorClass
from .remote_function import RemoteFunction


class RemoteDecoratorError(TypeError, AssertionError):
    """``@remote()`` with empty parentheses, or with positional arguments: a TypeError,
    and an AssertionError as Ray raises there."""


def remote(*args: Any, **options: Any) -> Any:
    """Make a function a remote function: ``@remote`` or ``@remote(num_cpus=2, ...)``."""
    if len(args) == 1 and not options:
        return _make_remote(args[0], {})
    if args or not options:
        raise RemoteDecoratorError(
            "The @remote decorator must be applied either with no arguments and no "
            "parentheses, as '@jupyter_ray.remote', or with keyword options, as "
            "'@jupyter_ray.remote(num_cpus=1, ...)'."
        )

    def decorator(target: Any) -> Any:
        return _make_remote(target, options)

    return decorator


def _make_remote(target: Any, options: dict[str, Any]) -> Any:
    if inspect.isclass(target):
        return ActorClass(target, options)
    if not callable(target):
        raise TypeError(f"@remote takes a function, got {type(target).__name__}")
    return RemoteFunction(target, options)
