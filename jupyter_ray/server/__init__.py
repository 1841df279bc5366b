"""The jupyter_server extension that starts and owns the runtime, with REST and a live feed.

Enabled by the config file the package installs (``jupyter_server_config.d/jupyter_ray.json``)
and configured as ``c.JupyterRay.*`` (see ``app.py``). Modules: ``app`` (the
``ExtensionApp`` and its settings), ``manager`` (starting, attaching, watching and
stopping the runtime), ``options`` (checking start options), ``handlers`` (REST),
``websocket`` and ``hub`` (the live feed), ``graph`` (collapsing big task graphs).
Nothing here is imported by ``import jupyter_ray``.
"""
