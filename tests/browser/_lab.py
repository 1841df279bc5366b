"""Helpers for driving JupyterLab from the browser tests."""

from __future__ import annotations

import re
from typing import Any

WAIT = 120_000  # ms: generous, the machine may be busy with other tests


def notebook(cells: list[tuple[str, str]]) -> dict[str, Any]:
    """An nbformat 4.5 notebook of code cells ``(cell id, source)``.

    JupyterLab uses the ids as its cell model ids, which it sends as ``cellId`` with each
    execution; tasks carry them, so a test knows which strip and which tasks are whose.
    """
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": cell_id,
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for cell_id, source in cells
        ],
    }


def command(page: Any, name: str, args: dict[str, Any] | None = None) -> None:
    """Run a Lab command and wait for its promise (``notebook:run-all-cells``: until every
    cell has run)."""
    page.evaluate(
        "([name, args]) => window.jupyterapp.commands.execute(name, args)", [name, args or {}]
    )


def start_command(page: Any, name: str, args: dict[str, Any] | None = None) -> None:
    """Start a Lab command without waiting for it: to watch the page while it runs."""
    page.evaluate(
        "([name, args]) => { void window.jupyterapp.commands.execute(name, args); }",
        [name, args or {}],
    )


def open_notebook(page: Any, server: Any, name: str) -> None:
    from playwright.sync_api import expect

    page.goto(server.url(f"lab/tree/{name}") + f"?token={server.token}")
    # The toolbar says idle before the kernel exists; the status bar waits for it.
    expect(page.locator("#jp-main-statusbar")).to_contain_text(
        re.compile(r"Python 3.*\|\s*Idle"), timeout=WAIT
    )


def show_sections(page: Any, *titles: str) -> None:
    """Expand these sidebar sections and fold the others, so the ones shown have room."""
    headers = page.locator(".jr-Sidebar .lm-AccordionPanel-title")
    for i in range(headers.count()):
        header = headers.nth(i)
        wanted = header.get_attribute("aria-label") in {f"{t} Section" for t in titles}
        if (header.get_attribute("aria-expanded") == "true") != wanted:
            header.click()


def widen_left_panel(page: Any, width: int) -> None:
    """Drag the handle between the left panel and the notebook so the panel is ``width``."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    assert box is not None, "the left panel is not open"
    left = page.locator("#jp-left-stack").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(left["x"] + width, y, steps=8)
    page.mouse.up()


def set_setting(page: Any, key: str, value: Any) -> None:
    """Change one of the extension's settings, as the settings editor does (through Lab's
    setting registry, which Lab does not put on window: found through its plugin)."""
    page.evaluate(
        """async ([key, value]) => {
          const plugins = window.jupyterapp.pluginRegistry._plugins;
          const registry = plugins.get('@jupyterlab/apputils-extension:settings').service;
          await registry.set('jupyter-ray:plugin', key, value);
        }""",
        [key, value],
    )
