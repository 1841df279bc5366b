"""What a start of the server's runtime may ask for, checked before anything starts.

Bodies of ``POST cluster`` and the ``c.JupyterRay`` defaults meet here: every value is
checked for type and range, and a mistake raises ``ValueError`` with the fix, which the
handlers answer as 400.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

MAX_WORKER_NODES = 16


@dataclass(frozen=True)
class StartOptions:
    """Resources of the runtime the server starts (``None``: detect, as ``init()``)."""

    num_cpus: float | None = None
    num_gpus: float | None = None
    resources: dict[str, float] = field(default_factory=dict)
    object_store_memory: int | None = None
    worker_nodes: int = 0  # local worker nodes besides the head, each like the head

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def merged(self, body: Any) -> StartOptions:
        """These options with the fields of a request body over them (validated)."""
        if body is None:
            return self
        if not isinstance(body, dict):
            raise ValueError(
                f"the body must be a JSON object of start options, got {type(body).__name__}"
            )
        unknown = sorted(set(body) - {f for f in asdict(self)} - {"address"})
        if unknown:
            raise ValueError(
                f"unknown start option(s) {unknown}; use num_cpus, num_gpus, resources, "
                "object_store_memory, worker_nodes (or address to attach to a runtime)"
            )
        changes: dict[str, Any] = {}
        for name in ("num_cpus", "num_gpus"):
            if name in body:
                changes[name] = _count(name, body[name])
        if "object_store_memory" in body:
            value = body["object_store_memory"]
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1 << 20
            ):
                raise ValueError(
                    "object_store_memory is a number of bytes, at least 1 MiB "
                    f"(1048576), got {value!r}"
                )
            changes["object_store_memory"] = value
        if "resources" in body:
            changes["resources"] = _resources(body["resources"])
        if "worker_nodes" in body:
            value = body["worker_nodes"]
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 0 <= value <= MAX_WORKER_NODES
            ):
                raise ValueError(
                    f"worker_nodes is how many local worker nodes to start besides the head, "
                    f"0 to {MAX_WORKER_NODES}, got {value!r}"
                )
            changes["worker_nodes"] = value
        return replace(self, **changes)


def _count(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number or null, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def _resources(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(
            f'resources is a JSON object of name to amount, e.g. {{"gpu_box": 1}}, got {value!r}'
        )
    out: dict[str, float] = {}
    for key, amount in value.items():
        if not isinstance(key, str) or not key or len(key) > 100:
            raise ValueError(f"resource names are non-empty strings, got {key!r}")
        number = _count(f"resources[{key!r}]", amount)
        out[key] = 0.0 if number is None else number
    return out
