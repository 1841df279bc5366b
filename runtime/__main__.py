"""Process entry points: ``python -m jupyter_ray.runtime node|worker|zygote ARGS``.

Going through this module, rather than ``-m jupyter_ray.runtime.node``, keeps each module
imported once under its real name, so classes such as ``TaskRecord`` have one identity.
"""

from __future__ import annotations

import sys


def main() -> None:
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    args = sys.argv[2:]
    if role == "node":
        from .node import main as node_main

        node_main(args)
    elif role == "worker":
        from .worker import main as worker_main

        worker_main(args)
    elif role == "zygote":
        from .zygote import main as zygote_main

        zygote_main(args)
    else:
        sys.exit("usage: python -m jupyter_ray.runtime node|worker|zygote ARGS (internal)")


if __name__ == "__main__":
    main()
