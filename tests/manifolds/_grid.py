"""Point pairs at a prescribed radius, distance and direction, built in float64.

Shared by the accuracy-envelope tests and the benchmark that records the table
in docs/geometry.md.
"""

from __future__ import annotations

import math

import torch

from hypervldd.manifolds import conversions
from hypervldd.manifolds import lorentz_math as lm

RADII = (0.1, 1.0, 3.0, 5.0, 8.0, 10.0)
DISTANCES = (1e-3, 1e-2, 0.1, 1.0, 10.0)
DIRECTIONS = ("radial_out", "radial_in", "tangential", "random")


def lorentz_pairs(
    radius: float,
    distance: float,
    direction: str,
    *,
    n: int = 8,
    dim: int = 64,
    c: float = 1.0,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` float64 Lorentz pairs ``(x, y)`` with ``d(o, x) = radius`` and ``d(x, y) = distance``."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    u = torch.randn(n, dim, generator=g, dtype=f64)
    u = u / u.norm(dim=-1, keepdim=True)
    x = lm.expmap0(torch.nn.functional.pad(u * radius / math.sqrt(c), (1, 0)), c)
    if direction == "radial_out":
        v = u
    elif direction == "radial_in":
        v = -u
    elif direction == "tangential":
        h = torch.randn(n, dim, generator=g, dtype=f64)
        h = h - (h * u).sum(-1, keepdim=True) * u
        v = h / h.norm(dim=-1, keepdim=True)
    elif direction == "random":
        h = torch.randn(n, dim, generator=g, dtype=f64)
        v = h / h.norm(dim=-1, keepdim=True)
    else:
        raise ValueError(direction)
    # Move the unit direction from the origin to x, then walk `distance` along it.
    t = lm.transp0(x, torch.nn.functional.pad(v, (1, 0)), c)
    t = t / lm.norm(t, keepdim=True)
    y = lm.expmap(x, t * distance, c)
    return x, y


def poincare_pairs(
    radius: float, distance: float, direction: str, **kw: object
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same pairs mapped isometrically to the Poincaré ball."""
    c = float(kw.get("c", 1.0))
    x, y = lorentz_pairs(radius, distance, direction, **kw)
    return conversions.lorentz_to_poincare(x, c), conversions.lorentz_to_poincare(y, c)
