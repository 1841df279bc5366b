"""Actors: what ``@jupyter_ray.remote`` makes of a class, and handles to running actors.

>>> @jupyter_ray.remote
... class Counter:
...     def __init__(self):
...         self.n = 0
...     def incr(self):
...         self.n += 1
...         return self.n
>>> c = Counter.remote()
>>> jupyter_ray.get([c.incr.remote() for _ in range(3)])
[1, 2, 3]
"""

from __future__ import annotations

import hashlib
import inspect
import numbers
from collections import deque
from typing import Any

from ._options import (
    check_placement_options,
    merge_runtime_env,
    place,
    validate_resources,
    with_accelerator,
)
from .remote_function import _client
from .runtime import context
from .runtime import protocol as p
from .runtime.exceptions import PendingCallsLimitExceeded
from .runtime.object_ref import ObjectRef
from .runtime.serialization import dumps_function, serialize
from .runtime.worker import exit_actor

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "exit_actor", "method"]

ACTOR_OPTIONS = frozenset(
    {
        "num_cpus",
        "num_gpus",
        "resources",
        "memory",
        "name",
        "namespace",
        "get_if_exists",
        "lifetime",
        "max_restarts",
        "max_task_retries",
        "max_concurrency",
        "max_pending_calls",
        "scheduling_strategy",
        "runtime_env",
        "concurrency_groups",
        "accelerator_type",
    }
)


def method(
    *, num_returns: int = 1, concurrency_group: str | None = None, **unsupported: Any
) -> Any:
    """Decorate an actor method with call options: ``@jupyter_ray.method(num_returns=2)``,
    ``@jupyter_ray.method(concurrency_group="io")`` (a group named in the actor's
    ``concurrency_groups`` option)."""
    if unsupported:
        raise ValueError(
            f"Invalid option(s) {', '.join(sorted(unsupported))} for @method; "
            "the supported ones are num_returns and concurrency_group."
        )
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns < 0:
        raise ValueError(f"num_returns must be an int >= 0, got {num_returns!r}")
    if concurrency_group is not None and (
        not isinstance(concurrency_group, str) or not concurrency_group
    ):
        raise ValueError(f"concurrency_group must be a non-empty string, got {concurrency_group!r}")

    def decorate(fn: Any) -> Any:
        fn.__ray_num_returns__ = num_returns
        if concurrency_group is not None:
            fn.__ray_concurrency_group__ = concurrency_group
        return fn

    return decorate


def _int_at_least(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _validate(opts: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(opts) - ACTOR_OPTIONS)
    if unknown:
        raise ValueError(
            f"Invalid option keyword{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"for actors. Valid ones are: {', '.join(sorted(ACTOR_OPTIONS))}."
        )
    out = dict(opts)
    for key in ("num_cpus", "num_gpus", "memory"):
        value = out.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{key} must be a number, got {value!r}")
            if value < 0:
                raise ValueError(f"{key} must be >= 0, got {value!r}")
    if "resources" in out:
        out["resources"] = validate_resources(out["resources"])
    check_placement_options(out)
    name = out.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    namespace = out.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise ValueError(f"namespace must be a non-empty string, got {namespace!r}")
    if out.get("lifetime") not in (None, "detached", "non_detached"):
        raise ValueError(
            f"lifetime must be None, 'detached' or 'non_detached', got {out['lifetime']!r}"
        )
    if out.get("lifetime") == "detached" and not name:
        raise ValueError("a detached actor needs a name, so it can be found: add name=...")
    if "max_restarts" in out:
        _int_at_least("max_restarts", out["max_restarts"], -1)
    if "max_task_retries" in out:
        _int_at_least("max_task_retries", out["max_task_retries"], -1)
    if "max_concurrency" in out:
        _int_at_least("max_concurrency", out["max_concurrency"], 1)
    groups = out.get("concurrency_groups")
    if groups is not None and not _group_sizes(groups):
        raise ValueError(
            "concurrency_groups must map group names to how many calls of the group may "
            f"run at once (ints >= 1), such as {{'io': 4}}; got {groups!r}"
        )
    if "max_pending_calls" in out:
        limit = out["max_pending_calls"]
        if isinstance(limit, bool) or not isinstance(limit, int) or not (limit == -1 or limit > 0):
            raise ValueError(
                f"max_pending_calls must be -1 (no limit) or a positive int, got {limit!r}"
            )
    if out.get("get_if_exists") and not name:
        raise ValueError("get_if_exists=True needs a name=... to look the actor up by")
    return out


def _method_table(cls: type) -> dict[str, int]:
    methods: dict[str, int] = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("__") and name != "__call__":
            continue
        if inspect.isfunction(member) or inspect.ismethoddescriptor(member):
            methods[name] = int(getattr(member, "__ray_num_returns__", 1))
    methods["__ray_terminate__"] = 1
    return methods


def _group_sizes(groups: Any) -> bool:
    """Whether ``groups`` maps non-empty names to ints >= 1."""
    return isinstance(groups, dict) and all(
        isinstance(k, str) and k and isinstance(v, int) and not isinstance(v, bool) and v >= 1
        for k, v in groups.items()
    )


def _method_groups(cls: type) -> dict[str, str]:
    """The methods that ``@method(concurrency_group=...)`` put in a group."""
    return {
        name: member.__ray_concurrency_group__
        for name, member in inspect.getmembers(cls)
        if hasattr(member, "__ray_concurrency_group__")
    }


def _is_async(cls: type) -> bool:
    return any(
        inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
        for _, m in inspect.getmembers(cls, inspect.isfunction)
    )


class ActorClass:
    """A class decorated with ``@remote``; ``Cls.remote(...)`` starts an actor."""

    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = _validate(options)
        self._name = cls.__name__
        self._methods = _method_table(cls)
        self._async = _is_async(cls)
        self._pickled: tuple[bytes, bytes] | None = None
        self.__doc__ = cls.__doc__
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of '{self._name}()', use "
            f"'{self._name}.remote()'."
        )

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        raise TypeError(
            f"Cannot subclass the actor class {self._name}: subclass the original class "
            "and decorate the subclass with @jupyter_ray.remote instead."
        )

    def options(self, **options: Any) -> _BoundActorOptions:
        """Override options for one actor: ``Cls.options(name="a").remote()``."""
        return _BoundActorOptions(self, _validate(options))

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        """Start an actor running this class; returns its handle at once."""
        return self._create({}, args, kwargs)

    def _payload(self) -> tuple[bytes, bytes]:
        if self._pickled is None:
            try:
                payload = dumps_function(self._cls)
            except Exception as err:
                raise TypeError(
                    f"Could not serialize the actor class {self._name}: {err}. Avoid "
                    "class attributes that hold locks, files, sockets or similar objects."
                ) from err
            self._pickled = (hashlib.sha1(payload).digest()[:16], payload)
        return self._pickled

    def _create(self, overrides: dict[str, Any], args: Any, kwargs: Any) -> ActorHandle:
        opts = {**self._options, **overrides}
        client = _client()
        cls_id, payload = self._payload()
        held = any(opts.get(k) is not None for k in ("num_cpus", "num_gpus", "memory"))
        held = held or bool(opts.get("resources"))
        demand: dict[str, float] = dict(opts.get("resources") or {})
        if held:
            if opts.get("num_cpus"):
                demand["CPU"] = float(opts["num_cpus"])
            if opts.get("num_gpus"):
                demand["GPU"] = float(opts["num_gpus"])
            if opts.get("memory"):
                demand["memory"] = float(opts["memory"])
        else:
            demand = {"CPU": 1.0}  # needed to place the actor, given back once it runs
        demand = place(demand, opts.get("scheduling_strategy"))
        demand = with_accelerator(demand, opts.get("accelerator_type"))
        methods = dict(self._methods)
        groups = dict(opts.get("concurrency_groups") or {})
        method_groups = _method_groups(self._cls)
        for method_name, group in method_groups.items():
            if group not in groups:
                raise ValueError(
                    f"{self._name}.{method_name} is in concurrency group {group!r}, which "
                    f"this actor does not define; pass concurrency_groups={{{group!r}: N}} "
                    "to .options() or @remote"
                )
        actor_options = p.ActorOptions(
            class_name=self._name,
            methods=serialize(methods).to_bytes(),
            name=opts.get("name"),
            namespace=opts.get("namespace") or context.current_namespace() or "default",
            detached=opts.get("lifetime") == "detached",
            get_if_exists=bool(opts.get("get_if_exists")),
            max_restarts=int(opts.get("max_restarts", 0)),
            max_task_retries=int(opts.get("max_task_retries", 0)),
            max_concurrency=int(opts.get("max_concurrency", 1000 if self._async else 1)),
            is_async=self._async,
            hold_resources=held,
            concurrency_groups=groups,
            method_groups=method_groups,
        )
        env = merge_runtime_env(context.current_runtime_env(), opts.get("runtime_env"))
        info, cookie = client.create_actor(
            cls_id, payload, self._name, args, kwargs, demand, actor_options, env
        )
        handle = ActorHandle(info.actor_id, cookie, info.options.class_name, methods)
        handle._max_pending = int(opts.get("max_pending_calls", -1))
        return handle

    def __repr__(self) -> str:
        return f"<jupyter_ray actor class {self._name}>"


class _BoundActorOptions:
    def __init__(self, actor_class: ActorClass, overrides: dict[str, Any]) -> None:
        self._actor_class = actor_class
        self._overrides = overrides

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        return self._actor_class._create(self._overrides, args, kwargs)


class ActorHandle:
    """A handle to a running actor; pass it to tasks and other actors freely.

    The actor lives while any handle to it (anywhere) or any pending call exists, unless
    it is detached.
    """

    def __init__(
        self, actor_id: bytes, cookie: ObjectRef, class_name: str, methods: dict[str, int]
    ) -> None:
        self._actor_id = actor_id
        self._cookie = cookie
        self._class_name = class_name
        self._methods = methods
        # max_pending_calls of the handle made by Cls.remote(): -1, or the limit and the
        # first result of each call that may still be pending
        self._max_pending = -1
        self._pending: deque[ObjectRef] = deque()

    def _check_pending(self) -> None:
        """Raise PendingCallsLimitExceeded when the handle's limit is reached."""
        if len(self._pending) < self._max_pending:
            return
        from .api import wait

        _, pending = wait(
            list(self._pending), num_returns=len(self._pending), timeout=0, fetch_local=False
        )
        self._pending = deque(pending)
        if len(self._pending) >= self._max_pending:
            raise PendingCallsLimitExceeded(
                f"the handle to {self._class_name} has {len(self._pending)} calls pending, its "
                f"max_pending_calls; wait for some results (ray.get/ray.wait) before calling "
                "again, or raise the limit"
            )

    def __getattr__(self, name: str) -> ActorMethod:
        methods = self.__dict__.get("_methods")
        if methods is None or (name.startswith("__") and name != "__ray_terminate__"):
            raise AttributeError(name)
        if name not in methods:
            raise AttributeError(
                f"'{self._class_name}' actor has no method '{name}'; its methods are: "
                f"{', '.join(sorted(m for m in methods if not m.startswith('__')))}"
            )
        return ActorMethod(self, name, methods[name])

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActorHandle, (self._actor_id, self._cookie, self._class_name, self._methods))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id.hex()[:16]})"

    @property
    def _ray_actor_id(self) -> str:
        return self._actor_id.hex()


class ActorMethod:
    """``handle.method``: call ``.remote(...)`` on it to run the method in the actor."""

    def __init__(self, handle: ActorHandle, name: str, num_returns: int) -> None:
        self._handle = handle
        self._name = name
        self._num_returns = num_returns

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of '{self._name}()', try "
            f"'{self._name}.remote()'."
        )

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._submit(self._num_returns, None, args, kwargs)

    def options(self, **options: Any) -> _BoundMethodOptions:
        unknown = set(options) - {"num_returns", "name", "concurrency_group"}
        if unknown:
            raise ValueError(
                f"Invalid option(s) {', '.join(sorted(unknown))} for actor methods; "
                "valid ones are: concurrency_group, name, num_returns."
            )
        n = options.get("num_returns", self._num_returns)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"num_returns must be an int >= 0, got {n!r}")
        group = options.get("concurrency_group")
        if group is not None and (not isinstance(group, str) or not group):
            raise ValueError(f"concurrency_group must be a non-empty string, got {group!r}")
        return _BoundMethodOptions(self, n, options.get("name"), group)

    def _submit(
        self, num_returns: int, name: str | None, args: Any, kwargs: Any, group: str | None = None
    ) -> Any:
        client = _client()
        handle = self._handle
        if handle._max_pending > 0:
            handle._check_pending()
        refs = client.submit(
            b"",
            None,
            name or f"{handle._class_name}.{self._name}",
            args,
            kwargs,
            num_returns,
            {},
            0,
            False,
            0,
            actor_id=handle._actor_id,
            method=self._name,
            concurrency_group=group,
        )
        if handle._max_pending > 0 and refs:
            handle._pending.append(refs[0])
        if num_returns == 1:
            return refs[0]
        if num_returns == 0:
            return None
        return refs


class _BoundMethodOptions:
    def __init__(
        self, method: ActorMethod, num_returns: int, name: str | None, group: str | None
    ) -> None:
        self._method = method
        self._num_returns = num_returns
        self._name = name
        self._group = group

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._method._submit(self._num_returns, self._name, args, kwargs, self._group)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """Return a handle to the live actor called ``name``; ValueError if there is none."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor() takes a non-empty actor name, got {name!r}")
    client = _client()
    ns = namespace or context.current_namespace() or "default"
    info = client.query("get_actor", (name, ns))
    if info is None:
        raise ValueError(
            f"There is no live actor named {name!r} in namespace {ns!r}. Check the name, "
            "the namespace, and that the actor has not died; jupyter_ray.util."
            "list_named_actors() lists the live ones."
        )
    from .runtime.serialization import deserialize

    methods = deserialize(memoryview(info.options.methods))
    return ActorHandle(
        info.actor_id, ObjectRef(info.cookie, client), info.options.class_name, methods
    )


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Kill the actor's process now; with ``no_restart=False`` it restarts if allowed."""
    if not isinstance(actor, ActorHandle):
        raise TypeError(
            f"kill() takes an actor handle (from Cls.remote() or get_actor()), got "
            f"{type(actor).__name__}"
        )
    _client().send(p.KillActor(actor._actor_id, no_restart))


def current_actor_id() -> bytes | None:
    return context.actor_id
