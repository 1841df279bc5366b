"""Fixtures for the browser tests: a real JupyterLab server and the system's Chromium.

The server is the same one the server tests start (``tests/server/_server.py``: a
``jupyter server`` subprocess on 127.0.0.1 with a token, private runtime and config
directories, and the jupyter_ray extension); JupyterLab's own server extension serves
``/lab`` from it. The browser is Debian's ``chromium`` (``make system-deps``), driven by
Playwright; browser downloads by Playwright do not work here.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from _server import Server, start_server, wait_for  # the server tests' helpers

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
BASE_URL = "/jr-lab/"  # not "/": the extension must follow the server's base URL

LAB_OPTIONS = (
    "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run Lab commands
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
)


class Labs:
    """Starts JupyterLab servers for one test and stops them all (by pid) after it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.servers: list[Server] = []

    def __call__(self, notebooks: dict[str, dict[str, Any]]) -> Server:
        """A server whose root holds these notebooks (name -> nbformat content)."""
        root = self.tmp / "notebooks"
        root.mkdir(parents=True, exist_ok=True)
        for name, content in notebooks.items():
            (root / name).write_text(json.dumps(content))
        # No "would you like news?" notification over the screenshots.
        settings = self.tmp / "config" / "lab" / "user-settings" / "@jupyterlab"
        (settings / "apputils-extension").mkdir(parents=True, exist_ok=True)
        (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false"})
        )
        server = start_server(self.tmp, BASE_URL, LAB_OPTIONS)
        self.servers.append(server)
        return server

    def restart(self, server: Server) -> Server:
        """Stop ``server`` and start it again with the same command line: same port,
        token and base URL, so the page that was connected to it can reconnect."""
        argv = list(server.proc.args)  # type: ignore[arg-type]
        server.close()
        with open(server.log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server.env,
            )
        again = dataclasses.replace(server, proc=proc, started=[])
        self.servers.append(again)

        def answers() -> bool:
            try:
                return again.request("GET", "api/status")[0] == 200
            except OSError:
                return False

        wait_for(answers, "the restarted Jupyter server to answer")
        return again

    def close(self) -> None:
        for server in self.servers:
            server.close()


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True


def _failed(request: pytest.FixtureRequest) -> bool:
    return request.node.stash.get(FAILED, False)


def _print_server(server: Server) -> None:
    """What a failed test's server knew: its runtime, its tasks by state, its log's end."""
    try:
        status, cluster = server.request("GET", "jupyter-ray/api/cluster")
        print(f"GET cluster -> {status}: {json.dumps(cluster)[:1500]}")
        status, answer = server.request("GET", "jupyter-ray/api/tasks?limit=10000")
        states = Counter(task["state"] for task in answer.get("tasks", []))
        print(f"GET tasks -> {status}: by state {dict(states)}")
    except OSError as err:
        print(f"the server did not answer: {err}")
    print(f"--- the end of {server.log_path}:")
    print(server.log_path.read_text(errors="replace")[-6000:])


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Labs]:
    """``lab({"name.ipynb": notebook(...)})`` starts a JupyterLab server; ``lab.restart``
    restarts one. Everything is stopped, by pid, after the test; a failed test prints
    what its servers knew first."""
    labs = Labs(tmp_path / "server")
    yield labs
    if _failed(request):
        for server in labs.servers:
            if server.proc.poll() is None:
                _print_server(server)
    labs.close()


def _print_pages(browser: Any) -> None:
    """The text of every open page's cell outputs: what the notebook said."""
    for context in browser.contexts:
        for page in context.pages:
            try:
                outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
            except Exception as err:  # the page may be gone: say so and go on
                print(f"page {page.url}: {err}")
                continue
            print(f"--- outputs on {page.url}:")
            for text in outputs:
                print(text[-2000:])


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Headless Chromium (Debian's package), closed after the test; a failed test prints
    its pages' cell outputs first."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("no `chromium` on PATH: run `make system-deps` (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
            if _failed(request):
                _print_pages(browser)
        finally:
            browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where a test saves its screenshots (printed, so a failing run can be looked at)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    print(f"screenshots in {folder}")
    return folder
