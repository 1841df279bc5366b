"""Calls and their arguments as Ray checks them: signatures in the caller, option types
(TypeError) and values (ValueError), the decorator's own rules, and ``@ray.method``
retries."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import jupyter_ray as ray
from jupyter_ray.exceptions import RayTaskError


@ray.remote
def add(x: int, y: int = 1) -> int:
    return x + y


@ray.remote
class Account:
    RATE = 0.5

    def __init__(self, owner: str, balance: int = 0) -> None:
        self.balance = balance

    def deposit(self, amount: int, *, note: str = "") -> int:
        self.balance += amount
        return self.balance

    @staticmethod
    def currency() -> str:
        return "EUR"

    @classmethod
    def bank(cls) -> str:
        return cls.__name__


def _still_works() -> None:
    assert ray.get(add.remote(1), timeout=60) == 2


SIGNATURE_CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("too many arguments", lambda: add.remote(1, 2, 3), "too many positional arguments"),
    ("missing argument", lambda: add.remote(), "missing a required argument: 'x'"),
    ("unknown keyword", lambda: add.remote(1, z=3), "unexpected keyword argument 'z'"),
    ("through options", lambda: add.options(num_cpus=0).remote(), "missing a required"),
    ("actor constructor", lambda: Account.remote(), "missing a required argument: 'owner'"),
]


@pytest.mark.parametrize(
    ("what", "call", "match"), SIGNATURE_CASES, ids=[c[0] for c in SIGNATURE_CASES]
)
def test_arguments_that_do_not_fit_raise_in_the_caller(
    ray_2cpu: Any, what: str, call: Callable[[], Any], match: str
) -> None:
    with pytest.raises(TypeError, match=match):
        call()
    _still_works()


def test_actor_method_arguments_are_checked_in_the_caller(ray_2cpu: Any) -> None:
    account = Account.remote("ada", 10)
    with pytest.raises(TypeError, match="missing a required argument: 'amount'"):
        account.deposit.remote()
    with pytest.raises(TypeError, match="too many positional"):
        account.deposit.remote(1, "note")  # note is keyword-only
    with pytest.raises(TypeError, match="too many positional"):
        account.currency.remote(1)  # a static method takes no self
    with pytest.raises(TypeError, match="unexpected keyword"):
        account.deposit.options(name="d").remote(1, memo="x")
    assert ray.get(account.deposit.remote(5, note="x"), timeout=60) == 15
    assert ray.get(account.currency.remote()) == "EUR"
    assert ray.get(account.bank.remote()) == "Account"
    # a handle that travelled still checks (it carries its methods' signatures)
    same = ray.get(ray.put([account]))[0]
    with pytest.raises(TypeError, match="missing a required argument"):
        same.deposit.remote()


OPTION_CASES: list[tuple[str, Callable[[], Any], type[BaseException], str]] = [
    ("float max_retries", lambda: add.options(max_retries=1.5), TypeError, "max_retries"),
    ("max_retries -2", lambda: add.options(max_retries=-2), ValueError, "max_retries"),
    ("str num_cpus", lambda: add.options(num_cpus="1"), TypeError, "num_cpus"),
    ("negative num_cpus", lambda: add.options(num_cpus=-1), ValueError, "num_cpus"),
    ("float num_returns", lambda: add.options(num_returns=1.5), TypeError, "num_returns"),
    ("negative num_returns", lambda: add.options(num_returns=-1), ValueError, "num_returns"),
    ("unknown num_returns", lambda: add.options(num_returns="many"), ValueError, "streaming"),
    ("int retry_exceptions", lambda: add.options(retry_exceptions=1), TypeError, "retry_exc"),
    (
        "non-exception retry_exceptions",
        lambda: add.options(retry_exceptions=[int]),
        ValueError,
        "exception classes",
    ),
    ("float max_calls", lambda: add.options(max_calls=1.0), TypeError, "max_calls"),
    ("int name", lambda: add.options(name=3), TypeError, "name"),
    ("list resources", lambda: add.options(resources=[1]), TypeError, "resources"),
    ("str memory", lambda: add.options(memory="x"), TypeError, "memory"),
    ("bool num_gpus", lambda: add.options(num_gpus=True), TypeError, "num_gpus"),
    ("float max_restarts", lambda: Account.options(max_restarts=1.0), TypeError, "max_restarts"),
    ("max_restarts -2", lambda: Account.options(max_restarts=-2), ValueError, "max_restarts"),
    ("int namespace", lambda: Account.options(namespace=1), TypeError, "namespace"),
    ("str get_if_exists", lambda: Account.options(get_if_exists="y"), TypeError, "get_if_exists"),
    ("unknown lifetime", lambda: Account.options(lifetime="forever"), ValueError, "lifetime"),
    (
        "float method retries",
        lambda: ray.method(max_task_retries=0.5),
        TypeError,
        "max_task_retries",
    ),
    ("unknown method option", lambda: ray.method(bogus=1), ValueError, "Invalid option"),
    ("reserved resource", lambda: add.options(resources={"bundle": 1}), ValueError, "reserved"),
    ("str label_selector", lambda: add.options(label_selector="a"), TypeError, "label_selector"),
    (
        "bad label condition",
        lambda: add.options(label_selector={"zone": "in(a,"}),
        ValueError,
        "label selector value",
    ),
    (
        "bad fallback",
        lambda: add.options(fallback_strategy=[{"zone": "a"}]),
        ValueError,
        "Unsupported option",
    ),
]


@pytest.mark.parametrize(
    ("what", "call", "error", "match"), OPTION_CASES, ids=[c[0] for c in OPTION_CASES]
)
def test_option_types_raise_type_error_and_values_value_error(
    ray_2cpu: Any, what: str, call: Callable[[], Any], error: type[BaseException], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()
    _still_works()


def test_the_decorator_itself(ray_2cpu: Any) -> None:
    # as in Ray: empty parentheses raise (a TypeError that is also Ray's AssertionError)
    with pytest.raises(TypeError, match="no arguments and no parentheses"):
        ray.remote()
    with pytest.raises(AssertionError):
        ray.remote()(add)

    async def fetch() -> int:
        return 1

    with pytest.raises(ValueError, match="'async def' should not be used for remote tasks"):
        ray.remote(fetch)

    @ray.remote
    class Fetcher:
        async def fetch(self) -> int:  # an async actor method is fine
            return 1

    assert ray.get(Fetcher.remote().fetch.remote(), timeout=60) == 1
    _still_works()


def test_a_closure_that_captures_a_large_object_gets_rays_warning_and_error(
    ray_2cpu: Any,
) -> None:
    big = b"x" * (20 << 20)
    huge = b"x" * (101 << 20)

    @ray.remote
    def uses_big() -> int:
        return len(big)

    @ray.remote
    def uses_huge() -> int:
        return len(huge)

    with pytest.warns(UserWarning, match="very large"):
        ref = uses_big.remote()
    assert ray.get(ref, timeout=60) == 20 << 20
    with pytest.raises(ValueError, match="too large"):
        uses_huge.remote()
    _still_works()


@ray.remote
class Flaky:
    def __init__(self) -> None:
        self.tries: dict[str, int] = {}

    def _try(self, key: str, fail_times: int) -> int:
        self.tries[key] = self.tries.get(key, 0) + 1
        if self.tries[key] <= fail_times:
            raise ConnectionError(f"{key}: try {self.tries[key]} failed")
        return self.tries[key]

    @ray.method(max_task_retries=2, retry_exceptions=[ConnectionError])
    def fetch(self, key: str, fail_times: int) -> int:
        return self._try(key, fail_times)

    @ray.method(max_task_retries=2, retry_exceptions=[KeyError])
    def other_errors(self, key: str) -> int:
        return self._try(key, 1)  # a ConnectionError: not in its list

    def plain(self, key: str) -> int:
        return self._try(key, 1)

    @ray.method  # bare: changes nothing, as in Ray
    def crash_once(self, marker: str) -> int:
        if not os.path.exists(marker):
            Path(marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return os.getpid()

    @ray.method(max_task_retries=1)
    def crash_once_retried(self, marker: str) -> int:
        return self.crash_once(marker)


def test_method_retries_on_exceptions(ray_2cpu: Any) -> None:
    actor = Flaky.remote()
    assert ray.get(actor.fetch.remote("a", 2), timeout=60) == 3  # failed twice, retried
    with pytest.raises(ConnectionError, match="try 3 failed"):
        ray.get(actor.fetch.remote("b", 3), timeout=60)  # out of retries
    with pytest.raises(ConnectionError):
        ray.get(actor.other_errors.remote("c"), timeout=60)
    with pytest.raises(RayTaskError):
        ray.get(actor.plain.remote("d"), timeout=60)
    retried = actor.plain.options(max_task_retries=1, retry_exceptions=True).remote("e")
    assert ray.get(retried, timeout=60) == 2


def test_method_retries_when_the_actor_process_dies(ray_2cpu: Any, tmp_path: Path) -> None:
    actor = Flaky.options(max_restarts=2).remote()
    pid = ray.get(actor.crash_once_retried.remote(str(tmp_path / "a")), timeout=60)
    assert pid != os.getpid()
    with pytest.raises(ray.exceptions.RayActorError, match="max_task_retries"):
        ray.get(actor.crash_once.remote(str(tmp_path / "b")), timeout=60)
    _still_works()
