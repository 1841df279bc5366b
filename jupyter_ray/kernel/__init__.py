"""The notebook side of jupyter_ray: magics, cell-aware output, progress, interrupts, reprs.

``%load_ext jupyter_ray`` loads it (so does ``jupyter_ray.init()`` when it runs inside
IPython); to load it in every kernel, add ``"jupyter_ray"`` to the ``extensions`` list of
your IPython profile (``c.InteractiveShellApp.extensions`` in ``ipython_config.py``).

This package imports IPython lazily: a worker imports :mod:`.remote_cell` from it to run
a ``%%ray_remote`` cell, and must not pull in Jupyter.
"""

from __future__ import annotations

from typing import Any

__all__ = ["activate", "flush_output", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Install the notebook integration in ``ipython`` and register the magics."""
    from .integration import install
    from .magics import RayMagics

    install(ipython)
    ipython.register_magics(RayMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Take the integration out again (the magics stay registered, as IPython keeps them)."""
    from .integration import uninstall

    uninstall(ipython)


def activate() -> None:
    """Load the extension into the IPython that runs this code, if any (``init()`` calls
    it); nothing happens outside IPython."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        load_ipython_extension(shell)


def flush_output(timeout: float = 5.0) -> bool:
    """Show the task output received so far in its cells now, rather than within the next
    0.2 s; True once every cell's display is up to date."""
    from .integration import active

    integration = active()
    return integration.flush_output(timeout) if integration is not None else True
