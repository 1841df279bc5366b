"""A Ray cluster's state for the server: Ray's state API, polled at a bounded rate.

On the Ray backend the server has no change feed to subscribe to, so one thread asks
Ray's state API (through its dashboard's HTTP address) every ``interval`` seconds for at
most ``page_size`` records of each kind, maps them onto this project's schema
(``on_ray.records``) and hands the differences to the feed as the runtime's own feed
would (a ``FeedSnapshot``, then ``FeedUpdate``s), so the hub, the REST handlers and the
sidebar need nothing else. Its ``query`` answers the handlers from the last picture:
however many browsers ask, Ray is asked once per interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..on_ray.state import answer, fetch
from ..runtime.common import protocol as p
from ..runtime.common.state_schema import KINDS

log = logging.getLogger("jupyter_ray.server")

FAILURES_BEFORE_DOWN = 3  # polls in a row that fail before the cluster counts as gone


class RayStateSource:
    """Polls one Ray cluster's state API; see the module docstring."""

    def __init__(self, dashboard_url: str, interval: float = 2.0, page_size: int = 1000) -> None:
        from ray.util import state as ray_state  # the Ray extra; checked by the caller

        self._api = ray_state
        self.dashboard_url = dashboard_url
        self.interval = interval
        self.page_size = page_size
        self.records: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
        self.jobs: list[Any] = []
        self.seq = -1
        self.failures = 0
        self.error: str | None = None
        self.on_message: Callable[[Any], None] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._polled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jupyter-ray-ray-poll", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        """Start polling; raises ConnectionError when the first poll fails."""
        self._poll()
        if self.failures:
            raise ConnectionError(
                f"Ray's state API at {self.dashboard_url} did not answer ({self.error}); "
                "is the Ray cluster running with its dashboard (pip install 'ray[default]'), "
                "and is c.JupyterRay.ray_dashboard_url right?"
            )
        self._thread.start()

    @property
    def down(self) -> bool:
        return self.failures >= FAILURES_BEFORE_DOWN

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def subscribe(self, on_message: Callable[[Any], None]) -> RayStateSource:
        """Send ``on_message`` a snapshot now and the differences of each poll after."""
        with self._lock:
            self.on_message = on_message
            on_message(
                p.FeedSnapshot(
                    seq=self.seq, records={k: list(v.values()) for k, v in self.records.items()}
                )
            )
        return self

    def unsubscribe(self) -> None:
        with self._lock:
            self.on_message = None

    def copy_records(self) -> tuple[int, dict[str, list[Any]]]:
        with self._lock:
            return self.seq, {k: list(v.values()) for k, v in self.records.items()}

    # --- polling -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def _poll(self) -> None:
        try:
            fresh = self._fetch()
        except Exception as err:  # Ray's client raises many kinds; all mean "not now"
            self.failures += 1
            self.error = f"{type(err).__name__}: {err}"
            if self.failures == FAILURES_BEFORE_DOWN:
                log.warning("jupyter_ray: Ray's state API is not answering: %s", self.error)
            return
        self.failures, self.error = 0, None
        with self._lock:
            changed: dict[str, list[Any]] = {}
            removed: dict[str, list[str]] = {}
            for kind in KINDS:
                old, new = self.records[kind], fresh[kind]
                diff = [r for key, r in new.items() if old.get(key) != r]
                gone = [key for key in old if key not in new]
                if diff:
                    changed[kind] = diff
                if gone:
                    removed[kind] = gone
                self.records[kind] = new
            self.seq += 1
            if self.on_message is not None and (changed or removed):
                self.on_message(p.FeedUpdate(seq=self.seq, changed=changed, removed=removed))
        self._polled.set()

    def _fetch(self) -> dict[str, dict[str, Any]]:
        tables, self.jobs = fetch(self._api, self.dashboard_url, self.page_size)
        return tables

    # --- what the REST handlers ask -----------------------------------------------------

    def query(self, what: str, arg: Any = None) -> Any:
        """The runtime's state queries, answered from the last poll."""
        if self.down:
            raise ConnectionError(f"the Ray cluster does not answer: {self.error}")
        with self._lock:
            tables = dict(self.records)
        return answer(what, arg, tables, self.jobs)
