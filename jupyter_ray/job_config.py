"""``JobConfig``, as Ray's ``ray.job_config.JobConfig``: a job's settings, for
``init(job_config=...)``.

>>> from jupyter_ray.job_config import JobConfig
>>> jupyter_ray.init(job_config=JobConfig(ray_namespace="team", metadata={"run": "7"}))
...                                                    # doctest: +SKIP

The fields that apply to this runtime are honoured: ``runtime_env`` (the job's, merged
under every task's), ``metadata`` (listed by ``state.list_jobs()``), ``ray_namespace``
(where named actors live) and ``default_actor_lifetime``. ``init``'s own ``runtime_env``
and ``namespace`` win over the config's, as in Ray. The Java-only fields
(``jvm_options``, ``code_search_path``) are kept and ignored, with a warning.
"""

from __future__ import annotations

import warnings
from typing import Any

from ._checks import validate_runtime_env

__all__ = ["JobConfig"]

LIFETIMES = ("detached", "non_detached")


class JobConfig:
    """A job's configuration; see the module docstring."""

    def __init__(
        self,
        jvm_options: list[str] | None = None,
        code_search_path: list[str] | None = None,
        runtime_env: dict[str, Any] | None = None,
        _client_job: bool = False,
        metadata: dict[str, str] | None = None,
        ray_namespace: str | None = None,
        default_actor_lifetime: str = "non_detached",
        _py_driver_sys_path: list[str] | None = None,
    ) -> None:
        if code_search_path is not None and not isinstance(code_search_path, list | tuple):
            raise TypeError(
                f"code_search_path must be a list of paths, got {type(code_search_path).__name__}"
            )
        if jvm_options or code_search_path:
            warnings.warn(
                "JobConfig's jvm_options and code_search_path are for Java workers, which "
                "jupyter_ray does not run; they are ignored.",
                UserWarning,
                stacklevel=2,
            )
        self.jvm_options = list(jvm_options or [])
        self.code_search_path = list(code_search_path or [])
        self._client_job = _client_job
        self.metadata: dict[str, str] = {}
        for key, value in (metadata or {}).items():
            self.set_metadata(key, value)
        self.ray_namespace: str | None = None
        if ray_namespace is not None:
            self.set_ray_namespace(ray_namespace)
        self.runtime_env: dict[str, Any] = {}
        self.set_runtime_env(runtime_env)
        self.default_actor_lifetime = "non_detached"
        self.set_default_actor_lifetime(default_actor_lifetime)
        self._py_driver_sys_path = list(_py_driver_sys_path or [])

    def set_metadata(self, key: str, value: str) -> None:
        """Add (or replace) one entry of the job's metadata."""
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"JobConfig metadata maps strings to strings, got {key!r}: {value!r}")
        self.metadata[key] = value

    def set_runtime_env(self, runtime_env: dict[str, Any] | None, validate: bool = False) -> None:
        """Set the job's runtime env (``env_vars`` and a local ``working_dir`` apply)."""
        if validate:
            validate_runtime_env(runtime_env)
        if runtime_env is not None and not isinstance(runtime_env, dict):
            raise TypeError(f"runtime_env must be a dict, got {type(runtime_env).__name__}")
        self.runtime_env = dict(runtime_env or {})

    def set_ray_namespace(self, ray_namespace: str) -> None:
        """Set the namespace the job's named actors live in."""
        if not isinstance(ray_namespace, str) or not ray_namespace:
            raise ValueError(f"ray_namespace must be a non-empty string, got {ray_namespace!r}")
        self.ray_namespace = ray_namespace

    def set_default_actor_lifetime(self, default_actor_lifetime: str) -> None:
        """``"detached"``: the job's actors outlive it unless created non-detached."""
        if default_actor_lifetime not in LIFETIMES:
            raise ValueError(
                f"default_actor_lifetime must be 'detached' or 'non_detached', got "
                f"{default_actor_lifetime!r}"
            )
        self.default_actor_lifetime = default_actor_lifetime

    def _to_dict(self) -> dict[str, Any]:
        return {
            "runtime_env": dict(self.runtime_env),
            "metadata": dict(self.metadata),
            "ray_namespace": self.ray_namespace,
            "default_actor_lifetime": self.default_actor_lifetime,
        }

    @classmethod
    def from_json(cls, job_config_json: dict[str, Any]) -> JobConfig:
        """Make a JobConfig from the dict ``_to_dict`` (or Ray's JSON form) gives."""
        return cls(
            runtime_env=job_config_json.get("runtime_env"),
            metadata=job_config_json.get("metadata"),
            ray_namespace=job_config_json.get("ray_namespace"),
            default_actor_lifetime=job_config_json.get("default_actor_lifetime", "non_detached"),
        )

    def __repr__(self) -> str:
        return f"JobConfig({self._to_dict()!r})"
