r"""The Klein model's aggregation: the weighted Einstein midpoint.

In Klein coordinates the Lorentzian centroid of :func:`~hypervldd.nn.lorentz_midpoint`
has a closed form with no square root of a cancelling norm: with ``gamma_i = 1 /
sqrt(1 - c|k_i|^2)``,

.. math::

    m = \frac{\sum_i w_i \gamma_i k_i}{\sum_i w_i \gamma_i},

a convex combination of the points (so inside the ball by construction). The
hyperboloid images are ``x_i = (gamma_i / sqrt(c), gamma_i k_i)``, whose weighted
sum maps back to exactly this ``m``: the three models' midpoints are one point.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_tensor, validation_enabled
from ..manifolds import Klein
from ..manifolds import klein_math as km
from ._util import c_of, make_manifold

__all__ = ["einstein_midpoint", "EinsteinMidpoint"]


def einstein_midpoint(
    k: torch.Tensor,
    c: float | torch.Tensor = 1.0,
    weights: torch.Tensor | None = None,
    dim: int = -2,
    keepdim: bool = False,
) -> torch.Tensor:
    r"""Weighted Einstein midpoint of Klein points (module docstring for the formula).

    The Lorentz factors come from ``1 - c|k|^2`` accumulated in float64, and the sums
    run in float64 for float32 inputs (a factor ``gamma`` is ~400 at the float32
    boundary margin); the result is rounded once and projected into the ball.

    Args:
        k: Klein points ``(..., n, ..., D)`` with ``c|k|^2 < 1``.
        c: curvature magnitude.
        weights: ``k.shape[:-1]``-broadcastable non-negative weights (default: uniform),
            not all zero along ``dim``.
        dim: the dimension of ``k`` to average over (not the last one).
        keepdim: keep ``dim`` with size 1.

    Returns:
        The midpoint, ``k``'s shape without ``dim`` (or with size 1 there).

    >>> import torch
    >>> from hypervldd.manifolds import Klein
    >>> from hypervldd.nn import einstein_midpoint
    >>> m = Klein()
    >>> k = m.lift(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> mid = einstein_midpoint(k)
    >>> bool(torch.isclose(m.dist(k[0], mid), m.dist(mid, k[1])))  # the geodesic midpoint
    True
    """
    k = check_tensor(k, "k", min_dim=2)
    nd = k.dim()
    d = dim % nd
    if d == nd - 1:
        raise ValueError("dim must not be the last (coordinate) dimension of k")
    work = torch.float64 if k.dtype in (torch.float32, torch.float64) else torch.float32
    kw = k.to(work)
    cw = c.to(dtype=work, device=k.device) if isinstance(c, torch.Tensor) else float(c)
    a = km.alpha(kw, cw)
    # data-dependent checks: host syncs on a GPU, switched off with validation(False)
    if validation_enabled() and not bool((a > 0).all()):
        raise ValueError("k must lie strictly inside the ball c|k|^2 < 1; project it with projx")
    if weights is None:
        w = torch.ones(k.shape[:-1], dtype=work, device=k.device)
    else:
        w = check_tensor(weights, "weights").to(work)
        if validation_enabled() and not bool((w >= 0).all()):
            raise ValueError("weights must be non-negative")
    wg = w.unsqueeze(-1) * torch.rsqrt(a)
    den = wg.sum(d, keepdim=True)
    if validation_enabled() and not bool((den > 0).all()):
        raise ValueError("weights must not all be zero along dim")
    mid = (wg * kw).sum(d, keepdim=True) / den
    out = km.projx(mid, cw).to(k.dtype)
    return out if keepdim else out.squeeze(d)


class EinsteinMidpoint(nn.Module):
    """Pooling of Klein points by :func:`einstein_midpoint` over ``dim`` (weights optional).

    >>> import torch
    >>> from hypervldd.manifolds import Klein
    >>> from hypervldd.nn import EinsteinMidpoint
    >>> points = Klein().lift(torch.randn(2, 6, 3))  # 2 sets of 6 points
    >>> tuple(EinsteinMidpoint()(points).shape)
    (2, 3)
    """

    def __init__(self, manifold: str | Klein = "klein", *, c: float = 1.0, dim: int = -2):
        super().__init__()
        self.manifold = make_manifold(manifold, c, False, (Klein,))
        self.dim = dim

    def forward(self, k: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        return einstein_midpoint(k, c_of(self.manifold, k), weights, self.dim)
