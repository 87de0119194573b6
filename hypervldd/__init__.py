"""hypervldd: hyperbolic geometry for vision-language dataset distillation.

Subpackages, lowest first: :mod:`~hypervldd.manifolds` (Lorentz, Poincaré,
Klein, Euclidean, sphere), :mod:`~hypervldd.kernels` (compiled ops with a PyTorch
reference). Conventions: curvature ``c > 0`` means ``-c``; Lorentz points are
``(time, space)``; see ``docs/geometry.md``.

The main job from Python: :func:`prepare`, :func:`distill`, :func:`evaluate`,
:func:`compare` and :func:`inspect` (from :mod:`hypervldd.workflow`, loaded on
first use so that ``import hypervldd`` stays light). ``docs/architecture.md``
maps the packages.
"""

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from ._backend import BackendInfo, backend_info
from ._checks import set_validation, validation, validation_enabled
from .manifolds import Curvature, Euclidean, Klein, Lorentz, PoincareBall, Sphere, get_manifold

if TYPE_CHECKING:
    from .workflow import compare, distill, evaluate, inspect, prepare

# Loaded on first access (PEP 562): the pipeline pulls in data, eval and distill.
_WORKFLOW = ("prepare", "distill", "evaluate", "compare", "inspect")

__all__ = [
    "__version__",
    "BackendInfo",
    "backend_info",
    "set_validation",
    "validation",
    "validation_enabled",
    "Curvature",
    "Euclidean",
    "Lorentz",
    "PoincareBall",
    "Klein",
    "Sphere",
    "get_manifold",
    "prepare",
    "distill",
    "evaluate",
    "compare",
    "inspect",
]


def __getattr__(name: str) -> object:
    if name == "distill":
        # Importing the subpackage binds it here through _Package.__setattr__.
        return importlib.import_module(".distill", __name__)
    if name in _WORKFLOW:
        from . import workflow

        return getattr(workflow, name)
    raise AttributeError(f"module 'hypervldd' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WORKFLOW))


class _DistillPackage(ModuleType):
    """``hypervldd.distill``: the methods' subpackage, and callable as the verb.

    The name belongs to both, so the subpackage is made callable:
    ``hypervldd.distill(real, method, budget)`` runs :func:`hypervldd.workflow.distill`
    while ``from hypervldd.distill import SyntheticSet`` keeps working.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .workflow import distill

        return distill(*args, **kwargs)


class _Package(ModuleType):
    def __setattr__(self, name: str, value: object) -> None:
        # The import system binds a loaded subpackage with setattr on its parent.
        if name == "distill" and type(value) is ModuleType:
            value.__class__ = _DistillPackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
