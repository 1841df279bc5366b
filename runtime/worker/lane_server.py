"""The actor worker's end of direct calls: it accepts callers' lanes and queues each
call for the worker's main loop. The protocol is described in ``client/lanes.py``."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from ..common import framing
from ..common import protocol as p
from ..common.transport import CLIENT_READ_SIZE

log = logging.getLogger(__name__)


class CallerLane:
    """The worker's end of one caller's lane."""

    __slots__ = ("_lock", "_sock", "caller", "closed")

    def __init__(self, sock: socket.socket, caller: int) -> None:
        self.caller = caller
        self._sock = sock
        self._lock = threading.Lock()
        self.closed = False

    def send(self, *msgs: object) -> None:
        """Send to the caller; a caller that went away is not an error here."""
        data = b"".join(framing.encode(m) for m in msgs)
        with self._lock:
            if self.closed:
                return
            try:
                self._sock.sendall(data)
            except OSError:
                self.closed = True


class LaneClosed:
    """Queued to the worker's main loop when a caller's lane closes."""

    __slots__ = ("lane",)

    def __init__(self, lane: CallerLane) -> None:
        self.lane = lane


class DirectServer:
    """Accepts callers' lanes in an actor worker; queues each call for the main loop.

    ``deliver`` gets ``(lane, DirectCall)`` for each call, in the order the caller sent
    them, and ``LaneClosed`` when a lane ends.
    """

    def __init__(self, path: str, deliver: Callable[[Any], None]) -> None:
        self.path = path
        self._deliver = deliver
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        os.chmod(path, 0o600)
        self._listener.listen(64)
        threading.Thread(target=self._accept_loop, name="actor-lanes", daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(sock,), name="actor-lane", daemon=True
            ).start()

    def _serve(self, sock: socket.socket) -> None:
        decoder = framing.FrameDecoder(framing.HANDSHAKE_MAX_FRAME)
        buf = memoryview(bytearray(CLIENT_READ_SIZE))
        lane: CallerLane | None = None
        try:
            while True:
                n = sock.recv_into(buf)
                if not n:
                    break
                for msg in decoder.feed(buf[:n]):
                    if lane is None:
                        if type(msg) is not p.DirectHello:
                            raise ValueError(f"expected DirectHello, got {type(msg).__name__}")
                        lane = CallerLane(sock, msg.caller)
                        decoder.max_frame = framing.MAX_FRAME
                    elif type(msg) is p.DirectCall:
                        self._deliver((lane, msg))
                    else:
                        raise ValueError(f"unexpected {type(msg).__name__} on an actor lane")
        except OSError:
            pass
        except Exception as err:  # garbage from a caller: drop its lane, keep serving
            log.warning("closing an actor lane: %s", err)
        finally:
            if lane is not None:
                lane.closed = True
                self._deliver(LaneClosed(lane))
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
