"""``JupyterRay``: the server extension's application and its configuration.

Configure it as ``c.JupyterRay.<name>`` in ``jupyter_server_config.py`` (or
``--JupyterRay.<name>=...`` on the command line); every option is a traitlet below with
its help. On start it points its kernels at its runtime (``JUPYTER_RAY_ADDRESS`` names
a connection file in Jupyter's runtime directory that always says where the runtime is
now), then starts a runtime (``autostart``) or attaches to one (``address``); on stop it
stops what it started.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Float, Int, TraitError, Unicode, validate

from ..runtime.common.discovery import jupyter_runtime_dir
from .handlers import routes
from .hub import FeedHub
from .manager import RuntimeManager
from .options import MAX_WORKER_NODES, StartOptions


class JupyterRay(ExtensionApp):
    """Starts and owns a jupyter_ray runtime for this Jupyter server; serves its state."""

    name = "jupyter_ray"
    load_other_extensions = True

    autostart = Bool(
        True,
        help="Start a runtime when the server starts (unless `address` is set). False: "
        "start one later from the sidebar or with POST jupyter-ray/api/cluster.",
    ).tag(config=True)
    address = Unicode(
        "",
        help="Attach to this runtime instead of starting one: 'auto' (the newest on this "
        "machine), a node manager's socket path, or HOST:PORT of a cluster's head (with "
        "JUPYTER_RAY_TOKEN set). The server never stops a runtime it attached to.",
    ).tag(config=True)
    num_cpus = Float(
        None, allow_none=True, help="CPUs of the runtime it starts (default: this machine's)."
    ).tag(config=True)
    num_gpus = Float(
        None, allow_none=True, help="GPUs of the runtime it starts (default: those found)."
    ).tag(config=True)
    resources = Dict(
        {}, help="Custom resources of the runtime it starts, e.g. {'gpu_box': 1}."
    ).tag(config=True)
    object_store_memory = Int(
        None,
        allow_none=True,
        help="Bytes of shared memory for the object store (default: 30% of free memory).",
    ).tag(config=True)
    worker_nodes = Int(
        0, help=f"Local worker nodes to start beside the head (0-{MAX_WORKER_NODES})."
    ).tag(config=True)
    cluster_host = Unicode(
        "127.0.0.1",
        help="Interface of the cluster port that worker nodes join through (token "
        "protected). 127.0.0.1 keeps it on this machine; 0.0.0.0 lets other machines join.",
    ).tag(config=True)
    task_history = Int(
        10_000, help="Finished tasks the runtime remembers for the state API and the sidebar."
    ).tag(config=True)
    backend = Unicode(
        "jupyter_ray",
        help="'jupyter_ray' (the built-in runtime) or 'ray': serve a Ray cluster (at "
        "`address`, default 'auto') through Ray's state API; kernels then run on Ray.",
    ).tag(config=True)
    ray_dashboard_url = Unicode(
        "",
        help="On the Ray backend, the Ray dashboard's HTTP address that serves Ray's state "
        "API (default http://127.0.0.1:8265).",
    ).tag(config=True)
    ray_poll_interval = Float(
        2.0,
        help="On the Ray backend, seconds between two reads of Ray's state API (0.5-60): "
        "however many browsers watch, Ray is asked once per interval.",
    ).tag(config=True)
    ray_page_size = Int(
        1000,
        help="On the Ray backend, the most records of each kind read per poll (10-100000).",
    ).tag(config=True)
    feed_rate = Float(
        4.0,
        help="Live-feed updates per second sent to each browser (0.2-20); changes in "
        "between are coalesced.",
    ).tag(config=True)

    @validate("feed_rate")
    def _check_feed_rate(self, proposal: dict[str, Any]) -> float:
        rate = float(proposal["value"])
        if not 0.2 <= rate <= 20:
            raise TraitError(f"JupyterRay.feed_rate must be between 0.2 and 20, got {rate}")
        return rate

    @validate("backend")
    def _check_backend(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if value not in ("jupyter_ray", "ray"):
            raise TraitError(f"JupyterRay.backend must be 'jupyter_ray' or 'ray', got {value!r}")
        return value

    @validate("ray_poll_interval")
    def _check_poll(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0.5 <= value <= 60:
            raise TraitError(f"JupyterRay.ray_poll_interval must be 0.5-60 s, got {value}")
        return value

    @validate("ray_page_size")
    def _check_page(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if not 10 <= value <= 100_000:
            raise TraitError(f"JupyterRay.ray_page_size must be 10-100000, got {value}")
        return value

    @validate("task_history")
    def _check_history(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 0:
            raise TraitError(f"JupyterRay.task_history must be >= 0, got {value}")
        return value

    def start_defaults(self) -> StartOptions:
        """The configured start options (a POST body may override each)."""
        return StartOptions().merged(
            {
                "num_cpus": self.num_cpus,
                "num_gpus": self.num_gpus,
                "resources": dict(self.resources),
                "object_store_memory": self.object_store_memory,
                "worker_nodes": self.worker_nodes,
            }
        )

    def initialize_settings(self) -> None:
        connection_file = os.path.join(
            jupyter_runtime_dir(), f"jupyter_ray-server-{os.getpid()}.json"
        )
        self.manager = RuntimeManager(
            self.start_defaults(),
            connection_file,
            cluster_host=self.cluster_host,
            task_history=self.task_history,
            label=f"Jupyter server (pid {os.getpid()})",
            backend=self.backend,
            ray_dashboard_url=self.ray_dashboard_url,
            ray_poll_interval=self.ray_poll_interval,
            ray_page_size=self.ray_page_size,
        )
        # Kernels this server starts inherit its environment: they find its runtime
        # through this file, whatever runtime the server serves at the time.
        os.environ["JUPYTER_RAY_ADDRESS"] = connection_file
        self.hub = FeedHub(self.manager, rate=self.feed_rate)

    def initialize_handlers(self) -> None:
        self.handlers.extend(routes())

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        self.hub.start()
        loop = asyncio.get_running_loop()
        try:
            if self.address or self.backend == "ray":
                address = self.address or "auto"
                await loop.run_in_executor(None, self.manager.attach, address)
            elif self.autostart:
                await loop.run_in_executor(None, self.manager.start, self.start_defaults())
        except Exception as err:  # the server runs on; the status says what went wrong
            self.manager.error = f"{type(err).__name__}: {err}"
            self.log.error("jupyter_ray: could not start or attach the runtime: %s", err)
        self.hub.poke()

    async def stop_extension(self) -> None:
        await self.hub.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.manager.close)
        if os.environ.get("JUPYTER_RAY_ADDRESS") == self.manager.connection_file:
            del os.environ["JUPYTER_RAY_ADDRESS"]
