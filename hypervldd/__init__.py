"""hypervldd: hyperbolic geometry for vision-language dataset distillation.

Subpackages, lowest first: :mod:`~hypervldd.manifolds` (Lorentz, Poincaré,
Euclidean, sphere), :mod:`~hypervldd.kernels` (compiled ops with a PyTorch
reference). Conventions: curvature ``c > 0`` means ``-c``; Lorentz points are
``(time, space)``; see ``docs/geometry.md``.
"""

__version__ = "0.1.0"

from ._backend import BackendInfo, backend_info
from ._checks import set_validation, validation, validation_enabled
from .manifolds import Curvature, Euclidean, Lorentz, PoincareBall, Sphere, get_manifold

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
    "Sphere",
    "get_manifold",
]
