"""The ``jupyter-ray`` command line (also ``jupyter ray ...``).

    jupyter-ray list tasks|actors|objects|nodes [--filter KEY=VALUE] [--limit N] [--json]
    jupyter-ray summary [--json]
    jupyter-ray timeline FILE
    jupyter-ray status
    jupyter-ray start --head [--port P] [--num-cpus N] [--num-gpus N] [--resources JSON]
                      [--labels k=v,...]
    jupyter-ray stop [--force]
    jupyter-ray to-ray [--address RAY_ADDRESS]

Each command attaches to the newest runtime running on this machine (or ``--address``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

DEFAULT_PORT = 6390

LIST_COLUMNS = {
    "tasks": ["task_id", "name", "state", "worker_pid", "attempt", "error_type", "cell_id"],
    "actors": ["actor_id", "class_name", "name", "state", "pid", "restarts", "death_cause"],
    "objects": ["object_id", "size", "location", "local_refs", "type_name", "preview"],
    "nodes": ["node_id", "alive", "cpu_percent", "object_store_used", "num_workers"],
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupyter-ray", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--address", default="auto", help="runtime to attach to (default: the newest local one)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list tasks, actors, objects or nodes")
    ls.add_argument("kind", choices=sorted(LIST_COLUMNS))
    ls.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep records whose KEY equals VALUE (KEY!=VALUE to exclude); repeatable",
    )
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    summary = sub.add_parser("summary", help="task counts by state and by function")
    summary.add_argument("--json", action="store_true")
    tl = sub.add_parser("timeline", help="write a Chrome trace of executed tasks")
    tl.add_argument("file")
    sub.add_parser("status", help="nodes, resources and object store use")
    to_ray = sub.add_parser(
        "to-ray", help="how to move notebooks from the built-in cluster to a Ray cluster"
    )
    to_ray.add_argument(
        "--address", dest="ray_address", default=None, help="the Ray cluster's address"
    )
    start = sub.add_parser("start", help="start a head node in the background")
    start.add_argument("--head", action="store_true", help="start the cluster's head node")
    start.add_argument("--address", help="HOST:PORT of a head to join as a worker node")
    start.add_argument("--host", default="127.0.0.1", help="interface of the cluster port")
    start.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    start.add_argument("--num-cpus", type=float, default=None)
    start.add_argument("--num-gpus", type=float, default=None)
    start.add_argument("--resources", default=None, help="JSON, e.g. '{\"tpu\": 4}'")
    start.add_argument("--object-store-memory", type=int, default=None, help="bytes")
    start.add_argument(
        "--labels",
        default=None,
        help="this node's labels, for label_selector: 'zone=a,disk=ssd' or a JSON object",
    )
    start.add_argument("--token", default=None, help="cluster token (with --address)")
    stop = sub.add_parser("stop", help="stop every jupyter_ray runtime on this machine")
    stop.add_argument("--force", action="store_true", help="SIGKILL instead of SIGTERM")
    return parser


def _labels(text: str | None) -> dict[str, str]:
    from .runtime.common.labels import parse_node_labels

    return parse_node_labels(text) if text else {}


def _filters(items: Sequence[str]) -> list[tuple[str, str, str]]:
    out = []
    for item in items:
        if "!=" in item:
            key, value = item.split("!=", 1)
            out.append((key, "!=", value))
        elif "=" in item:
            key, value = item.split("=", 1)
            out.append((key, "=", value))
        else:
            raise SystemExit(f"jupyter-ray: --filter takes KEY=VALUE or KEY!=VALUE, got {item!r}")
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _start(args: argparse.Namespace) -> int:
    from .api import node_resources
    from .runtime.client.launch import start_local_node

    if args.address:
        return _join(args)
    if not args.head:
        print("jupyter-ray: say 'start --head' (or 'start --address HOST:PORT')", file=sys.stderr)
        return 2
    try:
        resources = json.loads(args.resources) if args.resources else None
        totals, store = node_resources(
            args.num_cpus, args.num_gpus, resources, args.object_store_memory
        )
        node = start_local_node(
            totals,
            store,
            head=True,
            listen=f"{args.host}:{args.port}",
            origin="cli",
            labels=_labels(args.labels),
        )
    except (ValueError, TypeError) as err:
        print(f"jupyter-ray: {err}", file=sys.stderr)
        return 2
    token_file = f"{node.session_dir}/token"
    print(f"Started a jupyter_ray head node (pid {node.proc.pid}) on {node.tcp_address}.")
    print(f"  Logs: {node.session_dir}/logs   Token: {token_file} (owner-only)")
    print("  Connect from Python on this machine:")
    print("      import jupyter_ray as ray; ray.init(address='auto')")
    print("  Connect from another machine (objects travel over TCP):")
    print(f"      JUPYTER_RAY_TOKEN=$(cat {token_file}) python -c \\")
    print(f"        \"import jupyter_ray as ray; ray.init(address='{node.tcp_address}')\"")
    print("  Add a worker node (here or on another machine that can reach the port):")
    print(f"      JUPYTER_RAY_TOKEN=$(cat {token_file}) \\")
    print(f"        jupyter-ray start --address {node.tcp_address}")
    print("  Stop it with: jupyter-ray stop")
    if node.proc.stdout is not None:
        node.proc.stdout.close()
    return 0


def _join(args: argparse.Namespace) -> int:
    from .api import node_resources
    from .runtime.client.launch import start_local_node
    from .runtime.common.auth import TOKEN_ENV, read_token
    from .runtime.common.discovery import find_sessions

    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        for session in find_sessions():
            if session.tcp_address == args.address and session.token_file:
                token = read_token(session.token_file)
    if not token:
        print(
            f"jupyter-ray: joining {args.address} needs the cluster token: pass --token or "
            f"set {TOKEN_ENV} (the head's 'start --head' output says where it is stored)",
            file=sys.stderr,
        )
        return 2
    try:
        resources = json.loads(args.resources) if args.resources else None
        totals, store = node_resources(
            args.num_cpus, args.num_gpus, resources, args.object_store_memory
        )
        totals.pop("node:127.0.0.1", None)
        node = start_local_node(
            totals,
            store,
            head=True,
            listen=f"{args.host}:0",
            join=args.address,
            token=token,
            origin="cli",
            labels=_labels(args.labels),
        )
    except (ValueError, TypeError) as err:
        print(f"jupyter-ray: {err}", file=sys.stderr)
        return 2
    print(
        f"Started a jupyter_ray worker node (pid {node.proc.pid}) on {node.tcp_address}, "
        f"joining the head at {args.address}."
    )
    print(f"  Logs: {node.session_dir}/logs   Stop it with: jupyter-ray stop")
    if node.proc.stdout is not None:
        node.proc.stdout.close()
    return 0


def _stop(force: bool) -> int:
    import signal
    import time

    import psutil

    from .runtime.common.discovery import find_sessions

    procs: list[psutil.Process] = []
    for session in find_sessions():
        try:
            node = psutil.Process(session.pid)
            procs += [node, *node.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    for proc in procs[:]:
        try:
            proc.send_signal(signal.SIGKILL if force else signal.SIGTERM)
        except psutil.NoSuchProcess:
            procs.remove(proc)
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    deadline = time.monotonic() + 5
    while find_sessions() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"Stopped {len(procs)} jupyter_ray process{'es' if len(procs) != 1 else ''}.")
    return 0


def to_ray_steps(address: str | None) -> str:
    """The steps that move notebooks and scripts onto a Ray cluster; only the address
    changes, and these say where it goes."""
    where = address or "HOST:6379"
    return f"""Moving from jupyter_ray's built-in cluster to a Ray cluster

What changes: the address. Your notebooks and scripts stay as they are
(import jupyter_ray as ray; @ray.remote; ray.get...), and so do the magics and the sidebar.

1. Install Ray beside jupyter_ray:
       pip install 'jupyter_ray[ray]'
2. Have a Ray cluster (one you run, or: ray start --head), and its address: {where}
   (or ray://HOST:10001 for Ray Client).
3. Point the notebooks at it, one of:
   - the Jupyter server, for every kernel it starts, in jupyter_server_config.py:
         c.JupyterRay.backend = "ray"
         c.JupyterRay.address = "{where}"
         c.JupyterRay.ray_dashboard_url = "http://HOST:8265"   # Ray's state API, for the sidebar
   - one notebook:   %ray_start --backend ray --address {where}
   - a script:       JUPYTER_RAY_BACKEND=ray JUPYTER_RAY_ADDRESS={where} python script.py
                     (or ray.init(address="ray://HOST:10001") in the code)
4. Nothing else: ray.get, ray.put, ray.ObjectRef, ray.exceptions and ray.util now are
   Ray's own. On Ray, a cell's tasks still carry the cell (in their Ray task name), so
   the cell strips, the per-cell graph and output under the cell keep working; what Ray's
   state API does not expose (which results a task takes, per-node usage) shows as
   unavailable. See the README, "On a Ray cluster".
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "start":
        return _start(args)
    if args.command == "stop":
        return _stop(args.force)
    if args.command == "to-ray":
        print(to_ray_steps(args.ray_address))
        return 0
    import jupyter_ray as ray
    from jupyter_ray import state

    try:
        ray.init(address=args.address, log_to_driver=False)
    except ConnectionError as err:
        print(f"jupyter-ray: {err}", file=sys.stderr)
        return 1
    try:
        if args.command == "list":
            lister = getattr(state, f"list_{args.kind}")
            records = [r.to_dict() for r in lister(_filters(args.filter), args.limit)]
            if args.json:
                print(json.dumps(records, indent=2, default=str))
            else:
                print(_table(records, LIST_COLUMNS[args.kind]))
                print(f"({len(records)} {args.kind})")
        elif args.command == "summary":
            summary = state.summarize_tasks()
            if args.json:
                print(json.dumps(summary.to_dict(), indent=2))
            else:
                rows = [{"name": n, **counts} for n, counts in sorted(summary.by_name.items())]
                states = sorted({s for counts in summary.by_name.values() for s in counts})
                print(_table(rows, ["name", *states]))
                print(f"total submitted: {summary.total_submitted}")
        elif args.command == "timeline":
            events = state.timeline(args.file)
            print(f"wrote {len(events)} task events to {args.file}")
        elif args.command == "status":
            for node in state.list_nodes():
                role = "head" if node.is_head else "worker node"
                alive = "alive" if node.alive else "dead"
                print(f"node {node.node_id}  {node.hostname}  {role}  {alive}")
                for name, total in sorted(node.resources_total.items()):
                    used = total - node.resources_available.get(name, 0.0)
                    if "memory" in name:
                        print(f"  {name}: {used / 2**30:.2f}/{total / 2**30:.2f} GiB used")
                    else:
                        print(f"  {name}: {used:g}/{total:g} used")
                print(
                    f"  object store: {node.object_store_used / 2**20:.1f} MiB used of "
                    f"{node.object_store_capacity / 2**20:.1f} MiB, "
                    f"{node.object_store_spilled / 2**20:.1f} MiB spilled"
                )
            summary = state.summarize_tasks()
            pending = {k: v for k, v in summary.by_state.items() if k.startswith("PENDING")}
            print(f"pending tasks: {pending or 0}")
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
