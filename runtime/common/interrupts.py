"""Interrupts held off while the client is mid-step.

A signal handler that raises (SIGINT's KeyboardInterrupt in a kernel or terminal; the
cancel signal's TaskCancelledError in a worker) raises in the main thread between any two
bytecodes. Inside the client's steps that change its bookkeeping and write to a socket,
that can leave half a message on the socket (the node then reads garbage from there on:
the connection, and every object of the session, is lost), a reference change taken but
never sent, an object marked as asked for that was never asked for, or an actor lane's
sequence number out of step with what was sent.

The steps are marked with :func:`guarded` (no cost per call: it records the function's
code). A handler calls :func:`deliver` instead of raising: it raises at once, except
while the main thread is inside a guarded step; then it holds the exception, and the
outermost step raises it as it ends (each guarded step ends, in a ``finally``, with
``if HELD: release()``). A second Ctrl-C while one is held raises at once: a step that
blocks (on a node that stopped reading) must not make the stop button useless.

:func:`install` makes :func:`on_sigint` the SIGINT handler in place of Python's default
one. The kernel integration installs it for every cell (ipykernel puts the default
handler back for each request it handles); a handler someone else installed is left
alone, and a script keeps Python's own (a script ends on Ctrl-C anyway).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_GUARDED: set[CodeType] = set()
HELD: list[BaseException] = []
"""What a handler held while a guarded step ran (checked by each step as it ends)."""


def guarded(fn: F) -> F:
    """Mark ``fn`` as a step an interrupt must not cut in two; returns ``fn`` itself.
    ``fn`` must end (in a ``finally``) with ``if HELD: release()``."""
    _GUARDED.add(fn.__code__)
    return fn


def _in_guarded_step(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code in _GUARDED:
            return True
        frame = frame.f_back
    return False


def deliver(exc: BaseException, frame: FrameType | None) -> None:
    """From a signal handler (main thread; ``frame`` is where it interrupted): raise
    ``exc`` now, or hold it until the guarded step under way ends."""
    __tracebackhide__ = True
    if HELD or not _in_guarded_step(frame):
        HELD.clear()
        raise exc
    HELD.append(exc)


_make_interrupt: Callable[[], BaseException] = KeyboardInterrupt


def on_sigint(signum: int, frame: FrameType | None) -> None:
    """SIGINT: KeyboardInterrupt (of the kind given to :func:`install`), now or as the
    guarded step under way ends."""
    __tracebackhide__ = True
    deliver(_make_interrupt(), frame)


def release() -> None:
    """The end of a guarded step: raise what was held, unless the step was called from
    another guarded step (that one raises it as it ends) or runs off the main thread."""
    __tracebackhide__ = True
    if threading.get_ident() != threading.main_thread().ident or _in_guarded_step(sys._getframe(2)):
        return
    exc = HELD[0]
    HELD.clear()
    raise exc


def install(make: Callable[[], BaseException] = KeyboardInterrupt) -> bool:
    """Make :func:`on_sigint` the SIGINT handler if Python's default one is in place,
    raising ``make()`` (a KeyboardInterrupt); whether it is in place now. Main thread
    only (signals are handled there)."""
    global _make_interrupt
    if threading.current_thread() is not threading.main_thread():
        return False
    _make_interrupt = make
    current = signal.getsignal(signal.SIGINT)
    if current is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_sigint)
        return True
    return current is on_sigint


def uninstall() -> None:
    """Put Python's default SIGINT handler back if :func:`on_sigint` is in place."""
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is on_sigint
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)
