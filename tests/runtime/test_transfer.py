"""Chunked transfers: the sender's pieces and the receiver's assembly into its store."""

from __future__ import annotations

import asyncio
import os

import pytest
from jupyter_ray.runtime.common import framing
from jupyter_ray.runtime.common import protocol as p
from jupyter_ray.runtime.common.exceptions import ObjectStoreFullError
from jupyter_ray.runtime.node.transfer import CHUNK, Assembler, send_value

OID = b"o" * 20


class FakeStore:
    """An arena (bytearray) and files (dict), with an allocation that can be held back."""

    def __init__(self, size: int, as_file: bool = False, full: bool = False) -> None:
        self.arena = bytearray(size)
        self.files: dict[str, bytearray] = {}
        self.as_file = as_file
        self.full = full
        self.gate = asyncio.Event()
        self.gate.set()
        self.released: list[p.Payload] = []

    async def allocate(self, oid: bytes, size: int) -> p.Payload:
        await self.gate.wait()
        if self.full:
            raise ObjectStoreFullError("no room")
        if self.as_file:
            self.files["f"] = bytearray(size)
            return p.Payload(path="f", size=size, offset=-3)
        return p.Payload(offset=0, size=size)

    def write(self, payload: p.Payload, offset: int, data: bytes) -> asyncio.Future[None] | None:
        if payload.path is None:
            self.arena[payload.offset + offset : payload.offset + offset + len(data)] = data
            return None

        async def later() -> None:
            await asyncio.sleep(0)
            self.files[payload.path or ""][offset : offset + len(data)] = data

        return asyncio.ensure_future(later())

    def release(self, payload: p.Payload) -> None:
        self.released.append(payload)

    def assembler(self) -> Assembler:
        return Assembler(self.allocate, self.write, self.release)


async def _send(asm: Assembler, value: bytes) -> None:
    """Send ``value`` through the wire format, as a connection would carry it."""
    decoder = framing.FrameDecoder()

    def send(msg: object) -> None:
        for received in decoder.feed(framing.encode(msg)):
            asm.feed(7, received)

    async def drain() -> None:
        await asyncio.sleep(0)  # let the receiver's tasks run, as a socket would

    await send_value(send, drain, OID, memoryview(bytearray(value)))


@pytest.mark.parametrize("as_file", [False, True])
@pytest.mark.parametrize("held", [False, True])
def test_value_is_assembled_in_order_in_the_store(as_file: bool, held: bool) -> None:
    value = os.urandom(2 * CHUNK + 12345)

    async def main() -> None:
        store = FakeStore(len(value), as_file=as_file)
        if held:
            store.gate.clear()  # chunks arrive before room is reserved (spilling first)
        asm = store.assembler()
        await _send(asm, value)
        store.gate.set()
        payload = await asyncio.wait_for(asm.take(OID), 10)
        assert payload.size == len(value)
        got = store.files["f"] if as_file else store.arena
        assert bytes(got) == value
        assert len(asm) == 0

    asyncio.run(main())


def test_value_is_kept_in_memory_when_the_store_is_full() -> None:
    value = os.urandom(CHUNK + 1)

    async def main() -> None:
        store = FakeStore(0, full=True)
        asm = store.assembler()
        await _send(asm, value)
        payload = await asyncio.wait_for(asm.take(OID), 10)
        assert payload.data == value and payload.size == len(value)

    asyncio.run(main())


def test_a_sender_that_goes_away_mid_transfer_frees_the_room() -> None:
    async def main() -> None:
        store = FakeStore(3 * CHUNK)
        asm = store.assembler()
        asm.feed(7, p.ObjectChunk(OID, 0, 3 * CHUNK, bytes(CHUNK)))
        await asyncio.sleep(0.01)  # room reserved, one chunk written
        asm.drop_source(8)  # another connection: nothing happens
        assert len(asm) == 1 and not store.released
        asm.drop_source(7)
        assert len(asm) == 0
        assert [r.size for r in store.released] == [3 * CHUNK]
        with pytest.raises(KeyError, match="no chunks arrived"):
            await asm.take(OID)

    asyncio.run(main())
