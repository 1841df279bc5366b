"""The node manager's modules (runtime/node/) import each other without a cycle.

Every import counts, those under ``if TYPE_CHECKING:`` too: a cycle held apart by a
type-checking import is still a cycle for whoever reads the code. No node module imports
the shell (``manager``), and none imports a module of the project inside a function.
"""

from __future__ import annotations

import ast
import pathlib

NODE = pathlib.Path(__file__).resolve().parents[2] / "runtime" / "node"


def _node_imports(path: pathlib.Path) -> tuple[set[str], list[int]]:
    """The node modules ``path`` imports, and the lines of imports inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    local: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            # the project's own modules; an optional package tried on demand is no dodge
            local += [
                n.lineno
                for n in ast.walk(node)
                if (isinstance(n, ast.ImportFrom) and (n.level > 0 or _ours(n.module)))
                or (isinstance(n, ast.Import) and any(_ours(a.name) for a in n.names))
            ]
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found, local


def _ours(module: str | None) -> bool:
    return module is not None and module.split(".")[0] == "jupyter_ray"


def _graph() -> dict[str, set[str]]:
    modules = {p.stem for p in NODE.glob("*.py")}
    graph = {}
    for path in NODE.glob("*.py"):
        imports, _ = _node_imports(path)
        graph[path.stem] = imports & modules
    return graph


def test_node_modules_import_no_cycle() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(mod: str, stack: list[str]) -> None:
        if mod in stack:
            cycle = [*stack[stack.index(mod) :], mod]
            raise AssertionError(f"import cycle in runtime/node: {' -> '.join(cycle)}")
        if mod in done:
            return
        for dep in sorted(graph[mod]):
            visit(dep, [*stack, mod])
        done.add(mod)

    for mod in sorted(graph):
        visit(mod, [])


def test_no_component_imports_the_shell() -> None:
    importers = sorted(m for m, deps in _graph().items() if "manager" in deps)
    assert importers == [], f"these node modules import the shell: {importers}"


def test_node_modules_import_at_the_top() -> None:
    for path in NODE.glob("*.py"):
        _, local = _node_imports(path)
        assert not local, f"{path.name} imports inside a function at lines {local}"
