"""Turning values into bytes and back, with zero-copy buffers.

Values are pickled with cloudpickle (so functions and classes from ``__main__`` or a
notebook travel by value) using pickle protocol 5: large contiguous buffers, such as numpy
arrays, are kept out of band and laid out 64-byte aligned after the pickle. Reading an
object that sits in shared memory passes memoryviews of that memory to the unpickler, so a
numpy array comes back as a read-only view with no copy.

Layout of a serialized object::

    u32 n_buffers | u64 len(meta) | u64 len(buf_0) ... | pad to 64 | meta | pad | buf_0 | ...

Object references found while pickling are recorded, so the node manager can keep objects
that are contained in other objects (or in task arguments) alive.
"""

from __future__ import annotations

import io
import marshal
import pickle
import struct
import threading
import types
from collections import ChainMap
from collections.abc import Callable
from typing import Any

import cloudpickle

ALIGN = 64
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

_local = threading.local()
_NO_BUFFERS = struct.pack("<I", 0)
_PAD = bytes(ALIGN - 12)


def _align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def note_contained_ref(object_id: bytes) -> None:
    """Called by ``ObjectRef.__reduce__``: record a ref found inside a value."""
    refs: list[bytes] | None = getattr(_local, "refs", None)
    if refs is not None:
        refs.append(object_id)


class SerializedObject:
    """A pickled value: the pickle stream, its out-of-band buffers and contained refs."""

    __slots__ = ("buffers", "contained", "meta", "size", "type_name")

    def __init__(
        self, meta: bytes, buffers: list[memoryview], contained: list[bytes], type_name: str = ""
    ) -> None:
        self.type_name = type_name
        self.meta = meta
        self.buffers = buffers
        self.contained = contained
        header = 4 + 8 * (1 + len(buffers))
        size = _align(header) + len(meta)
        for buf in buffers:
            size = _align(size) + buf.nbytes
        self.size = size

    def write_into(self, dest: memoryview) -> None:
        """Write the object into ``dest`` (a writable byte view of at least ``size``)."""
        _U32.pack_into(dest, 0, len(self.buffers))
        _U64.pack_into(dest, 4, len(self.meta))
        for i, buf in enumerate(self.buffers):
            _U64.pack_into(dest, 12 + 8 * i, buf.nbytes)
        pos = _align(4 + 8 * (1 + len(self.buffers)))
        dest[pos : pos + len(self.meta)] = self.meta
        pos += len(self.meta)
        for buf in self.buffers:
            pos = _align(pos)
            dest[pos : pos + buf.nbytes] = buf
            pos += buf.nbytes

    def to_bytes(self) -> bytes:
        if not self.buffers:  # the common small case, without a scratch buffer
            return _NO_BUFFERS + _U64.pack(len(self.meta)) + _PAD + self.meta
        out = bytearray(self.size)
        self.write_into(memoryview(out))
        return bytes(out)


def _reduce_code(code: types.CodeType) -> tuple[Any, tuple[bytes]]:
    # marshal keeps every field of a code object, nested code objects included, and
    # is the format Python itself loads .pyc files with.
    return marshal.loads, (marshal.dumps(code),)


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, except that shipped code keeps its file name.

    cloudpickle 3.1.3 and later replace ``co_filename`` with ``"<dynamic-code>"``, so a
    remote traceback would name no file and show no source line. Workers share the
    driver's Python (and so its bytecode and marshal format), so code travels marshalled
    instead, exactly as compiled.
    """

    dispatch_table = ChainMap(
        {types.CodeType: _reduce_code},
        cloudpickle.Pickler.dispatch_table,
    )


def dumps(value: Any, buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None) -> bytes:
    """cloudpickle's ``dumps`` at protocol 5, keeping shipped code's file names."""
    with io.BytesIO() as file:
        _Pickler(file, protocol=5, buffer_callback=buffer_callback).dump(value)
        return file.getvalue()


def dumps_function(fn: Any) -> bytes:
    """Pickle a function or class by value (cloudpickle), keeping its code's file name."""
    return dumps(fn)


_ATOMS = (int, float, str, bytes, bool, type(None))


def _plain(value: Any, depth: int = 0) -> bool:
    """True for small trees of builtin values, which the standard pickler handles alone."""
    if type(value) in _ATOMS:
        return not isinstance(value, str | bytes) or len(value) < 4096
    if depth >= 3:
        return False
    kind = type(value)
    if kind is tuple or kind is list:
        return len(value) <= 16 and all(_plain(v, depth + 1) for v in value)
    if kind is dict:
        return len(value) <= 16 and all(
            type(k) in _ATOMS and _plain(v, depth + 1) for k, v in value.items()
        )
    return False


def serialize(value: Any) -> SerializedObject:
    """Pickle ``value``; raises TypeError with advice when it cannot be pickled."""
    if _plain(value):
        # Fast path (~5x quicker): builtin values hold no functions, classes or refs.
        return SerializedObject(pickle.dumps(value, protocol=5), [], [], type_name(value))
    buffers: list[memoryview] = []

    def keep_out_of_band(pb: pickle.PickleBuffer) -> bool:
        try:
            raw = pb.raw()
        except BufferError:  # not contiguous: let pickle copy it in band
            return True
        if raw.nbytes < 2048:
            return True
        buffers.append(raw)
        return False

    previous = getattr(_local, "refs", None)
    refs: list[bytes] = []
    _local.refs = refs
    try:
        meta = dumps(value, keep_out_of_band)
    except Exception as err:
        raise TypeError(
            f"Could not serialize {_describe(value)}: {type(err).__name__}: {err}. "
            "Values sent to tasks or put in the object store must be picklable by "
            "cloudpickle: create locks, sockets, open files and similar resources inside "
            "the task instead of passing them in."
        ) from err
    finally:
        _local.refs = previous
    return SerializedObject(meta, buffers, refs, type_name(value))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


def meta_of(view: memoryview) -> memoryview:
    """The pickle stream of a serialized object, without its out-of-band buffers."""
    (n,) = _U32.unpack_from(view, 0)
    (meta_len,) = _U64.unpack_from(view, 4)
    pos = _align(4 + 8 * (1 + n))
    return view[pos : pos + meta_len]


def type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def deserialize(
    view: memoryview, make_buffer: Callable[[int, int], memoryview] | None = None
) -> Any:
    """Rebuild a value from its serialized bytes in ``view``.

    ``make_buffer(start, size)`` may supply each out-of-band buffer (positions relative to
    ``view``); the client uses it to hand out views of shared memory whose lifetime it can
    track. By default buffers are read-only slices of ``view``.
    """
    (n,) = _U32.unpack_from(view, 0)
    (meta_len,) = _U64.unpack_from(view, 4)
    sizes = [_U64.unpack_from(view, 12 + 8 * i)[0] for i in range(n)]
    pos = _align(4 + 8 * (1 + n))
    meta = view[pos : pos + meta_len]
    pos += meta_len
    bufs: list[memoryview] = []
    for size in sizes:
        pos = _align(pos)
        if make_buffer is not None:
            bufs.append(make_buffer(pos, size))
        else:
            bufs.append(view[pos : pos + size].toreadonly())
        pos += size
    return pickle.loads(meta, buffers=bufs)
