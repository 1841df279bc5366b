"""The registry of runtimes: where it lives, who may read it, which runtime "auto" means."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jupyter_ray.runtime.common import discovery


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"JUPYTER_RUNTIME_DIR": "/somewhere/runtime"},
        {"JUPYTER_DATA_DIR": "/data/jupyter"},
        {"XDG_DATA_HOME": "/xdg/data"},
        {"XDG_DATA_HOME": "/xdg/data", "JUPYTER_DATA_DIR": "/data/jupyter"},
    ],
)
def test_the_registry_lives_in_jupyters_runtime_directory(env: dict[str, str]) -> None:
    # Computed without importing jupyter_core (runtime/ imports no Jupyter package), so
    # check it against jupyter_core itself, in a process with exactly this environment.
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "XDG_DATA_HOME", "JUPYTER_PLATFORM_DIRS"}
    }
    code = (
        "import jupyter_core.paths as jp\n"
        "from jupyter_ray.runtime.common import discovery\n"
        "print(jp.jupyter_runtime_dir()); print(discovery.jupyter_runtime_dir())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    theirs, ours = out.stdout.split()
    assert ours == theirs


def _session(node_id: str, pid: int, socket: str, **kw: Any) -> str:
    return discovery.write_session(node_id, socket, embedded=False, **kw)


def test_entries_are_owner_only_and_dead_ones_are_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "rt"))
    sock = tmp_path / "node.sock"
    sock.touch()
    path = _session("alive", os.getpid(), str(sock), origin="kernel", label="k-1")
    folder = discovery.sessions_dir()
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    dead = Path(folder) / "dead.json"
    dead.write_text(Path(path).read_text().replace(f'"pid": {os.getpid()}', '"pid": 999999999'))
    (found,) = discovery.find_sessions()
    assert (found.node_id, found.origin, found.label) == ("alive", "kernel", "k-1")
    assert not dead.exists()  # pruned when the registry was read


def test_auto_means_the_newest_head_not_a_worker_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "rt"))
    sock = tmp_path / "node.sock"
    sock.touch()
    assert discovery.find_cluster() is None
    _session("head", os.getpid(), str(sock), tcp_address="127.0.0.1:7000")
    _session("member", os.getpid(), str(sock), head_address="127.0.0.1:7000")
    sessions = discovery.find_sessions()
    assert sessions[0].node_id == "member"  # the newest
    cluster = discovery.find_cluster()
    assert cluster is not None and cluster.node_id == "head"
