"""What ``%%ray_remote`` runs in a worker: a cell's code, as one task.

Kept apart from the magics on purpose: a worker imports this module to run the task, and
it must not import IPython there.
"""

from __future__ import annotations

import ast
import builtins
from typing import Any

IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
"""Names in a kernel's namespace that belong to IPython, not to the user's code."""


def free_names(source: str) -> set[str]:
    """Every name the code reads anywhere: the variables the cell may need from the
    notebook (a superset, which is harmless: names the notebook lacks are left out)."""
    tree = ast.parse(source)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def run_cell(source: str, filename: str, namespace: dict[str, Any]) -> Any:
    """Run a cell's code here; returns the value of its last line when that is an
    expression, as a notebook shows it. ``filename`` is the name the kernel gave the
    cell's source, so that a traceback from here shows the cell's lines in the notebook."""
    tree = ast.parse(source, filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body[-1].value)
        del tree.body[-1]
    scope: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins, **namespace}
    exec(compile(tree, filename, "exec"), scope)
    if last is None:
        return None
    return eval(compile(last, filename, "eval"), scope)
