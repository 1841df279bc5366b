"""Waiting for a condition in tests: poll it, with a generous bound, instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    """Return once ``cond()`` holds; fail the test if it does not within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
