"""Node labels and label selectors (Ray 2.60's ``label_selector`` and ``fallback_strategy``).

A node carries labels (``jupyter-ray start --labels zone=a,disk=ssd``, ``init(labels=...)``,
plus ``ray.io/node-id`` as in Ray). A task or actor may ask for nodes whose labels match a
selector: ``{"zone": "a"}`` (equal), ``{"zone": "!a"}`` (not equal or absent),
``{"zone": "in(a,b)"}``, ``{"zone": "!in(a,b)"}``; ``fallback_strategy`` lists selectors to
try, in order, when no node of the cluster matches the first.

The scheduler needs nothing new: a selector travels in the task's resource demand as a
*marker* key (``label_selector:<json>`` with a sliver of an amount) that no ledger ever
holds. ``ResourceLedger`` and ``NodeView`` look at a marker only when an ordinary check of
the demand fails (so demands without one cost nothing more) and count it as satisfied when
their node's labels match (:func:`satisfied`). A node picks the fallback to use when the
task is queued (:func:`choose`), from the labels of every live node it knows.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

MARKER = "label_selector:"
MARKER_AMOUNT = 0.0001
NODE_ID_LABEL = "ray.io/node-id"
RESERVED_PREFIX = "ray.io/"

_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?"
_KEY = re.compile(rf"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?/)?{_NAME}$")
_VALUE = re.compile(rf"^(?:{_NAME})?$")
_CONDITION = re.compile(
    rf"^(?P<not>!)?(?:in\(\s*(?P<many>{_NAME}(?:\s*,\s*{_NAME})*)\s*\)|(?P<one>{_NAME}))$"
)


ACCELERATOR_LABEL = "ray.io/accelerator-type"


def node_labels(
    node_id: str, resources: dict[str, float], labels: dict[str, str] | None
) -> dict[str, str]:
    """A node's labels: the ones it was started with, and Ray's own that apply here
    (its id, and the model of its GPUs when known, from ``accelerator_type:<model>``)."""
    out = {**(labels or {}), NODE_ID_LABEL: node_id}
    for name in resources:
        if name.startswith("accelerator_type:"):
            out[ACCELERATOR_LABEL] = name.partition(":")[2]
    return out


def check_label_selector(selector: Any, what: str) -> dict[str, str]:
    """A valid selector (a dict of label key to condition), or TypeError/ValueError."""
    if not isinstance(selector, dict):
        raise TypeError(
            f"The type of keyword '{what}' must be a dict such as {{'zone': 'us-west'}}, "
            f"but received {type(selector).__name__}"
        )
    for key, condition in selector.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(
                f"Invalid label key {key!r} in {what}: keys are up to 63 letters, digits, "
                "'-', '_' or '.', beginning and ending with a letter or digit, optionally "
                "after a 'prefix/'."
            )
        if not isinstance(condition, str) or (condition and not _CONDITION.match(condition)):
            raise ValueError(
                f"Invalid label selector value {condition!r} for {key!r} in {what}: use "
                "'value', '!value', 'in(a,b)' or '!in(a,b)'."
            )
    return dict(selector)


def check_fallback_strategy(fallback: Any) -> list[dict[str, Any]]:
    """A valid ``fallback_strategy``: a list of ``{"label_selector": {...}}``."""
    if not isinstance(fallback, list):
        raise TypeError(
            "The type of keyword 'fallback_strategy' must be a list such as "
            f"[{{'label_selector': {{'zone': 'b'}}}}], but received {type(fallback).__name__}"
        )
    out = []
    for i, strategy in enumerate(fallback):
        if not isinstance(strategy, dict) or not strategy:
            raise ValueError(
                f"fallback_strategy[{i}] must be a non-empty dict such as "
                f"{{'label_selector': {{'zone': 'b'}}}}, got {strategy!r}"
            )
        unknown = sorted(set(strategy) - {"label_selector"})
        if unknown:
            raise ValueError(
                f"Unsupported option(s) {', '.join(unknown)} in fallback_strategy[{i}]; only "
                "'label_selector' is supported."
            )
        out.append(
            {
                "label_selector": check_label_selector(
                    strategy.get("label_selector") or {}, f"fallback_strategy[{i}]"
                )
            }
        )
    return out


def check_node_labels(labels: Any) -> dict[str, str]:
    """Labels a node is started with: a dict of strings, no ``ray.io/`` keys."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise TypeError(f"labels must be a dict of strings, got {type(labels).__name__}")
    for key, value in labels.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(f"Invalid label key {key!r}")
        if key.startswith(RESERVED_PREFIX):
            raise ValueError(
                f"Label keys starting with {RESERVED_PREFIX!r} are reserved for the runtime's "
                f"own labels; rename {key!r}"
            )
        if not isinstance(value, str) or not _VALUE.match(value):
            raise ValueError(f"Invalid value {value!r} of label {key!r}: use a short string")
    return dict(labels)


def parse_node_labels(text: str) -> dict[str, str]:
    """``zone=a,disk=ssd`` or a JSON object (the ``--labels`` of the command line)."""
    text = text.strip()
    if text.startswith("{"):
        return check_node_labels(json.loads(text))
    labels: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"labels must look like key=value,key2=value2; got {pair!r}")
        labels[key.strip()] = value.strip()
    return check_node_labels(labels)


def selector_marker(selector: dict[str, str], fallback: list[dict[str, Any]]) -> str:
    """The demand key that carries a selector and its fallbacks."""
    selectors = [selector] + [f.get("label_selector") or {} for f in fallback]
    return MARKER + json.dumps(selectors, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def _selectors(marker: str) -> tuple[tuple[tuple[str, bool, frozenset[str]], ...], ...]:
    """Parsed selectors of a marker: per selector, (key, negated, allowed values)."""
    out = []
    for selector in json.loads(marker[len(MARKER) :]):
        conditions = []
        for key, condition in selector.items():
            m = _CONDITION.match(condition)
            if m is None:
                continue  # validated by the facade; an empty condition means "any value"
            negated = bool(m.group("not"))
            values = m.group("many").split(",") if m.group("many") else [m.group("one")]
            conditions.append((key, negated, frozenset(v.strip() for v in values)))
        out.append(tuple(conditions))
    return tuple(out)


def _matches(
    conditions: tuple[tuple[str, bool, frozenset[str]], ...], labels: dict[str, str]
) -> bool:
    for key, negated, values in conditions:
        value = labels.get(key)
        inside = value is not None and value in values
        if inside == negated:
            return False
    return True


def satisfied(key: str, labels: dict[str, str]) -> bool:
    """Whether the demand key ``key`` is a marker whose first selector ``labels`` match."""
    if not key.startswith(MARKER):
        return False
    try:
        return _matches(_selectors(key)[0], labels)
    except (ValueError, TypeError, AttributeError, IndexError):
        return False  # (the facade sends valid markers; a malformed one matches nothing)


def choose(marker: str, nodes: list[dict[str, str]]) -> str:
    """The marker to schedule by: its first selector that some node's labels match, or
    the first one when none does (the task waits for such a node, as in Ray)."""
    selectors = _selectors(marker)
    if len(selectors) == 1:
        return marker
    every = json.loads(marker[len(MARKER) :])
    for i, conditions in enumerate(selectors):
        if any(_matches(conditions, labels) for labels in nodes):
            return MARKER + json.dumps([every[i]], sort_keys=True, separators=(",", ":"))
    return MARKER + json.dumps([every[0]], sort_keys=True, separators=(",", ":"))


def describe(marker: str) -> str:
    """A marker as the user wrote it, for messages."""
    selectors = json.loads(marker[len(MARKER) :])
    text = f"label_selector={selectors[0]}"
    if len(selectors) > 1:
        text += f" (fallbacks {selectors[1:]})"
    return text
