"""Every error the runtime raises, under one root class, :class:`RayError`.

Each message says what happened and what to do next. All of them survive pickling, since
they travel from workers to drivers. A :class:`RayTaskError` re-raised in the driver is
also an instance of the user's own exception class, so ``except ValueError`` works, and it
renders the remote traceback in a notebook through ``_render_traceback_``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActorDiedError",
    "ActorUnavailableError",
    "GetTimeoutError",
    "ObjectLostError",
    "ObjectStoreFullError",
    "OwnerDiedError",
    "RayActorError",
    "RayError",
    "RaySystemError",
    "RayTaskError",
    "TaskCancelledError",
    "WorkerCrashedError",
]


class RayError(Exception):
    """Root of every error raised by jupyter_ray."""


class RaySystemError(RayError):
    """The runtime itself failed; the message says which part and why."""


class GetTimeoutError(RayError, TimeoutError):
    """``get`` (or ``ObjectRef.future().result``) did not finish within ``timeout``."""


class TaskCancelledError(RayError):
    """The task was cancelled with ``cancel()`` before it could return a value."""

    def __init__(self, task_name: str = "", message: str | None = None) -> None:
        self.task_name = task_name
        super().__init__(
            message
            or f"Task {task_name or ''} was cancelled by jupyter_ray.cancel(); "
            "submit it again if you still need its result."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task_name, str(self)))


class WorkerCrashedError(RayError):
    """The worker process running the task died and no retries were left."""


class ObjectLostError(RayError):
    """An object's value is gone and cannot be rebuilt."""


class OwnerDiedError(ObjectLostError):
    """The process that owned the object exited."""


class ObjectStoreFullError(RayError):
    """The object store could not make room for a new object, even by spilling."""


class RayActorError(RayError):
    """The actor is dead or unreachable; the message says why.

    ``cause`` is what its constructor raised, when that is why it died.
    """

    def __init__(self, message: str = "", cause: BaseException | None = None) -> None:
        self.cause = cause
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.cause))


class ActorDiedError(RayActorError):
    """The actor died: its constructor raised, it was killed, or its process crashed."""


class ActorUnavailableError(RayActorError):
    """The actor cannot take calls right now (for example while it restarts)."""


class PendingCallsLimitExceeded(RayError):
    """An actor handle made with ``max_pending_calls=N`` already has N calls pending."""


class RayTaskError(RayError):
    """A task or actor method raised; carries the remote traceback and the original error.

    Raised by ``get`` as an instance of a class that derives from both this class and the
    user's exception class, so either can be caught::

        try:
            jupyter_ray.get(ref)
        except ValueError as err:   # the user's exception type still matches
            print(err.cause)
    """

    def __init__(
        self,
        function_name: str,
        traceback_str: str,
        cause: BaseException | None,
        pid: int | None = None,
        cause_repr: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        self.cause_repr = cause_repr if cause_repr is not None else repr(cause)
        Exception.__init__(self, self._message())

    def _message(self) -> str:
        where = f" (pid={self.pid})" if self.pid is not None else ""
        return f"{self.function_name}(){where} raised:\n{self.traceback_str.rstrip()}"

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_task_error,
            (self.function_name, self.traceback_str, self.cause, self.pid, self.cause_repr),
        )

    def _render_traceback_(self) -> list[str]:
        """IPython hook: show the remote traceback instead of the local frames."""
        head = f"{type(self).__name__}: {self.function_name}() failed in a worker"
        if self.pid is not None:
            head += f" (pid={self.pid})"
        return [head, *self.traceback_str.rstrip().splitlines()]

    def as_instanceof_cause(self) -> RayTaskError:
        """Return this error as an instance of ``RayTaskError`` *and* the cause's class."""
        cause = self.cause
        if cause is None or isinstance(cause, RayTaskError):
            return self
        cause_cls = type(cause)
        if not isinstance(cause, Exception):
            return self
        cls = _dual_class(cause_cls)
        if cls is None:
            return self
        err: RayTaskError = Exception.__new__(cls)
        err.function_name = self.function_name
        err.traceback_str = self.traceback_str
        err.cause = cause
        err.pid = self.pid
        err.cause_repr = self.cause_repr
        err.args = (self._message(),)
        return err


_dual_classes: dict[type, type | None] = {}


def _dual_class(cause_cls: type) -> type | None:
    if cause_cls in _dual_classes:
        return _dual_classes[cause_cls]
    name = f"RayTaskError({cause_cls.__name__})"
    try:
        cls: type | None = type(
            name,
            (RayTaskError, cause_cls),
            {
                "__init__": RayTaskError.__init__,
                "__str__": RayTaskError.__str__,
                "__reduce__": RayTaskError.__reduce__,
                "__module__": __name__,
                "__qualname__": name,
            },
        )
    except TypeError:  # incompatible layouts (some C exception types); fall back
        cls = None
    _dual_classes[cause_cls] = cls
    return cls


def _rebuild_task_error(
    function_name: str,
    traceback_str: str,
    cause: BaseException | None,
    pid: int | None,
    cause_repr: str | None,
) -> RayTaskError:
    return RayTaskError(function_name, traceback_str, cause, pid, cause_repr).as_instanceof_cause()
