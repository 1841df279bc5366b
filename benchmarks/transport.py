"""Round trips per second of candidate transports, to choose the runtime's by measurement.

    python benchmarks/transport.py [--n 5000]

Each candidate echoes a small pickled message between two processes: the caller sends,
waits for the reply, repeats. The runtime uses "asyncio Protocol server + blocking
client" (a node manager on asyncio, drivers and workers sending from their own thread).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import pickle
import socket
import struct
import tempfile
import time
from collections.abc import Callable

MSG = ("task", b"x" * 200, 12345, {"CPU": 1.0})
HEADER = struct.Struct("<I")


def _frame(obj: object) -> bytes:
    body = pickle.dumps(obj, protocol=5)
    return HEADER.pack(len(body)) + body


def _recv_frame(sock: socket.socket, buf: bytearray) -> object:
    while True:
        if len(buf) >= 4:
            (size,) = HEADER.unpack_from(buf, 0)
            if len(buf) >= 4 + size:
                obj = pickle.loads(bytes(buf[4 : 4 + size]))
                del buf[: 4 + size]
                return obj
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk


# --- servers (run in a child process) ----------------------------------------------


def _pipe_server(conn: mp.connection.Connection) -> None:
    while True:
        msg = conn.recv()
        if msg is None:
            return
        conn.send(msg)


class _EchoProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 4:
            (size,) = HEADER.unpack_from(self.buf, 0)
            if len(self.buf) < 4 + size:
                return
            obj = pickle.loads(bytes(self.buf[4 : 4 + size]))
            del self.buf[: 4 + size]
            assert self.transport is not None
            self.transport.write(_frame(obj))

    def connection_lost(self, exc: Exception | None) -> None:
        asyncio.get_event_loop().stop()


def _asyncio_protocol_server(path: str, tcp_port: int) -> None:
    loop = asyncio.new_event_loop()
    if tcp_port:
        server = loop.run_until_complete(loop.create_server(_EchoProtocol, "127.0.0.1", tcp_port))
    else:
        server = loop.run_until_complete(loop.create_unix_server(_EchoProtocol, path))
    loop.run_forever()
    server.close()


def _asyncio_streams_server(path: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(4)
                (size,) = HEADER.unpack(head)
                obj = pickle.loads(await reader.readexactly(size))
                writer.write(_frame(obj))
                await writer.drain()
        except asyncio.IncompleteReadError:
            asyncio.get_running_loop().stop()

    loop = asyncio.new_event_loop()
    loop.run_until_complete(asyncio.start_unix_server(handle, path))
    loop.run_forever()


# --- clients -----------------------------------------------------------------------


def _time(n: int, once: Callable[[], None]) -> float:
    for _ in range(200):
        once()
    start = time.perf_counter()
    for _ in range(n):
        once()
    return n / (time.perf_counter() - start)


def bench_pipe(n: int) -> float:
    parent, child = mp.Pipe()
    proc = mp.Process(target=_pipe_server, args=(child,))
    proc.start()

    def once() -> None:
        parent.send(MSG)
        parent.recv()

    rate = _time(n, once)
    parent.send(None)
    proc.join()
    return rate


def _socket_bench(n: int, target: Callable[..., None], args: tuple[object, ...], tcp: int) -> float:
    proc = mp.Process(target=target, args=args)
    proc.start()
    path = str(args[0])
    deadline = time.monotonic() + 10
    while True:
        try:
            if tcp:
                sock = socket.create_connection(("127.0.0.1", tcp))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            else:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(path)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    buf = bytearray()

    def once() -> None:
        sock.sendall(_frame(MSG))
        _recv_frame(sock, buf)

    rate = _time(n, once)
    sock.close()
    proc.join(5)
    if proc.is_alive():
        proc.terminate()
        proc.join()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    results = {
        "multiprocessing Pipe": bench_pipe(args.n),
        "asyncio Protocol server, blocking client (unix)": _socket_bench(
            args.n, _asyncio_protocol_server, (os.path.join(tmp, "a.sock"), 0), 0
        ),
        "asyncio streams server, blocking client (unix)": _socket_bench(
            args.n, _asyncio_streams_server, (os.path.join(tmp, "b.sock"),), 0
        ),
        "asyncio Protocol server, blocking client (TCP loopback)": _socket_bench(
            args.n, _asyncio_protocol_server, (os.path.join(tmp, "c.sock"), 47811), 47811
        ),
    }
    width = max(len(k) for k in results)
    for name, rate in results.items():
        print(f"{name:<{width}}  {rate:8.0f} round trips/s  ({1e6 / rate:5.0f} us)")


if __name__ == "__main__":
    main()
