"""Remote functions as a Ray user writes them."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import numpy as np
import pytest

import jupyter_ray as ray


@ray.remote
def add(a: int, b: int) -> int:
    return a + b


def test_init_to_result_and_shutdown_are_repeatable(ray_start: Any) -> None:
    for _ in range(2):
        info = ray_start()
        assert ray.is_initialized()
        assert info.resources["CPU"] == 2
        assert ray.get(add.remote(1, 2)) == 3
        ray.shutdown()
        assert not ray.is_initialized()


def test_first_remote_call_starts_a_runtime_like_ray() -> None:
    assert not ray.is_initialized()
    assert ray.get(add.remote(2, 2)) == 4
    assert ray.is_initialized()
    ray.shutdown()


def test_dependent_tasks_resolve_top_level_refs(ray_2cpu: Any) -> None:
    x = add.remote(1, 2)
    y = add.remote(x, 10)
    z = add.remote(a=y, b=x)
    assert ray.get([x, y, z]) == [3, 13, 16]


def test_refs_nested_in_containers_stay_refs(ray_2cpu: Any) -> None:
    @ray.remote
    def inspect(items: list[Any]) -> list[str]:
        return [type(i).__name__ for i in items] + [str(ray.get(items[0]))]

    ref = ray.put(41)
    assert ray.get(inspect.remote([ref, 1])) == ["ObjectRef", "int", "41"]


def test_refs_a_task_makes_and_returns_outlive_the_task(ray_2cpu: Any) -> None:
    # The task's own refs die as it returns; the result that contains them must keep
    # the objects alive (their removal used to reach the node before the result did).
    @ray.remote
    def make() -> list[Any]:
        inner = ray.put("inner")
        return [ray.put(np.arange(10)), ray.put(np.ones(200_000)), ray.put([inner])]

    small, large, nested = ray.get(make.remote(), timeout=60)
    gc.collect()
    assert ray.get(small, timeout=60).tolist() == list(range(10))
    assert float(ray.get(large, timeout=60).sum()) == 200_000.0
    (inner,) = ray.get(nested, timeout=60)
    assert ray.get(inner, timeout=60) == "inner"


def test_num_returns_and_options(ray_2cpu: Any) -> None:
    @ray.remote(num_returns=3)
    def three() -> tuple[int, int, int]:
        return 1, 2, 3

    a, b, c = three.remote()
    assert ray.get([a, b, c]) == [1, 2, 3]
    p, q = three.options(num_returns=2).remote() if False else (None, None)
    assert p is None and q is None

    @ray.remote
    def pair() -> tuple[str, str]:
        return "x", "y"

    x, y = pair.options(num_returns=2).remote()
    assert ray.get(x) == "x" and ray.get(y) == "y"
    assert pair.options(num_returns=0).remote() is None


def test_wrong_number_of_returns_is_a_task_error(ray_2cpu: Any) -> None:
    @ray.remote(num_returns=2)
    def one() -> int:
        return 1

    a, _ = one.remote()
    with pytest.raises(ValueError, match="num_returns=2"):
        ray.get(a)


def test_nested_tasks_do_not_deadlock_a_full_pool(ray_2cpu: Any) -> None:
    @ray.remote
    def leaf(i: int) -> int:
        return i * i

    @ray.remote
    def parent(n: int) -> int:
        return sum(ray.get([leaf.remote(i) for i in range(n)]))

    # Four parents on two CPUs, each blocking in get(): blocked workers lend their CPU.
    assert ray.get([parent.remote(4) for _ in range(4)]) == [14] * 4


def test_many_tasks_and_get_of_a_tuple(ray_2cpu: Any) -> None:
    refs = tuple(add.remote(i, i) for i in range(300))
    assert ray.get(refs) == [2 * i for i in range(300)]


def test_get_of_refs_arriving_out_of_order_and_repeated_keeps_the_callers_order(
    ray_2cpu: Any,
) -> None:
    # The later tasks sleep less, so results tend to arrive out of order while get()
    # waits; a ref listed twice gives its value twice, in the places the caller put it.
    @ray.remote
    def late(i: int) -> int:
        time.sleep(0.05 * (6 - i))
        return i

    refs = [late.remote(i) for i in range(6)]
    asked = [refs[5], refs[0], refs[5], refs[3], refs[1], refs[0]]
    assert ray.get(asked) == [5, 0, 5, 3, 1, 0]
    ready, rest = ray.wait(refs, num_returns=6, timeout=60)
    assert sorted(ray.get(ready)) == list(range(6)) and rest == []
    assert ray.get([]) == []  # nothing to wait for: at once


def test_get_timeout_raises_get_timeout_error(ray_2cpu: Any) -> None:
    @ray.remote
    def slow() -> int:
        time.sleep(30)
        return 1

    ref = slow.remote()
    start = time.monotonic()
    with pytest.raises(ray.exceptions.GetTimeoutError) as info:
        ray.get(ref, timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - start < 10
    ray.cancel(ref, force=True)


def test_object_ref_is_hashable_and_has_a_future(ray_2cpu: Any) -> None:
    ref = add.remote(20, 22)
    assert {ref: 1}[ref] == 1
    assert ref.future().result(timeout=30) == 42
    assert ref == ref and ref.hex() == ref.binary().hex()


def test_object_ref_is_awaitable(ray_2cpu: Any) -> None:
    async def main() -> list[int]:
        refs = [add.remote(i, 1) for i in range(5)]
        return list(await asyncio.gather(*refs))

    assert asyncio.run(main()) == [1, 2, 3, 4, 5]


def test_worker_print_reaches_driver_with_task_name_and_pid(
    ray_2cpu: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    @ray.remote
    def chatty() -> int:
        print("hello from a worker")
        print("to stderr", file=sys.stderr)
        return os.getpid()

    pid = ray.get(chatty.remote())
    deadline = time.monotonic() + 30
    out = err = ""
    while time.monotonic() < deadline:
        o, e = capfd.readouterr()
        out, err = out + o, err + e
        if "hello from a worker" in out and "to stderr" in err:
            break
        time.sleep(0.02)
    assert f"(chatty pid={pid}) hello from a worker" in out
    assert f"(chatty pid={pid}) to stderr" in err


def test_runtime_context_in_driver_and_task(ray_2cpu: Any) -> None:
    @ray.remote
    def where() -> tuple[str | None, str]:
        ctx = ray.get_runtime_context()
        return ctx.get_task_id(), ctx.get_node_id()

    task_id, node_id = ray.get(where.remote())
    assert task_id is not None and len(task_id) == 32
    assert node_id == ray.get_runtime_context().get_node_id()
    assert ray.get_runtime_context().get_task_id() is None


def test_functions_and_closures_from_main_work(tmp_path: Any) -> None:
    script = tmp_path / "prog.py"
    script.write_text(
        textwrap.dedent(
            """
            import jupyter_ray as ray

            class Point:
                def __init__(self, x):
                    self.x = x

            def make(k):
                @ray.remote
                def scaled(p):
                    return Point(p.x * k)
                return scaled

            class OutOfRange(ValueError):
                pass

            @ray.remote
            def check(x):
                raise OutOfRange(f"{x} is out of range")

            ray.init(num_cpus=1, object_store_memory=64 << 20)
            triple = make(3)
            print("RESULT", ray.get(triple.remote(Point(14))).x)
            try:
                ray.get(check.remote(7))
            except OutOfRange as err:  # the script's own class, defined in __main__
                print("CAUGHT", type(err).__name__, isinstance(err, ray.exceptions.RayTaskError))
                print(err.traceback_str)
            ray.shutdown()
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "RESULT 42" in out.stdout
    assert "CAUGHT RayTaskError(OutOfRange) True" in out.stdout
    # Code from __main__ travels by value; its frames still name the script and show the
    # source line (cloudpickle 3.1.3 and later rename shipped code "<dynamic-code>").
    assert f'File "{script}", line ' in out.stdout
    assert 'raise OutOfRange(f"{x} is out of range")' in out.stdout
    assert "<dynamic-code>" not in out.stdout


def test_legacy_names_still_work_with_a_deprecation_warning(ray_start: Any) -> None:
    with pytest.warns(DeprecationWarning, match="num_returns"):

        @ray.remote(num_return_vals=2)
        def two() -> tuple[int, int]:
            return 1, 2

    with (
        pytest.warns(DeprecationWarning, match="redis_address"),
        pytest.raises(ConnectionError, match="jupyter-ray start --head"),
    ):
        ray.init(redis_address="127.0.0.1:1")
    ray_start()
    a, b = two.remote()
    assert ray.get([a, b]) == [1, 2]


def test_init_twice_says_what_to_do(ray_2cpu: Any) -> None:
    with pytest.raises(RuntimeError, match="ignore_reinit_error"):
        ray.init()
    assert ray.init(ignore_reinit_error=True).node_id == ray_2cpu.node_id


def test_each_result_reaches_a_draining_wait_once(ray_2cpu: Any, tmp_path: Any) -> None:
    # A wait() that blocks again on refs it already asked about must not subscribe again:
    # the node answered every subscription, so a 500-task drain got ~89,000 messages.
    go = tmp_path / "go"

    @ray.remote
    def gate() -> int:
        while not go.exists():
            time.sleep(0.01)
        return 0

    @ray.remote
    def after(x: int) -> int:
        return x

    opened = gate.remote()
    refs = [after.remote(opened) for _ in range(20)]
    client = ray._client.require_client()
    before = client.objects_received
    for _ in range(10):
        ready, rest = ray.wait(refs, num_returns=1, timeout=0.01)
        assert not ready
    go.touch()
    rest = refs
    while rest:
        _, rest = ray.wait(rest, num_returns=1, timeout=60)
    assert client.objects_received - before == len(refs) + 1  # + the gate's, pushed to us
    assert ray.get(refs) == [0] * len(refs)


def test_large_results_reach_their_owner_by_get_wait_and_future(ray_2cpu: Any) -> None:
    # The owner is told, unasked, when a result is ready; a large result comes as
    # readiness only, and whoever wants the value asks for it then.
    @ray.remote
    def big(i: int) -> bytes:
        return bytes([i]) * (300 * 1024)

    assert ray.get(big.remote(1))[:2] == b"\x01\x01"
    ref = big.remote(2)
    ready, _ = ray.wait([ref], num_returns=1, timeout=60)
    assert ready == [ref]
    assert ray.get(ref)[-1] == 2
    assert big.remote(3).future().result(timeout=60)[0] == 3


def test_wait_fetches_large_values_so_get_needs_no_round_trip(ray_2cpu: Any) -> None:
    @ray.remote
    def big(i: int) -> Any:
        return np.full(100_000, i)  # 800 KB: in the store, not inline

    client = ray._client.require_client()
    fetched, plain = big.remote(1), big.remote(2)
    assert ray.wait([fetched], timeout=60)[0] == [fetched]
    assert ray.wait([plain], timeout=60, fetch_local=False)[0] == [plain]
    # Only the default fetch_local=True asks for the value: it arrives without a get.
    deadline = time.monotonic() + 30
    while fetched.binary() not in client._mapped:
        assert time.monotonic() < deadline, "wait() did not fetch the value"
        time.sleep(0.01)
    assert plain.binary() not in client._mapped
    assert int(ray.get(fetched)[0]) == 1 and int(ray.get(plain)[-1]) == 2


def test_a_get_blocked_on_a_large_result_receives_it_once_sealed(ray_2cpu: Any) -> None:
    # Pushed to its owner as readiness only, a large result used to cost a second round
    # trip for its value; a get still blocked after a few ms asks for the value up front.
    @ray.remote
    def slow_big() -> Any:
        time.sleep(0.3)
        return np.ones(100_000)

    client = ray._client.require_client()
    before = client.objects_received
    assert float(ray.get(slow_big.remote(), timeout=60).sum()) == 100_000.0
    assert client.objects_received - before == 1  # the value itself, no readiness first
