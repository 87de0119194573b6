"""Imports flow one way (docs/architecture.md): no module cycles, no import of a higher layer.

Read from the source with ``ast`` (nothing is imported), counting the imports inside
functions too: a deferred import still ties the two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "hypervldd"

#: A package may import from its own layer and the layers below (lower rank).
RANK = {
    "manifolds": 0,
    "kernels": 1,
    "nn": 1,
    "optim": 1,
    "hierarchy": 2,
    "losses": 2,
    "eval": 3,
    "distill": 4,
    "pipeline": 5,
    "workflow": 6,
    "cli": 7,
    "demo": 7,
}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _graph(mods: dict[str, tuple[Path, bool]]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (a package's ``__init__`` importing its own
    submodules to re-export them is left out: that is the package's face, not a flow)."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, (path, is_pkg) in mods.items():
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                pkg = here[: len(here) - node.level + 1] if node.level else []
                base = ".".join(pkg + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if not t or t == name or (is_pkg and t.startswith(name + ".")):
                    continue
                graph[name].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    assert "hypervldd.pipeline.comparison" in mods and "hypervldd.manifolds" in mods
    return _graph(mods)


def test_no_module_imports_itself_back(graph: dict[str, set[str]]) -> None:
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_no_layer_imports_a_higher_one(graph: dict[str, set[str]]) -> None:
    def layer(module: str) -> int | None:
        parts = module.split(".")
        return RANK.get(parts[1]) if len(parts) > 1 else None

    upward = [
        (m, t)
        for m, targets in graph.items()
        for t in targets
        if layer(m) is not None and layer(t) is not None and layer(t) > layer(m)
    ]
    assert upward == []
    # The graph sees what it must: the pipeline reads the distillation methods.
    assert "hypervldd.distill" in graph["hypervldd.pipeline.distillation"]
