"""Cleaning up after node managers that died without cleaning up (SIGKILL, a crash).

A node manager keeps its arena in ``/dev/shm`` (memory, not disk) and its spill files in
the temporary directory. It removes both when it stops; killed, it cannot, and an arena
of a few GiB would stay in memory until reboot. So each node manager holds an exclusive
``flock`` on a ``lock`` file in each of its directories for its whole life: the kernel
drops it when the process dies, however it dies. Whoever starts a runtime next sweeps
this user's directories whose lock can be taken: their owner is gone.

Directories made by versions without lock files are judged by their socket instead: a
Unix socket that refuses connections has no listener.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import socket
import time

log = logging.getLogger("jupyter_ray")

LOCK = "lock"
NO_LOCK_GRACE_S = 600.0  # a directory that has no lock yet may be one being set up


def hold(directory: str) -> int:
    """Lock ``directory`` for this process's life; returns the descriptor to keep open.

    The lock file appears already locked (locked under another name, then renamed), so a
    sweep never finds it unlocked while its owner lives.
    """
    path = os.path.join(directory, LOCK)
    tmp = f"{path}.{os.getpid()}"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.replace(tmp, path)
    return fd


def sweep(*places: tuple[str, str]) -> list[str]:
    """Remove this user's runtime directories whose owner is dead.

    ``places`` are (folder, name prefix) pairs. Returns what was removed. Never raises:
    cleanup must not stop a runtime from starting.
    """
    removed = []
    uid = os.getuid()
    keep = f"jupyter_ray-{uid}"  # discovery's own folder (session files), not a runtime's
    for root, prefix in dict.fromkeys(places):  # each place once
        try:
            names = os.listdir(root)
        except OSError:
            continue
        for name in names:
            if not name.startswith(prefix) or name == keep:
                continue
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if st.st_uid != uid or not os.path.isdir(path) or os.path.islink(path):
                continue
            try:
                if _abandoned(path, st.st_mtime):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
            except OSError as err:
                log.debug("could not check %s: %s", path, err)
    if removed:
        log.info("removed %d directories of runtimes that died: %s", len(removed), removed)
    return removed


def _abandoned(path: str, mtime: float) -> bool:
    lock = os.path.join(path, LOCK)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        if time.time() - mtime < NO_LOCK_GRACE_S:
            return False
        sock = os.path.join(path, "node.sock")
        return not os.path.exists(sock) or _refuses(sock)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False  # its owner lives
        raise
    finally:
        os.close(fd)  # also releases the lock if we got it
    return True


def _refuses(path: str) -> bool:
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as s:
        s.settimeout(1.0)
        try:
            s.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return True
        except OSError:
            return False
        return False
