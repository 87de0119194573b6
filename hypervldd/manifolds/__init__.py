"""Manifolds: Lorentz, Poincaré ball, Klein, Euclidean and sphere behind one interface.

Pure functions live in :mod:`.lorentz_math`, :mod:`.poincare_math`,
:mod:`.klein_math`, :mod:`.flat_math` and :mod:`.conversions`; the classes are thin wrappers that
add curvature handling, validation and geoopt compatibility. Curvature is
always given as ``c > 0`` meaning sectional curvature ``-c`` (``+c`` for the
sphere); geoopt's Lorentz ``k`` is ``1/c``.
"""

from . import conversions, flat_math, klein_math, lorentz_math, poincare_math
from .base import Manifold
from .conversions import (
    klein_to_lorentz,
    klein_to_poincare,
    lorentz_to_klein,
    lorentz_to_poincare,
    poincare_to_klein,
    poincare_to_lorentz,
)
from .curvature import Curvature
from .euclidean import Euclidean, Sphere
from .klein import Klein
from .lorentz import Lorentz
from .poincare import PoincareBall

__all__ = [
    "Manifold",
    "Curvature",
    "Lorentz",
    "PoincareBall",
    "Klein",
    "Euclidean",
    "Sphere",
    "get_manifold",
    "lorentz_math",
    "poincare_math",
    "klein_math",
    "flat_math",
    "conversions",
    "lorentz_to_poincare",
    "poincare_to_lorentz",
    "lorentz_to_klein",
    "klein_to_lorentz",
    "poincare_to_klein",
    "klein_to_poincare",
]

_BY_NAME = {
    "lorentz": Lorentz,
    "poincare": PoincareBall,
    "klein": Klein,
    "euclidean": Euclidean,
    "sphere": Sphere,
}


def get_manifold(name: str, c: float = 1.0, **kwargs: object) -> Manifold:
    """Build a manifold by name: ``"lorentz"``, ``"poincare"``, ``"klein"``, ``"euclidean"``
    or ``"sphere"``.

    >>> from hypervldd.manifolds import get_manifold
    >>> ball, hyperboloid = get_manifold("poincare", c=0.5), get_manifold("lorentz", 2.0)
    >>> type(ball).__name__, round(float(hyperboloid.c), 4)
    ('PoincareBall', 2.0)
    """
    key = str(name).lower()
    if key not in _BY_NAME:
        raise ValueError(f"name must be one of {sorted(_BY_NAME)}, got {name!r}")
    return _BY_NAME[key](c, **kwargs)
