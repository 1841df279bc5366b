"""The layers of the code: runtime/ never imports Jupyter packages nor the facade; no
import cycles anywhere; each layer of the engine imports only the layers below it."""

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
        "import sys, jupyter_ray\n"
        "import jupyter_ray.runtime.worker.task_loop, jupyter_ray.runtime.node.manager\n"
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


# --- the import graph: no cycles, and only the allowed edges between layers -----------
#
# Every module of jupyter_ray/ and runtime/ (as jupyter_ray.runtime.*), with the modules it
# imports at its top level and inside functions (relative imports resolved). Imports under
# ``if TYPE_CHECKING:`` never run, so they count for the layers but not for cycles.

ROOT = RUNTIME.parent
FACADE = ROOT / "jupyter_ray"
ENGINE = "jupyter_ray.runtime"

ALLOWED = {
    "common": {"common"},
    "client": {"common", "client"},
    "node": {"common", "node"},
    "worker": {"common", "client", "worker"},
    "facade": {"common", "client", "facade"},
    "entry": {"common", "client", "node", "worker", "entry"},
}
"""Which layers each layer may import. ``entry`` is ``jupyter_ray.runtime.__main__``, which
starts every kind of process."""

PLUGINS = ("jupyter_ray.kernel", "jupyter_ray.server")
"""The Jupyter glue: loaded on demand (inside a function) by the facade, which they import
in turn. Such a load is not a cycle: it runs when both sides are long imported."""


def _module_name(path: pathlib.Path) -> str:
    if path.is_relative_to(RUNTIME):
        parts = ["jupyter_ray", "runtime", *path.relative_to(RUNTIME).with_suffix("").parts]
    else:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, pathlib.Path]:
    paths = [*FACADE.rglob("*.py"), *RUNTIME.rglob("*.py")]
    return {
        _module_name(p): p
        for p in paths
        if "labextension" not in p.relative_to(ROOT).parts and "node_modules" not in p.parts
    }


class _Imports(ast.NodeVisitor):
    """The imports of one module: (target, runs, in_function) for each."""

    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.known = known
        self.found: list[tuple[str, bool, bool]] = []
        self._type_checking = 0
        self._functions = 0

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        guarded = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )
        if not guarded:
            self.generic_visit(node)
            return
        self._type_checking += 1
        for child in node.body:
            self.visit(child)
        self._type_checking -= 1
        for child in node.orelse:
            self.visit(child)

    def _function(self, node: ast.AST) -> None:
        self._functions += 1
        self.generic_visit(node)
        self._functions -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, target: str) -> None:
        # a module imports the packages on the way to it, and the module itself
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in self.known:
                self.found.append((name, not self._type_checking, self._functions > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        self._add(module)
        for alias in node.names:
            if f"{module}.{alias.name}" in self.known:  # from package import submodule
                self._add(f"{module}.{alias.name}")


def _graph() -> dict[str, list[tuple[str, bool, bool]]]:
    sources = _sources()
    known = set(sources)
    graph = {}
    for module, path in sources.items():
        visitor = _Imports(module, path.name == "__init__.py", known)
        visitor.visit(ast.parse(path.read_text(), str(path)))
        # A module's own packages are imported before it; those edges are no cycles.
        graph[module] = [
            (target, runs, in_function)
            for target, runs, in_function in visitor.found
            if target != module and not module.startswith(target + ".")
        ]
    return graph


def _layer(module: str) -> str:
    if module == ENGINE:
        return "common"  # (the package: a docstring, which everything under it imports)
    if module == f"{ENGINE}.__main__":
        return "entry"
    for layer in ("common", "client", "node", "worker"):
        if module.startswith(f"{ENGINE}.{layer}.") or module == f"{ENGINE}.{layer}":
            return layer
    if module.startswith(ENGINE + "."):
        raise AssertionError(f"{module} is in no layer: put it in one of the packages")
    return "facade"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def _path_within(edges: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the component, to name in the failure."""
    members = set(component)
    start = component[0]
    path = [start]
    seen = {start}
    while True:
        step = sorted(w for w in edges[path[-1]] if w in members)
        back = [w for w in step if w in path]
        if back:
            return [*path[path.index(back[0]) :], back[0]]
        nxt = next(w for w in step if w not in seen)
        seen.add(nxt)
        path.append(nxt)


def test_no_import_cycles() -> None:
    graph = _graph()
    edges: dict[str, set[str]] = {m: set() for m in graph}
    for module, found in graph.items():
        for target, runs, in_function in found:
            if not runs:
                continue
            if in_function and target.startswith(PLUGINS) and not module.startswith(PLUGINS):
                continue  # a plug-in loaded on demand (see PLUGINS)
            edges[module].add(target)
    cycles = [" -> ".join(_path_within(edges, c)) for c in _cycles(edges)]
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_layers_import_only_what_they_may() -> None:
    wrong = sorted(
        {
            f"{module} ({_layer(module)}) imports {target} ({_layer(target)})"
            for module, found in _graph().items()
            for target, _, _ in found
            if _layer(target) not in ALLOWED[_layer(module)]
        }
    )
    assert not wrong, "imports across layers:\n  " + "\n  ".join(wrong)


def test_the_import_graph_sees_relative_and_function_level_imports() -> None:
    graph = _graph()
    imports = {target: in_function for target, _, in_function in graph["jupyter_ray._client"]}
    assert imports[f"{ENGINE}.client.core"] is False  # from .runtime.client.core import ...
    assert imports["jupyter_ray.kernel"] is True  # loaded on demand inside init()
    node_imports = {t for t, _, _ in graph[f"{ENGINE}.node.manager"]}
    assert f"{ENGINE}.common.protocol" in node_imports  # from .common import protocol
