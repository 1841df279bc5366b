"""Identifiers for tasks, objects, workers and nodes.

A task id is 16 bytes: 8 random bytes fixed per process and an 8-byte counter, so ids are
made without a round trip and never collide across processes. An object id is the id of
the task that creates it plus a 4-byte return index (puts use a fresh task id).
"""

from __future__ import annotations

import itertools
import os
import struct

TASK_ID_SIZE = 16
OBJECT_ID_SIZE = 20

_prefix = os.urandom(8)
_counter = itertools.count(1)
_pid = os.getpid()


def _reseed() -> None:
    global _prefix, _counter, _pid
    _prefix = os.urandom(8)
    _counter = itertools.count(1)
    _pid = os.getpid()


def new_task_id() -> bytes:
    """Return a fresh task id, unique across processes."""
    if os.getpid() != _pid:  # forked child: never reuse the parent's sequence
        _reseed()
    return _prefix + struct.pack(">Q", next(_counter))


def object_id_for(task_id: bytes, index: int) -> bytes:
    """Return the id of the ``index``-th object created by ``task_id``."""
    return task_id + struct.pack(">I", index)


def task_id_of(object_id: bytes) -> bytes:
    """Return the id of the task that creates ``object_id``."""
    return object_id[:TASK_ID_SIZE]


def random_id(n: int = 16) -> str:
    """Return a random hex id for workers, nodes and sessions."""
    return os.urandom(n).hex()
