r"""Pure functions for the flat and the positively curved comparison geometries.

Euclidean space ``R^D`` and the sphere of curvature ``+c`` (radius ``1/sqrt(c)``),
with the same function names as :mod:`.lorentz_math` and :mod:`.poincare_math`
so that a geometry is a switch. The sphere distance uses
``2 atan2(|x - y|, |x + y|) / sqrt(c)``, accurate for close and for antipodal
pairs alike (``acos(<x, y>)`` loses half the digits of close pairs).
"""

from __future__ import annotations

import torch

from ..numerics import sinc
from .lorentz_math import _as_batch, _up

__all__ = [
    "euclidean_dist",
    "euclidean_pairwise_dist",
    "sphere_projx",
    "sphere_proju",
    "sphere_dist",
    "sphere_pairwise_dist",
    "sphere_expmap",
    "sphere_logmap",
    "sphere_transp",
]


def euclidean_dist(x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    """``|x - y|`` with the zero subgradient at ``x = y``."""
    return torch.linalg.vector_norm(_up(x) - _up(y), dim=-1, keepdim=keepdim)


def euclidean_pairwise_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """All-pairs Euclidean distances ``(N, M)`` from direct differences (``torch.cdist``)."""
    return torch.cdist(_up(x), _up(y), compute_mode="donot_use_mm_for_euclid_dist")


def sphere_projx(x: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Radial projection onto the sphere ``|x| = 1/sqrt(c)``."""
    x = _up(x)
    n = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    return x / (n * _as_batch(c, x).sqrt())


def sphere_proju(x: torch.Tensor, u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Tangent projection ``u - c <x, u> x``."""
    return u - _as_batch(c, u) * (x * u).sum(-1, keepdim=True) * x


def sphere_dist(
    x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor, *, keepdim: bool = False
) -> torch.Tensor:
    """Great-circle distance ``2 atan2(|x - y|, |x + y|) / sqrt(c)``."""
    x, y = _up(x), _up(y)
    sc = _as_batch(c, x).sqrt()
    a = torch.linalg.vector_norm(x - y, dim=-1, keepdim=True)
    b = torch.linalg.vector_norm(x + y, dim=-1, keepdim=True)
    out = 2.0 * torch.atan2(a, b) / sc
    return out if keepdim else out.squeeze(-1)


def sphere_pairwise_dist(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """All-pairs great-circle distances ``(N, M)`` (scalar ``c``)."""
    x, y = _up(x), _up(y)
    cf = float(c) if not isinstance(c, torch.Tensor) else c.reshape(())
    a = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
    b = torch.cdist(x, -y, compute_mode="donot_use_mm_for_euclid_dist")
    return 2.0 * torch.atan2(a, b) / cf**0.5


def sphere_expmap(x: torch.Tensor, u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """``cos(sqrt(c)|u|) x + sin(sqrt(c)|u|) u / (sqrt(c)|u|)``, re-projected."""
    x, u = _up(x), _up(u)
    n = _as_batch(c, u).sqrt() * torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    return sphere_projx(torch.cos(n) * x + sinc(n) * u, c)


def sphere_logmap(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Tangent vector at ``x`` towards ``y`` with norm ``d(x, y)`` (undefined at the antipode)."""
    x, y = _up(x), _up(y)
    u = sphere_proju(x, y - x, c)
    d = sphere_dist(x, y, c, keepdim=True)
    n = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    pos = n > 0
    return torch.where(pos, u * d / torch.where(pos, n, torch.ones_like(n)), torch.zeros_like(u))


def sphere_transp(
    x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, c: float | torch.Tensor
) -> torch.Tensor:
    """Parallel transport along the great circle: ``v - c<y, v>/(1 + c<x, y>) (x + y)``."""
    x, y, v = _up(x), _up(y), _up(v)
    cb = _as_batch(c, v)
    den = 1.0 + cb * (x * y).sum(-1, keepdim=True)
    den = den.clamp_min(torch.finfo(v.dtype).eps)
    return v - cb * (y * v).sum(-1, keepdim=True) / den * (x + y)
