"""The head node started from the command line: attach, authenticate, status, stop.

Each test runs the CLI with a private TMPDIR, so ``jupyter-ray stop`` and ``address="auto"``
only see the runtime the test started; whatever it started is killed by pid at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil
import pytest
from jupyter_ray.runtime import discovery

import jupyter_ray as ray


@dataclass
class Head:
    pid: int
    address: str
    token_file: str
    env: dict[str, str]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [sys.executable, "-m", "jupyter_ray.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
        )
        if check:
            assert out.returncode == 0, out.stderr
        return out


@pytest.fixture
def head(tmp_path: Any, monkeypatch: Any) -> Iterator[Head]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_ray.cli",
            "start",
            "--head",
            "--port",
            "0",
            "--num-cpus",
            "2",
            "--resources",
            '{"slot": 3}',
            "--object-store-memory",
            str(64 << 20),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    pid = int(re.search(r"\(pid (\d+)\)", out.stdout).group(1))  # type: ignore[union-attr]
    address = re.search(r"on (127\.0\.0\.1:\d+)\.", out.stdout).group(1)  # type: ignore[union-attr]
    token_file = re.search(r"Token: (\S+)", out.stdout).group(1)  # type: ignore[union-attr]
    assert "ray.init(address='auto')" in out.stdout
    family: list[psutil.Process] = []
    try:
        node = psutil.Process(pid)
        yield Head(pid, address, token_file, env)
        if node.is_running():
            family = [node, *node.children(recursive=True)]
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(family, timeout=10)


def _remote_only(monkeypatch: Any) -> None:
    """Make init() ignore the local Unix socket, as a driver on another machine would."""
    monkeypatch.setattr(discovery, "find_sessions", lambda: [])


@ray.remote
def total(a: Any) -> float:
    return float(np.asarray(a).sum())


def test_driver_attaches_by_address_and_auto(head: Head) -> None:
    ray.init(address=head.address)
    assert not ray.api._require_client().remote  # same machine: shared memory
    assert ray.cluster_resources()["slot"] == 3
    arr = np.arange(1 << 20, dtype=np.float64)
    assert ray.get(total.remote(ray.put(arr))) == float(arr.sum())
    ray.shutdown()
    ray.init(address="auto")
    assert ray.get(total.remote([1, 2])) == 3.0
    ray.shutdown()


def test_token_client_over_tcp_moves_objects_in_messages(head: Head, monkeypatch: Any) -> None:
    _remote_only(monkeypatch)
    with open(head.token_file) as f:
        token = f.read()
    assert oct(os.stat(head.token_file).st_mode & 0o777) == "0o600"
    ray.init(address=head.address, _token=token)
    assert ray.api._require_client().remote
    arr = np.arange(300_000, dtype=np.float64)  # well above the inline limit
    ref = ray.put(arr)
    np.testing.assert_array_equal(ray.get(ref), arr)
    assert ray.get(total.remote(ref)) == float(arr.sum())
    big = ray.get(ray.remote(lambda: np.ones(400_000)).remote())
    assert big.shape == (400_000,)


def test_bad_token_and_garbage_are_refused_and_logged(head: Head, monkeypatch: Any) -> None:
    _remote_only(monkeypatch)
    with pytest.raises(ConnectionError, match="token"):
        ray.init(address=head.address, _token="not-the-token")
    with pytest.raises(ConnectionError, match="needs the cluster token"):
        ray.init(address=head.address)
    host, port = head.address.split(":")
    for junk in [os.urandom(200), b"GET / HTTP/1.1\r\n\r\n", b"\x10\x00\x00\x00" + os.urandom(16)]:
        with socket.create_connection((host, int(port)), timeout=30) as s:
            s.sendall(junk)
            s.settimeout(30)
            try:
                while s.recv(4096):
                    pass  # the challenge, then the close
            except ConnectionResetError:
                pass
    log_path = os.path.join(os.path.dirname(head.token_file), "logs", "node.log")
    deadline = time.monotonic() + 30
    while "refused a TCP connection" not in _read(log_path):
        assert time.monotonic() < deadline, "the refusal was not logged"
        time.sleep(0.05)
    with open(head.token_file) as f:
        ray.init(address=head.address, _token=f.read())  # the head still serves
    assert ray.get(total.remote([2, 3])) == 5.0


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_status_then_stop_reports_how_many(head: Head) -> None:
    status = head.cli("status")
    assert "alive" in status.stdout and "slot: 0/3 used" in status.stdout
    family = [head.pid] + [p.pid for p in psutil.Process(head.pid).children(recursive=True)]
    stopped = head.cli("stop")
    count = int(re.search(r"Stopped (\d+)", stopped.stdout).group(1))  # type: ignore[union-attr]
    assert count >= 2  # the node manager and its zygote, plus workers once started
    gone = [pid for pid in family if not psutil.pid_exists(pid) or _zombie(pid)]
    assert gone == family
    assert head.cli("status", check=False).returncode == 1  # nothing left to attach to


def test_start_says_what_is_missing(head: Head) -> None:
    out = head.cli("start", "--address", head.address, check=False)
    assert out.returncode == 2 and "not available yet" in out.stderr
    out = head.cli("start", check=False)
    assert out.returncode == 2 and "--head" in out.stderr
