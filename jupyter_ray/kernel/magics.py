"""The magics: ``%ray_start``, ``%ray_stop``, ``%ray_status``, ``%ray_timeline`` and
``%%ray_remote``.

Options are parsed with IPython's ``magic_arguments``; a bad option or value prints the
usage and what was wrong (a ``UsageError``: one line, no traceback), and so does an
address where no runtime answers.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import HTML, display

from .. import _client, api, state
from .._remote import remote
from ..on_ray import backend as on_ray
from ..runtime.common.serialization import serialize
from .cells import execution_count
from .integration import install
from .remote_cell import IPYTHON_NAMES, free_names, run_cell

PROBE_TIMEOUT = 3.0
"""Seconds a ``%ray_start --address HOST:PORT`` waits for the runtime there to answer."""
LINK_LIMIT = 5 << 20
"""Largest trace ``%ray_timeline`` offers as a link with the data inside; a larger one is
written to a file next to the notebook."""


def _parse(magic: Any, line: str) -> Any:
    """Parse a magic's options; bad ones raise UsageError with the usage (no traceback)."""
    try:
        return parse_argstring(magic, line)
    except (UsageError, ValueError) as err:
        # IPython's help formatter starts the usage with a reST "::" line
        usage = magic.parser.format_usage().strip().removeprefix("::").strip()
        raise UsageError(f"{err}\n{usage}\nSee %{magic.__name__}? for every option.") from None


def _unquote(text: str | None) -> str | None:
    """IPython splits magic arguments without removing quotes: ``'{"a": 1}'`` keeps them."""
    if text is not None and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _resources(text: str | None) -> dict[str, float] | None:
    text = _unquote(text)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(
            f"--resources takes a JSON object such as '{{\"custom\": 2}}', got {text!r} ({err})"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(
            f"--resources takes a JSON object such as '{{\"custom\": 2}}', got {text!r}"
        )
    return value


def _probe(address: str) -> None:
    """Fail fast, in one line, when nothing answers at ``address``.

    A node's cluster port speaks first (its authentication challenge), so a port where
    something else listens is told apart within ``PROBE_TIMEOUT`` too.
    """
    if address == "auto" or address.endswith(".sock") or ":" not in address:
        return  # init() checks socket paths and "auto" at once itself
    host, _, port_text = address.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(
            f"--address takes HOST:PORT, a socket path or 'auto', got {address!r}"
        ) from None
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT) as sock:
            sock.settimeout(PROBE_TIMEOUT)
            if not sock.recv(1):
                raise OSError("it closed the connection")
    except TimeoutError:
        raise UsageError(
            f"no jupyter_ray runtime answered at {address} within {PROBE_TIMEOUT:g} s; check the "
            "address that 'jupyter-ray start --head' printed"
        ) from None
    except OSError as err:
        raise UsageError(
            f"no jupyter_ray runtime at {address}: {err.strerror or err}; check the address that "
            "'jupyter-ray start --head' printed"
        ) from None


@magics_class
class RayMagics(Magics):
    """jupyter_ray's magics; ``%load_ext jupyter_ray`` registers them."""

    @magic_arguments()
    @argument("--address", help="attach to this runtime: a socket path, HOST:PORT or 'auto'")
    @argument("--num-cpus", type=float, help="CPUs of a runtime started for this kernel")
    @argument("--num-gpus", type=float, help="GPUs of a runtime started for this kernel")
    @argument("--resources", help="custom resources as JSON, e.g. '{\"custom\": 2}'")
    @argument("--object-store-memory", type=int, help="bytes of the object store")
    @argument(
        "--backend",
        choices=("jupyter_ray", "ray"),
        help="'ray': run on a Ray cluster (--address ray://HOST:PORT, HOST:PORT or 'auto'; "
        "none: a local Ray)",
    )
    @line_magic
    def ray_start(self, line: str) -> None:
        """Start jupyter_ray in this kernel and show where it runs.

        Attaches to the runtime of the Jupyter server when there is one (it sets
        JUPYTER_RAY_ADDRESS for its kernels), else to --address, else starts a local
        runtime that stops with this kernel. Running it again reuses the runtime.
        """
        args = _parse(self.ray_start, line)
        options = {
            "num_cpus": args.num_cpus,
            "num_gpus": args.num_gpus,
            "resources": _resources(args.resources),
            "object_store_memory": args.object_store_memory,
        }
        if api.is_initialized():
            print(
                "jupyter_ray is already running in this kernel; reusing it (%ray_stop first "
                "to start another one).",
                file=sys.stderr,
            )
            display(on_ray.ray.get_runtime_context() if on_ray.ray else _client.info())
            return
        given_address = _unquote(args.address)
        address = given_address or os.environ.get("JUPYTER_RAY_ADDRESS") or None
        if address is not None and not on_ray.wants_ray(address, args.backend):
            _probe(address)
        try:
            info = api.init(address=given_address, _backend=args.backend, **options)
        except (ConnectionError, ValueError, TypeError, OSError) as err:
            raise UsageError(f"%ray_start: {err}") from None
        given = [f"--{k.replace('_', '-')}" for k, v in options.items() if v is not None]
        if address is not None and given:
            print(
                f"attached to the runtime at {address}; {', '.join(given)} only apply to a "
                "runtime this kernel starts.",
                file=sys.stderr,
            )
        display(info)

    @line_magic
    def ray_stop(self, line: str) -> None:
        """Disconnect this kernel: stop the runtime it started, or detach from the one it
        attached to (that one keeps running). Its objects and actors are released."""
        if line.strip():
            raise UsageError("%ray_stop takes no options")
        if not api.is_initialized():
            print("jupyter_ray is not running in this kernel.")
            return
        if on_ray.ray is not None:
            api.shutdown()
            print("Disconnected from the Ray cluster (it keeps running).")
            return
        owned = _client._node is not None
        where = _client.info().session_dir
        api.shutdown()
        if owned:
            print("Stopped this kernel's jupyter_ray runtime.")
        else:
            print(f"Detached from the runtime at {where}; it keeps running.")

    @line_magic
    def ray_status(self, line: str) -> None:
        """A live view of the nodes, their resources and this kernel's tasks by state.

        It keeps updating while later cells run; close it from the cell's menu (clear
        the output) or run ``%ray_status`` again in the same cell.
        """
        if line.strip():
            raise UsageError("%ray_status takes no options")
        integration = install(self.shell)
        run = integration.tracker.peek()
        view = integration.status.open(run.cell_id if run is not None else None)
        display(view.box)

    @magic_arguments()
    @argument("file", nargs="?", help="where to write the trace (JSON); without it, a link")
    @line_magic
    def ray_timeline(self, line: str) -> None:
        """Write the Chrome trace of recent tasks (open it in https://ui.perfetto.dev or
        chrome://tracing); without FILE, show a link to download it."""
        args = _parse(self.ray_timeline, line)
        if not api.is_initialized():
            raise UsageError("jupyter_ray is not running in this kernel: %ray_start first")
        target = _unquote(args.file)
        if target:
            events = state.timeline(target)
            print(
                f"Wrote {len(events):,} task events to {target}; open it in "
                "https://ui.perfetto.dev or chrome://tracing."
            )
            return
        events = state.timeline()
        data = json.dumps(events).encode()
        name = f"jupyter_ray-timeline-{time.strftime('%Y%m%d-%H%M%S')}.json"
        if len(data) > LINK_LIMIT:
            with open(name, "wb") as f:
                f.write(data)
            from IPython.display import FileLink

            print(f"{len(events):,} task events, {len(data) >> 20} MiB: written to {name}")
            display(FileLink(name))
            return
        href = "data:application/json;base64," + base64.b64encode(data).decode()
        display(
            HTML(
                f'<a download="{name}" href="{href}">Download the timeline</a> '
                f"({len(events):,} task events; open it in "
                '<a href="https://ui.perfetto.dev" target="_blank">Perfetto</a> '
                "or chrome://tracing)"
            )
        )

    @magic_arguments()
    @argument("--num-cpus", type=float, help="CPUs the cell's task needs (default 1)")
    @argument("--num-gpus", type=float, help="GPUs the cell's task needs")
    @argument("--resources", help="custom resources as JSON, e.g. '{\"gpu_box\": 1}'")
    @argument("--memory", type=int, help="bytes of memory the task needs")
    @argument("--accelerator-type", help="a GPU model, e.g. H100")
    @cell_magic
    def ray_remote(self, line: str, cell: str) -> Any:
        """Run the whole cell as one remote task; its output and result show here.

        The cell may use the notebook's variables (they are sent with the task); names it
        assigns stay in the worker, so end the cell with the value you want back.
        """
        args = _parse(self.ray_remote, line)
        options: dict[str, Any] = {
            "num_cpus": args.num_cpus,
            "num_gpus": args.num_gpus,
            "resources": _resources(args.resources),
            "memory": args.memory,
            "accelerator_type": _unquote(args.accelerator_type),
        }
        options = {k: v for k, v in options.items() if v is not None}
        shell: Any = self.shell
        # A blank first line stands for the %%ray_remote line, so that line numbers in a
        # traceback are the cell's own; the source is cached for the traceback's lines.
        source = "\n" + shell.transform_cell(cell)
        count = execution_count(shell)
        filename = shell.compile.cache(source, count, raw_code=source)
        user_ns = shell.user_ns
        namespace = {
            name: user_ns[name]
            for name in free_names(source)
            if name in user_ns and not name.startswith("_") and name not in IPYTHON_NAMES
        }
        task = _remote_cell().options(name=f"In[{count}]", **options)
        try:
            ref = task.remote(source, filename, namespace)
        except Exception:
            bad = _unpicklable(namespace)
            if bad is None:
                raise
            name, why = bad
            raise UsageError(
                f"%%ray_remote: the cell uses {name!r} ({type(namespace[name]).__name__}), "
                f"which cannot be sent to a worker ({why}); create it inside the cell instead."
            ) from None
        return api.get(ref)


_remote: Any = None


def _remote_cell() -> Any:
    global _remote
    if _remote is None:
        _remote = remote(run_cell)
    return _remote


def _unpicklable(namespace: dict[str, Any]) -> tuple[str, str] | None:
    """The first variable that cannot travel to a worker, and why."""
    for name, value in namespace.items():
        try:
            serialize(value)
        except Exception as err:
            return name, str(err)
    return None


# argparse takes "--num-cpu" for "--num-cpus" unless told not to; a misspelt option should
# be refused, not guessed (the parsers are built when the class is defined).
for _magic in (RayMagics.ray_start, RayMagics.ray_timeline, RayMagics.ray_remote):
    _magic.parser.allow_abbrev = False
