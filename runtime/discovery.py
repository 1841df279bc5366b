"""Finding running runtimes on this machine: one small JSON file per node manager.

Each node manager records its socket in ``<tmp>/jupyter_ray-<uid>/sessions/<node>.json``
(readable by its owner only) and removes the file when it stops. ``init(address="auto")``
and the ``jupyter-ray`` command line use these files to attach.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
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

    @property
    def is_member(self) -> bool:
        """A worker node of a cluster (not a head, not a single-node runtime)."""
        return self.head_address is not None


def sessions_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), f"jupyter_ray-{os.getuid()}", "sessions")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def write_session(
    node_id: str,
    socket: str,
    embedded: bool,
    tcp_address: str | None = None,
    token_file: str | None = None,
    head_address: str | None = None,
) -> str:
    path = os.path.join(sessions_dir(), f"{node_id}.json")
    info = SessionInfo(
        node_id, socket, os.getpid(), time.time(), embedded, tcp_address, token_file, head_address
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
