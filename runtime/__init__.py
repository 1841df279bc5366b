"""The jupyter_ray engine: protocol, node manager, scheduler, object store, workers, driver core.

Imported as ``jupyter_ray.runtime``. Nothing here imports Jupyter packages, and nothing
here blocks an event loop: servers run on asyncio, and the blocking driver calls
(``get``, ``wait``) run on the caller's thread while a reader thread does the I/O.
"""
