"""Ray's worker output, routed to the notebook cell whose task printed it.

Ray's driver prints its workers' lines through a dispatcher of handlers (the handler
``"ray_print_logs"`` writes them to this process's stdout, in whatever cell runs then).
Its records name each line's task; a task a notebook cell submitted is named
``f@cell:<id>#<run>`` (``records.py``), so the lines of such tasks go to the notebook's
router instead, and every other line is printed as Ray prints it. The dispatcher is
Ray's internal API: where it is missing, output stays where Ray puts it (the README says
so), and ``route_worker_logs`` returns False.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..runtime.common import protocol as p
from .records import split_name

HANDLER = "ray_print_logs"


def route_worker_logs(deliver: Callable[[p.LogLines], Any]) -> bool:
    """Send the output of cell-tagged Ray tasks to ``deliver`` (the kernel's router)."""
    try:
        from ray._private import ray_logging
        from ray._private import worker as ray_worker

        dispatcher = ray_logging.global_worker_stdstream_dispatcher
        print_as_ray = ray_worker.print_to_stdstream
        ignore_prefix = ray_worker._should_ignore_worker_log_prefix(ray_worker.global_worker)
    except (ImportError, AttributeError):
        return False

    def handle(data: dict[str, Any]) -> None:
        name = str(data.get("task_name") or data.get("actor_name") or "")
        function, cell_id, count = split_name(name)
        if cell_id is None:
            print_as_ray(data, ignore_prefix=ignore_prefix)
            return
        try:
            pid = int(data.get("pid") or 0)
        except ValueError:
            pid = 0
        text = "\n".join(data.get("lines") or [])
        stream = 2 if data.get("is_err") else 1
        deliver(
            p.LogLines(
                task_id=b"",
                name=function,
                pid=pid,
                stream=stream,
                text=text,
                cell_id=cell_id,
                cell_execution_count=count,
            )
        )

    dispatcher.remove_handler(HANDLER)
    dispatcher.add_handler(HANDLER, handle)
    return True
