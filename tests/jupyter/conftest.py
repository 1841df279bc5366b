"""Fixtures for the kernel-side tests: real ipykernel kernels driven with jupyter_client.

Each test gets a kernel of its own in a temporary folder (``kernel``), or one that has
already loaded the extension and started a small runtime (``ray_kernel``). Both are shut
down after the test; a process the kernel or its runtime left behind fails the test
(and is killed by pid), on top of the suite-wide leak check in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _kernel import KernelSession, kernel_session

START = "%load_ext jupyter_ray\n%ray_start --num-cpus 2 --object-store-memory 268435456"


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[KernelSession]:
    """A fresh kernel, nothing loaded."""
    with kernel_session(tmp_path) as session:
        yield session


@pytest.fixture
def ray_kernel(kernel: KernelSession) -> KernelSession:
    """A kernel with the extension loaded and a 2-CPU runtime of its own started."""
    kernel.execute(START + "\nimport jupyter_ray as ray", cell_id="setup")
    return kernel
