"""Framed message connections: an asyncio side for servers, a blocking side for clients.

Measured on the 2-core machines (see docs/architecture.md): Unix-domain sockets with a
4-byte length prefix and pickle bodies. The server side batches every message produced in
one event-loop iteration into a single write; the client side sends from the calling
thread (no hop through another thread) and reads on one daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from .framing import HANDSHAKE_MAX_FRAME, MAX_FRAME, FrameDecoder, encode
from .interrupts import HELD, guarded, release

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 5.0

# Reads go into one buffer per connection, reused: ``sock.recv(n)`` allocates n bytes
# each call, and at asyncio's 256 KiB (or the 1 MiB we used) malloc maps and unmaps fresh
# pages every time, ~17 us a read here against ~2.5 us for ``recv_into``. A round trip
# of a task makes four reads.
SERVER_READ_SIZE = 64 * 1024  # per connection, and a node may have hundreds
CLIENT_READ_SIZE = 256 * 1024  # one or two per process


class Drainable:
    """Write flow control for an asyncio protocol: ``await drain()`` for bulk senders.

    Ordinary messages are small and written at once; a sender of many large chunks
    (:mod:`transfer`) waits after each one until the transport's buffer is below its
    low-water mark, so a 100 MiB value never sits in a user-space buffer whole.
    """

    closed: bool
    _paused = False
    _drain_waiters: list[asyncio.Future[None]] | None = None

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drainers(None)

    def _wake_drainers(self, exc: Exception | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters or [], None
        for waiter in waiters:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)

    def _flush_for_drain(self) -> None:
        """Hand queued messages to the transport (overridden where sends are batched)."""

    async def drain(self) -> None:
        """Wait until the transport can take more; ConnectionError once closed."""
        self._flush_for_drain()
        if self.closed:
            raise ConnectionError("the connection closed")
        if not self._paused:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._drain_waiters is None:
            self._drain_waiters = []
        self._drain_waiters.append(waiter)
        await waiter


class ServerConnection(Drainable, asyncio.BufferedProtocol):
    """One peer of an asyncio server. Runs entirely on the server's event loop.

    A ``BufferedProtocol``: the transport reads into our reused buffer (``get_buffer``)
    instead of allocating a new bytes object for every read.
    """

    def __init__(
        self,
        conn_id: int,
        on_message: Callable[[ServerConnection, Any], None],
        on_lost: Callable[[ServerConnection], None],
        greeting: object | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.greeting = greeting  # sent as soon as the connection is made (TCP challenge)
        self.peer = ""
        self.role = "unknown"
        self.pid = 0
        self.closed = False
        self.accepted = False
        self._on_message = on_message
        self._on_lost = on_lost
        # Until the peer's hello is accepted it may send only small frames.
        self._decoder = FrameDecoder(HANDSHAKE_MAX_FRAME)
        self._inbuf = memoryview(bytearray(SERVER_READ_SIZE))
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_event_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "local"
        self._loop.call_later(HANDSHAKE_TIMEOUT, self._check_handshake)
        if self.greeting is not None:
            self.send(self.greeting)

    def _check_handshake(self) -> None:
        if not self.accepted and not self.closed:
            log.warning(
                "closing connection %d: no hello within %s s", self.conn_id, HANDSHAKE_TIMEOUT
            )
            self.close()

    def accept(self) -> None:
        """The peer's hello was accepted: lift the handshake limits."""
        self.accepted = True
        self._decoder.max_frame = MAX_FRAME

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._inbuf

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._inbuf[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        try:
            messages = self._decoder.feed(data)
        except Exception as err:  # garbage on the wire: drop the peer, keep serving
            log.warning(
                "dropping connection %d (pid %d): bad frame: %s", self.conn_id, self.pid, err
            )
            self.close()
            return
        for msg in messages:
            if self.closed:
                return
            self._on_message(self, msg)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
        self._wake_drainers(ConnectionError("the connection closed"))
        self._on_lost(self)

    def send(self, msg: object) -> None:
        if self.closed:
            return
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(encode(msg))

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self._transport is not None and not self.closed and out:
            self._transport.write(b"".join(out) if len(out) > 1 else out[0])

    def _flush_for_drain(self) -> None:
        self._flush()

    def backlog(self) -> int:
        """Bytes accepted for this peer but not yet taken by its socket."""
        queued = sum(len(b) for b in self._out)
        if self._transport is not None:
            queued += self._transport.get_write_buffer_size()
        return queued

    def close(self) -> None:
        self._flush()
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class ClientConnection:
    """A blocking connection to a node manager, with a reader thread.

    ``send`` may be called from any thread. Each received message is passed to
    ``on_message`` on the reader thread; ``on_close`` runs there once the peer is gone.
    """

    def __init__(
        self,
        address: str | tuple[str, int],
        on_message: Callable[[Any], None],
        on_close: Callable[[], None],
        name: str = "jupyter-ray-reader",
    ) -> None:
        if isinstance(address, tuple):
            self._sock = socket.create_connection(address, timeout=30)
            self._sock.settimeout(None)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self._sock.connect(address)
            except OSError:
                self._sock.close()
                raise
        self._lock = threading.Lock()
        self._on_message = on_message
        self._on_close = on_close
        self.closed = False
        self._reading = threading.Event()
        self._reading.set()
        self._thread = threading.Thread(target=self._read_loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @guarded
    def send(self, *msgs: object) -> None:
        """Send ``msgs`` whole: an interrupt waits until they are (see interrupts.py)."""
        try:
            data = b"".join(encode(m) for m in msgs)
            with self._lock:
                if self.closed:
                    raise ConnectionError(
                        "the connection to the jupyter_ray node manager is closed"
                    )
                self._sock.sendall(data)
        finally:
            if HELD:
                release()

    def _read_loop(self) -> None:
        decoder = FrameDecoder()
        sock = self._sock
        buf = memoryview(bytearray(CLIENT_READ_SIZE))
        try:
            while True:
                self._reading.wait()
                n = sock.recv_into(buf)
                if not n:
                    break
                for msg in decoder.feed(buf[:n]):
                    self._on_message(msg)
        except OSError:
            pass
        except Exception:  # a bug in a handler: log it, then treat as disconnect
            log.exception("jupyter_ray reader thread failed")
        finally:
            self.closed = True
            self._on_close()

    def pause(self) -> None:
        """Stop reading after the current chunk (lets the peer's buffers fill up)."""
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    def close(self) -> None:
        self._reading.set()
        with self._lock:
            self.closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)


MAX_UNIX_PATH = 100  # sun_path holds 108 bytes on Linux; keep a margin


def endpoint_path(session_dir: str, worker_id: str) -> str | None:
    """Where the actor worker ``worker_id`` listens for direct calls (None: too long)."""
    path = os.path.join(session_dir, f"actor-{worker_id}.sock")
    return path if len(path.encode()) <= MAX_UNIX_PATH else None
