"""The packages import in one direction and no two modules import each other in a circle.

Layers, bottom to top: ``theory`` (mathematics on numbers and arrays) ← ``toy_models`` (the model, its
tasks) ← ``probes`` (measurements on models) ← ``theorybench`` (trainer, run store, studies, CLI).
A package may import only from its own layer or the layers below it.

The graph is read from the source with ``ast``, not by importing: every ``import`` and ``from … import``
counts, at the top of a module and inside functions alike (an import moved into a function still ties the
two modules together; it only delays the tie to the first call). ``from . import x`` and ``from .a import
b`` are resolved against the importing module's package; ``from pkg import name`` is an edge to the
submodule ``pkg.name`` when that file exists, to ``pkg`` (its ``__init__``) otherwise. Imports under
``if TYPE_CHECKING:`` count as well: a type-only import is still a dependency between the two files.

The cycle tests report every strongly connected group of modules at once, with one cycle through it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("theory", "toy_models", "probes", "theorybench")  # bottom first


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in LAYERS for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def nearest_known(dotted: str) -> str | None:  # ``a.b.func`` → ``a.b`` when a/b.py exists
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (target := nearest_known(alias.name)) is not None:
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                target = nearest_known(f"{source}.{alias.name}") if alias.name != "*" else None
                if target is None or target == name:
                    target = nearest_known(source)
                if target is not None:
                    found.add(target)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, …, a]`` of the directed graph, or None (depth-first search, three colours)."""
    colour = dict.fromkeys(graph, 0)  # 0 unseen, 1 on the current path, 2 done
    for start in sorted(graph):
        if colour[start]:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        colour[start] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                colour[path.pop()] = 2
                stack.pop()
            elif colour[child] == 1:
                return path[path.index(child):] + [child]
            elif colour[child] == 0:
                colour[child] = 1
                path.append(child)
                stack.append(iter(sorted(graph[child])))
    return None


def tangles(graph: dict[str, set[str]]) -> list[str]:
    """Each strongly connected group of two or more modules (Tarjan) with one cycle through it, so a
    failure names every knot at once, not only the first one met."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        on_stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = on_stack.pop()
                group.add(w)
                if w == v:
                    break
            groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(f"{{{', '.join(sorted(g))}}}, e.g. {' → '.join(find_cycle({a: graph[a] & g for a in g}))}"
                  for g in groups if len(g) > 1)


def layer_of(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def upward_imports(graph: dict[str, set[str]], package: str) -> list[str]:
    """``importer → imported`` for every import from ``package`` into a layer above it."""
    return sorted(f"{a} → {b}" for a, targets in graph.items() if a.split(".")[0] == package
                  for b in targets if layer_of(b) > layer_of(a))


GRAPH = import_graph()


# ---------------------------------------------------------------- the reader itself
def _graph_of(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    modules = {".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__"): p
               for p in tmp_path.rglob("*.py")}
    return {n: imported_modules(n, p, set(modules)) for n, p in modules.items()}


def test_reader_resolves_relative_function_local_and_submodule_imports(tmp_path):
    files = {
        "pkg/__init__.py": "from .a import f\n",
        "pkg/a.py": "def f():\n    from . import b\n    from .sub.c import g\n",
        "pkg/b.py": "import pkg.sub\nfrom pkg.sub import c\n",
        "pkg/sub/__init__.py": "from . import c\nfrom ..b import x\n",
        "pkg/sub/c.py": "import json\n\n\ndef g():\n    from pkg import a\n",
    }
    graph = _graph_of(tmp_path, files)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b", "pkg.sub.c"}, "pkg.b": {"pkg.sub", "pkg.sub.c"},
                     "pkg.sub": {"pkg.sub.c", "pkg.b"}, "pkg.sub.c": {"pkg.a"}}
    assert len(tangles(graph)) == 1 and tangles(graph)[0].startswith("{pkg.a, pkg.b, pkg.sub, pkg.sub.c}")
    cycle = find_cycle(graph)
    assert cycle[0] == cycle[-1] and all(b in graph[a] for a, b in zip(cycle, cycle[1:]))
    # Without the function-local import back to pkg.a (and pkg.sub ↔ pkg.b) the graph has no cycle.
    graph["pkg.sub.c"] = set()
    graph["pkg.sub"] = {"pkg.sub.c"}
    assert find_cycle(graph) is None and tangles(graph) == []


def test_graph_covers_the_four_packages():
    # A reader that silently missed the source tree would pass every test below.
    for package in LAYERS:
        assert package in GRAPH and sum(m.startswith(package + ".") for m in GRAPH) >= 3
    assert "theory.icl.predictors" in GRAPH["toy_models.constructions.lsa"]


# ---------------------------------------------------------------- (a) layering
@pytest.mark.parametrize("package", LAYERS[:-1])
def test_package_imports_only_its_own_layer_and_below(package):
    upward = upward_imports(GRAPH, package)
    assert not upward, f"{package} imports from a layer above it ({' ← '.join(LAYERS)}):\n" + "\n".join(upward)


# ---------------------------------------------------------------- (b) no module cycles
@pytest.mark.parametrize("package", LAYERS)
def test_no_import_cycle_within_package(package):
    inside = {a: {b for b in targets if b.split(".")[0] == package}
              for a, targets in GRAPH.items() if a.split(".")[0] == package}
    knots = tangles(inside)
    assert not knots, f"modules of {package} import each other in a circle:\n" + "\n".join(knots)


def test_no_import_cycle_across_all_modules():
    knots = tangles(GRAPH)
    assert not knots, "modules import each other in a circle:\n" + "\n".join(knots)
