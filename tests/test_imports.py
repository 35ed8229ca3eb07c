"""Every module of fourdlib imports, and no modules import each other round a circle.

The circle check is static: each module under fourdlib/ is parsed with ``ast`` and
its imports of fourdlib modules (absolute and relative, at module level and inside
functions) become edges of a graph between modules; a cycle in that graph fails,
and the message prints it with the file and line of every import on it. Function-
level imports count because hiding an import in a function only hides the circle
from the import system until the function runs; it is still a circle.

Nodes are modules; a package is its ``__init__.py``. Edges:
  ``import fourdlib.a.b`` / ``from fourdlib.a import b`` (b a module)  -> fourdlib.a.b
  ``from . import b`` (b a module of this package)                      -> that module
  ``from . import name`` / ``from .a import name`` (name not a module)  -> the package / a
and, because importing ``fourdlib.a.b`` first runs ``fourdlib/__init__.py`` and
``fourdlib/a/__init__.py``, an edge to each package above the target, except the
importer's own packages: those are always being imported already when the importer
runs (a child importing a sibling module directly is no circle). An explicit import
of a name from the importer's own package is an edge, so a package ``__init__``
that imports its children and a child that imports a sibling through the package
(``from . import sibling_function``) is reported as the circle it is.
Imports under ``if TYPE_CHECKING:`` never run and are not edges.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

import fourdlib

PACKAGE = "fourdlib"
PACKAGE_DIR = Path(fourdlib.__file__).resolve().parent
# Checked strictly now; the whole package follows (test_no_import_cycles_anywhere).
STRICT = ("fourdlib.repro", "fourdlib.provenance")


# ----------------------------------------------------------------------------- the static import graph

@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    file: str  # as shown: "fourdlib/repro/records.py"
    line: int
    scope: str  # "module level", "in function f", "in class C"
    implicit: bool  # a package above the named module, run first by the import system

    def __str__(self):
        via = ", runs its package __init__" if self.implicit else ""
        return f"{self.src} -> {self.dst}   ({self.file}:{self.line}, {self.scope}{via})"


def module_files(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> dict[str, Path]:
    """``{module name: file}`` for every .py file under the package folder."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = (package,) + path.relative_to(package_dir).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if all(p.isidentifier() for p in parts):
            out[".".join(parts)] = path
    return out


def _ancestors(name: str) -> list[str]:
    """"a.b.c" -> ["a", "a.b"]."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _ImportCollector(ast.NodeVisitor):
    """Every import statement of a module, with its line and the function/class it is in."""

    def __init__(self):
        self.found: list[tuple[ast.Import | ast.ImportFrom, str]] = []
        self.scope: list[str] = []

    def _scoped(self, node, kind):
        self.scope.append(f"{kind} {node.name}")
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node):
        self._scoped(node, "function")

    def visit_AsyncFunctionDef(self, node):
        self._scoped(node, "function")

    def visit_ClassDef(self, node):
        self._scoped(node, "class")

    def visit_If(self, node):
        if _is_type_checking(node.test):  # never runs; its else branch does
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node):
        self.found.append((node, "in " + " > ".join(self.scope) if self.scope else "module level"))

    visit_ImportFrom = visit_Import


def module_imports(name: str, path: Path, modules: dict[str, Path], package: str = PACKAGE,
                   shown: str | None = None) -> list[Edge]:
    """The edges from module ``name`` (file ``path``, ``shown`` in messages) to ``modules``."""
    shown = shown or path.name
    collector = _ImportCollector()
    collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    own_package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    already_running = set(_ancestors(name)) | {name}
    edges = []

    def add(dst: str, node, scope: str):
        if dst in modules and dst != name:  # (a folder without __init__.py runs no code)
            edges.append(Edge(name, dst, shown, node.lineno, scope, implicit=False))
        for a in _ancestors(dst):
            if a not in already_running and a in modules:
                edges.append(Edge(name, a, shown, node.lineno, scope, implicit=True))

    def inside(target: str) -> bool:
        return target == package or target.startswith(package + ".")

    for node, scope in collector.found:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if inside(alias.name):
                    add(alias.name, node, scope)
            continue
        if node.level:
            base_parts = own_package.split(".")
            if node.level - 1 >= len(base_parts):
                raise ImportError(f"{path}:{node.lineno}: relative import beyond the top package")
            base_parts = base_parts[:len(base_parts) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        if not inside(base):
            continue
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if alias.name != "*" and sub in modules:
                add(sub, node, scope)  # "from . import sibling": the module itself (base runs first)
            else:
                add(base, node, scope)  # a name defined in base (its __init__ if a package)
    return list(dict.fromkeys(edges))


def import_graph(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> dict[str, list[Edge]]:
    modules = module_files(package_dir, package)
    return {name: module_imports(name, path, modules, package, path.relative_to(package_dir.parent).as_posix())
            for name, path in modules.items()}


def strongly_connected(graph: dict[str, list[Edge]]) -> list[list[str]]:
    """Tarjan: the graph's strongly connected components with more than one module."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0

    def visit(v):
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for e in graph.get(v, ()):
            w = e.dst
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def shortest_cycle(graph: dict[str, list[Edge]], component: list[str]) -> list[Edge]:
    """One shortest circle through the component's first module, as its edges."""
    members, start = set(component), component[0]
    came_from: dict[str, Edge] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for e in sorted(graph.get(v, ()), key=lambda e: (e.implicit, e.dst, e.line)):
            if e.dst not in members:
                continue
            if e.dst == start:
                path = [e]
                while path[0].src != start:
                    path.insert(0, came_from[path[0].src])
                return path
            if e.dst not in came_from:
                came_from[e.dst] = e
                queue.append(e.dst)
    raise AssertionError(f"{component} is not a cycle")


def describe_cycles(graph, components) -> str:
    lines = []
    for comp in components:
        lines.append(f"\nimport cycle among {len(comp)} modules ({', '.join(comp)}), e.g.:")
        lines += [f"    {e}" for e in shortest_cycle(graph, comp)]
    return "\n".join(lines)


def _in_strict(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in STRICT)


# ----------------------------------------------------------------------------- the checker checks

def _write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root / "pkg"


def test_checker_finds_cycles_and_not_sibling_imports(tmp_path):
    pkg = _write_package(tmp_path, {
        "pkg/__init__.py": "",
        # a package __init__ re-exporting its child, the child importing a sibling's
        # function through the package: a circle
        "pkg/sub/__init__.py": "from .child import f\ndef g(): pass\n",
        "pkg/sub/child.py": "from . import g\ndef f(): pass\n",
        # children importing sibling modules directly (even via "from . import module"): no circle
        "pkg/flat/__init__.py": "from .a import x\nfrom . import b\n",
        "pkg/flat/a.py": "from .b import y\nx = 1\n",
        "pkg/flat/b.py": "from . import c\ny = 2\n",
        "pkg/flat/c.py": "import pkg.flat.d\n",
        "pkg/flat/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n",
        # a circle hidden in a function
        "pkg/low.py": "def f():\n    from .high import h\n",
        "pkg/high.py": "from pkg.low import f\ndef h(): pass\n",
        # importing a module of another package runs that package's __init__: a circle through it
        "pkg/other/__init__.py": "from .. import user\n",
        "pkg/other/leaf.py": "",
        "pkg/user.py": "from .other.leaf import *\n",
    })
    graph = import_graph(pkg, "pkg")
    comps = strongly_connected(graph)
    assert comps == [["pkg.high", "pkg.low"], ["pkg.other", "pkg.user"], ["pkg.sub", "pkg.sub.child"]], comps
    text = describe_cycles(graph, comps)
    assert "pkg.low -> pkg.high   (pkg/low.py:2, in function f)" in text
    assert "pkg.user -> pkg.other   (pkg/user.py:1, module level, runs its package __init__)" in text
    assert "pkg.sub.child -> pkg.sub   (pkg/sub/child.py:1, module level)" in text
    # the direct sibling imports are edges, but none goes back up
    assert {e.dst for e in graph["pkg.flat.a"]} == {"pkg.flat.b"}
    assert {e.dst for e in graph["pkg.flat.b"]} == {"pkg.flat.c"}
    assert {e.dst for e in graph["pkg.flat.c"]} == {"pkg.flat.d"}
    assert graph["pkg.flat.d"] == []


# ----------------------------------------------------------------------------- fourdlib itself

MODULES = module_files()


def test_pkgutil_finds_every_module_file():
    """walk_packages sees exactly the .py files (a folder without __init__.py would hide its modules)."""
    errors = []
    found = {m.name for m in pkgutil.walk_packages(fourdlib.__path__, PACKAGE + ".", onerror=errors.append)}
    found.add(PACKAGE)
    assert not errors, f"packages that failed to import while walking: {errors}"
    assert found == set(MODULES), (f"only as files: {sorted(set(MODULES) - found)}; "
                                   f"only to pkgutil: {sorted(found - set(MODULES))}")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_imports(name):
    importlib.import_module(name)


def test_no_import_cycles_in_repro_and_provenance():
    graph = import_graph()
    assert any(_in_strict(n) for n in graph), "the strictly checked modules are missing"
    comps = [c for c in strongly_connected(graph) if any(_in_strict(n) for n in c)]
    assert not comps, describe_cycles(graph, comps)


def test_repro_and_provenance_import_fourdlib_only_at_module_level():
    """A function-level import inside these modules would be the old way round a circle."""
    hidden = [str(e) for src, edges in import_graph().items() if _in_strict(src)
              for e in edges if e.scope != "module level"]
    assert not hidden, "function-level imports:\n" + "\n".join(hidden)


def test_provenance_imports_only_the_top_package():
    assert {e.dst for e in import_graph()["fourdlib.provenance"]} <= {"fourdlib"}


def test_no_import_cycles_anywhere():
    graph = import_graph()
    comps = strongly_connected(graph)
    assert not comps, describe_cycles(graph, comps)
