"""Validation of ``@remote(...)`` and ``.options(...)`` arguments, with Ray's names.

Every bad value raises at once (at decoration or ``.options`` time), with a message that
says what is allowed, so nothing invalid ever reaches the runtime.
"""

from __future__ import annotations

import numbers
import os
import warnings
from typing import Any

TASK_OPTIONS = frozenset(
    {
        "num_returns",
        "num_cpus",
        "num_gpus",
        "resources",
        "memory",
        "max_retries",
        "retry_exceptions",
        "max_calls",
        "name",
        "scheduling_strategy",
        "runtime_env",
        "accelerator_type",
        "label_selector",
    }
)

DEPRECATED = {"num_return_vals": "num_returns"}


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def validate_resources(resources: Any) -> dict[str, float]:
    """Check a ``resources=`` mapping of custom resources; returns a clean copy."""
    if resources is None:
        return {}
    if not isinstance(resources, dict):
        raise TypeError(
            f"resources must be a dict such as {{'my_resource': 1}}, got {type(resources).__name__}"
        )
    out: dict[str, float] = {}
    for key, value in resources.items():
        if not isinstance(key, str):
            raise TypeError(f"resource names must be strings, got {key!r}")
        if key in ("CPU", "GPU"):
            raise ValueError(
                f"Use the 'num_cpus' and 'num_gpus' keywords instead of '{key}' in "
                "'resources': for example @remote(num_cpus=2, num_gpus=1)."
            )
        out[key] = _non_negative(f"resources[{key!r}]", value)
    return out


RUNTIME_ENV_FIELDS = ("env_vars", "working_dir")


def validate_runtime_env(env: Any) -> dict[str, Any] | None:
    """Check a ``runtime_env``: ``env_vars`` and a local ``working_dir`` are supported."""
    if env is None:
        return None
    if not isinstance(env, dict):
        raise TypeError(f"runtime_env must be a dict, got {type(env).__name__}")
    unknown = sorted(set(env) - set(RUNTIME_ENV_FIELDS))
    if unknown:
        raise ValueError(
            f"runtime_env field(s) {', '.join(unknown)} are not supported: workers run in "
            "the Python environment the runtime was started from, so install packages "
            "there. Supported fields: env_vars, working_dir."
        )
    out: dict[str, Any] = {}
    env_vars = env.get("env_vars")
    if env_vars is not None:
        if not isinstance(env_vars, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()
        ):
            raise TypeError(
                f"runtime_env['env_vars'] must map strings to strings, got {env_vars!r}"
            )
        out["env_vars"] = dict(env_vars)
    working_dir = env.get("working_dir")
    if working_dir is not None:
        if not isinstance(working_dir, str) or "://" in working_dir:
            raise ValueError(
                "runtime_env['working_dir'] must be a local directory path (remote URIs are "
                f"not supported), got {working_dir!r}"
            )
        if not os.path.isdir(working_dir):
            raise ValueError(f"runtime_env['working_dir'] {working_dir!r} is not a directory")
        out["working_dir"] = os.path.abspath(working_dir)
    return out


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


def normalize_task_options(opts: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate task options; maps deprecated names and warns about them."""
    out = dict(opts)
    for old, new in DEPRECATED.items():
        if old in out:
            warnings.warn(
                f"'{old}' is deprecated; use '{new}' instead.", DeprecationWarning, stacklevel=4
            )
            if new in out:
                raise ValueError(f"pass only one of '{old}' and '{new}'")
            out[new] = out.pop(old)
    unknown = sorted(set(out) - TASK_OPTIONS)
    if unknown:
        raise ValueError(
            f"Invalid option keyword{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"for {where}. Valid ones are: {', '.join(sorted(TASK_OPTIONS))}."
        )
    if "num_returns" in out:
        n = out["num_returns"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"num_returns must be an int >= 0, got {n!r}")
    for key in ("num_cpus", "num_gpus", "memory"):
        if key in out and out[key] is not None:
            out[key] = _non_negative(key, out[key])
    if "num_gpus" in out and out["num_gpus"] is not None:
        g = out["num_gpus"]
        if g > 1 and g != int(g):
            raise ValueError(f"num_gpus above 1 must be a whole number, got {g}")
    if "resources" in out:
        out["resources"] = validate_resources(out["resources"])
    if "max_retries" in out:
        r = out["max_retries"]
        if isinstance(r, bool) or not isinstance(r, int) or r < -1:
            raise ValueError(f"max_retries must be an int >= -1 (-1 retries forever), got {r!r}")
    if "max_calls" in out:
        c = out["max_calls"]
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise ValueError(f"max_calls must be an int >= 0 (0 means no limit), got {c!r}")
    if "retry_exceptions" in out:
        rx = out["retry_exceptions"]
        ok = isinstance(rx, bool) or (
            isinstance(rx, list | tuple)
            and all(isinstance(c, type) and issubclass(c, BaseException) for c in rx)
        )
        if not ok:
            raise TypeError(
                f"retry_exceptions must be True, False, or a list of exception classes, got {rx!r}"
            )
    check_placement_options(out)
    if out.get("label_selector"):
        raise ValueError(
            "label_selector is not supported: jupyter_ray nodes carry no labels. Steer "
            "tasks with custom resources instead: start a node with --resources "
            "'{\"zone_a\": 100}' and pass resources={'zone_a': 1}."
        )
    return out


def check_placement_options(out: dict[str, Any]) -> None:
    """Check, in place, the options tasks and actors share about where and how they run:
    ``scheduling_strategy``, ``runtime_env`` (normalized), ``accelerator_type``."""
    if "scheduling_strategy" in out:
        check_strategy(out["scheduling_strategy"])
    if "runtime_env" in out:
        out["runtime_env"] = validate_runtime_env(out["runtime_env"])
    if "accelerator_type" in out:
        with_accelerator({}, out["accelerator_type"])


def check_strategy(strategy: Any) -> None:
    """A ``scheduling_strategy`` the runtime knows, or ValueError saying which it knows."""
    from .util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if strategy in (None, "DEFAULT", "SPREAD"):
        return
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        return
    raise ValueError(
        f"scheduling_strategy {strategy!r} is not supported; use 'DEFAULT', 'SPREAD' or a "
        "PlacementGroupSchedulingStrategy (jupyter_ray.util.scheduling_strategies)"
    )


ACCELERATOR_PREFIX = "accelerator_type:"


def with_accelerator(demand: dict[str, float], accelerator: Any) -> dict[str, float]:
    """``accelerator_type="H100"``: run only on a node whose GPUs are that model."""
    if accelerator is None:
        return demand
    if not isinstance(accelerator, str) or not accelerator:
        raise ValueError(
            f"accelerator_type must be a GPU model name such as 'H100', got {accelerator!r}"
        )
    return {**demand, ACCELERATOR_PREFIX + accelerator: 0.001}


def place(demand: dict[str, float], strategy: Any) -> dict[str, float]:
    """The demand to send: rewritten to a placement group's resources when placed in one."""
    from .util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        return strategy.demand(demand)
    return demand
