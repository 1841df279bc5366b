"""Finding running runtimes on this machine: one small JSON file per node manager.

This is the one registry of runtimes on a machine: each node manager records itself in
``<Jupyter runtime dir>/jupyter_ray/<node>.json`` (the folder and files readable by their
owner only) and removes the file when it stops; files of processes that died are pruned
whenever the registry is read. A runtime started by a script, a notebook kernel, the
Jupyter server or ``jupyter-ray start`` is listed alike, with ``origin`` saying which.
``init(address="auto")``, the ``jupyter-ray`` command line and the server extension read
it. The folder is Jupyter's runtime directory, found by the rule of
``jupyter_core.paths.jupyter_runtime_dir`` (this package imports no Jupyter code).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass


@dataclass(slots=True)
class SessionInfo:
    node_id: str
    socket: str
    pid: int
    started: float
    embedded: bool
    tcp_address: str | None = None  # HOST:PORT of the cluster port, if it listens
    token_file: str | None = None
    head_address: str | None = None  # HOST:PORT of the head a worker node joined
    origin: str = "script"  # who started it: script, kernel, server or cli
    label: str = ""  # a human hint: the kernel's id, the server's URL...

    @property
    def is_member(self) -> bool:
        """A worker node of a cluster (not a head, not a single-node runtime)."""
        return self.head_address is not None


ORIGINS = ("script", "kernel", "server", "cli")


def jupyter_runtime_dir() -> str:
    """Jupyter's runtime directory, by ``jupyter_core.paths.jupyter_runtime_dir``'s rule
    (``JUPYTER_RUNTIME_DIR``, else ``JUPYTER_DATA_DIR/runtime``, else the platform's
    default); a test checks that both agree."""
    env = os.environ
    if env.get("JUPYTER_RUNTIME_DIR"):
        return env["JUPYTER_RUNTIME_DIR"]
    if env.get("JUPYTER_DATA_DIR"):
        data = env["JUPYTER_DATA_DIR"]
    elif sys.platform == "darwin":
        data = os.path.join(os.path.expanduser("~"), "Library", "Jupyter")
    else:
        xdg = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        data = os.path.join(xdg, "jupyter")
    return os.path.join(data, "runtime")


def sessions_dir() -> str:
    """The registry folder (created owner-only when missing)."""
    path = os.path.join(jupyter_runtime_dir(), "jupyter_ray")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def write_session(
    node_id: str,
    socket: str,
    embedded: bool,
    tcp_address: str | None = None,
    token_file: str | None = None,
    head_address: str | None = None,
    origin: str = "script",
    label: str = "",
) -> str:
    path = os.path.join(sessions_dir(), f"{node_id}.json")
    info = SessionInfo(
        node_id,
        socket,
        os.getpid(),
        time.time(),
        embedded,
        tcp_address,
        token_file,
        head_address,
        origin,
        label,
    )
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(info), f)
    os.replace(tmp, path)
    return path


def remove_session(node_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(sessions_dir(), f"{node_id}.json"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_sessions() -> list[SessionInfo]:
    """Live runtimes on this machine, newest first; stale files are cleaned up."""
    found = []
    directory = sessions_dir()
    for name in os.listdir(directory):
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path) as f:
                info = SessionInfo(**json.load(f))
        except (OSError, ValueError, TypeError):
            continue
        if _alive(info.pid) and os.path.exists(info.socket):
            found.append(info)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return sorted(found, key=lambda s: s.started, reverse=True)


def find_cluster() -> SessionInfo | None:
    """The runtime ``address="auto"`` means: the newest head or single-node runtime.

    A worker node is chosen only when no head runs on this machine (its head is
    elsewhere): a driver attached to a worker node dies with that node, while one
    attached to the head outlives every worker node.
    """
    sessions = find_sessions()
    heads = [s for s in sessions if not s.is_member]
    choices = heads or sessions
    return choices[0] if choices else None
