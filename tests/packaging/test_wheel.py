"""The built wheel carries the JupyterLab extension prebuilt: installed without Node.js,
JupyterLab lists it enabled and OK, and a server serves it.

The wheel is built from this checkout (Node.js builds the extension then, if its output
is older than its sources), with setuptools' build folder in the test's folder so that
nothing stale from an earlier build of the checkout gets in. It is installed, without
its dependencies, into a fresh virtual environment that borrows this environment's
installed packages through a .pth file (no download); every command that follows runs
with a PATH holding only that environment's bin folder: no node, no npm.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import site
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
LABEXT = "share/jupyter/labextensions/jupyter-ray"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command; fails showing its output. ``cwd`` is never the checkout, where
    ``python -m`` would import its jupyter_ray/ folder instead of the installed one."""
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return ANSI.sub("", done.stdout + done.stderr)


def build_wheel(tmp: Path) -> Path:
    config = tmp / "setup-extra.cfg"
    config.write_text(f"[build]\nbuild_base = {tmp / 'build'}\n")
    env = {**os.environ, "DIST_EXTRA_CONFIG": str(config)}
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp), str(REPO)],
        tmp,
        env,
    )
    (wheel,) = tmp.glob("jupyter_ray-*.whl")
    return wheel


def fresh_env(tmp: Path, wheel: Path) -> tuple[Path, dict[str, str]]:
    """A new venv with the wheel installed; its environment variables hide Node.js."""
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp)
    python = venv / "bin" / "python"
    purelib = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp
    )
    borrowed = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib.strip()) / "borrowed_from_test_env.pth").write_text("\n".join(borrowed) + "\n")
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        PATH=str(venv / "bin"),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
    )
    return venv, env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_wheel_ships_the_lab_extension_built(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    data = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n]
    assert f"{LABEXT}/package.json" in data, data
    assert f"{LABEXT}/install.json" in data, data
    assert any(re.fullmatch(rf"{LABEXT}/static/remoteEntry\.\w+\.js", n) for n in data), data
    assert f"{LABEXT}/schemas/jupyter-ray/plugin.json" in data, data
    assert "etc/jupyter/jupyter_server_config.d/jupyter_ray.json" in data, data
    for package in ("jupyter_ray/server/app.py", "jupyter_ray/kernel/magics.py"):
        assert package in names, package
    assert not any(n.startswith(("runtime/", "labextension/")) for n in names), names

    venv, env = fresh_env(tmp_path, wheel)
    python = str(venv / "bin" / "python")
    assert (
        run([python, "-c", "import shutil; print(shutil.which('node'))"], tmp_path, env).strip()
        == "None"
    )

    listing = run([python, "-m", "jupyterlab.labextensions", "list"], tmp_path, env)
    section = listing.split(str(venv / "share" / "jupyter" / "labextensions"), 1)
    assert len(section) == 2, listing
    assert re.search(r"jupyter-ray v0\.1\.0 enabled\s+OK \(python, jupyter_ray\)", section[1]), (
        listing
    )
    servers = run([python, "-m", "jupyter_server.extension.serverextension", "list"], tmp_path, env)
    assert re.search(r"jupyter_ray enabled", servers), servers
    assert re.search(r"jupyter_ray 0\.1\.0 OK", servers), servers

    # A server of that environment serves the extension to the browser.
    port, token = free_port(), secrets.token_hex(8)
    log = open(tmp_path / "lab.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [
            python, "-m", "jupyterlab", "--allow-root", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
            "--JupyterRay.autostart=False",
        ],
        env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        page = ""
        deadline = time.monotonic() + 60
        while not page:
            assert proc.poll() is None, (tmp_path / "lab.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "lab.log").read_text()
            try:
                url = f"http://127.0.0.1:{port}/lab?token={token}"
                with urllib.request.urlopen(url, timeout=10) as answer:
                    page = answer.read().decode()
            except OSError:
                time.sleep(0.2)
        config = re.search(r'<script id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S)
        assert config, page[:2000]
        extensions = json.loads(config[1])["federated_extensions"]
        (ours,) = [e for e in extensions if e["name"] == "jupyter-ray"] or [None]
        assert ours, f"jupyter-ray is not among the page's extensions: {extensions}"
        url = f"http://127.0.0.1:{port}/lab/extensions/jupyter-ray/{ours['load']}?token={token}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.status == 200
    finally:
        family = [proc, *psutil.Process(proc.pid).children(recursive=True)]
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        for child in family[1:]:
            if child.is_running():
                child.kill()
        psutil.wait_procs(family[1:], timeout=10)
        log.close()
