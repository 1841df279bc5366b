"""Build steps pyproject.toml cannot express: the JupyterLab extension, and the packages.

Everything else about the package is in pyproject.toml. The packages are found here so
that a new subpackage ships without anyone remembering to list it.

Building a wheel, or installing with ``pip install -e .``, first builds the TypeScript
in ``labextension/`` into ``jupyter_ray/labextension`` (``npm ci`` when its modules are
missing or stale, then ``npm run build``, which runs ``tsc`` and ``jupyter-builder``),
unless that output is newer than every source. The built extension goes into the wheel
as data files under ``share/jupyter/labextensions/jupyter-ray``, where JupyterLab finds
it: users of the wheel need no Node.js. The server extension's switch goes to
``etc/jupyter``.

``JUPYTER_RAY_SKIP_LABEXTENSION=1`` skips the build (Python-only work without Node.js);
the result then lacks the Lab extension unless it was built before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Command, find_packages, setup
from setuptools.command.build import build
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "labextension"
OUTPUT = HERE / "jupyter_ray" / "labextension"
LAB_EXTENSIONS = "share/jupyter/labextensions/jupyter-ray"
SERVER_CONFIG = (
    "etc/jupyter/jupyter_server_config.d",
    ["jupyter-config/jupyter_server_config.d/jupyter_ray.json"],
)


def _newest(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        if path.is_dir():
            newest = max([newest, *(p.stat().st_mtime for p in path.rglob("*") if p.is_file())])
        elif path.exists():
            newest = max(newest, path.stat().st_mtime)
    return newest


def _data_files() -> list[tuple[str, list[str]]]:
    """The built extension's files, by the folder each goes to, and the server config."""
    by_folder: dict[str, list[str]] = {}
    for path in sorted(OUTPUT.rglob("*")):
        if path.is_file():
            folder = path.parent.relative_to(OUTPUT).as_posix()
            target = LAB_EXTENSIONS if folder == "." else f"{LAB_EXTENSIONS}/{folder}"
            by_folder.setdefault(target, []).append(path.relative_to(HERE).as_posix())
    if by_folder:  # tells `jupyter labextension list` which Python package installed it
        by_folder[LAB_EXTENSIONS].append("labextension/install.json")
    return [*by_folder.items(), SERVER_CONFIG]


def _packages() -> list[str]:
    """Every package of jupyter_ray/, and runtime/ (mapped to jupyter_ray.runtime by
    pyproject.toml's package-dir), never a top-level `runtime`."""
    facade = find_packages(where=str(HERE), include=["jupyter_ray", "jupyter_ray.*"])
    engine = ["jupyter_ray.runtime"] + [
        f"jupyter_ray.runtime.{name}" for name in find_packages(where=str(HERE / "runtime"))
    ]
    return sorted(set(facade) - set(engine)) + engine


# One list object: install_data keeps a reference to it, so refilling it after the build
# reaches install_data however early it was set up.
DATA_FILES = _data_files()


class BuildLabextension(Command):
    description = "build the JupyterLab extension (labextension/) into jupyter_ray/labextension"
    user_options: list[tuple[str, str | None, str]] = []

    def initialize_options(self) -> None:
        pass

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        if os.environ.get("JUPYTER_RAY_SKIP_LABEXTENSION") == "1":
            print("JUPYTER_RAY_SKIP_LABEXTENSION=1: not building the JupyterLab extension")
        elif SOURCES.is_dir():
            self._build()
        DATA_FILES[:] = _data_files()

    def _build(self) -> None:
        sources = [
            SOURCES / n
            for n in (
                "src",
                "style",
                "schema",
                "package.json",
                "package-lock.json",
                "tsconfig.json",
            )
        ]
        built = OUTPUT / "package.json"
        if built.exists() and built.stat().st_mtime >= _newest(sources):
            return
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit(
                "Building jupyter_ray's JupyterLab extension needs Node.js >= 20.19 and npm "
                "(https://nodejs.org). Install them, or install a built wheel instead, or set "
                "JUPYTER_RAY_SKIP_LABEXTENSION=1 to go without the extension."
            )
        # jupyter-builder comes with this build's Python (a build requirement).
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        lock = SOURCES / "node_modules" / ".package-lock.json"
        if (
            not lock.exists()
            or lock.stat().st_mtime < (SOURCES / "package-lock.json").stat().st_mtime
        ):
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SOURCES, env=env, check=True)
        subprocess.run([npm, "run", "build"], cwd=SOURCES, env=env, check=True)
        built.touch()  # newer than the sources even when the bundle's content did not change


class BuildWithLabextension(build):
    sub_commands = [("build_labextension", None), *build.sub_commands]


class DistributionWithData(Distribution):
    def has_data(self) -> bool:
        # setuptools' editable_wheel asks `has_data()` (a name no Distribution defines)
        # before it installs data files, so `pip install -e .` would skip the extension
        # and the server config (setuptools 65 to 84 at least).
        return self.has_data_files()


setup(
    cmdclass={"build_labextension": BuildLabextension, "build": BuildWithLabextension},
    distclass=DistributionWithData,
    packages=_packages(),
    data_files=DATA_FILES,
)
