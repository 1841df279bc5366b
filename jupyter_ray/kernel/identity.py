"""Who this kernel is, for the job it announces when it connects.

The Jupyter server and the Lab sidebar map a kernel to its tasks through the job's
metadata (``state.list_jobs()``): ``origin`` is ``"kernel"``, ``kernel_id`` the id
Jupyter knows the kernel by (its connection file is ``kernel-<id>.json``), and
``label`` a name people recognise (the notebook's path when the server says it).
"""

from __future__ import annotations

import os
import re
import sys

_CONNECTION_FILE = re.compile(r"kernel-(?P<id>.+)\.json$")


def kernel_id() -> str | None:
    """The running kernel's id, from its connection file name; None outside a kernel.

    Jupyter names the file ``kernel-<id>.json``; a kernel started some other way (a bare
    ``KernelManager`` uses a temporary name) is known by its file's name instead.
    """
    kernelapp = sys.modules.get("ipykernel.kernelapp")
    if kernelapp is None:
        return None  # not a kernel; and importing ipykernel here would cost ~0.3 s
    # IPKernelApp.instance() raises in a terminal IPython: its app is a sibling singleton
    app = getattr(kernelapp.IPKernelApp, "_instance", None)
    if not isinstance(app, kernelapp.IPKernelApp) or not app.connection_file:
        return None
    name = os.path.basename(app.connection_file)
    match = _CONNECTION_FILE.search(name)
    return match.group("id") if match else os.path.splitext(name)[0]


def job_metadata() -> dict[str, str]:
    """What this kernel's job says about it (see the module docstring)."""
    kid = kernel_id()
    if kid is None:
        return {"origin": "script", "label": f"IPython (pid {os.getpid()})"}
    # jupyter_server tells the kernels it starts which notebook they serve
    session = os.environ.get("JPY_SESSION_NAME", "")
    label = os.path.basename(session) if session else f"kernel {kid[:8]}"
    return {"origin": "kernel", "kernel_id": kid, "label": label}
