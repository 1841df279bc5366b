"""A real ``jupyter server`` subprocess on loopback with the extension, for these suites.

``start_server(tmp, base_url)`` starts one with a token, a private Jupyter runtime
directory (so the registry of runtimes holds only what the test starts) and a private
config directory, and waits until it answers. ``Server.close()`` stops it and kills
whatever is left of its process tree, by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``cond`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    base_url: str
    token: str
    runtime_dir: Path
    env: dict[str, str]
    log_path: Path
    started: list[psutil.Process] = field(default_factory=list)

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{self.base_url}{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = "",
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        """(status, JSON answer) of a REST call; ``token=None`` sends no token."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url(path), data=data, method=method)
        if token is not None:
            req.add_header("Authorization", f"token {token or self.token}")
        try:
            with urllib.request.urlopen(req, timeout=120) as res:
                text = res.read()
                status = res.status
        except urllib.error.HTTPError as err:
            text, status = err.read(), err.code
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def api(self, method: str, route: str, body: Any = None) -> Any:
        """A REST call under jupyter-ray/api that must succeed; returns its JSON."""
        status, answer = self.request(method, f"jupyter-ray/api/{route}", body)
        assert status == 200, f"{method} {route}: {status} {answer}"
        return answer

    def start_kernel(self) -> str:
        status, answer = self.request("POST", "api/kernels", {"name": "python3"})
        assert status == 201, (status, answer)
        return str(answer["id"])

    def shutdown_kernel(self, kernel_id: str) -> None:
        assert self.request("DELETE", f"api/kernels/{kernel_id}")[0] == 204

    async def websocket(self, token: str | None = "") -> WebSocketClientConnection:
        headers = {} if token is None else {"Authorization": f"token {token or self.token}"}
        req = HTTPRequest(self.url("jupyter-ray/api/events", "ws"), headers=headers)
        return await websocket_connect(req)

    @contextlib.asynccontextmanager
    async def feed(self) -> AsyncIterator[WebSocketClientConnection]:
        """The live feed, closed (handshake finished) on the way out."""
        ws = await self.websocket()
        try:
            yield ws
        finally:
            ws.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(_drain(ws), 10)

    async def run_in_kernel(self, kernel_id: str, code: str, timeout: float = 120) -> str:
        """Execute ``code`` in a kernel of this server (through its connection file, as
        any client would); returns its stdout; fails on an error, showing it."""
        from jupyter_client import AsyncKernelClient

        client = AsyncKernelClient(
            connection_file=str(self.runtime_dir / f"kernel-{kernel_id}.json")
        )
        client.load_connection_file()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=120)
            return await self._execute(client, code, timeout)
        finally:
            client.stop_channels()

    async def _execute(self, client: Any, code: str, timeout: float) -> str:
        out: list[str] = []
        errors: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                errors.append("\n".join(msg["content"]["traceback"]))

        reply = await client.execute_interactive(code, output_hook=hook, timeout=timeout)
        assert reply["content"]["status"] == "ok", "\n".join(errors) or reply["content"]
        return "".join(out)

    def close(self) -> None:
        family = list(self.started)
        with contextlib.suppress(psutil.NoSuchProcess):
            family += psutil.Process(self.proc.pid).children(recursive=True)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(family, timeout=10)


def start_server(tmp: Path, base_url: str = "/", extra: tuple[str, ...] = ()) -> Server:
    """A ``jupyter server`` with the extension enabled, answering on 127.0.0.1."""
    runtime_dir, config_dir, root = tmp / "runtime", tmp / "config", tmp / "notebooks"
    for path in (runtime_dir, config_dir, root):
        path.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(runtime_dir),
        "JUPYTER_CONFIG_DIR": str(config_dir),
    }
    env.pop("JUPYTER_RAY_ADDRESS", None)
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--allow-root",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--ServerApp.base_url={base_url}",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.jpserver_extensions={'jupyter_ray': True}",
                "--JupyterRay.num_cpus=2",
                f"--JupyterRay.object_store_memory={128 << 20}",
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(proc, port, base_url, token, runtime_dir, env, log_path)

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter server exited: {log_path.read_text()[-3000:]}")
        try:
            return server.request("GET", "api/status")[0] == 200
        except OSError:
            return False

    try:
        wait_for(answers, "the Jupyter server to answer")
    except BaseException:
        server.close()
        raise
    return server


async def _drain(ws: WebSocketClientConnection) -> None:
    while await ws.read_message() is not None:
        pass


async def next_message(
    ws: WebSocketClientConnection, want: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    """Read feed messages until one satisfies ``want``; fails after ``timeout`` s."""

    async def read() -> dict[str, Any]:
        while True:
            text = await ws.read_message()
            assert text is not None, "the server closed the feed"
            msg: dict[str, Any] = json.loads(text)
            if want(msg):
                return msg

    return await asyncio.wait_for(read(), timeout)
