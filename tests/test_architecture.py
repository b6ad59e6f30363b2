"""The shape of the house: imports go one way, and every backend keeps its contract.

Every import is read from the source (function-level and ``TYPE_CHECKING`` ones too, which tie
modules together just as well) and checked against the declared layering: a module may import
its own part and the parts listed for it, nothing else, and no import cycle may exist.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import networkx as nx
import pytest

REPO = Path(__file__).resolve().parents[1]
# Where each import name's source lives (pyproject maps backends/ and templates/ into flowkit).
ROOTS = {"flowkit": REPO / "flowkit", "flowkit.backends": REPO / "backends", "flowkit.templates": REPO / "templates"}

# part -> the parts it may import. Lowest first: errors, what steps are made of, the graph, the
# pure key side, the store, execution, the backends, then the doors (registry, the Flow
# facade, loading) and the CLI. "api" is the package itself (flowkit/__init__, __main__).
CORE = {"errors", "authoring", "graph", "keys", "store", "execution"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "authoring": {"errors"},
    "graph": {"authoring", "errors"},
    "keys": {"graph", "authoring", "errors"},
    "store": {"keys", "authoring", "errors"},
    "execution": {"store", "keys", "graph", "authoring", "errors"},
    "backends": {"execution", "keys", "graph", "authoring", "errors"},
    "runners": {"backends", "execution", "store", "keys", "graph", "authoring", "errors"},
    "compilers": {"backends", "keys", "graph", "authoring", "errors", "templates"},
    "templates": set(),
    "registry": {"backends", "errors"},
    "flow": {"registry", "execution", "store", "keys", "graph", "authoring", "errors"},
    "loading": {"flow", "errors"},
    "cli": {"loading", "flow", "registry", "backends", "execution", "store", "keys", "graph", "authoring", "errors"},
    "api": {"cli", "flow", "graph", "authoring", "errors"},
}


def part_of(module: str) -> str:
    """The part a flowkit module belongs to."""
    names = module.split(".")
    if names[:2] == ["flowkit", "backends"]:
        return names[2] if len(names) > 2 and names[2] in ("runners", "compilers") else "backends"
    if len(names) == 1 or names[1] == "__main__":
        return "api"
    return names[1]


def modules() -> dict[str, Path]:
    """Every module of the package, by import name."""
    found: dict[str, Path] = {}
    for prefix, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("").parts
            name = ".".join((prefix, *rel))
            found[name.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The flowkit modules one module imports, wherever in it the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:  # `from pkg import module` imports the module itself
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {module for module in found if module in known and module != name}


def import_graph() -> nx.DiGraph:
    found = modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(found)
    for name, path in found.items():
        graph.add_edges_from((name, target) for target in imports_of(name, path, set(found)))
    return graph


def violations(graph: nx.DiGraph) -> list[str]:
    """Every import between parts that the layering does not allow, and every import cycle."""
    wrong = [f"{a} -> {b} ({part_of(a)} may not import {part_of(b)})" for a, b in sorted(graph.edges)
             if part_of(a) != part_of(b) and part_of(b) not in ALLOWED[part_of(a)]]
    cycles = [" -> ".join([*cycle, cycle[0]]) for cycle in nx.simple_cycles(graph)]
    return wrong + [f"import cycle: {cycle}" for cycle in sorted(cycles)]


def test_the_layering_is_itself_a_dag_and_covers_every_module() -> None:
    layers = nx.DiGraph([(part, lower) for part, lowers in ALLOWED.items() for lower in lowers])
    assert nx.is_directed_acyclic_graph(layers)
    assert {part_of(name) for name in modules()} <= set(ALLOWED)


def test_imports_go_one_way_without_cycles() -> None:
    assert violations(import_graph()) == []


def test_the_core_never_imports_a_backend_and_keys_never_the_runtime() -> None:
    for part in CORE:
        assert not ALLOWED[part] & {"backends", "runners", "compilers", "registry", "cli"}, part
    assert "execution" not in ALLOWED["keys"] and "store" not in ALLOWED["keys"]
    assert "keys" not in ALLOWED["graph"]


def test_the_checker_sees_a_forbidden_import_a_type_only_one_and_a_cycle(tmp_path: Path) -> None:
    """The check itself can fail: a graph with a key module importing the runtime inside a
    function, a TYPE_CHECKING import of a backend from the store, and a cycle."""
    source = tmp_path / "code.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from flowkit.backends import base\n"
                      "def f():\n    from flowkit.execution.runtime import execute\n")
    known = {"flowkit.backends.base", "flowkit.execution.runtime"}
    assert imports_of("flowkit.keys.code", source, known) == known
    graph = nx.DiGraph([("flowkit.keys.code", "flowkit.execution.runtime"), ("flowkit.store.objects", "flowkit.backends.base"),
                        ("flowkit.store.objects", "flowkit.store.fs"), ("flowkit.store.fs", "flowkit.store.objects")])
    found = violations(graph)
    assert any("keys may not import execution" in v for v in found)
    assert any("store may not import backends" in v for v in found)
    assert any(v.startswith("import cycle:") for v in found)


def test_every_package_says_what_lives_there_and_what_it_may_import() -> None:
    for name, path in modules().items():
        if path.name == "__init__.py" and name != "flowkit.templates":
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert "import" in doc.lower(), f"{path}: the docstring should say what the package may import"


def _load(spec: str) -> type:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("name", ["local", "process", "docker"])
def test_every_registered_runner_is_a_runner(name: str) -> None:
    from flowkit import registry
    from flowkit.backends.base import Runner

    runner = _load(registry.RUNNERS[name])(workers=2)
    assert isinstance(runner, Runner)
    assert list(inspect.signature(runner.run).parameters) == ["ctx"]


@pytest.mark.parametrize("name", ["airflow", "argo", "shell"])
def test_every_registered_compiler_is_a_compiler_for_its_name(name: str) -> None:
    from flowkit import registry
    from flowkit.backends.base import Compiler

    compiler = registry.compiler(name)
    assert isinstance(compiler, Compiler) and compiler.target == name
    assert list(inspect.signature(compiler.compile).parameters) == ["flow", "options"]
