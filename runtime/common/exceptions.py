"""Every error the runtime raises, under one root class, :class:`RayError`.

Each message says what happened and what to do next. All of them survive pickling, since
they travel from workers to drivers. A :class:`RayTaskError` re-raised in the driver is
also an instance of the user's own exception class, so ``except ValueError`` works, and it
renders the remote traceback in a notebook through ``_render_traceback_``.
"""

from __future__ import annotations

import linecache
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ActorClassInheritanceException",
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
    "RemoteSection",
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


class ActorClassInheritanceException(TypeError):
    """A class derives from a class decorated with ``@remote`` (as in Ray, a TypeError):
    derive from the undecorated class instead."""


class PendingCallsLimitExceeded(RayError):
    """An actor handle made with ``max_pending_calls=N`` already has N calls pending."""


Frame = tuple[str, int, str, str]
"""One frame of a remote traceback: file name, line number, function name and source line
(``""`` when the worker had no source for that file, as for a notebook cell's code)."""

CAUSE_INTRO = "The above exception was the direct cause of the following exception:"
CONTEXT_INTRO = "During handling of the above exception, another exception occurred:"

frame_label: Callable[[str, int], str | None] | None = None
"""Set by the notebook layer: how a frame's place reads there (``Cell In[5], line 3``
for the code of a cell); ``None`` (or a hook answering None) keeps Python's
``File "...", line N``."""


@dataclass(slots=True)
class RemoteSection:
    """One exception of a remote error's chain, as plain data that travels to the driver.

    The driver renders it with its own source cache, so frames of functions defined in a
    notebook cell (whose source only the kernel has) show their lines too.
    """

    frames: list[Frame]
    exception: list[str]  # traceback.format_exception_only lines, or a header if nested
    intro: str = ""  # how this exception relates to the one printed before it
    nested: list[RemoteSection] | None = None  # a remote error raised by a nested get()

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteSection, (self.frames, self.exception, self.intro, self.nested))


def capture_traceback(err: BaseException, skip_files: frozenset[str]) -> list[RemoteSection]:
    """The chain of ``err`` (causes and contexts, oldest first) as :class:`RemoteSection`s.

    Runs in the worker. Frames in ``skip_files`` (the worker's own machinery) are left out.
    """
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    exc: BaseException | None = err
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if exc.__cause__ is not None:
            nxt, intro = exc.__cause__, CAUSE_INTRO
        elif exc.__context__ is not None and not exc.__suppress_context__:
            nxt, intro = exc.__context__, CONTEXT_INTRO
        else:
            nxt, intro = None, ""
        chain.append((exc, intro))
        exc = nxt
    sections = []
    for exc, intro in reversed(chain):
        frames = [
            (f.filename, f.lineno or 0, f.name, (f.line or "").strip())
            for f in traceback.extract_tb(exc.__traceback__)
            if f.filename not in skip_files
        ]
        if isinstance(exc, RayTaskError) and exc.sections:
            header = [f"{type(exc).__name__}: {exc._headline()} raised:"]
            sections.append(RemoteSection(frames, header, intro, exc.sections))
        else:
            sections.append(
                RemoteSection(frames, traceback.format_exception_only(type(exc), exc), intro)
            )
    return sections


def format_sections(sections: list[RemoteSection]) -> list[str]:
    """Render a remote traceback as lines, the way Python prints one.

    Source lines the worker could not read come from this process's ``linecache``: in a
    kernel, IPython keeps every cell's source there under the cell's file name.
    """
    label = frame_label
    out: list[str] = []
    for section in sections:
        if section.intro:
            out += ["", section.intro, ""]
        if section.frames:
            out.append("Traceback (most recent call last):")
        for filename, lineno, name, line in section.frames:
            where = None
            if label is not None:
                try:
                    where = label(filename, lineno)
                except Exception:  # a broken hook must not hide the error being shown
                    where = None
            if where is None:
                where = f'File "{filename}", line {lineno}'
            out.append(f"  {where}, in {name}")
            text = line or linecache.getline(filename, lineno).strip()
            if text:
                out.append(f"    {text}")
        out += "".join(section.exception).rstrip("\n").splitlines()
        if section.nested:
            out += format_sections(section.nested)
    return out


class RayTaskError(RayError):
    """A task or actor method raised; carries the remote traceback and the original error.

    Raised by ``get`` as an instance of a class that derives from both this class and the
    user's exception class, so either can be caught::

        try:
            jupyter_ray.get(ref)
        except ValueError as err:   # the user's exception type still matches
            print(err.cause)

    ``sections`` is the remote traceback as data (files, lines, functions); ``str(err)``
    and ``traceback_str`` render it in the process that shows it, with that process's
    source cache, so a notebook-defined function's frame shows its cell's line.
    """

    def __init__(
        self,
        function_name: str,
        traceback_str: str,
        cause: BaseException | None,
        pid: int | None = None,
        cause_repr: str | None = None,
        sections: list[RemoteSection] | None = None,
    ) -> None:
        self.function_name = function_name
        self._traceback_text = traceback_str
        self.cause = cause
        self.pid = pid
        self.cause_repr = cause_repr if cause_repr is not None else repr(cause)
        self.sections = sections
        Exception.__init__(self, self._message())

    @property
    def traceback_str(self) -> str:
        """The remote traceback as text, rendered here (source lines from this process)."""
        if self.sections:
            return "\n".join(format_sections(self.sections)) + "\n"
        return self._traceback_text

    def _headline(self) -> str:
        where = f" (pid={self.pid})" if self.pid is not None else ""
        return f"{self.function_name}(){where}"

    def _message(self) -> str:
        return f"{self._headline()} raised:\n{self.traceback_str.rstrip()}"

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_task_error,
            (
                self.function_name,
                self._traceback_text,
                self.cause,
                self.pid,
                self.cause_repr,
                self.sections,
            ),
        )

    def _render_traceback_(self) -> list[str]:
        """IPython hook: show the remote traceback instead of the local frames."""
        head = f"{type(self).__name__}: {self.function_name}() failed in a worker"
        if self.pid is not None:
            head += f" (pid={self.pid})"
        return [head, *self.traceback_str.rstrip().splitlines()]

    def as_instanceof_cause(self) -> RayTaskError:
        """Return this error as an instance of ``RayTaskError`` *and* the cause's class.

        When that class cannot be subclassed (a ``__init_subclass__`` that refuses, an
        incompatible C layout) this stays a plain RayTaskError, whose message and
        ``cause`` still hold the user's exception, as in Ray.
        """
        cause = self.cause
        while isinstance(cause, RayTaskError) and cause.cause is not None:
            cause = cause.cause  # (an error that passed through intermediate tasks)
        if cause is None or isinstance(cause, RayTaskError):
            return self
        cause_cls = type(cause)
        if not isinstance(cause, Exception):
            return self
        cls = _dual_class(cause_cls)
        if cls is None:
            return self
        try:
            # the class's own __new__: OSError's family refuses Exception.__new__
            err: RayTaskError = cls.__new__(cls)  # type: ignore[call-overload]
        except Exception:
            return self
        err.function_name = self.function_name
        err._traceback_text = self._traceback_text
        err.cause = cause
        err.pid = self.pid
        err.cause_repr = self.cause_repr
        err.sections = self.sections
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
    except Exception:  # incompatible layouts, or a class that refuses subclasses
        cls = None
    _dual_classes[cause_cls] = cls
    return cls


def _rebuild_task_error(
    function_name: str,
    traceback_str: str,
    cause: BaseException | None,
    pid: int | None,
    cause_repr: str | None,
    sections: list[RemoteSection] | None = None,
) -> RayTaskError:
    error = RayTaskError(function_name, traceback_str, cause, pid, cause_repr, sections)
    return error.as_instanceof_cause()
