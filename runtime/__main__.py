"""Process entry points: ``python -m jupyter_ray.runtime node|worker|zygote ARGS``.

Going through this module, rather than ``-m jupyter_ray.runtime.node``, keeps each module
imported once under its real name, so classes such as ``TaskRecord`` have one identity.
"""

from __future__ import annotations

import json
import subprocess
import sys


def _early_zygote(args: list[str]) -> subprocess.Popen[bytes] | None:
    """Start the node's worker zygote before the node manager's own imports (see
    ``processes.launch_zygote``); None when the arguments are not as expected."""
    from .node.processes import launch_zygote, worker_environment

    try:
        session_dir = args[args.index("--session-dir") + 1]
        worker_env = json.loads(args[args.index("--worker-env") + 1])
    except (ValueError, IndexError):
        return None  # node.main reports the bad arguments; it starts its zygote itself
    return launch_zygote(session_dir, worker_environment(worker_env))


def main() -> None:
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    args = sys.argv[2:]
    if role == "node":
        zygote = _early_zygote(args)
        from .node.manager import main as node_main

        node_main(args, zygote)
    elif role == "worker":
        from .worker.task_loop import main as worker_main

        worker_main(args)
    elif role == "zygote":
        from .worker.zygote import main as zygote_main

        zygote_main(args)
    else:
        sys.exit("usage: python -m jupyter_ray.runtime node|worker|zygote ARGS (internal)")


if __name__ == "__main__":
    main()
