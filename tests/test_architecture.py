"""The import graph of the package (issue 10): no cycles, no private cross-imports, and each layer
imports only what it may (the dsl neither sympy nor torch, the compiler not torch). Lazy imports
inside functions count like the ones at the top of a module."""
from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from pathlib import Path

from conftest import ROOT


def package_modules() -> dict[str, Path]:
    """Module name -> source file, from pyproject's package-dir table."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules = {}
    for package, folder in table.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


def imported(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import statement in the file."""
    found = []
    package = module if path.stem == "__init__" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, None) if sub in modules else (base, alias.name))
    return found


def graph() -> tuple[dict[str, set[str]], list[str], dict[str, set[str]]]:
    """Edges between package modules, private names imported across modules, and the outside
    top-level packages each module imports."""
    modules = package_modules()
    edges, private, outside = defaultdict(set), [], defaultdict(set)
    for module, path in modules.items():
        for target, name in imported(module, path, modules):
            if target in modules:
                if target != module:
                    edges[module].add(target)
                    if name and name.startswith("_") and not name.startswith("__"):
                        private.append(f"{module} imports {target}.{name}")
            else:
                outside[module].add(target.split(".")[0])
    return edges, private, outside


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in edges.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_lazy_imports():
    edges, _, _ = graph()
    assert edges and any("impsolve.runtime" in target for target in edges["impsolve.api"])


def test_no_import_cycles():
    assert cycles(graph()[0]) == []


def test_no_module_imports_another_modules_private_names():
    assert graph()[1] == []


def test_each_layer_imports_only_what_it_may():
    _, _, outside = graph()
    for module, packages in outside.items():
        if module.startswith("impsolve.dsl"):
            assert not packages & {"sympy", "torch", "torchdiffeq"}, module
        if module.startswith("impsolve.compiler"):
            assert not packages & {"torch", "torchdiffeq"}, module


def test_the_layers_point_one_way():
    """dsl -> compiler -> runtime: no layer imports a later one."""
    edges, _, _ = graph()
    later = {"impsolve.dsl": ("impsolve.compiler", "impsolve.runtime"), "impsolve.compiler": ("impsolve.runtime",)}
    for module, targets in edges.items():
        for layer, forbidden in later.items():
            if module.startswith(layer):
                assert not [t for t in targets if t.startswith(forbidden)], module
