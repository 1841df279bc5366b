"""``PeerLink``: an outgoing, authenticated connection from this node manager to another.

Runs on the node manager's event loop (an ``asyncio.Protocol``). The node manager uses
one per peer it forwards work to, and a member node one to its head.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..common import auth
from ..common import protocol as p
from ..common.framing import FrameDecoder, encode
from ..common.transport import Drainable

log = logging.getLogger("jupyter_ray.node")


class PeerLink(Drainable, asyncio.Protocol):
    """An outgoing, authenticated connection from this node manager to another one."""

    def __init__(
        self,
        node_id: str,
        token: str,
        hello: p.Hello,
        on_message: Callable[..., None],
        on_lost: Callable[[PeerLink], None],
    ) -> None:
        self.node_id = node_id
        self._token = token
        self._hello = hello
        self._on_message = on_message
        self._on_lost = on_lost
        self._decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[p.Welcome] = asyncio.get_event_loop().create_future()
        self.closed = False
        self.functions: set[bytes] = set()
        self.pushed: dict[bytes, int] = {}  # object id -> forwarded tasks that need it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._decoder.feed(data)
        except Exception as err:
            log.warning("bad frame from peer %s: %s", self.node_id, err)
            self.close()
            return
        for msg in messages:
            if isinstance(msg, p.AuthChallenge):
                self._hello.auth = auth.answer(self._token, msg.nonce)
                self.send(self._hello)
            elif isinstance(msg, p.Welcome):
                if not self.ready.done():
                    self.ready.set_result(msg)
            else:
                self._on_message(self, msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake_drainers(ConnectionError(f"the link to node {self.node_id} closed"))
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"peer {self.node_id} closed the link"))
        self._on_lost(self)

    def send(self, *msgs: object) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(b"".join(encode(m) for m in msgs))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def link_source(link: PeerLink) -> int:
    """The assembler's key for values arriving on ``link`` (connection ids are >= 0)."""
    return -id(link)


def link_factory(link: PeerLink) -> Callable[[], PeerLink]:
    return lambda: link


def release_push(link: PeerLink, oid: bytes) -> bool:
    """One forwarded task less needs ``oid`` on the peer; True when none does any more."""
    left = link.pushed.get(oid, 0) - 1
    if left > 0:
        link.pushed[oid] = left
        return False
    link.pushed.pop(oid, None)
    return True
