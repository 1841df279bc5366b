"""The worker process: its task loop (``task_loop``, with ``main``), hosting an actor
(``actor_host``), the lane server that takes direct calls, and generators as the worker
drives them. Imports ``client`` and ``common``."""
