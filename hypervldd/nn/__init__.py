"""Hyperbolic layers: projection heads, linear layers, MLR, similarity heads, midpoints.

Every layer works in float32 and float64, keeps its outputs on its manifold,
and takes its geometry from a :mod:`hypervldd.manifolds` instance (pass the same
instance to several layers to share a learnable curvature). See ``docs/layers.md``.
"""

from ._util import BoundedPositive
from .head import ExpMapHead
from .klein import EinsteinMidpoint, einstein_midpoint
from .lorentz import (
    LorentzLinear,
    LorentzMidpoint,
    LorentzMLR,
    lorentz_midpoint,
    lorentz_mlr_logits,
)
from .poincare import (
    MobiusLinear,
    PoincareLinear,
    PoincareMidpoint,
    PoincareMLR,
    poincare_midpoint,
    poincare_mlr_logits,
)
from .similarity import DistanceSimilarity

__all__ = [
    "BoundedPositive",
    "ExpMapHead",
    "LorentzLinear",
    "LorentzMLR",
    "LorentzMidpoint",
    "lorentz_midpoint",
    "lorentz_mlr_logits",
    "PoincareLinear",
    "MobiusLinear",
    "PoincareMLR",
    "PoincareMidpoint",
    "poincare_midpoint",
    "poincare_mlr_logits",
    "EinsteinMidpoint",
    "einstein_midpoint",
    "DistanceSimilarity",
]
