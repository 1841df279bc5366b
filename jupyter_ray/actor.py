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
import pickle
from collections import deque
from dataclasses import dataclass
from typing import Any

from ._client import auto_client, job_settings
from ._options import (
    DYNAMIC,
    STREAMING,
    merge_runtime_env,
    normalize_actor_options,
    normalize_method_options,
    place,
    placement,
    with_accelerator,
    with_labels,
)
from ._signature import Shape, check_call, plain_count, shape_of
from .api import wait
from .on_ray import backend as _on_ray
from .remote_function import check_pickled_size
from .runtime.client import context
from .runtime.client.context import exit_actor
from .runtime.client.generators import DYNAMIC as DYNAMIC_KIND
from .runtime.client.generators import STREAMING as STREAMING_KIND
from .runtime.client.generators import ObjectRefGenerator, StreamState
from .runtime.client.object_ref import ObjectRef
from .runtime.common import protocol as p
from .runtime.common.exceptions import ActorClassInheritanceException, PendingCallsLimitExceeded
from .runtime.common.serialization import deserialize, dumps_function, serialize

__all__ = [
    "ActorClass",
    "ActorClassInheritanceException",
    "ActorHandle",
    "ActorMethod",
    "exit_actor",
    "method",
]

INFINITE_RETRIES = 1 << 30
ACTOR_DEFAULT = -1
"""``TaskSpec.max_retries`` of a call that takes its actor's ``max_task_retries``."""
SPECIAL_METHODS = ("__ray_ready__", "__ray_call__", "__ray_terminate__")
"""Methods every actor has (the worker implements them)."""


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """What a handle knows of one actor method; it travels with handles (pickled)."""

    num_returns: int | str = 1
    shape: Shape | None = None  # the signature without self (see _signature.py)
    max_task_retries: int | None = None  # None: the actor's
    retry_exceptions: Any = False  # True, False, or a tuple of exception classes


def method(*args: Any, **options: Any) -> Any:
    """Decorate an actor method with call options, as Ray's ``@ray.method``:
    ``num_returns`` (an int, ``"streaming"`` or ``"dynamic"``), ``concurrency_group``
    (a group named in the actor's ``concurrency_groups``), ``max_task_retries`` and
    ``retry_exceptions`` (retry this method, on the actor's process dying, or on the
    exceptions it raises). ``@method`` without arguments changes nothing.

    >>> @jupyter_ray.remote
    ... class Client:
    ...     @jupyter_ray.method(max_task_retries=3, retry_exceptions=[ConnectionError])
    ...     def fetch(self, url): ...
    """
    if len(args) == 1 and callable(args[0]) and not options:
        return args[0]
    if args:
        raise TypeError(
            "@method takes keyword options only, such as @jupyter_ray.method(num_returns=2)"
        )
    options = normalize_method_options(options, "@method")
    options.pop("name", None)  # (a per-call option only)

    def decorate(fn: Any) -> Any:
        if "num_returns" in options:
            _check_generator(fn, options["num_returns"], getattr(fn, "__name__", "method"))
            fn.__ray_num_returns__ = options["num_returns"]
        if options.get("concurrency_group") is not None:
            fn.__ray_concurrency_group__ = options["concurrency_group"]
        if options.get("max_task_retries") is not None:
            fn.__ray_max_task_retries__ = options["max_task_retries"]
        if "retry_exceptions" in options:
            fn.__ray_retry_exceptions__ = options["retry_exceptions"]
        return fn

    return decorate


def _check_generator(fn: Any, num_returns: Any, name: str) -> None:
    """``num_returns="streaming"``/``"dynamic"`` is for generators only (as in Ray)."""
    if num_returns in (STREAMING, DYNAMIC) and not _is_generator(fn):
        raise ValueError(
            f"num_returns={num_returns!r} can only be used with generator functions "
            f"(functions that use 'yield'); {name} is not one."
        )


def _is_generator(fn: Any) -> bool:
    fn = inspect.unwrap(getattr(fn, "__func__", fn))
    return inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)


def _method_table(cls: type) -> dict[str, MethodSpec]:
    """Every method a handle to ``cls`` can call, with what it needs to know of each."""
    methods: dict[str, MethodSpec] = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("__") and name != "__call__":
            continue
        callable_member = inspect.isfunction(member) or inspect.ismethod(member)
        if not callable_member and not inspect.ismethoddescriptor(member):
            continue
        raw = inspect.getattr_static(cls, name, None)
        bound = isinstance(raw, staticmethod | classmethod)  # no self to drop
        default_returns: int | str = STREAMING if _is_generator(member) else 1
        methods[name] = MethodSpec(
            num_returns=getattr(member, "__ray_num_returns__", default_returns),
            shape=shape_of(member, drop_first=not bound),
            max_task_retries=getattr(member, "__ray_max_task_retries__", None),
            retry_exceptions=_exceptions_option(getattr(member, "__ray_retry_exceptions__", False)),
        )
    methods["__ray_ready__"] = MethodSpec(shape=())
    methods["__ray_call__"] = MethodSpec()
    methods["__ray_terminate__"] = MethodSpec(shape=())
    return methods


def _exceptions_option(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else bool(value)


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


def _public(names: Any) -> list[str]:
    return sorted(n for n in names if not n.startswith("__"))


class ActorClass:
    """A class decorated with ``@remote``; ``Cls.remote(...)`` starts an actor."""

    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = normalize_actor_options(options)
        self._name = cls.__name__
        self._methods = _method_table(cls)
        self._async = _is_async(cls)
        self._init_shape = shape_of(inspect.getattr_static(cls, "__init__"), drop_first=True)
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
        raise ActorClassInheritanceException(
            f"Cannot subclass the actor class '{self._name}': inheriting from actor classes "
            "is not supported (as in Ray). Inherit from the original class (or a common "
            "base) and make the subclass an actor with @jupyter_ray.remote."
        )

    def __getattr__(self, name: str) -> Any:
        # Class attributes, static methods and class methods of the original class, as
        # in Ray (``Cls.CONSTANT``, ``Cls.from_config(...)``).
        if name.startswith("__") or "_cls" not in self.__dict__:
            raise AttributeError(name)
        try:
            return getattr(self._cls, name)
        except AttributeError:
            raise AttributeError(f"actor class {self._name} has no attribute {name!r}") from None

    def __dir__(self) -> list[str]:
        # notebook completion: this object's own names and the class's public ones
        return sorted({*object.__dir__(self), *_public(dir(self._cls))})

    def options(self, **options: Any) -> _BoundActorOptions:
        """Override options for one actor: ``Cls.options(name="a").remote()``."""
        return _BoundActorOptions(self, normalize_actor_options(options))

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        """Start an actor running this class; returns its handle at once."""
        check_call(self._init_shape, args, kwargs, f"{self._name}.__init__")
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
            check_pickled_size(payload, "actor", self._name)
            self._pickled = (hashlib.sha1(payload).digest()[:16], payload)
        return self._pickled

    def _create(self, overrides: dict[str, Any], args: Any, kwargs: Any) -> ActorHandle:
        if _on_ray.ray is not None:  # the Ray backend: Ray hosts it (jupyter_ray.on_ray)
            options = {**self._options, **overrides}
            return _on_ray.create_actor(self, self._cls, options, args, kwargs)
        opts = {**self._options, **overrides}
        client = auto_client()
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
        strategy, capture = placement(
            opts.get("scheduling_strategy"), opts.get("placement_group", "default") is None
        )
        demand = place(demand, strategy, self._name, actor_default=not held)
        demand = with_accelerator(demand, opts.get("accelerator_type"))
        demand = with_labels(demand, opts.get("label_selector"), opts.get("fallback_strategy"))
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
            detached=_lifetime(opts) == "detached",
            get_if_exists=bool(opts.get("get_if_exists")),
            max_restarts=int(opts.get("max_restarts", 0)),
            max_task_retries=int(opts.get("max_task_retries", 0)),
            max_concurrency=int(opts.get("max_concurrency", 1000 if self._async else 1)),
            is_async=self._async,
            hold_resources=held,
            concurrency_groups=groups,
            method_groups=method_groups,
            out_of_order=_out_of_order(opts, self._async),
        )
        env = merge_runtime_env(context.current_runtime_env(), opts.get("runtime_env"))
        info, cookie = client.create_actor(
            cls_id, payload, self._name, args, kwargs, demand, actor_options, env, capture
        )
        handle = ActorHandle(info.actor_id, cookie, info.options.class_name, methods)
        handle._max_pending = int(opts.get("max_pending_calls", -1))
        return handle

    def __repr__(self) -> str:
        return f"<jupyter_ray actor class {self._name}>"


def _lifetime(opts: dict[str, Any]) -> str | None:
    """The actor's ``lifetime``, else the job's ``default_actor_lifetime`` (JobConfig)."""
    lifetime: str | None = opts.get("lifetime") or job_settings.get("default_actor_lifetime")
    return lifetime


def _out_of_order(opts: dict[str, Any], is_async: bool) -> bool:
    """Whether calls may run as soon as their arguments are ready (Ray's
    ``allow_out_of_order_execution``: by default for async and threaded actors)."""
    threaded = int(opts.get("max_concurrency") or 1) > 1
    allowed = opts.get("allow_out_of_order_execution")
    if allowed is None:
        return is_async or threaded
    if not allowed and (is_async or threaded):
        raise ValueError(
            "async and threaded actors (max_concurrency > 1) run calls out of order: "
            "drop allow_out_of_order_execution=False, or use a plain actor"
        )
    return bool(allowed)


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
        self,
        actor_id: bytes,
        cookie: ObjectRef | None,
        class_name: str,
        methods: dict[str, MethodSpec],
    ) -> None:
        self._actor_id = actor_id
        self._cookie = cookie
        self._class_name = class_name
        self._methods = methods
        # max_pending_calls of the handle made by Cls.remote(): -1, or the limit and the
        # first result of each call that may still be pending
        self._max_pending = -1
        self._pending: deque[ObjectRef] = deque()
        self._plans: dict[str, _CallPlan] = {}  # per method, for calls without options

    def _check_pending(self) -> None:
        """Raise PendingCallsLimitExceeded when the handle's limit is reached."""
        if len(self._pending) < self._max_pending:
            return
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
        if methods is None or (name.startswith("__") and name not in SPECIAL_METHODS):
            raise AttributeError(name)
        if name not in methods:
            if name in SPECIAL_METHODS:  # a handle from an older table
                return ActorMethod(self, name, MethodSpec())
            raise AttributeError(
                f"'{self._class_name}' actor has no method '{name}'; its methods are: "
                f"{', '.join(_public(methods))}"
            )
        return ActorMethod(self, name, methods[name])

    def __dir__(self) -> list[str]:
        # notebook completion lists the actor's methods (as Ray's handles do)
        return sorted({*object.__dir__(self), *_public(self._methods)})

    def __reduce__(self) -> tuple[Any, ...]:
        # A handle from get_actor() is weak (no cookie): so are the copies made of it.
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

    def __init__(self, handle: ActorHandle, name: str, spec: MethodSpec) -> None:
        self._handle = handle
        self._name = name
        self._spec = spec

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of '{self._name}()', try "
            f"'{self._name}.remote()'."
        )

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method in the actor; returns an ObjectRef (a list of them, or an
        ObjectRefGenerator, as ``num_returns`` says)."""
        return self._submit({}, args, kwargs)

    def options(self, **options: Any) -> _BoundMethodOptions:
        """Options for one call: ``num_returns``, ``name``, ``concurrency_group``,
        ``max_task_retries``, ``retry_exceptions``."""
        return _BoundMethodOptions(self, normalize_method_options(options, "actor methods"))

    def _plan(self, overrides: dict[str, Any]) -> _CallPlan:
        """How a call with these options is submitted: worked out once per method of a
        handle for calls without options (the hot path), else for each call."""
        if not overrides:
            plan = self._handle._plans.get(self._name)
            if plan is not None:
                return plan
        spec = self._spec
        num_returns = overrides.get("num_returns", spec.num_returns)
        retries = overrides.get("max_task_retries", spec.max_task_retries)
        if retries is None:
            retries = ACTOR_DEFAULT
        elif retries == -1:
            retries = INFINITE_RETRIES
        retry_exceptions = _exceptions_option(
            overrides.get("retry_exceptions", spec.retry_exceptions)
        )
        if isinstance(retry_exceptions, tuple):
            retry_exceptions = pickle.dumps(list(retry_exceptions))
        generator = 0
        if num_returns in (STREAMING, DYNAMIC):
            generator = STREAMING_KIND if num_returns == STREAMING else DYNAMIC_KIND
        shape = spec.shape
        qualname = f"{self._handle._class_name}.{self._name}"
        plan = _CallPlan(
            qualname=qualname,
            name=overrides.get("name") or qualname,
            num_returns=1 if generator else num_returns,
            streaming=num_returns == STREAMING,
            generator=generator,
            retries=retries,
            retry_exceptions=retry_exceptions,
            concurrency_group=overrides.get("concurrency_group"),
            # the only shape checked without inspect: this many positional arguments
            positional=-2 if shape is None else plain_count(shape),
        )
        if not overrides:
            self._handle._plans[self._name] = plan
        return plan

    def _submit(self, overrides: dict[str, Any], args: Any, kwargs: Any) -> Any:
        handle = self._handle
        plan = self._plan(overrides)
        if plan.positional != -2 and (kwargs or len(args) != plan.positional):
            check_call(self._spec.shape, args, kwargs, plan.qualname)
        client = auto_client()
        if handle._max_pending > 0:
            handle._check_pending()
        stream = StreamState() if plan.streaming else None
        num_returns = plan.num_returns
        refs = client.submit(
            b"",
            None,
            plan.name,
            args,
            kwargs,
            num_returns,
            {},
            plan.retries,
            plan.retry_exceptions,
            0,
            actor_id=handle._actor_id,
            method=self._name,
            concurrency_group=plan.concurrency_group,
            generator=plan.generator,
            stream=stream,
        )
        if handle._max_pending > 0 and refs:
            handle._pending.append(refs[0])
        if stream is not None:
            return ObjectRefGenerator(client, stream)
        if num_returns == 1:
            return refs[0]
        if num_returns == 0:
            return None
        return refs


@dataclass(frozen=True, slots=True)
class _CallPlan:
    """An actor method's call options, resolved (see ``ActorMethod._plan``)."""

    qualname: str  # Cls.method, for errors
    name: str  # the task's name
    num_returns: int
    streaming: bool
    generator: int
    retries: int
    retry_exceptions: bool | bytes
    concurrency_group: str | None
    positional: int  # see _signature.plain_count; -2: no signature to check


class _BoundMethodOptions:
    def __init__(self, method: ActorMethod, overrides: dict[str, Any]) -> None:
        self._method = method
        self._overrides = overrides

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._method._submit(self._overrides, args, kwargs)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """Return a handle to the live actor called ``name``; ValueError if there is none."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor() takes a non-empty actor name, got {name!r}")
    client = auto_client()
    ns = namespace or context.current_namespace() or "default"
    info = client.query("get_actor", (name, ns))
    if info is None:
        raise ValueError(
            f"There is no live actor named {name!r} in namespace {ns!r}. Check the name, "
            "the namespace, and that the actor has not died; jupyter_ray.util."
            "list_named_actors() lists the live ones."
        )
    methods = deserialize(memoryview(info.options.methods))
    # Weak, as in Ray: a handle looked up by name does not keep the actor alive; the
    # handles that descend from its creation do (or lifetime="detached").
    return ActorHandle(info.actor_id, None, info.options.class_name, methods)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Kill the actor's process now; with ``no_restart=False`` it restarts if allowed."""
    if not isinstance(actor, ActorHandle):
        raise TypeError(
            f"kill() takes an actor handle (from Cls.remote() or get_actor()), got "
            f"{type(actor).__name__}"
        )
    auto_client().kill_actor(actor._actor_id, no_restart)


def current_actor_id() -> bytes | None:
    return context.actor_id
