"""Filters of the state API's queries: ``[(key, "=" | "!=", value), ...]``.

Checked in the caller (the facade) and applied by the node manager's state view.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def matches(record: Any, filters: Iterable[tuple[str, str, Any]]) -> bool:
    """Whether a state record passes every ``(key, "=" | "!=", value)`` filter."""
    for key, op, value in filters:
        have = getattr(record, key, None)
        if isinstance(have, bytes):
            have = have.hex()
        if op == "=" and str(have) != str(value):
            return False
        if op == "!=" and str(have) == str(value):
            return False
    return True


def check_filters(filters: Any) -> list[tuple[str, str, Any]]:
    """Validate ``[(key, "=" | "!=", value), ...]``; raises ValueError with the fix."""
    if filters is None:
        return []
    out = []
    for item in filters:
        if not isinstance(item, tuple | list) or len(item) != 3 or item[1] not in ("=", "!="):
            raise ValueError(
                f"each filter is (key, '=' or '!=', value), got {item!r}; for example "
                "[('state', '=', 'FAILED')]"
            )
        out.append((str(item[0]), str(item[1]), item[2]))
    return out
