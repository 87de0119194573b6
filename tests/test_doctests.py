"""The docstring examples of the public API run, and every exported class and function has one."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import warnings
from types import ModuleType

import pytest
import torch

#: The packages whose ``__all__`` is the public API.
PUBLIC = (
    "hypervldd",
    "hypervldd.manifolds",
    "hypervldd.nn",
    "hypervldd.optim",
    "hypervldd.losses",
    "hypervldd.kernels",
)


def _modules() -> list[str]:
    names = {"hypervldd", "hypervldd.workflow", "hypervldd._backend", "hypervldd._checks"}
    for pkg_name in PUBLIC[1:]:
        pkg = importlib.import_module(pkg_name)
        names.add(pkg_name)
        for info in pkgutil.iter_modules(pkg.__path__, pkg_name + "."):
            names.add(info.name)
    return sorted(names)


def _exported() -> list[tuple[str, str, object]]:
    out = []
    for pkg_name in PUBLIC:
        pkg = importlib.import_module(pkg_name)
        for name in pkg.__all__:
            obj = getattr(pkg, name)
            if pkg_name == "hypervldd" and name == "distill":
                obj = importlib.import_module("hypervldd.workflow").distill
            if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isroutine(obj):
                out.append((pkg_name, name, obj))
    return out


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples_run(module_name: str) -> None:
    module: ModuleType = importlib.import_module(module_name)
    torch.manual_seed(0)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        # An example must show the current call, not a deprecated one.
        warnings.simplefilter("error", DeprecationWarning)
        for test in finder.find(module, module_name):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {module_name}"


def _has_example(obj: object) -> bool:
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and ">>>" not in doc:
        # A dataclass or module may show its use in its main method's docstring instead.
        doc = inspect.getdoc(getattr(obj, "forward", None)) or ""
    return ">>>" in doc


def test_every_exported_class_and_function_has_an_example() -> None:
    exported = _exported()
    assert len(exported) > 60  # guards the walk itself
    missing = [f"{pkg}.{name}" for pkg, name, obj in exported if not _has_example(obj)]
    assert not missing, f"exported without a docstring example: {missing}"


def test_the_examples_are_found_by_doctest() -> None:
    # inspect.getdoc can see a docstring that doctest skips (e.g. of a wrapped function).
    finder = doctest.DocTestFinder()
    for _, name, obj in _exported():
        tests = finder.find(obj, name)
        assert any(t.examples for t in tests), f"doctest finds no example for {name}"
