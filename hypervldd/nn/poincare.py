r"""Layers on the Poincaré ball: HNN++ linear and MLR, Möbius linear, weighted midpoint.

Points satisfy ``c|x|^2 < 1``. ``1 - c|x|^2`` always comes from
:func:`hypervldd.manifolds.poincare_math.alpha` (accumulated in float64), the
quantity everything near the boundary depends on.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_tensor
from ..manifolds import PoincareBall, conversions
from ..manifolds import poincare_math as pm
from ..numerics import max_radius
from ._util import ManifoldLayer, c_of, make_manifold
from .lorentz import lorentz_midpoint

__all__ = [
    "poincare_mlr_logits",
    "PoincareMLR",
    "PoincareLinear",
    "MobiusLinear",
    "poincare_midpoint",
    "PoincareMidpoint",
]


def poincare_mlr_logits(
    x: torch.Tensor, z: torch.Tensor, r: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    r"""Unidirectional Poincaré MLR of HNN++ (Shimizu et al., ICLR 2021, eq. 6).

    .. math::

        v_k(x) = \frac{2|z_k|}{\sqrt c}\operatorname{asinh}\Big(
            \frac{2\sqrt c\,\langle x, \hat z_k\rangle\cosh(2\sqrt c r_k)
                  - (1 + c|x|^2)\sinh(2\sqrt c r_k)}{1 - c|x|^2}\Big)

    with ``1 - c|x|^2`` from :func:`~hypervldd.manifolds.poincare_math.alpha`.
    ``|z_k|`` times the signed distance of ``x`` to the ``k``-th gyroplane.

    Args:
        x: points ``(..., D)``; z: normals ``(K, D)``; r: offsets ``(K,)``; c: 0-d curvature.

    Returns:
        Logits ``(..., K)``.

    >>> import torch
    >>> from hypervldd.nn import poincare_mlr_logits
    >>> x = torch.tensor([[0.3, 0.0], [-0.3, 0.0]])  # either side of the hyperplane x_1 = 0
    >>> normal, offset = torch.tensor([[1.0, 0.0]]), torch.zeros(1)
    >>> logits = poincare_mlr_logits(x, normal, offset, torch.tensor(1.0))
    >>> tuple(logits.shape), bool(logits[0, 0] > 0 > logits[1, 0])
    ((2, 1), True)
    """
    sc = c.sqrt()
    a = pm.alpha(x, c)  # (..., 1)
    zn = torch.linalg.vector_norm(z, dim=-1)
    safe = torch.where(zn > 0, zn, torch.ones_like(zn))
    zhat = z / safe.unsqueeze(-1)
    two_r = 2.0 * sc * r
    num = 2.0 * sc * (x @ zhat.T) * torch.cosh(two_r) - (2.0 - a) * torch.sinh(two_r)
    return 2.0 * zn / sc * torch.asinh(num / a)


class PoincareMLR(ManifoldLayer):
    """Multinomial logistic regression on the Poincaré ball (HNN++ form).

    Args:
        in_features: ball dimension ``D``.
        num_classes: ``K``.
        manifold: a :class:`~hypervldd.manifolds.PoincareBall` (shared curvature) or ``"poincare"``.
        c, learn_c: curvature when built from a name.

    Shapes: ``(..., D) -> (..., K)``.

    >>> import torch
    >>> from hypervldd.manifolds import PoincareBall
    >>> from hypervldd.nn import PoincareMLR
    >>> logits = PoincareMLR(4, num_classes=3)(PoincareBall().lift(torch.randn(5, 4)))
    >>> tuple(logits.shape), bool(logits.isfinite().all())
    ((5, 3), True)
    """

    manifolds = (PoincareBall,)

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        manifold: str | PoincareBall = "poincare",
        *,
        c: float = 1.0,
        learn_c: bool = False,
    ) -> None:
        super().__init__(manifold, c, learn_c, in_features, num_classes=num_classes)
        self.z = nn.Parameter(torch.randn(num_classes, in_features) / math.sqrt(in_features))
        self.r = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, c = self._points(x)
        return poincare_mlr_logits(x, self.z.to(x.dtype), self.r.to(x.dtype), c)


class PoincareLinear(ManifoldLayer):
    r"""Poincaré fully-connected layer of HNN++ (Shimizu et al., ICLR 2021, eq. 8).

    The MLR logits ``v_k(x)`` become the coordinates of the output through
    ``w_k = sinh(sqrt(c) v_k) / sqrt(c)`` and ``y = w / (1 + sqrt(1 + c|w|^2))``,
    which is inside the ball for every ``w``. ``sqrt(c) v_k`` is capped at
    :func:`~hypervldd.numerics.max_radius` so that ``sinh`` cannot overflow, and
    the output is projected to the ball's float margin.

    Args:
        in_features: ``D_in``; out_features: ``D_out``; manifold, c, learn_c: as in
            :class:`PoincareMLR`; bias: learn the offsets ``r`` (else they stay 0).

    Shapes: ``(..., D_in) -> (..., D_out)``.

    >>> import torch
    >>> from hypervldd.manifolds import PoincareBall
    >>> from hypervldd.nn import PoincareLinear
    >>> ball = PoincareBall()
    >>> y = PoincareLinear(4, 3, ball)(ball.lift(torch.randn(2, 4)))  # (2, 4) -> (2, 3)
    >>> tuple(y.shape), bool((y.norm(dim=-1) < 1).all())
    ((2, 3), True)
    """

    manifolds = (PoincareBall,)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        manifold: str | PoincareBall = "poincare",
        *,
        c: float = 1.0,
        learn_c: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__(manifold, c, learn_c, in_features, out_features=out_features)
        # HNN++ initialises the normals with std (2 D_in D_out)^-1/2 so that the
        # output radius does not grow with depth.
        std = (2.0 * in_features * out_features) ** -0.5
        self.z = nn.Parameter(torch.randn(out_features, in_features) * std)
        if bias:
            self.r = nn.Parameter(torch.zeros(out_features))
        else:
            self.register_buffer("r", torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, c = self._points(x)
        sc = c.sqrt()
        v = poincare_mlr_logits(x, self.z.to(x.dtype), self.r.to(x.dtype), c)
        cap = max_radius(x.dtype)
        w = torch.sinh((sc * v).clamp(-cap, cap)) / sc
        w2 = (w * w).sum(-1, keepdim=True)
        y = w / (1.0 + torch.sqrt(1.0 + c * w2))
        return pm.projx(y, c)


class MobiusLinear(ManifoldLayer):
    r"""Möbius linear layer of HNN (Ganea et al., NeurIPS 2018): ``y = (M \otimes x) \oplus b``.

    The Möbius matrix-vector product ``M \otimes x = exp_0(M log_0(x))`` is
    evaluated through the package's maps at the origin (no ``artanh`` of a
    rounded ``sqrt(c)|x|`` near the boundary, zero input maps to zero), and the
    bias is a point ``b = exp_0(b_t)`` of the ball parametrised by a tangent
    vector ``b_t`` (an ordinary parameter).

    Args:
        in_features, out_features: ball dimensions; manifold, c, learn_c: as in
            :class:`PoincareMLR`; bias: add the Möbius bias.

    Shapes: ``(..., D_in) -> (..., D_out)``.

    >>> import torch
    >>> from hypervldd.manifolds import PoincareBall
    >>> from hypervldd.nn import MobiusLinear
    >>> ball = PoincareBall()
    >>> y = MobiusLinear(4, 3, ball)(ball.lift(torch.randn(2, 4)))  # (2, 4) -> (2, 3)
    >>> tuple(y.shape), bool((y.norm(dim=-1) < 1).all())
    ((2, 3), True)
    """

    manifolds = (PoincareBall,)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        manifold: str | PoincareBall = "poincare",
        *,
        c: float = 1.0,
        learn_c: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__(manifold, c, learn_c, in_features, out_features=out_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, c = self._points(x)
        u = pm.logmap0(x, c)
        y = pm.expmap0(u @ self.weight.to(u.dtype).T, c)
        if self.bias is not None:
            b = pm.expmap0(self.bias.to(y.dtype), c)
            y = pm.mobius_add(y, b.expand_as(y), c)
        return pm.projx(y, c)


def poincare_midpoint(
    x: torch.Tensor,
    c: float | torch.Tensor = 1.0,
    weights: torch.Tensor | None = None,
    dim: int = -2,
    keepdim: bool = False,
) -> torch.Tensor:
    r"""Weighted midpoint on the Poincaré ball: the Lorentzian centroid, mapped back.

    Equal to the weighted gyromidpoint ``1/2 \otimes (\sum_i w_i \lambda_i x_i /
    \sum_i w_i (\lambda_i - 1))`` of HNN++ (the two coincide, the isometry carrying
    one model's centroid to the other's); evaluated through
    :func:`~hypervldd.nn.lorentz_midpoint`, with ``1 - c|x|^2`` from the
    float64-accumulated ``alpha``. Arguments as in :func:`lorentz_midpoint`.

    >>> import torch
    >>> from hypervldd.nn import poincare_midpoint
    >>> x = torch.tensor([[0.5, 0.0], [0.0, 0.5]])
    >>> mid = poincare_midpoint(x)
    >>> round(float(mid[0] - mid[1]), 6), bool(0 < float(mid[0]) < 0.5)  # on the diagonal
    (0.0, True)
    """
    x = check_tensor(x, "x", min_dim=2)
    lx = conversions.poincare_to_lorentz(x, c)
    mu = lorentz_midpoint(lx, c, weights, dim, keepdim)
    return conversions.lorentz_to_poincare(mu, c).to(x.dtype)


class PoincareMidpoint(nn.Module):
    """Pooling by :func:`poincare_midpoint` over ``dim`` (weights optional in ``forward``).

    >>> import torch
    >>> from hypervldd.manifolds import PoincareBall
    >>> from hypervldd.nn import PoincareMidpoint
    >>> points = PoincareBall().lift(torch.randn(2, 6, 3))  # 2 sets of 6 points
    >>> tuple(PoincareMidpoint()(points).shape)
    (2, 3)
    """

    def __init__(
        self, manifold: str | PoincareBall = "poincare", *, c: float = 1.0, dim: int = -2
    ) -> None:
        super().__init__()
        self.manifold = make_manifold(manifold, c, False, (PoincareBall,))
        self.dim = dim

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        return poincare_midpoint(x, c_of(self.manifold, x), weights, self.dim)
