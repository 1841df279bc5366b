"""``runtime_env``: environment variables and a working directory for tasks and actors."""

from __future__ import annotations

import os
from typing import Any

import pytest

import jupyter_ray as ray


@ray.remote
def env(name: str) -> str | None:
    return os.environ.get(name)


@ray.remote
def from_working_dir() -> tuple[str, str, str | None]:
    import helper_in_working_dir  # importable only from the working_dir

    with open("data.txt") as f:  # relative to the working_dir
        data = f.read()
    return helper_in_working_dir.VALUE, data, ray.get(env.remote("LEVEL"))


def test_env_vars_per_task_per_job_and_restored_after(ray_start: Any) -> None:
    ray_start(num_cpus=1, runtime_env={"env_vars": {"JOB_LEVEL": "job"}})
    assert ray.get(env.options(runtime_env={"env_vars": {"X": "1"}}).remote("X")) == "1"
    # the same worker runs the next task: the variable is gone again
    assert ray.get(env.remote("X")) is None
    assert ray.get(env.remote("JOB_LEVEL")) == "job"
    overridden = env.options(runtime_env={"env_vars": {"JOB_LEVEL": "task"}})
    assert ray.get(overridden.remote("JOB_LEVEL")) == "task"


def test_working_dir_and_nested_tasks_inherit(ray_2cpu: Any, tmp_path: Any) -> None:
    (tmp_path / "helper_in_working_dir.py").write_text("VALUE = 'imported'\n")
    (tmp_path / "data.txt").write_text("read")
    placed = from_working_dir.options(
        runtime_env={"working_dir": str(tmp_path), "env_vars": {"LEVEL": "parent"}}
    )
    assert ray.get(placed.remote()) == ("imported", "read", "parent")
    assert ray.get(env.remote("LEVEL")) is None


def test_an_actor_keeps_its_runtime_env_for_life(ray_2cpu: Any, tmp_path: Any) -> None:
    @ray.remote
    class Configured:
        def where(self) -> tuple[str | None, str]:
            return os.environ.get("MODE"), os.getcwd()

        def child(self) -> str | None:
            return ray.get(env.remote("MODE"))

    actor = Configured.options(
        runtime_env={"env_vars": {"MODE": "actor"}, "working_dir": str(tmp_path)}
    ).remote()
    assert ray.get(actor.where.remote()) == ("actor", str(tmp_path))
    assert ray.get(actor.child.remote()) == "actor"  # tasks it submits inherit it


def test_unsupported_or_bad_runtime_envs_are_refused(ray_2cpu: Any, tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="pip are not supported"):
        env.options(runtime_env={"pip": ["requests"]})
    with pytest.raises(TypeError, match="strings to strings"):
        env.options(runtime_env={"env_vars": {"A": 1}})
    with pytest.raises(ValueError, match="not a directory"):
        env.options(runtime_env={"working_dir": str(tmp_path / "missing")})
    with pytest.raises(ValueError, match="local directory"):
        env.options(runtime_env={"working_dir": "s3://bucket/code.zip"})
    with pytest.raises(TypeError, match="must be a dict"):
        env.options(runtime_env=["env_vars"])
    assert ray.get(env.remote("HOME")) == os.environ.get("HOME")  # still working


def test_init_refuses_a_bad_job_runtime_env() -> None:
    with pytest.raises(ValueError, match="conda are not supported"):
        ray.init(num_cpus=1, runtime_env={"conda": "env"})
    assert not ray.is_initialized()


def test_the_runtime_context_shows_the_runtime_env(ray_2cpu: Any) -> None:
    @ray.remote
    def seen() -> dict[str, Any]:
        return ray.get_runtime_context().runtime_env

    placed = seen.options(runtime_env={"env_vars": {"K": "v"}})
    assert ray.get(placed.remote()) == {"env_vars": {"K": "v"}}
    assert ray.get(seen.remote()) == {}
