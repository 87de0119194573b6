"""Exponential-map projection head: Euclidean features to points of a chosen geometry."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_finite, check_tensor, validation
from ..manifolds import PoincareBall
from ..manifolds.base import Manifold
from ._util import BoundedPositive, make_manifold

__all__ = ["ExpMapHead"]


class ExpMapHead(nn.Module):
    r"""``x -> lift(scale * (W x + b))``: features ``(..., in_features)`` to points.

    The output lives on ``manifold``: ``(..., out_features + 1)`` on the Lorentz
    model (time first), ``(..., out_features)`` on the Poincaré ball or in
    Euclidean space, so the geometry is a switch. ``lift`` is the exponential
    map at the origin, so the hyperbolic radius of a point is
    ``scale * |W x + b|``.

    **Spread over radii.** The feature scale starts at ``scale_init`` (default
    ``1 / sqrt(out_features)``, so a unit-variance projection lands at radius about
    1; the ball's conformal factor 2 at the origin doubles that). In that regime
    the radius is proportional to the feature norm, so inputs
    of different norm land at different radii instead of all saturating on one
    far shell (``tanh`` in the ball saturates from radius ~4 in float32).
    :meth:`calibrate_` sets the scale from a data sample so that the median
    radius is a chosen value.

    Args:
        in_features: input width.
        out_features: point dimension ``D``.
        manifold: ``"lorentz"``, ``"poincare"``, ``"euclidean"`` or an instance
            (to share a curvature between layers).
        c: initial curvature magnitude (curvature ``-c``) when built from a name.
        learn_c: learn the curvature (bounded, see :class:`~hypervldd.manifolds.Curvature`).
        learn_scale: learn the feature scale (bounded in ``scale_bounds``).
        scale_init: initial scale; default ``1 / sqrt(out_features)``.
        scale_bounds: bounds of the scale, default ``(scale_init / 100, 100 scale_init)``.
        bias: whether the linear map has a bias.

    >>> import torch
    >>> from hypervldd.nn import ExpMapHead
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> head = ExpMapHead(16, 8, "lorentz")
    >>> x = head(torch.randn(4, 16))  # (4, 16) features -> (4, 9) points
    >>> tuple(x.shape), bool(torch.allclose(head.manifold.inner(x, x), -torch.ones(4), atol=1e-4))
    ((4, 9), True)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        manifold: str | Manifold = "lorentz",
        *,
        c: float = 1.0,
        learn_c: bool = True,
        learn_scale: bool = True,
        scale_init: float | None = None,
        scale_bounds: tuple[float, float] | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.manifold = make_manifold(manifold, c, learn_c)
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        s0 = 1.0 / math.sqrt(out_features) if scale_init is None else float(scale_init)
        if not (0.0 < s0 < math.inf):
            raise ValueError(f"scale_init must be a finite number > 0, got {scale_init!r}")
        bounds = scale_bounds if scale_bounds is not None else (s0 / 100.0, s0 * 100.0)
        self.scale = BoundedPositive(s0, bounds, learnable=learn_scale, name="scale_init")
        self.in_features, self.out_features = in_features, out_features

    def tangent(self, x: torch.Tensor) -> torch.Tensor:
        """The scaled Euclidean feature ``scale * (W x + b)``, ``(..., out_features)``."""
        return self.linear(x) * self.scale().to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Points ``(..., out_features [+ 1 on Lorentz])`` for features ``(..., in_features)``."""
        x = check_tensor(x, "x")
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have last dimension in_features={self.in_features}, got {tuple(x.shape)}"
            )
        check_finite(x, "x")
        with validation(False):
            return self.manifold.lift(self.tangent(x))

    @torch.no_grad()
    def calibrate_(self, sample: torch.Tensor, radius: float = 1.0) -> ExpMapHead:
        """Set the scale so that the median radius of ``sample``'s points is ``radius``.

        ``radius`` is a geodesic distance from the origin. Returns ``self``.
        """
        if not (0.0 < float(radius) < math.inf):
            raise ValueError(f"radius must be a finite number > 0, got {radius!r}")
        v = self.linear(check_tensor(sample, "sample"))
        med = torch.linalg.vector_norm(v, dim=-1).median()
        if not bool(med > 0):
            raise ValueError("sample must produce non-zero features to calibrate the scale")
        # Distance from the origin per unit of tangent norm: the ball's metric is
        # 2|u| at the origin (conformal factor 2), the hyperboloid's |u|.
        per_unit = 2.0 if isinstance(self.manifold, PoincareBall) else 1.0
        target = float(radius) / (per_unit * float(med))
        lo, hi = self.scale.bounds
        target = min(max(target, lo * 1.001), hi * 0.999)
        frac = (math.log(target) - math.log(lo)) / (math.log(hi) - math.log(lo))
        self.scale.raw.fill_(math.log(frac / (1.0 - frac)))
        return self

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"manifold={self.manifold.name}"
        )
