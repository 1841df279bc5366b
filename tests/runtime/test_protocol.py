"""Framing and pickling of the messages between processes."""

from __future__ import annotations

import dataclasses
import pickle
import random

import pytest
from jupyter_ray.runtime.common import framing
from jupyter_ray.runtime.common import protocol as p


def _messages() -> list[object]:
    spec = p.TaskSpec(
        b"t" * 16, "f", b"f" * 20, b"args", [b"d" * 20], [], 1, {"CPU": 1.0}, 3, False, 0
    )
    return [
        p.SubmitTask(spec),
        p.ExecuteTask(spec, None, [p.Payload(offset=64, size=10)], [0], 2),
        p.TaskDone(b"t" * 16, [p.Payload(data=b"x", size=1)], [[]], started=1.5),
        p.ObjectAvailable(b"o" * 20, None),
        p.Subscribe([b"o" * 20], True),
        p.Blocked(),
        p.CancelTask(b"t" * 16, False),
    ]


def test_every_message_class_survives_the_wire() -> None:
    for msg in _messages():
        assert framing.FrameDecoder().feed(framing.encode(msg)) == [msg]
    # and any message class, whatever its fields and defaults (compact pickling)
    for cls in vars(p).values():
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == p.__name__:
            assert "__reduce__" in vars(cls), f"{cls.__name__} pickles the slow way"


def test_messages_pickle_as_field_tuples() -> None:
    spec = _messages()[0]
    assert b"task_id" not in pickle.dumps(spec, protocol=5)  # no field names on the wire


def test_state_records_pickle_as_field_tuples_and_round_trip() -> None:
    # The change feed sends thousands of these; they take the compact path too.
    from jupyter_ray.runtime.common import state_schema as schema

    record = schema.GpuState(index=0, name="fake", utilization=1.5, memory_used=1, memory_total=2)
    data = pickle.dumps(record, protocol=5)
    assert b"utilization" not in data and pickle.loads(data) == record
    records = [
        cls
        for cls in vars(schema).values()
        if isinstance(cls, type)
        and dataclasses.is_dataclass(cls)
        and cls.__module__ == schema.__name__
    ]
    assert len(records) >= 5
    for cls in records:
        assert "__reduce__" in vars(cls), f"{cls.__name__} pickles the slow way"


def test_decoder_takes_any_split_of_a_reused_buffer() -> None:
    rng = random.Random(7)
    msgs = [p.Payload(data=bytes(rng.randrange(0, 5000)), size=i) for i in range(200)]
    stream = b"".join(framing.encode(m) for m in msgs)
    for _ in range(20):
        decoder = framing.FrameDecoder()
        scratch = bytearray(8192)  # one buffer reused for every read, as the transports do
        out: list[object] = []
        pos = 0
        while pos < len(stream):
            chunk = stream[pos : pos + rng.randrange(1, 8192)]
            pos += len(chunk)
            scratch[: len(chunk)] = chunk
            out += decoder.feed(memoryview(scratch)[: len(chunk)])
        assert out == msgs


def test_decoder_refuses_oversized_frames() -> None:
    decoder = framing.FrameDecoder(max_frame=100)
    with pytest.raises(ValueError, match="larger than allowed"):
        decoder.feed(framing.encode(p.Payload(data=bytes(500))))
