r"""Layers on the Lorentz model: fully-connected layer, MLR and weighted centroid.

Points are ``(..., D+1)``, time first, with ``<x, x>_L = -1/c``; as everywhere in
the package the space part is authoritative and the time coordinate is derived
from it, so outputs satisfy the constraint to rounding.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_tensor, validation_enabled
from ..manifolds import Lorentz
from ..manifolds import lorentz_math as lm
from ._util import ManifoldLayer, c_of, make_manifold

__all__ = [
    "LorentzLinear",
    "LorentzMLR",
    "lorentz_mlr_logits",
    "lorentz_midpoint",
    "LorentzMidpoint",
]


class LorentzLinear(ManifoldLayer):
    r"""Lorentz fully-connected layer: ``y_s = W x + b``, ``y_0 = sqrt(1/c + |y_s|^2)``.

    The linear map acts on the full input point (time included) and produces
    the space part of the output; the time part follows from the constraint, as
    in the fully hyperbolic networks of Chen et al. (ACL 2022). Every output is
    on the hyperboloid whatever ``W`` is, so ``W`` is an ordinary parameter
    trained by any optimiser. It contains Lorentz boosts and rotations.

    Args:
        in_features: input space dimension ``D_in`` (points have ``D_in + 1`` coordinates).
        out_features: output space dimension ``D_out``.
        manifold: a :class:`~hypervldd.manifolds.Lorentz` instance to share the
            curvature, or ``"lorentz"``.
        c: curvature magnitude when ``manifold`` is a name.
        learn_c: learn the curvature when ``manifold`` is a name.
        bias: add a bias to the space part.
        activation: optional function applied to the space part of the output
            before the time is derived (e.g. ``torch.relu``).

    Shapes: ``(..., D_in + 1) -> (..., D_out + 1)``.

    >>> import torch
    >>> from hypervldd.manifolds import Lorentz
    >>> from hypervldd.nn import LorentzLinear
    >>> m = Lorentz()
    >>> layer = LorentzLinear(4, 3, m)
    >>> y = layer(m.lift(torch.randn(2, 4)))  # (2, 5) points -> (2, 4) points
    >>> tuple(y.shape), bool(torch.allclose(m.inner(y, y), -torch.ones(2), atol=1e-4))
    ((2, 4), True)
    """

    manifolds = (Lorentz,)
    time_coord = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        manifold: str | Lorentz = "lorentz",
        *,
        c: float = 1.0,
        learn_c: bool = False,
        bias: bool = True,
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__(manifold, c, learn_c, in_features, out_features=out_features)
        self.linear = nn.Linear(in_features + 1, out_features, bias=bias)
        self.activation = activation
        with torch.no_grad():
            # Start near a rotation: the time column sees x0 >= 1/sqrt(c), which
            # would otherwise push every output away from the origin.
            nn.init.xavier_uniform_(self.linear.weight)
            self.linear.weight[:, 0].zero_()
            if bias:
                self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, c = self._points(x)
        ys = self.linear(x)
        if self.activation is not None:
            ys = self.activation(ys)
        return torch.cat([lm.time_from_space(ys, c), ys], dim=-1)


class LorentzMLR(ManifoldLayer):
    r"""Multinomial logistic regression on the Lorentz model (Bdeir et al., ICLR 2024).

    Class ``k`` has a hyperplane with normal ``z_k`` (a tangent vector at the
    origin, space part only) and offset ``a_k`` (a signed distance from the
    origin). Its logit is ``|z_k|`` times the signed distance of ``x`` to the
    hyperplane:

    .. math::

        v_k(x) = \frac{|z_k|}{\sqrt c}\operatorname{asinh}\Big(\sqrt c\,\big(
            \cosh(\sqrt c a_k)\,\hat z_k\cdot x_s - \sinh(\sqrt c a_k)\,x_0\big)\Big).

    The usual derivation divides by the Minkowski norm of the transported
    normal, ``sqrt(|w_s|^2 - w_0^2)`` with ``w = (sinh(a)|z|, cosh(a) z)``, which
    is exactly ``|z|`` but loses every digit once ``a`` is large (HyperbolicCV
    computes it that way and divides by zero at ``sqrt(c) a = 10`` in float32);
    here it is ``|z|`` by construction.

    Args:
        in_features: space dimension ``D`` of the input points ``(..., D + 1)``.
        num_classes: number of classes ``K``.
        manifold, c, learn_c: as in :class:`LorentzLinear`.

    Shapes: ``(..., D + 1) -> (..., K)`` logits.

    >>> import torch
    >>> from hypervldd.manifolds import Lorentz
    >>> from hypervldd.nn import LorentzMLR
    >>> mlr = LorentzMLR(4, num_classes=3)
    >>> logits = mlr(Lorentz().lift(torch.randn(5, 4)))  # (5, 5) points -> (5, 3)
    >>> tuple(logits.shape), bool(logits.isfinite().all())
    ((5, 3), True)
    """

    manifolds = (Lorentz,)
    time_coord = True

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        manifold: str | Lorentz = "lorentz",
        *,
        c: float = 1.0,
        learn_c: bool = False,
    ) -> None:
        super().__init__(manifold, c, learn_c, in_features, num_classes=num_classes)
        self.z = nn.Parameter(torch.empty(num_classes, in_features))
        self.a = nn.Parameter(torch.zeros(num_classes))
        nn.init.normal_(self.z, std=1.0 / math.sqrt(in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, c = self._points(x)
        return lorentz_mlr_logits(x, self.z, self.a, c)


def lorentz_mlr_logits(
    x: torch.Tensor, z: torch.Tensor, a: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    r"""Lorentz MLR logits ``(..., K)`` for points ``x (..., D+1)``, normals ``z (K, D)``,
    offsets ``a (K,)`` and a 0-d curvature ``c`` (see :class:`LorentzMLR`).

    With ``p = z_hat . x_s``, ``S = sinh(sqrt(c) a)``, ``C = cosh(sqrt(c) a)``, the
    argument ``C p - S x_0`` is a difference of two numbers of size ``e^{r + a}``
    when ``x`` is far out near the hyperplane. Where ``p`` and ``S`` share a sign
    it is evaluated as ``(p^2 - S^2 (1/c + q^2)) / (C p + S x_0)``, ``q^2 = |x_s|^2 - p^2``
    (the identity ``C^2 - S^2 = 1``), with ``p - S sqrt(1/c + q^2)`` factored out so
    the remaining cancellation is the conditioning of the distance itself.
    Float32 inputs are evaluated in float64 (``q^2`` cancels otherwise) and the
    logits rounded once.

    >>> import torch
    >>> from hypervldd.manifolds import Lorentz
    >>> from hypervldd.nn import lorentz_mlr_logits
    >>> x = Lorentz().lift(torch.tensor([[1.0, 0.0]]))  # at distance 1 along e_1
    >>> z, a = torch.tensor([[1.0, 0.0]]), torch.zeros(1)
    >>> round(float(lorentz_mlr_logits(x, z, a, torch.tensor(1.0))), 4)  # signed distance
    1.0
    """
    out_dtype = x.dtype
    work = torch.float64 if x.dtype in (torch.float32, torch.float64) else torch.float32
    xs = x[..., 1:].to(work)
    c = c.to(work)
    sc = c.sqrt()
    x2 = (xs * xs).sum(-1, keepdim=True)
    x0 = torch.sqrt(1.0 / c + x2)
    z = z.to(work)
    # |z| with a zero subgradient at z = 0 (a class with no direction yet).
    zn = torch.linalg.vector_norm(z, dim=-1)
    safe = torch.where(zn > 0, zn, torch.ones_like(zn))
    zhat = z / safe.unsqueeze(-1)
    sa = sc * a.to(work)
    big_c, big_s = torch.cosh(sa), torch.sinh(sa)
    p = xs @ zhat.T  # (..., K)
    direct = big_c * p - big_s * x0
    same = (p * big_s) > 0
    q2 = (x2 - p * p).clamp_min(0.0)
    r = torch.sqrt(1.0 / c + q2)
    den = torch.where(same, big_c * p + big_s * x0, torch.ones_like(p))
    conj = (p - big_s * r) * (p + big_s * r) / den
    arg = sc * torch.where(same, conj, direct)
    return (zn / sc * torch.asinh(arg)).to(out_dtype)


def lorentz_midpoint(
    x: torch.Tensor,
    c: float | torch.Tensor = 1.0,
    weights: torch.Tensor | None = None,
    dim: int = -2,
    keepdim: bool = False,
) -> torch.Tensor:
    r"""Weighted Lorentzian centroid (Law et al., ICML 2019).

    :math:`\mu = \frac{\sum_i w_i x_i}{\sqrt c\,\sqrt{-\langle \sum_i w_i x_i,
    \sum_i w_i x_i\rangle_L}}`, the point minimising the weighted sum of squared
    Lorentzian distances; for two points with equal weights it is their
    geodesic midpoint. Weights must be non-negative and not all zero along
    ``dim``. The Minkowski norm cancels when the points are close and far from
    the origin, so float32 inputs are accumulated in float64.

    Args:
        x: points ``(..., n, ..., D+1)``.
        c: curvature magnitude.
        weights: ``x.shape[:-1]``-broadcastable non-negative weights (default: uniform).
        dim: the dimension of ``x`` to average over (not the last one).
        keepdim: keep ``dim`` with size 1.

    Returns:
        The centroid, ``x``'s shape without ``dim`` (or with size 1 there).

    >>> import torch
    >>> from hypervldd.manifolds import Lorentz
    >>> from hypervldd.nn import lorentz_midpoint
    >>> m = Lorentz()
    >>> x = m.lift(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    >>> [round(v, 4) for v in lorentz_midpoint(x).tolist()]  # symmetric pair: the origin
    [1.0, 0.0, 0.0]
    """
    x = check_tensor(x, "x", min_dim=2)
    nd = x.dim()
    d = dim % nd
    if d == nd - 1:
        raise ValueError("dim must not be the last (coordinate) dimension of x")
    work = torch.float64 if x.dtype in (torch.float32, torch.float64) else torch.float32
    xs = x[..., 1:].to(work)
    cw = (
        c.to(dtype=work, device=x.device)
        if isinstance(c, torch.Tensor)
        else torch.tensor(float(c), dtype=work, device=x.device)
    )
    full = torch.cat([lm.time_from_space(xs, cw), xs], dim=-1)
    if weights is None:
        w = torch.ones(x.shape[:-1], dtype=work, device=x.device)
    else:
        w = check_tensor(weights, "weights").to(work)
        # data-dependent checks: host syncs on a GPU, switched off with validation(False)
        if validation_enabled() and not bool((w >= 0).all()):
            raise ValueError("weights must be non-negative")
    s = (w.unsqueeze(-1) * full).sum(d, keepdim=True)
    norm2 = -lm.inner(s, s, keepdim=True)
    tiny = torch.finfo(work).tiny
    if validation_enabled() and not bool((norm2 > tiny).all()):
        raise ValueError("weights must not all be zero along dim")
    mu_s = s[..., 1:] / (cw.sqrt() * norm2.sqrt())
    out = torch.cat([lm.time_from_space(mu_s, cw), mu_s], dim=-1).to(x.dtype)
    return out if keepdim else out.squeeze(d)


class LorentzMidpoint(nn.Module):
    """Pooling by :func:`lorentz_midpoint` over ``dim`` (weights optional in ``forward``).

    >>> import torch
    >>> from hypervldd.manifolds import Lorentz
    >>> from hypervldd.nn import LorentzMidpoint
    >>> points = Lorentz().lift(torch.randn(2, 6, 3))  # 2 sets of 6 points
    >>> tuple(LorentzMidpoint()(points).shape)
    (2, 4)
    """

    def __init__(self, manifold: str | Lorentz = "lorentz", *, c: float = 1.0, dim: int = -2):
        super().__init__()
        self.manifold = make_manifold(manifold, c, False, (Lorentz,))
        self.dim = dim

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        return lorentz_midpoint(x, c_of(self.manifold, x), weights, self.dim)
