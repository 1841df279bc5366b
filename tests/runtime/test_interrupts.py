"""An interrupt never cuts a message in two (runtime/common/interrupts.py).

Each case runs in a child Python (a SIGINT must not reach pytest): the child connects a
``ClientConnection`` to a socket it listens on itself, sends a message far larger than the
socket's buffer while nothing reads, and sends itself SIGINT once the send is under way.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SETUP = """
import os, signal, socket, sys, threading, time
from jupyter_ray.runtime.common import interrupts
from jupyter_ray.runtime.common.framing import FrameDecoder
from jupyter_ray.runtime.common.transport import ClientConnection

path = sys.argv[1]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(1)
conn = ClientConnection(path, lambda msg: None, lambda: None)
peer, _ = server.accept()
BIG = b"x" * (16 << 20)
assert interrupts.install()

def until(cond, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.005)

def sending():  # bytes are waiting for the peer: the big send is under way
    import select
    return bool(select.select([peer], [], [], 0)[0])
"""

HELD_UNTIL_SENT = """
received = []

def interrupt_then_read():
    until(sending, "the send to start")
    os.kill(os.getpid(), signal.SIGINT)
    until(lambda: interrupts.HELD, "the handler to hold the interrupt")
    decoder = FrameDecoder()
    while len(received) < 2:
        data = peer.recv(1 << 20)
        assert data, "the connection closed"
        received.extend(decoder.feed(data))

reader = threading.Thread(target=interrupt_then_read)
reader.start()
try:
    conn.send(BIG)
    print("send returned without an interrupt")
except KeyboardInterrupt:
    print("interrupted after the send")
conn.send("next")
reader.join(60)
assert not reader.is_alive(), "the peer never got two whole messages"
print(len(received[0]) == len(BIG), received[1])
"""

SECOND_PRESS = """
def press_twice():
    until(sending, "the send to start")
    os.kill(os.getpid(), signal.SIGINT)
    until(lambda: interrupts.HELD, "the handler to hold the interrupt")
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=press_twice, daemon=True).start()
started = time.monotonic()
try:
    conn.send(BIG)  # nothing ever reads: only the second press gets out
    print("not interrupted")
except KeyboardInterrupt:
    print(time.monotonic() - started < 20, interrupts.HELD)
"""


def _run(body: str, tmp_path_str: str) -> list[str]:
    code = textwrap.dedent(SETUP) + textwrap.dedent(body)
    out = subprocess.run(
        [sys.executable, "-c", code, f"{tmp_path_str}/sock"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_an_interrupt_during_a_send_waits_until_the_message_is_whole(tmp_path: Path) -> None:
    assert _run(HELD_UNTIL_SENT, str(tmp_path)) == ["interrupted after the send", "True next"]


def test_a_second_interrupt_gets_out_of_a_send_that_blocks(tmp_path: Path) -> None:
    assert _run(SECOND_PRESS, str(tmp_path)) == ["True []"]
