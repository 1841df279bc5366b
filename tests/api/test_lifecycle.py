"""Start-up, shutdown and abnormal exits leave no processes or files behind."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any

import psutil
import pytest
from jupyter_ray.runtime.common import discovery, leftovers

import jupyter_ray as ray


def _wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p) and _not_zombie(p)]
        time.sleep(0.05)
    return alive


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _naming(folder: Any) -> list[int]:
    """Pids of the processes whose command line names ``folder``: a node manager a test
    started through another process (no child of ours) carries the test's folder there,
    as its workers' cwd."""
    pids = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(folder) in " ".join(proc.info["cmdline"] or []):
            pids.append(proc.pid)
    return pids


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_shutdown_stops_node_and_workers_and_removes_the_session(ray_start: Any) -> None:
    info = ray_start()
    node = ray._client._node
    assert node is not None
    deadline = time.monotonic() + 30
    while len(ray._client.require_client().query("worker_pids")) < 2:
        assert time.monotonic() < deadline, "the pool never started"
        time.sleep(0.02)
    family = [p.pid for p in psutil.Process(node.proc.pid).children(recursive=True)]
    assert len(family) >= 3  # the zygote and two workers
    ray.shutdown()
    assert _wait_gone([node.proc.pid, *family]) == []
    assert not os.path.exists(info.session_dir)


def test_killed_driver_takes_its_runtime_down(tmp_path: Any) -> None:
    script = tmp_path / "driver.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, time
            import jupyter_ray as ray
            ray.init(num_cpus=2, object_store_memory=64 << 20)
            import psutil
            client = ray._client.require_client()
            while len(client.query("worker_pids")) < 2:
                time.sleep(0.02)
            node = psutil.Process(ray._client._node.proc.pid)
            pids = [p.pid for p in node.children(recursive=True)] + [node.pid]
            print(" ".join(map(str, pids)), ray._client._node.session_dir, flush=True)
            time.sleep(600)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        *pids, session_dir = proc.stdout.readline().split()
        runtime_pids = [int(p) for p in pids]
        assert runtime_pids
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert _wait_gone(runtime_pids) == []
        deadline = time.monotonic() + 30
        while os.path.exists(os.path.join(session_dir, "arena")):
            assert time.monotonic() < deadline, "arena file left behind"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_garbage_on_the_node_socket_is_dropped_and_others_keep_working(ray_2cpu: Any) -> None:
    @ray.remote
    def one() -> int:
        return 1

    path = ray._client.require_client().welcome.session_dir + "/node.sock"  # type: ignore[union-attr]
    for junk in [os.urandom(64), b"\xff\xff\xff\x7f" + b"x" * 10, b"\x08\x00\x00\x00notapick"]:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(junk)
        s.settimeout(30)
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(10) == b""  # the node closes the connection
        s.close()
        assert ray.get(one.remote(), timeout=60) == 1


def test_worker_started_from_a_notebook_cwd_can_import_local_modules(
    tmp_path: Any, ray_start: Any, monkeypatch: Any
) -> None:
    (tmp_path / "helpers_mod.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    ray_start()
    import helpers_mod  # type: ignore[import-not-found]

    @ray.remote
    def use(x: int) -> int:
        return int(helpers_mod.triple(x))

    assert ray.get(use.remote(5)) == 15


def test_a_killed_node_managers_store_is_freed_by_the_next_start(
    tmp_path: Any, monkeypatch: Any
) -> None:
    # SIGKILL gives a node manager no chance to remove its arena (memory, in /dev/shm) or
    # its spill folder; the next runtime started on the machine does it.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    small = ["--num-cpus", "1", "--object-store-memory", str(64 << 20)]
    out = subprocess.run(
        [sys.executable, "-m", "jupyter_ray.cli", "start", "--head", "--port", "0", *small],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    (session,) = discovery.find_sessions()
    session_dir = os.path.dirname(session.socket)
    (spill,) = [p for p in os.listdir(tmp_path) if p.startswith("jupyter_ray-spill-")]
    head = psutil.Process(session.pid)
    family = [head, *head.children(recursive=True)]
    for proc in family:
        proc.kill()
    psutil.wait_procs(family, timeout=10)
    assert os.path.exists(os.path.join(session_dir, "arena"))  # left behind
    ray.init(num_cpus=1, object_store_memory=64 << 20)
    try:
        assert not os.path.exists(session_dir)
        assert not os.path.exists(tmp_path / spill)
        assert ray.get(ray.put(7)) == 7
    finally:
        ray.shutdown()


def test_the_sweep_leaves_live_runtimes_and_other_folders_alone(tmp_path: Any) -> None:
    live, dead, other = tmp_path / "jupyter_ray-live", tmp_path / "jupyter_ray-dead", tmp_path / "x"
    for folder in (live, dead, other):
        folder.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from jupyter_ray.runtime.common import leftovers\n"
            "fds = [leftovers.hold(p) for p in sys.argv[1:]]\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
            str(live),
            str(dead),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert leftovers.sweep((str(tmp_path), "jupyter_ray-")) == []  # owner alive
        young = tmp_path / "jupyter_ray-young"  # no lock yet: maybe being set up
        young.mkdir()
        assert leftovers.sweep((str(tmp_path), "jupyter_ray-")) == []
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    removed = leftovers.sweep((str(tmp_path), "jupyter_ray-"))
    assert sorted(removed) == sorted([str(live), str(dead)])
    assert other.exists() and young.exists()


def test_a_driver_that_leaves_takes_its_waiting_and_running_tasks_with_it(
    ray_2cpu: Any,
) -> None:
    # Nobody can ever ask for the results of a driver that left; its tasks used to stay
    # PENDING for ever, holding their place in the queue (and the CPUs, when running).
    code = textwrap.dedent(
        f"""
        import time, jupyter_ray as ray
        ray.init(address={ray_2cpu.address + "/node.sock"!r})
        @ray.remote(num_cpus=1)
        def wait():
            time.sleep(1000)
        refs = [wait.remote() for _ in range(500)]
        while len(ray.state.list_tasks(filters=[("state", "=", "RUNNING")])) < 2:
            time.sleep(0.05)
        print(ray.get_runtime_context().get_job_id())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    job = out.stdout.strip()

    def theirs() -> list[Any]:
        return ray.state.list_tasks(filters=[("job_id", "=", job)], limit=None)

    deadline = time.monotonic() + 60
    while {t.state for t in theirs()} != {"CANCELLED"}:
        assert time.monotonic() < deadline, {t.state for t in theirs()}
        time.sleep(0.05)
    assert len(theirs()) == 500

    # the CPUs are free again: both run at once
    @ray.remote(num_cpus=1)
    def pid() -> int:
        time.sleep(0.2)
        return os.getpid()

    assert len(set(ray.get([pid.remote(), pid.remote()], timeout=60))) == 2


INTERRUPTED_INIT = """
import os, signal, sys, threading, time
import psutil
import pytest
import jupyter_ray as ray
from jupyter_ray.runtime.common import interrupts

handler, presses = sys.argv[1] == "handler", int(sys.argv[2])
if handler:  # as in a kernel or IPython (a script keeps Python's own handler)
    assert interrupts.install()
me = psutil.Process()


def until(cond, what):
    deadline = time.monotonic() + 30
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.005)


def running_children():
    alive = []
    for child in me.children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            pass
    return alive


def press():
    # once the node manager runs, before it is ready (it takes a few hundred ms)
    until(lambda: me.children(), "the node manager to start")
    os.kill(os.getpid(), signal.SIGINT)
    if presses == 2:
        until(lambda: interrupts.HELD, "the first press to be held")
        os.kill(os.getpid(), signal.SIGINT)


threading.Thread(target=press, daemon=True).start()
try:
    ray.init(num_cpus=1, object_store_memory=64 << 20)
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted; initialized:", ray.is_initialized())
if not ray.is_initialized():
    until(lambda: not running_children(), "the node manager to be gone")
    ray.init(num_cpus=1, object_store_memory=64 << 20)
print(ray.get(ray.remote(lambda: "works").remote()))
ray.shutdown()
until(lambda: not running_children(), "the runtime to be gone after shutdown")
"""


@pytest.mark.parametrize(
    ("handler", "presses", "outcome"),
    [
        ("python", 1, "interrupted; initialized: False"),  # a script: stopped, cleaned up
        ("handler", 1, "interrupted; initialized: True"),  # held until the runtime is up
        ("handler", 2, "interrupted; initialized: False"),  # a second press gets out
    ],
)
def test_ctrl_c_while_init_starts_the_runtime_leaves_no_node_behind(
    tmp_path: Any, handler: str, presses: int, outcome: str
) -> None:
    try:
        out = subprocess.run(
            [sys.executable, "-c", INTERRUPTED_INIT, handler, str(presses)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    finally:
        orphans = _naming(tmp_path)  # a node manager left with no owner
        _kill(orphans)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [outcome, "works"]
    assert orphans == []


SILENT_NODE = """
import os, signal, socket, sys, threading
import jupyter_ray as ray

path = os.path.join(sys.argv[1], "node.sock")
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(1)
seen = []


def node_that_never_answers():
    peer, _ = server.accept()
    peer.settimeout(30)
    seen.append(peer.recv(65536))  # the driver's hello
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while init waits for the welcome
    while peer.recv(65536):
        pass
    seen.append("closed")


watcher = threading.Thread(target=node_that_never_answers)
watcher.start()
try:
    ray.init(address=path)
except KeyboardInterrupt:
    print("interrupted; initialized:", ray.is_initialized())
watcher.join(60)
print(seen[1:])
"""


def test_ctrl_c_while_connecting_leaves_no_connection_open(tmp_path: Any) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SILENT_NODE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["interrupted; initialized: False", "['closed']"]


STARTER_THAT_NEVER_CONNECTS = """
import sys
from jupyter_ray.runtime.client.launch import start_local_node

node = start_local_node({"CPU": 1.0}, 64 << 20)
print(node.proc.pid, flush=True)
sys.stdin.read()  # never connects: killed, or interrupted, between start and connect
"""


def test_an_embedded_node_whose_starter_never_connects_stops(tmp_path: Any) -> None:
    """The process that started a node manager for itself died, or was interrupted,
    after the node was ready and before it connected as the owner: the node would run
    with no owner for good. It waits for its owner (here 3 s), then stops, its workers
    with it."""
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER_THAT_NEVER_CONNECTS],
        cwd=tmp_path,
        env=dict(os.environ, JUPYTER_RAY_OWNER_WAIT_S="3"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert starter.stdout is not None and starter.stdin is not None
    node = int(starter.stdout.readline())
    starter.kill()
    starter.wait()
    starter.stdin.close()
    starter.stdout.close()
    assert _not_zombie(node)
    left = _wait_gone(sorted({node, *_naming(tmp_path)}))
    _kill(left)
    assert left == []
