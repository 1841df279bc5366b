"""get, wait and errors as Ray has them: ``get`` of a list fails as soon as one of them
has, even when others never finish; errors keep the user's exception class across tasks;
exceptions that cannot be pickled or subclassed still arrive with their message."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import jupyter_ray as ray
from jupyter_ray.exceptions import RayActorError, RayError, RayTaskError


@ray.remote
def hang() -> None:
    time.sleep(600)


@ray.remote
def fail() -> None:
    raise KeyError("failed at once")


@ray.remote
class Service:
    def ping(self) -> str:
        return "pong"

    def slow(self) -> None:
        time.sleep(600)


def test_get_of_a_list_raises_the_first_failure_without_waiting_for_hanging_siblings(
    ray_2cpu: Any,
) -> None:
    stuck = hang.remote()
    started = time.monotonic()
    with pytest.raises(KeyError, match="failed at once"):
        ray.get([stuck, fail.remote()], timeout=120)
    assert time.monotonic() - started < 60  # not the hanging task's 600 s, nor the timeout
    ray.cancel(stuck, force=True)


def test_get_of_a_list_raises_when_an_actor_of_it_died(ray_2cpu: Any) -> None:
    service = Service.remote()
    assert ray.get(service.ping.remote(), timeout=60) == "pong"
    stuck = hang.remote()
    busy = service.slow.remote()
    pending = service.ping.remote()  # queued behind slow()
    ray.kill(service)
    started = time.monotonic()
    with pytest.raises(RayActorError):
        ray.get([stuck, pending, busy], timeout=120)
    assert time.monotonic() - started < 60
    ray.cancel(stuck, force=True)


def test_wait_on_nothing(ray_2cpu: Any) -> None:
    assert ray.wait([]) == ([], [])
    assert ray.wait([], num_returns=0, timeout=0) == ([], [])


class AppError(Exception):
    """An exception class of the user's, defined in the test module."""


@ray.remote
def inner() -> None:
    raise AppError("raised in the innermost task")


@ray.remote
def middle() -> None:
    ray.get(inner.remote())


@ray.remote
def outer() -> None:
    ray.get(middle.remote())


def test_an_error_stays_the_users_class_through_intermediate_tasks(ray_2cpu: Any) -> None:
    for task in (middle, outer):
        with pytest.raises(AppError, match="raised in the innermost task") as info:
            ray.get(task.remote(), timeout=60)
        err = info.value
        assert isinstance(err, RayTaskError)
        assert type(err.cause) is AppError
        assert str(err.cause) == "raised in the innermost task"
        assert "inner" in str(err)  # the remote traceback names where it was raised


class Unpicklable(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


@ray.remote
def raise_unpicklable() -> None:
    raise Unpicklable("cannot travel")


def test_an_unpicklable_exception_arrives_as_a_ray_error_with_its_text(ray_2cpu: Any) -> None:
    with pytest.raises(RayTaskError) as info:
        ray.get(raise_unpicklable.remote(), timeout=60)
    err = info.value
    assert not isinstance(err, Unpicklable)
    assert isinstance(err.cause, RayError)
    assert "cannot travel" in str(err.cause) and "cannot be pickled" in str(err.cause)
    assert "cannot travel" in str(err)


class Final(Exception):
    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("no subclasses of Final")


@ray.remote
def raise_final() -> None:
    raise Final("final words")


def test_an_exception_class_that_cannot_be_subclassed_keeps_its_message(ray_2cpu: Any) -> None:
    with pytest.raises(RayTaskError, match="final words") as info:
        ray.get(raise_final.remote(), timeout=60)
    assert type(info.value.cause) is Final
    assert str(info.value.cause) == "final words"
    assert ray.get(ray.put(1)) == 1  # still working
