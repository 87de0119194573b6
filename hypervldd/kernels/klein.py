"""Klein points on the fused Lorentz kernel: ``pairwise_dist(x, y, "klein", c)``.

The Klein model has no kernel of its own: its points map to the hyperboloid in
``O((N + M) D)`` (``xs = k / sqrt(1 - c|k|^2)``, the time re-derived) and the Lorentz
kernel does the ``O(N M D)`` work. The conversion and the kernel run in float64 and the
result is rounded to the input dtype: float32 Lorentz coordinates of converted points
would move each point by ``eps sinh(r)``, a relative error of 54 on the accuracy grid
(a pair 1e-2 apart at the float32 boundary margin), against 7.7e-6 this way; the cost is
that of the float64 Lorentz kernel (docs/geometry.md, "The Klein model").
The streaming losses (``contrastive_loss``, ``row_stats``) take ``"lorentz"`` points:
convert with :func:`hypervldd.manifolds.klein_to_lorentz` first.
"""

from __future__ import annotations

import torch

from .._checks import check_curvature, check_finite, check_tensor, validation_enabled
from ..manifolds import klein_math as km

__all__ = ["klein_as_lorentz"]


def _check(x: object, name: str, c: float | torch.Tensor) -> torch.Tensor:
    x = check_tensor(x, name, min_dim=2)
    if x.dim() != 2 or x.shape[1] < 1:
        raise ValueError(f"{name} must be 2-D (N, D) with D >= 1, got shape {tuple(x.shape)}")
    check_finite(x, name)
    if validation_enabled() and x.numel() > 0:
        a = km.alpha(x.detach(), c.detach() if isinstance(c, torch.Tensor) else c)
        if not bool((a > 0).all()):
            worst = float((1.0 - a).max())
            raise ValueError(
                f"{name} must lie inside the Klein ball c|{name}|^2 < 1, got c|{name}|^2 up to"
                f" {worst:.6g}; project it with Klein.projx"
            )
    return x


def klein_as_lorentz(
    x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float | torch.Tensor, torch.dtype]:
    """Klein points ``x (N, D)``, ``y (M, D)`` as float64 hyperboloid points ``(N|M, D+1)``.

    Returns ``(lx, ly, c64, dtype)``: the points, the curvature in float64 and the dtype
    the distances are rounded to. :func:`hypervldd.kernels.pairwise_dist` runs the
    Lorentz kernel on them for ``manifold="klein"`` (the conversion lives here and the
    kernel call there, so that imports run one way). Gradients flow to ``x``, ``y`` and a
    tensor ``c``.

    >>> import torch
    >>> from hypervldd.kernels import pairwise_dist
    >>> x = torch.tensor([[0.0, 0.0], [0.7615942, 0.0]])  # tanh(1): distance 1
    >>> [[round(v, 4) for v in row] for row in pairwise_dist(x, x, "klein", 1.0).tolist()]
    [[0.0, 1.0], [1.0, 0.0]]
    >>> klein_as_lorentz(x, x, 1.0)[0].shape
    torch.Size([2, 3])
    """
    c = check_curvature(c, "c")
    x, y = _check(x, "x", c), _check(y, "y", c)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same number of columns, got x {tuple(x.shape)} and"
            f" y {tuple(y.shape)}"
        )
    out = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    c64 = c.double() if isinstance(c, torch.Tensor) else float(c)
    return km.to_lorentz(x.double(), c64), km.to_lorentz(y.double(), c64), c64, out
