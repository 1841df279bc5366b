"""Progress of a blocking ``get``/``wait``: an ipywidgets bar in a notebook, a text bar in
a terminal IPython, nothing in a script (where this module is never imported).

The main thread is blocked in the wait, so a watcher thread draws: a wait gets a bar once
it has blocked ``SHOW_AFTER`` seconds, or ``SHOW_MANY_AFTER`` when it waits on at least
``MANY_REFS`` refs. Quick waits cost two attribute writes and never draw anything. The
bar says how many refs are done, running, pending and failed; when the wait ends, the
main thread itself gives it its final state (complete, failed, cancelled, timed out)
under the watch's lock, so a bar is never left half drawn.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from ..runtime.client.object_ref import ObjectRef

SHOW_AFTER = 1.0
SHOW_MANY_AFTER = 0.2
MANY_REFS = 100
TICK = 0.1
"""Seconds between two looks of the watcher thread while a wait is in progress."""
REDRAW = 0.25
"""Seconds between two redraws of a bar."""
IDLE_AFTER = 5.0
"""The watcher sleeps until the next wait once none happened for this long."""


@dataclass(slots=True)
class Counts:
    """Where the refs of one wait stand."""

    total: int
    done: int = 0  # ready, failed ones included
    failed: int = 0
    running: int = 0

    @property
    def pending(self) -> int:
        return max(self.total - self.done - self.running, 0)

    def describe(self) -> str:
        return (
            f"{self.done:,}/{self.total:,} done · {self.running:,} running · "
            f"{self.pending:,} pending · {self.failed:,} failed"
        )

    def final(self) -> str:
        """What a finished wait says: running and pending no longer mean anything."""
        failed = f" · {self.failed:,} failed" if self.failed else ""
        return f"{self.done:,}/{self.total:,} done{failed}"


class Bar(Protocol):
    def update(self, counts: Counts) -> None: ...
    def finish(self, counts: Counts, outcome: str, note: str) -> None: ...


OUTCOMES = {
    "done": "complete",
    "failed": "failed",
    "cancelled": "cancelled",
    "timeout": "timed out",
}


@dataclass(slots=True, eq=False)
class Watch:
    """One blocking get/wait of the main thread."""

    kind: str
    refs: list[ObjectRef]
    started: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    ended: bool = False
    bar: Bar | None = None
    drawn_at: float = 0.0


class ProgressWatcher:
    """Draws bars for the main thread's long waits; see the module docstring.

    ``make_bar(kind, total, started)`` shows a new bar (on the watcher thread) for a wait
    that began at ``started`` (``time.monotonic()``); ``count(refs, running)`` says
    where the refs stand (how many run only when ``running``: a finished wait needs no
    question to the runtime).
    """

    def __init__(
        self,
        make_bar: Callable[[str, int, float], Bar],
        count: Callable[[list[ObjectRef], bool], Counts],
    ) -> None:
        self._make_bar = make_bar
        self._count = count
        self._watch: Watch | None = None
        self._asleep = threading.Event()  # set while the watcher waits for a wait
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.bars_shown = 0

    def begin(self, kind: str, refs: list[ObjectRef]) -> Watch:
        """The main thread starts to wait on ``refs`` (cheap: no thread is woken)."""
        watch = Watch(kind, refs, time.monotonic())
        self._watch = watch
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="jupyter-ray-progress", daemon=True
            )
            self._thread.start()
        elif self._asleep.is_set():
            self._wakeup.set()
        return watch

    def end(self, watch: Watch, outcome: str, note: str = "") -> None:
        """The wait is over: give its bar, if it has one, its final state."""
        self._watch = None
        with watch.lock:
            watch.ended = True
            bar = watch.bar
        if bar is not None:
            try:
                counts = self._count(watch.refs, False)
            except Exception:  # the runtime went away meanwhile; say what we know
                counts = Counts(len(watch.refs))
            bar.finish(counts, outcome, note)

    def close(self) -> None:
        """Stop the watcher thread (bars already shown stay as they are)."""
        self._closed = True
        self._wakeup.set()

    def _loop(self) -> None:
        last_seen = time.monotonic()
        while not self._closed:
            watch = self._watch
            now = time.monotonic()
            if watch is None:
                if now - last_seen > IDLE_AFTER:
                    self._asleep.set()
                    if self._watch is None:  # a wait may have begun just before
                        self._wakeup.wait()
                    self._wakeup.clear()
                    self._asleep.clear()
                    last_seen = time.monotonic()
                    continue
            else:
                last_seen = now
                self._look(watch, now)
            time.sleep(TICK)

    def _look(self, watch: Watch, now: float) -> None:
        many = len(watch.refs) >= MANY_REFS
        if watch.bar is None and now - watch.started < (SHOW_MANY_AFTER if many else SHOW_AFTER):
            return
        if watch.bar is not None and now - watch.drawn_at < REDRAW:
            return
        try:
            counts = self._count(watch.refs, True)
        except Exception:
            return  # the runtime is going away; the wait will end too
        with watch.lock:
            if watch.ended:
                return
            if watch.bar is None:
                watch.bar = self._make_bar(watch.kind, len(watch.refs), watch.started)
                self.bars_shown += 1
            watch.bar.update(counts)
            watch.drawn_at = time.monotonic()


class WidgetBar:
    """An ipywidgets progress bar with a line of counts, displayed in the running cell."""

    STYLES = {"done": "success", "failed": "danger", "cancelled": "warning", "timeout": "warning"}

    def __init__(self, kind: str, total: int, started: float) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self.kind = kind
        self.started = started
        self.bar = widgets.IntProgress(
            min=0,
            max=max(total, 1),
            value=0,
            description=f"{kind}()",
            layout=widgets.Layout(width="40%"),
        )
        self.label = widgets.HTML(value=f"{total:,} refs")
        self.box = widgets.HBox([self.bar, self.label])
        display(self.box)

    def update(self, counts: Counts) -> None:
        self.bar.value = counts.done
        self.label.value = counts.describe()

    def finish(self, counts: Counts, outcome: str, note: str) -> None:
        self.bar.bar_style = self.STYLES.get(outcome, "info")
        self.bar.value = counts.done if outcome != "done" or self.kind == "wait" else counts.total
        took = time.monotonic() - self.started
        text = f"{OUTCOMES.get(outcome, outcome)} in {took:.1f} s · {counts.final()}"
        self.label.value = f"{text} · {note}" if note else text


class TextBar:
    """A one-line text bar redrawn in place (``\\r``) on a terminal's stderr."""

    WIDTH = 30

    def __init__(
        self, kind: str, total: int, started: float, stream: IO[str] | None = None
    ) -> None:
        self.kind = kind
        self.total = total
        self.started = started
        self.stream: Any = stream if stream is not None else sys.stderr
        self._drawn = 0  # length of the line on screen, which a shorter one must cover

    def _line(self, counts: Counts, tail: str) -> str:
        filled = self.WIDTH * counts.done // max(counts.total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        line = f"{self.kind}() [{bar}] {tail}"
        padded = line.ljust(self._drawn)
        self._drawn = len(line)
        return "\r" + padded

    def update(self, counts: Counts) -> None:
        self._write(self._line(counts, counts.describe()))

    def finish(self, counts: Counts, outcome: str, note: str) -> None:
        took = time.monotonic() - self.started
        tail = f"{OUTCOMES.get(outcome, outcome)} in {took:.1f} s · {counts.final()}"
        self._write(self._line(counts, f"{tail} · {note}" if note else tail) + "\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (ValueError, OSError):
            pass
