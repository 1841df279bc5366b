"""runtime/ is the engine: it must never import Jupyter packages."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

RUNTIME = pathlib.Path(__file__).resolve().parents[2] / "runtime"
FORBIDDEN = {
    "IPython",
    "ipykernel",
    "ipywidgets",
    "jupyter_client",
    "jupyter_core",
    "jupyter_server",
    "jupyterlab",
    "nbclient",
    "nbformat",
    "notebook",
    "tornado",
}


def _imported_roots(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_runtime_sources_import_no_jupyter_package() -> None:
    offenders = {
        str(path.relative_to(RUNTIME)): sorted(_imported_roots(path) & FORBIDDEN)
        for path in RUNTIME.rglob("*.py")
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"runtime/ imports Jupyter packages: {offenders}"


def test_runtime_sources_never_import_the_facade() -> None:
    for path in RUNTIME.rglob("*.py"):
        roots = _imported_roots(path)
        assert "jupyter_ray" not in roots, f"{path.name} imports jupyter_ray; use relative imports"


def test_importing_worker_and_api_loads_no_jupyter_module() -> None:
    code = (
        "import sys, jupyter_ray, jupyter_ray.runtime.worker, jupyter_ray.runtime.node.manager\n"
        # the facade loads on first use: touch every public name
        "[getattr(jupyter_ray, name) for name in jupyter_ray.__all__]\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "", f"importing jupyter_ray pulled in: {out.stdout}"


def test_no_top_level_runtime_module_is_installed() -> None:
    code = "import importlib.util; print(importlib.util.find_spec('runtime'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd="/",
    )
    assert out.stdout.strip() == "None"
