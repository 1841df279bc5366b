"""The node manager: one process per machine that schedules tasks, hosts the object store
and owns the worker processes (``python -m jupyter_ray.runtime node``).

``manager.py`` is the asyncio shell; the other modules are its components and the plain
bookkeeping classes they share (see docs/architecture.md).
"""
