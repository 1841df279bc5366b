"""Validation of ``@remote(...)``, ``.options(...)`` and ``@method(...)`` arguments, with
Ray's names and Ray's rules: a value of the wrong type raises TypeError, a value of the
right type that is not allowed raises ValueError.

Every bad value raises at once (at decoration or ``.options`` time), with a message that
says what is allowed, so nothing invalid ever reaches the runtime.
"""

from __future__ import annotations

import warnings
from typing import Any

from ._checks import (
    ACCELERATOR_PREFIX,
    non_negative,
    type_error,
    validate_resources,
    validate_runtime_env,
)
from .runtime.client import context
from .runtime.common.labels import (
    MARKER_AMOUNT,
    check_fallback_strategy,
    check_label_selector,
    selector_marker,
)
from .util.placement_group import PlacementGroup
from .util.scheduling_strategies import PlacementGroupSchedulingStrategy

COMMON_OPTIONS = frozenset(
    {
        "num_cpus",
        "num_gpus",
        "resources",
        "memory",
        "name",
        "scheduling_strategy",
        "runtime_env",
        "accelerator_type",
        "label_selector",
        "fallback_strategy",
        "placement_group",
        "placement_group_bundle_index",
        "placement_group_capture_child_tasks",
        "enable_task_events",
    }
)
"""Options of tasks and actors alike (as Ray's ``_common_options``)."""

TASK_OPTIONS = COMMON_OPTIONS | {
    "num_returns",
    "max_retries",
    "retry_exceptions",
    "max_calls",
}

ACTOR_OPTIONS = COMMON_OPTIONS | {
    "namespace",
    "get_if_exists",
    "lifetime",
    "max_restarts",
    "max_task_retries",
    "max_concurrency",
    "max_pending_calls",
    "concurrency_groups",
    "allow_out_of_order_execution",
}

METHOD_OPTIONS = frozenset(
    {"num_returns", "concurrency_group", "max_task_retries", "retry_exceptions", "name"}
)

DEPRECATED = {"num_return_vals": "num_returns"}

STREAMING = "streaming"
DYNAMIC = "dynamic"
DYNAMIC_DEPRECATED = (
    "num_returns='dynamic' is deprecated and will be removed in a future Ray release. Use "
    "num_returns='streaming' instead."
)

LEGACY_PLACEMENT = (
    "placement_group",
    "placement_group_bundle_index",
    "placement_group_capture_child_tasks",
)


def _count(name: str, value: Any, low: int, hint: str = "") -> int:
    """An int option (never a bool, never a float) that must be ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise type_error(name, value, "an int")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}{hint}, got {value!r}")
    return value


def _string(name: str, value: Any, empty_ok: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise type_error(name, value, "a string")
    if not value and not empty_ok:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def check_num_returns(value: Any) -> int | str:
    """``num_returns``: an int >= 0, ``"streaming"`` or ``"dynamic"`` (deprecated, warns)."""
    if isinstance(value, str):
        if value == DYNAMIC:
            warnings.warn(DYNAMIC_DEPRECATED, DeprecationWarning, stacklevel=5)
        elif value != STREAMING:
            raise ValueError(
                f"num_returns must be an int >= 0, 'streaming' (for generators) or "
                f"'dynamic', got {value!r}"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise type_error("num_returns", value, "an int or 'streaming'")
    if value < 0:
        raise ValueError(
            f"num_returns must be an int >= 0, 'streaming' (for generators) or 'dynamic', "
            f"got {value!r}"
        )
    return value


def check_retry_exceptions(value: Any) -> Any:
    """``retry_exceptions``: True, False, or a list/tuple of exception classes."""
    if not isinstance(value, bool | list | tuple):
        raise type_error("retry_exceptions", value, "True, False or a list of exception classes")
    if isinstance(value, list | tuple) and not all(
        isinstance(c, type) and issubclass(c, BaseException) for c in value
    ):
        raise ValueError(
            f"retry_exceptions must be True, False, or a list of exception classes, got {value!r}"
        )
    return value


def merge_runtime_env(
    parent: dict[str, Any] | None, child: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A task's runtime env: its own fields over its parent's (or the job's); the
    ``env_vars`` of both are merged, the child's winning."""
    if not child:
        return parent
    if not parent:
        return child
    out = {**parent, **child}
    if "env_vars" in parent and "env_vars" in child:
        out["env_vars"] = {**parent["env_vars"], **child["env_vars"]}
    return out


def _renamed(opts: dict[str, Any]) -> dict[str, Any]:
    out = dict(opts)
    for old, new in DEPRECATED.items():
        if old in out:
            warnings.warn(
                f"'{old}' is deprecated; use '{new}' instead.", DeprecationWarning, stacklevel=5
            )
            if new in out:
                raise ValueError(f"pass only one of '{old}' and '{new}'")
            out[new] = out.pop(old)
    return out


def _refuse_unknown(opts: dict[str, Any], valid: frozenset[str], where: str) -> None:
    unknown = sorted(set(opts) - valid)
    if unknown:
        raise ValueError(
            f"Invalid option keyword{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"for {where}. Valid ones are: {', '.join(sorted(valid))}."
        )


def normalize_task_options(opts: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate task options; maps deprecated names and warns about them."""
    out = _renamed(opts)
    _refuse_unknown(out, TASK_OPTIONS, where)
    if "num_returns" in out and out["num_returns"] is not None:
        check_num_returns(out["num_returns"])
    _check_amounts(out)
    if "num_gpus" in out and out["num_gpus"] is not None:
        g = out["num_gpus"]
        if g > 1 and g != int(g):
            raise ValueError(f"num_gpus above 1 must be a whole number, got {g}")
    if "max_retries" in out and out["max_retries"] is not None:
        _count("max_retries", out["max_retries"], -1, " (-1 retries forever)")
    if "max_calls" in out and out["max_calls"] is not None:
        _count("max_calls", out["max_calls"], 0, " (0 means no limit)")
    if "retry_exceptions" in out:
        check_retry_exceptions(out["retry_exceptions"])
    _string("name", out.get("name"))
    check_placement_options(out)
    return out


def normalize_actor_options(opts: dict[str, Any]) -> dict[str, Any]:
    """Validate the options of ``@remote`` on a class or of ``Cls.options(...)``."""
    _refuse_unknown(opts, ACTOR_OPTIONS, "actors")
    out = dict(opts)
    _check_amounts(out)
    check_placement_options(out)
    _string("name", out.get("name"))
    _string("namespace", out.get("namespace"))
    lifetime = out.get("lifetime")
    if lifetime is not None and not isinstance(lifetime, str):
        raise type_error("lifetime", lifetime, "a string")
    if lifetime not in (None, "detached", "non_detached"):
        raise ValueError(f"lifetime must be None, 'detached' or 'non_detached', got {lifetime!r}")
    for key, low in (("max_restarts", -1), ("max_task_retries", -1), ("max_concurrency", 1)):
        if out.get(key) is not None:
            _count(key, out[key], low)
    groups = out.get("concurrency_groups")
    if groups is not None and not _group_sizes(groups):
        raise ValueError(
            "concurrency_groups must map group names to how many calls of the group may "
            f"run at once (ints >= 1), such as {{'io': 4}}; got {groups!r}"
        )
    limit = out.get("max_pending_calls")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise type_error("max_pending_calls", limit, "an int")
        if not (limit == -1 or limit > 0):
            raise ValueError(
                f"max_pending_calls must be -1 (no limit) or a positive int, got {limit!r}"
            )
    if "get_if_exists" in out and not isinstance(out["get_if_exists"], bool):
        raise type_error("get_if_exists", out["get_if_exists"], "a bool")
    if out.get("get_if_exists") and not out.get("name"):
        raise ValueError("get_if_exists=True needs a name=... to look the actor up by")
    order = out.get("allow_out_of_order_execution")
    if order is not None and not isinstance(order, bool):
        raise type_error("allow_out_of_order_execution", order, "a bool")
    return out


def normalize_method_options(opts: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate the options of ``@method(...)`` or ``handle.method.options(...)``."""
    _refuse_unknown(opts, METHOD_OPTIONS, where)
    out = dict(opts)
    if out.get("num_returns") is not None:
        check_num_returns(out["num_returns"])
    group = out.get("concurrency_group")
    if group is not None and (not isinstance(group, str) or not group):
        raise ValueError(f"concurrency_group must be a non-empty string, got {group!r}")
    if out.get("max_task_retries") is not None:
        _count("max_task_retries", out["max_task_retries"], -1, " (-1 retries forever)")
    if "retry_exceptions" in out:
        check_retry_exceptions(out["retry_exceptions"])
    _string("name", out.get("name"))
    return out


def _group_sizes(groups: Any) -> bool:
    """Whether ``groups`` maps non-empty names to ints >= 1."""
    return isinstance(groups, dict) and all(
        isinstance(k, str) and k and isinstance(v, int) and not isinstance(v, bool) and v >= 1
        for k, v in groups.items()
    )


def _check_amounts(out: dict[str, Any]) -> None:
    for key in ("num_cpus", "num_gpus", "memory"):
        if key in out and out[key] is not None:
            out[key] = non_negative(key, out[key])
    if "resources" in out:
        out["resources"] = validate_resources(out["resources"])


def check_placement_options(out: dict[str, Any]) -> None:
    """Check, in place, the options tasks and actors share about where and how they run:
    ``scheduling_strategy`` (also from the deprecated ``placement_group=`` options, with
    Ray's warning), ``runtime_env`` (normalized), ``accelerator_type``, ``label_selector``
    and ``fallback_strategy``."""
    if any(k in out for k in LEGACY_PLACEMENT):
        _legacy_placement(out)
    if "scheduling_strategy" in out:
        check_strategy(out["scheduling_strategy"])
    if "runtime_env" in out:
        out["runtime_env"] = validate_runtime_env(out["runtime_env"])
    if "accelerator_type" in out:
        with_accelerator({}, out["accelerator_type"])
    if "enable_task_events" in out and not isinstance(out["enable_task_events"], bool):
        raise type_error("enable_task_events", out["enable_task_events"], "a bool")
    if out.get("label_selector") is not None:
        out["label_selector"] = check_label_selector(out["label_selector"], "label_selector")
    if out.get("fallback_strategy") is not None:
        out["fallback_strategy"] = check_fallback_strategy(out["fallback_strategy"])


def _legacy_placement(out: dict[str, Any]) -> None:
    """``placement_group=pg, placement_group_bundle_index=i`` (deprecated in Ray): warn
    as Ray does, and turn them into the PlacementGroupSchedulingStrategy they mean."""
    group = out.get("placement_group", "default")
    index = out.get("placement_group_bundle_index", -1)
    capture = out.get("placement_group_capture_child_tasks")
    for key, given in (
        ("placement_group", group != "default"),
        ("placement_group_bundle_index", index != -1),
        ("placement_group_capture_child_tasks", bool(capture)),
    ):
        if given:  # (as Ray warns: placement_group=None too)
            warnings.warn(
                f"{key} parameter is deprecated. Use scheduling_strategy="
                "PlacementGroupSchedulingStrategy(...) instead.",
                DeprecationWarning,
                stacklevel=5,
            )
    if group not in ("default", None) and out.get("scheduling_strategy") is not None:
        raise ValueError(
            "Placement groups should be specified via the scheduling_strategy option. The "
            "placement_group option is deprecated."
        )
    if group in ("default", None):
        if index != -1:
            raise ValueError(
                "placement_group_bundle_index needs placement_group=...; better, pass "
                "scheduling_strategy=PlacementGroupSchedulingStrategy(pg, index)"
            )
        return
    if not isinstance(group, PlacementGroup):
        raise type_error("placement_group", group, "a PlacementGroup")
    for key in LEGACY_PLACEMENT:
        out.pop(key, None)
    out["scheduling_strategy"] = PlacementGroupSchedulingStrategy(group, index, capture)


def check_strategy(strategy: Any) -> None:
    """A ``scheduling_strategy`` the runtime knows, or ValueError saying which it knows."""
    if strategy in (None, "DEFAULT", "SPREAD"):
        return
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        return
    if not isinstance(strategy, str):
        raise type_error("scheduling_strategy", strategy, "a string or a strategy object")
    raise ValueError(
        f"scheduling_strategy {strategy!r} is not supported; use 'DEFAULT', 'SPREAD' or a "
        "PlacementGroupSchedulingStrategy (jupyter_ray.util.scheduling_strategies)"
    )


def with_accelerator(demand: dict[str, float], accelerator: Any) -> dict[str, float]:
    """``accelerator_type="H100"``: run only on a node whose GPUs are that model."""
    if accelerator is None:
        return demand
    if not isinstance(accelerator, str) or not accelerator:
        raise ValueError(
            f"accelerator_type must be a GPU model name such as 'H100', got {accelerator!r}"
        )
    return {**demand, ACCELERATOR_PREFIX + accelerator: 0.001}


def place(
    demand: dict[str, float], strategy: Any, name: str = "", actor_default: bool = False
) -> dict[str, float]:
    """The demand to send: rewritten to a placement group's resources when placed in one
    (ValueError when it fits none of the group's bundles, as in Ray). ``name``: the
    task's or (``actor_default``: an actor without resources of its own) the actor's."""
    if strategy is None or isinstance(strategy, str):
        return demand  # (every submission comes here)
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        strategy.check_fits(demand, name, actor_default)
        return strategy.demand(demand)
    return demand


def placement(strategy: Any, explicit: bool) -> tuple[Any, bytes | None]:
    """The scheduling strategy of a new task or actor, and the placement group its own
    children go to: a strategy that captures child tasks gives its group to them, and a
    task submitted inside such a group without a strategy of its own (and without
    ``placement_group=None``, ``explicit``) runs in it too, as in Ray."""
    if strategy is None:
        task = context.current_task()
        if explicit or task is None or task.capture_group is None:
            return None, None
        return PlacementGroupSchedulingStrategy.captured(task.capture_group), task.capture_group
    if isinstance(strategy, str):
        return strategy, None
    captured = getattr(strategy, "placement_group_capture_child_tasks", None)
    return strategy, strategy.placement_group.id if captured else None


def with_labels(demand: dict[str, float], selector: Any, fallback: Any) -> dict[str, float]:
    """``label_selector`` / ``fallback_strategy``: markers in the demand (see
    runtime/common/labels.py), which the node's scheduler reads."""
    if not selector and not fallback:
        return demand
    return {**demand, selector_marker(selector or {}, fallback or []): MARKER_AMOUNT}
