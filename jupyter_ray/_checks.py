"""Argument checks that ``init``, the task and actor options and placement groups share:
resources, resource names, ``runtime_env``, and the TypeError/ValueError messages of Ray's
rules (a value of the wrong type raises TypeError, a value of the right type that is not
allowed raises ValueError). Imports nothing else of the facade."""

from __future__ import annotations

import numbers
import os
from typing import Any

RESERVED_RESOURCES = frozenset({"bundle"})
"""Names the runtime gives resources of its own (a placement group's ``bundle_group_*``)."""


def type_error(name: str, value: Any, what: str) -> TypeError:
    return TypeError(
        f"The type of keyword '{name}' must be {what}, but received "
        f"{type(value).__name__} {short_repr(value)}"
    )


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def non_negative(name: str, value: Any) -> float:
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
        check_resource_name(key)
        out[key] = non_negative(f"resources[{key!r}]", value)
    return out


def check_resource_name(name: str) -> None:
    """Refuse the names the runtime reserves for itself (as Ray refuses them)."""
    if name in RESERVED_RESOURCES:
        raise ValueError(
            f"'{name}' is a reserved resource name: placement groups add "
            f"'{name}_group_...' resources of their own. Pick another name."
        )


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


ACCELERATOR_PREFIX = "accelerator_type:"
