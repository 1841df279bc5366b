"""The runtime a Jupyter server serves: one it started and owns, or one it attached to.

``RuntimeManager`` starts the runtime's node managers as child processes (never inside
the server), holds a client connection to the head for queries, and says where the
runtime is in a connection file that the server's kernels find through
``JUPYTER_RAY_ADDRESS``. A runtime the server started is owned through that connection
(an embedded node manager exits when its owner disconnects), so it stops with the
server however the server ends; one it attached to is left alone.

Its methods block (starting takes ~0.3 s, stopping up to a few seconds): the handlers
call them on an executor thread. One lock keeps them apart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..on_ray.records import UNAVAILABLE
from ..runtime.client.core import CoreClient
from ..runtime.client.feed_client import StateFeed
from ..runtime.client.launch import LocalNode, start_local_node
from ..runtime.common.auth import read_token
from .options import StartOptions

if TYPE_CHECKING:
    from .ray_source import RayStateSource

log = logging.getLogger("jupyter_ray.server")

STOPPED = "stopped"
STARTING = "starting"
RUNNING = "running"
CRASHED = "crashed"


class RuntimeBusy(RuntimeError):
    """A start while a runtime runs (the handlers answer 409)."""


class NoRuntime(RuntimeError):
    """A query while no runtime runs (the handlers answer 503 with this message)."""


@dataclass
class _Running:
    """What a running (or crashed) runtime is made of."""

    client: CoreClient | None  # None on the Ray backend
    address: str  # the head's Unix socket, HOST:PORT over TCP, or a Ray cluster's
    node_id: str
    owned: bool
    head: LocalNode | None = None
    members: list[tuple[LocalNode, CoreClient]] = field(default_factory=list)
    tcp_address: str | None = None
    token_file: str | None = None
    source: RayStateSource | None = None  # the Ray backend's state


class _Subscription(Protocol):
    """What the feed hub reads: a consistent copy of the records, and an end."""

    def copy_records(self) -> tuple[int, dict[str, list[Any]]]: ...
    def close(self) -> None: ...


class _RaySubscription:
    def __init__(self, source: RayStateSource, absorb: Callable[[Any], None]) -> None:
        self.source = source
        source.subscribe(absorb)

    def copy_records(self) -> tuple[int, dict[str, list[Any]]]:
        return self.source.copy_records()

    def close(self) -> None:
        self.source.unsubscribe()


class RuntimeManager:
    """Starts, attaches to, watches and stops the server's runtime; see the module doc."""

    def __init__(
        self,
        defaults: StartOptions,
        connection_file: str,
        cluster_host: str = "127.0.0.1",
        task_history: int = 10_000,
        label: str = "",
        backend: str = "jupyter_ray",
        ray_dashboard_url: str = "",
        ray_poll_interval: float = 2.0,
        ray_page_size: int = 1000,
    ) -> None:
        self.backend = backend
        self.ray_dashboard_url = ray_dashboard_url
        self.ray_poll_interval = ray_poll_interval
        self.ray_page_size = ray_page_size
        self.defaults = defaults
        self.connection_file = connection_file
        self.cluster_host = cluster_host
        self.task_history = task_history
        self.label = label
        self.state = STOPPED
        self.error: str | None = None
        self.options = defaults
        self.generation = 0  # +1 per start or attach: the feed resubscribes on a change
        self._run: _Running | None = None
        self._lock = threading.RLock()
        self._write_connection_file()

    # --- start, attach, stop ---------------------------------------------------------

    def start(self, options: StartOptions) -> dict[str, Any]:
        """Start a runtime the server owns: a head, and ``options.worker_nodes`` local
        worker nodes joined to it. Raises ``RuntimeBusy``, or ``ValueError`` for options
        the runtime refuses (both leave the manager as it was)."""
        from ..api import node_resources

        with self._lock:
            self._refuse_if_running()
            if self.backend == "ray":
                raise ValueError(
                    "on the Ray backend the server attaches to a Ray cluster (start one with "
                    "'ray start --head'): POST {'address': 'auto' or the cluster's HOST:PORT}"
                )
            totals, store = node_resources(
                options.num_cpus, options.num_gpus, options.resources, options.object_store_memory
            )
            self.state, self.error, self.options = STARTING, None, options
            run: _Running | None = None
            try:
                head = start_local_node(
                    totals,
                    store,
                    task_history=self.task_history,
                    listen=f"{self.cluster_host}:0",
                    origin="server",
                    label=self.label,
                )
                client = CoreClient.owning(head)
                assert client.welcome is not None
                token_file = os.path.join(head.session_dir, "token")
                run = _Running(
                    client,
                    head.socket_path,
                    client.welcome.node_id,
                    owned=True,
                    head=head,
                    tcp_address=head.tcp_address,
                    token_file=token_file,
                )
                member_totals = {k: v for k, v in totals.items() if not k.startswith("node:")}
                for _ in range(options.worker_nodes):
                    member = start_local_node(
                        member_totals,
                        store,
                        task_history=self.task_history,
                        listen=f"{self.cluster_host}:0",
                        join=head.tcp_address,
                        token=read_token(token_file),
                        origin="server",
                        label=self.label,
                    )
                    owner = CoreClient.owning(member)
                    run.members.append((member, owner))
            except BaseException as err:
                if run is not None:
                    self._teardown(run)
                self.state = STOPPED
                self.error = f"could not start the runtime: {err}"
                self._write_connection_file()
                raise
            self._run = run
            self.state = RUNNING
            self.generation += 1
            self._write_connection_file()
            log.info("jupyter_ray: started a runtime at %s (%s)", run.address, run.tcp_address)
            return self.status()

    def attach(self, address: str) -> dict[str, Any]:
        """Serve a runtime someone else started (``"auto"``, a socket path, HOST:PORT)."""
        from ..api import resolve_address

        with self._lock:
            self._refuse_if_running()
            if not isinstance(address, str) or not address or len(address) > 4096:
                raise ValueError(f"address must be a non-empty string, got {address!r}")
            if self.backend == "ray":
                return self._attach_ray(address)
            target, token = resolve_address(address)
            try:
                client = CoreClient(target, "driver", token=token)
            except OSError as err:
                raise ConnectionError(f"could not connect to {address!r}: {err}") from err
            assert client.welcome is not None
            where = target if isinstance(target, str) else f"{target[0]}:{target[1]}"
            self._run = _Running(
                client,
                where,
                client.welcome.node_id,
                owned=False,
                tcp_address=client.welcome.tcp_address,
            )
            self.state, self.error = RUNNING, None
            self.generation += 1
            self._write_connection_file()
            return self.status()

    def _attach_ray(self, address: str) -> dict[str, Any]:
        """Serve a Ray cluster: its state from Ray's state API, polled (``ray_source``)."""
        from ..on_ray.backend import require_ray

        require_ray()
        from .ray_source import RayStateSource

        url = self.ray_dashboard_url or "http://127.0.0.1:8265"
        source = RayStateSource(url, self.ray_poll_interval, self.ray_page_size)
        source.start()
        self._run = _Running(None, address, "", owned=False, source=source)
        self.state, self.error = RUNNING, None
        self.generation += 1
        self._write_connection_file()
        return self.status()

    def stop(self) -> dict[str, Any]:
        """Stop the runtime if the server started it, or detach from it."""
        with self._lock:
            run, self._run = self._run, None
            if run is not None:
                self._teardown(run)
            self.state, self.error = STOPPED, None
            self.generation += 1
            self._write_connection_file()
            return self.status()

    def close(self) -> None:
        """The server stops: stop what it owns, and remove the connection file."""
        self.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.connection_file)

    def check(self) -> bool:
        """Notice a runtime that died (True when the state changed). Called periodically
        on the server's loop: cheap, never blocks."""
        with self._lock:
            run = self._run
            if self.state != RUNNING or run is None:
                return False
            head_exit = run.head.proc.poll() if run.head is not None else None
            alive = run.source is not None and not run.source.down
            alive = alive or (run.client is not None and not run.client.closed)
            if alive and head_exit is None:
                return False
            self.state = CRASHED
            detail = f" (exit code {head_exit})" if head_exit is not None else ""
            self.error = (
                f"the runtime's head node manager went away{detail}; start a new one "
                "(POST cluster, or Start in the sidebar)"
            )
            log.warning("jupyter_ray: %s", self.error)
            self._run = None
            self.generation += 1
            self._write_connection_file()
        threading.Thread(target=self._teardown, args=(run,), daemon=True).start()
        return True

    def _refuse_if_running(self) -> None:
        if self.state in (RUNNING, STARTING):
            raise RuntimeBusy(
                f"a runtime is already {self.state} at {self.address}; stop it first "
                "(DELETE cluster)"
            )

    def _teardown(self, run: _Running) -> None:
        """Disconnect; owned node managers exit once their owner has gone."""
        for _, owner in run.members:
            owner.close()
        if run.client is not None:
            run.client.close()
        if run.source is not None:
            run.source.close()
        for member, _ in run.members:
            member.stop()
        if run.head is not None:
            run.head.stop()

    # --- what the handlers read ------------------------------------------------------

    @property
    def address(self) -> str | None:
        run = self._run
        return run.address if run is not None else None

    @property
    def socket_path(self) -> str | None:
        """The head's Unix socket when it is on this machine (the live feed needs it)."""
        run = self._run
        if run is None or not run.address.endswith(".sock"):
            return None
        return run.address

    def query(self, what: str, arg: Any = None) -> Any:
        """A state query on the head (blocking: call it off the event loop)."""
        run = self._run
        if run is not None and run.source is not None and not run.source.down:
            return run.source.query(what, arg)
        if run is None or run.client is None or run.client.closed:
            raise NoRuntime(
                f"no jupyter_ray runtime is running (it is {self.state}); start one with "
                "POST cluster or the sidebar's Start button"
            )
        return run.client.query(what, arg)

    def subscribe(self, absorb: Callable[[Any], None]) -> _Subscription | None:
        """The live feed of the runtime served now, its messages to ``absorb`` (on the
        feed's own thread); None when there is none (stopped, or attached over TCP)."""
        run = self._run
        if run is not None and run.source is not None:
            return _RaySubscription(run.source, absorb)
        path = self.socket_path
        if path is None:
            return None
        return StateFeed(path, lambda msg, view: absorb(msg))

    def status(self) -> dict[str, Any]:
        run = self._run
        join = None
        if run is not None and run.tcp_address and run.token_file:
            join = (
                f"JUPYTER_RAY_TOKEN=$(cat {run.token_file}) "
                f"jupyter-ray start --address {run.tcp_address}"
            )
        ray_state = run is not None and run.source is not None
        return {
            "state": self.state,
            "owned": bool(run and run.owned),
            "backend": self.backend,
            "dashboard_url": run.source.dashboard_url if run and run.source else None,
            "unavailable": UNAVAILABLE if ray_state else {},
            "address": run.address if run else None,
            "node_id": run.node_id if run else None,
            "tcp_address": run.tcp_address if run else None,
            "join_command": join,
            "token_file": run.token_file if run else None,
            "worker_nodes": [m.proc.pid for m, _ in run.members] if run else [],
            "options": self.options.to_json(),
            "error": self.error,
        }

    def _write_connection_file(self) -> None:
        """Where kernels find the runtime: ``{"address": ..., "state": ...}``, owner-only."""
        info = {
            "address": self.address if self.state == RUNNING else None,
            "backend": self.backend,
            "state": self.state,
            "server_pid": os.getpid(),
            "updated": time.time(),
        }
        directory = os.path.dirname(self.connection_file)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        tmp = self.connection_file + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        os.replace(tmp, self.connection_file)
