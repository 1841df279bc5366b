"""Bad input raises at once with a message that says what to do; the runtime keeps working."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import jupyter_ray as ray


@ray.remote
def echo(x: Any) -> Any:
    return x


def _still_works() -> None:
    assert ray.get(echo.remote(7), timeout=60) == 7


CASES: list[tuple[str, Callable[[], Any], type[BaseException], str]] = [
    ("call directly", lambda: echo(1), TypeError, r"echo\.remote\(\)"),
    (
        "unpicklable argument",
        lambda: echo.remote(threading.Lock()),
        TypeError,
        "create locks, sockets",
    ),
    (
        "unknown option",
        lambda: echo.options(num_cpu=1),
        ValueError,
        "Invalid option keyword num_cpu.*Valid ones are",
    ),
    (
        "unknown decorator option",
        lambda: ray.remote(cpus=2)(lambda: 1),
        ValueError,
        "Invalid option keyword cpus",
    ),
    ("negative cpus", lambda: echo.options(num_cpus=-1), ValueError, "num_cpus must be >= 0"),
    (
        "negative custom resource",
        lambda: echo.options(resources={"slot": -2}),
        ValueError,
        "must be >= 0",
    ),
    (
        "CPU inside resources",
        lambda: echo.options(resources={"CPU": 2}),
        ValueError,
        "Use the 'num_cpus' and 'num_gpus' keywords",
    ),
    ("bad num_returns", lambda: echo.options(num_returns=-1), ValueError, "num_returns"),
    ("get of a non-ref", lambda: ray.get(42), ValueError, "takes an ObjectRef"),
    (
        "get of a remote function",
        lambda: ray.get(echo),
        ValueError,
        r"forget to call \.remote\(\)",
    ),
    ("get of a list with a non-ref", lambda: ray.get([echo.remote(1), 2]), ValueError, "int 2"),
    ("get with negative timeout", lambda: ray.get(echo.remote(1), timeout=-1), ValueError, ">= 0"),
    ("wait on one ref", lambda: ray.wait(echo.remote(1)), TypeError, r"wait\(\[ref\]\)"),
    ("wait with non-ref", lambda: ray.wait([1]), TypeError, "contains int"),
    ("put of an ObjectRef", lambda: ray.put(echo.remote(1)), TypeError, "wrap it in a list"),
    ("put unpicklable", lambda: ray.put(threading.Lock()), TypeError, "cloudpickle"),
    ("cancel a non-ref", lambda: ray.cancel("abc"), TypeError, "takes the ObjectRef"),
    ("remote on a non-callable", lambda: ray.remote(3), TypeError, "takes a function"),
]


@pytest.mark.parametrize(("what", "call", "error", "match"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_clearly_and_runtime_keeps_working(
    ray_2cpu: Any, what: str, call: Callable[[], Any], error: type[BaseException], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()
    _still_works()


def test_wait_with_duplicates_or_bad_num_returns(ray_2cpu: Any) -> None:
    ref = echo.remote(1)
    with pytest.raises(ValueError, match="unique"):
        ray.wait([ref, ref])
    with pytest.raises(ValueError, match="cannot be larger"):
        ray.wait([ref], num_returns=2)
    with pytest.raises(ValueError, match="at least 1"):
        ray.wait([ref], num_returns=0)
    _still_works()


def test_unpicklable_return_value_fails_the_task_not_the_runtime(ray_2cpu: Any) -> None:
    @ray.remote
    def make_lock() -> Any:
        return threading.Lock()

    with pytest.raises(TypeError, match="Could not serialize"):
        ray.get(make_lock.remote())
    _still_works()


def test_bad_init_arguments(ray_start: Any, tmp_path: Any, monkeypatch: Any) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))  # no runtimes to find here
    with pytest.raises(TypeError, match="unexpected keyword"):
        ray.init(num_cpu=2)
    with pytest.raises(ValueError, match="num_cpus must be >= 0"):
        ray.init(num_cpus=-1)
    with pytest.raises(ValueError, match="num_cpus"):
        ray.init(resources={"CPU": 4})
    with pytest.raises(ValueError, match="object_store_memory"):
        ray.init(object_store_memory=10)
    with pytest.raises(ConnectionError, match="jupyter-ray start --head"):
        ray.init(address="auto")
    assert not ray.is_initialized()
    ray_start()
    _still_works()


def test_calls_before_init_say_to_init() -> None:
    with pytest.raises(ray.exceptions.RaySystemError, match=r"call jupyter_ray.init\(\)"):
        ray.cluster_resources()
