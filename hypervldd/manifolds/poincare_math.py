r"""Pure functions on the Poincaré ball of curvature ``-c``, ``c > 0``.

Points satisfy ``c |x|^2 < 1``; the metric is ``lambda_x^2 <u, v>`` with the
conformal factor ``lambda_x = 2 / (1 - c |x|^2)``. Functions work on the last
dimension and broadcast over the others; ``c`` is a float or a tensor
broadcastable to the batch shape.

**Precision.** Near the boundary everything hinges on ``alpha_x = 1 - c|x|^2``.
In float32 at hyperbolic radius 10 it is 1.8e-4, and a float32 ``|x|^2`` carries
an absolute error of about 1e-7, a relative error of 1e-3 in ``alpha``. So
``alpha`` is accumulated in float64 (an ``O(N D)`` cost, negligible next to any
GEMM) and rounded once. The distance is then

.. math::

    d(x, y) = \frac{2}{\sqrt c}\operatorname{asinh}\Big(\frac{\sqrt c\,|x - y|}
              {\sqrt{\alpha_x \alpha_y}}\Big),

which is the usual ``acosh(1 + 2c|x-y|^2 / (alpha_x alpha_y)) / sqrt(c)`` with
no ``1 + z`` rounding, a direct coordinate difference (no ``|x|^2 - 2x.y + |y|^2``
cancellation) and the zero subgradient of the norm at ``x = y``.
"""

from __future__ import annotations

import torch

from ..numerics import artanhc, asinhc, ball_margin, pow2_scale
from .lorentz_math import _as_batch, _directions_and_radius, _up

__all__ = [
    "alpha",
    "lambda_x",
    "inner",
    "norm",
    "mobius_add",
    "projx",
    "proju",
    "egrad2rgrad",
    "dist",
    "dist0",
    "pairwise_dist",
    "expmap",
    "expmap0",
    "logmap",
    "logmap0",
    "gyration",
    "transp",
    "transp0",
    "transp0back",
    "origin",
    "random",
]


def _dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u * v).sum(-1, keepdim=True)


def _tanhc(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x) / x`` with a series branch at 0 (finite gradients)."""
    t = torch.finfo(x.dtype).eps ** (1.0 / 6.0)
    small = x.abs() < t
    xs = torch.where(small, torch.ones_like(x), x)
    x2 = x * x
    return torch.where(small, 1.0 - x2 / 3.0 + 2.0 * x2 * x2 / 15.0, torch.tanh(xs) / xs)


def alpha(x: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """``1 - c|x|^2`` accumulated in float64, returned in ``x``'s dtype. Shape ``(..., 1)``."""
    x = _up(x)
    x64 = x.double()
    a = 1.0 - _as_batch(c, x64) * (x64 * x64).sum(-1, keepdim=True)
    return a.to(x.dtype)


def lambda_x(x: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Conformal factor ``2 / (1 - c|x|^2)``. Shape ``(..., 1)``."""
    return 2.0 / alpha(x, c)


def inner(
    x: torch.Tensor, u: torch.Tensor, v: torch.Tensor | None = None, c: float | torch.Tensor = 1.0
) -> torch.Tensor:
    r"""Riemannian inner product :math:`\lambda_x^2 \langle u, v\rangle`. Shape ``(..., 1)``."""
    v = u if v is None else v
    return lambda_x(x, c) ** 2 * _dot(u, v)


def norm(x: torch.Tensor, u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Riemannian norm :math:`\lambda_x |u|`. Shape ``(..., 1)``."""
    return lambda_x(x, c) * torch.linalg.vector_norm(u, dim=-1, keepdim=True)


def mobius_add(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Möbius addition
    :math:`\frac{(1 + 2c\langle x,y\rangle + c|y|^2)x + (1 - c|x|^2)y}
    {1 + 2c\langle x,y\rangle + c^2|x|^2|y|^2}`."""
    # 1 + 2c<x,y> + c|y|^2 = c|x+y|^2 + alpha_x and
    # 1 + 2c<x,y> + c^2|x|^2|y|^2 = c|x+y|^2 + alpha_x alpha_y: sums of non-negative
    # terms. The expanded forms cancel to nothing when x + y is small near the
    # boundary (the denominator is then ~alpha^2, below eps at radius ~18 in float64).
    cb = _as_batch(c, x)
    s = x + y
    cs2 = cb * _dot(s, s)
    ax, ay = alpha(x, c), alpha(y, c)
    num = (cs2 + ax) * x + ax * y
    den = cs2 + ax * ay
    return num / den.clamp_min(torch.finfo(x.dtype).tiny)


def projx(x: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Pull points with ``sqrt(c)|x| > 1 - margin`` back onto that radius.

    The margin is :func:`~hypervldd.numerics.ball_margin` (128 ulps of 1): the
    largest representable radius is about 11.8 in float32 and 31.9 in float64.
    """
    x = _up(x)
    sc = _as_batch(c, x).sqrt()
    n = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    maxn = (1.0 - ball_margin(x.dtype)) / sc
    over = n > maxn
    return torch.where(over, x / torch.where(over, n, torch.ones_like(n)) * maxn, x)


def proju(x: torch.Tensor, u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Tangent spaces are all of R^D: the identity."""
    return u


def egrad2rgrad(x: torch.Tensor, g: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Riemannian gradient :math:`g / \lambda_x^2 = g\,(1 - c|x|^2)^2 / 4` (a new tensor)."""
    return g * (alpha(x, c) ** 2 / 4.0)


def dist(
    x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor, *, keepdim: bool = False
) -> torch.Tensor:
    """Geodesic distance (see the module docstring). Shape ``(...,)``."""
    x, y = _up(x), _up(y)
    dt = torch.promote_types(x.dtype, y.dtype)
    x, y = x.to(dt), y.to(dt)
    sc = _as_batch(c, x).sqrt()
    diff = torch.linalg.vector_norm(x - y, dim=-1, keepdim=True)
    t = sc * diff / torch.sqrt(alpha(x, c) * alpha(y, c))
    out = 2.0 * torch.asinh(t) / sc
    return out if keepdim else out.squeeze(-1)


def dist0(x: torch.Tensor, c: float | torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    r"""Distance from the origin :math:`\frac{2}{\sqrt c}\operatorname{artanh}(\sqrt c|x|)`,
    evaluated as ``2 asinh(sqrt(c)|x| / sqrt(alpha_x)) / sqrt(c)``."""
    x = _up(x)
    sc = _as_batch(c, x).sqrt()
    n = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    out = 2.0 * torch.asinh(sc * n / torch.sqrt(alpha(x, c))) / sc
    return out if keepdim else out.squeeze(-1)


def pairwise_dist(
    x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor, *, chunk: int = 1024
) -> torch.Tensor:
    """All-pairs distances ``(N, M)``, chunked over rows (never ``N x M x D``).

    ``|x - y|^2`` comes from the GEMM ``|x|^2 + |y|^2 - 2 x.y`` where its error
    bound ``4 eps (|x|^2 + |y|^2)`` is below 1e-4 of the value; other pairs are
    recomputed from direct differences (in float64 for float32 inputs).
    """
    x, y = _up(x), _up(y)
    dt = torch.promote_types(x.dtype, y.dtype)
    x, y = x.to(dt), y.to(dt)
    if isinstance(c, torch.Tensor) and c.dim() > 0:
        c = c.reshape(())
    cf = c.to(dt) if isinstance(c, torch.Tensor) else float(c)
    sc = cf**0.5
    ax = alpha(x, c).squeeze(-1)
    ay = alpha(y, c).squeeze(-1)
    x2 = (x * x).sum(-1)
    y2 = (y * y).sum(-1)
    e = torch.finfo(dt).eps
    slow = torch.float64 if dt == torch.float32 else dt
    out = []
    for i in range(0, x.shape[0], max(1, chunk)):
        xi = x[i : i + chunk]
        sq = (x2[i : i + chunk, None] + y2[None, :] - 2.0 * (xi @ y.T)).clamp_min(0)
        bad = 4.0 * e * (x2[i : i + chunk, None] + y2[None, :]) > 1e-4 * sq
        if bool(bad.any()):
            ii, jj = bad.nonzero(as_tuple=True)
            dd = (xi[ii].to(slow) - y[jj].to(slow)).pow(2).sum(-1)
            sq = sq.index_put((ii, jj), dd.to(dt))
        # sqrt with a zero gradient at coincident points (not 0 * inf = NaN)
        pos = sq > 0
        root = torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), 0.0)
        t = sc * root / torch.sqrt(ax[i : i + chunk, None] * ay[None, :])
        out.append(2.0 * torch.asinh(t) / sc)
    return torch.cat(out, 0) if out else x.new_zeros((0, y.shape[0]))


def expmap0(u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Exponential map at the origin :math:`\tanh(\sqrt c|u|)\frac{u}{\sqrt c |u|}`, projected."""
    u = _up(u)
    sc = _as_batch(c, u).sqrt()
    return projx(_tanh_step(u, sc, 2.0), c)  # lambda at the origin is 2


def _tanh_step(u: torch.Tensor, sc: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """``(lam / 2) tanhc(h) u`` with ``h = sqrt(c) (lam / 2) |u|``, same shape as ``u``.

    The point at hyperbolic distance ``lam |u|`` from the origin along ``u``
    (``tanh(h) u / (sqrt(c)|u|)``). The norm goes through
    an exact power-of-two rescaling, so a finite ``u`` of norm 1e20 (whose ``|u|^2``
    overflows float32) gives the point at the boundary margin, not the origin.
    """
    k = pow2_scale(u)
    uk = u * k
    nk = torch.linalg.vector_norm(uk, dim=-1, keepdim=True)
    h = sc * (lam / 2.0) * nk / k
    big = h > 1.0
    near = (lam / 2.0) * _tanhc(torch.where(big, torch.ones_like(h), h)) * u
    far = (torch.tanh(h) / sc) * (uk / torch.where(big, nk, torch.ones_like(nk)))
    return torch.where(big, far, near)


def logmap0(y: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Logarithmic map at the origin :math:`\operatorname{artanh}(\sqrt c|y|)\frac{y}{\sqrt c|y|}`.

    Written as ``y asinhc(t) / sqrt(alpha_y)`` with ``t = sqrt(c)|y| / sqrt(alpha_y)``
    (``artanh(s) = asinh(s / sqrt(1 - s^2))``), which keeps its accuracy near the boundary.
    """
    y = _up(y)
    sc = _as_batch(c, y).sqrt()
    n = torch.linalg.vector_norm(y, dim=-1, keepdim=True)
    sa = torch.sqrt(alpha(y, c))
    t = sc * n / sa
    return y * asinhc(t) / sa


def expmap(x: torch.Tensor, u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Exponential map :math:`x \oplus \tanh(\sqrt c\lambda_x|u|/2)\frac{u}{\sqrt c|u|}`."""
    x, u = _up(x), _up(u)
    # float32 runs in float64: a long step's second point is tanh(h) from the
    # boundary, which rounds to the boundary in float32 (a radial map from radius
    # 10 through the origin returned the origin). The result is rounded once.
    out = x.dtype
    x64, u64 = x.double(), u.double()
    sc = _as_batch(c, u64).sqrt()
    lam = lambda_x(x64, c)
    second = _tanh_step(u64, sc, lam)
    return projx(projx(mobius_add(x64, second, c), c).to(out), c)


def logmap(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Logarithmic map :math:`\frac{2}{\sqrt c\lambda_x}\operatorname{artanh}(\sqrt c|w|)
    \frac{w}{|w|}`, ``w = (-x) \oplus y``.

    For ``sqrt(c)|w| >= 1/2`` the artanh is replaced by ``sqrt(c) d(x, y) / 2``
    from :func:`dist`, which does not lose accuracy near the boundary.
    """
    x, y = _up(x), _up(y)
    sc = _as_batch(c, x).sqrt()
    w = mobius_add(-x, y, c)
    wn = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
    t = sc * wn
    small = t < 0.5
    near = artanhc(torch.where(small, t, torch.zeros_like(t)))
    far = (sc * dist(x, y, c, keepdim=True) / 2.0) / torch.where(small, torch.ones_like(t), t)
    return w * (2.0 / lambda_x(x, c)) * torch.where(small, near, far)


def gyration(
    u: torch.Tensor, v: torch.Tensor, w: torch.Tensor, c: float | torch.Tensor
) -> torch.Tensor:
    r"""Gyration :math:`\mathrm{gyr}[u, v]w = \ominus(u\oplus v)\oplus(u\oplus(v\oplus w))`
    in closed form (Ungar): ``w + 2 (A u + B v) / D`` with

    ``A = -c^2 <u,w>|v|^2 + c <v,w> + 2 c^2 <u,v><v,w>``,
    ``B = -c^2 <v,w>|u|^2 - c <u,w>``, ``D = 1 + 2c<u,v> + c^2 |u|^2 |v|^2``.
    """
    # Evaluated in float64, D as c|u+v|^2 + alpha_u alpha_v (no cancellation). For
    # u = y, v = -x close together near the boundary A and B still cancel: transp
    # uses its own rearrangement.
    out_dtype = torch.promote_types(torch.promote_types(u.dtype, v.dtype), w.dtype)
    u, v, w = u.double(), v.double(), w.double()
    cb = _as_batch(c, w)
    uw, vw, uv = _dot(u, w), _dot(v, w), _dot(u, v)
    u2, v2 = _dot(u, u), _dot(v, v)
    a = -cb * cb * uw * v2 + cb * vw + 2 * cb * cb * uv * vw
    b = -cb * cb * vw * u2 - cb * uw
    s = u + v
    d = cb * _dot(s, s) + alpha(u, c) * alpha(v, c)
    out = w + 2 * (a * u + b * v) / d.clamp_min(torch.finfo(w.dtype).tiny)
    return out.to(out_dtype)


def transp(
    x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, c: float | torch.Tensor
) -> torch.Tensor:
    r"""Parallel transport :math:`\frac{\lambda_x}{\lambda_y}\mathrm{gyr}[y, -x]v`.

    The gyration is rewritten in ``delta = y - x`` and ``alpha = 1 - c|.|^2`` so
    that no term cancels: with ``D = c|delta|^2 + alpha_x alpha_y``,
    ``A = -c (1 - alpha_x)<delta, v> - c<x, v>(alpha_y + c|delta|^2)``,

    ``gyr[y, -x]v = v + 2 ((c alpha_x <delta, v> - c^2 |delta|^2 <x, v>) x + A delta) / D``.

    The expanded Ungar form divides terms of size ``|v|`` that cancel to
    ``alpha^2 |v|`` by ``D ~ alpha^2``: in float64 it returned inf for close points
    at radius 22. Evaluated in float64, rounded once to the input dtype.
    """
    x, y, v = _up(x), _up(y), _up(v)
    out_dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), v.dtype)
    x, y, v = x.double(), y.double(), v.double()
    cb = _as_batch(c, v)
    ax, ay = alpha(x, c), alpha(y, c)
    delta = y - x
    d2 = _dot(delta, delta)
    dv, xv = _dot(delta, v), _dot(x, v)
    a = -cb * (1.0 - ax) * dv - cb * xv * (ay + cb * d2)
    a_minus_b = cb * ax * dv - cb * cb * d2 * xv
    den = (cb * d2 + ax * ay).clamp_min(torch.finfo(torch.float64).tiny)
    gyr = v + 2.0 * (a_minus_b * x + a * delta) / den
    return (gyr * (ay / ax)).to(out_dtype)


def transp0(y: torch.Tensor, v: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Parallel transport from the origin: :math:`v\,(1 - c|y|^2)` (``lambda_0 = 2``)."""
    y, v = _up(y), _up(v)
    return v * alpha(y, c)


def transp0back(x: torch.Tensor, v: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Parallel transport from ``x`` to the origin: :math:`v / (1 - c|x|^2)`."""
    x, v = _up(x), _up(v)
    return v / alpha(x, c)


def origin(
    *shape: int,
    c: float | torch.Tensor = 1.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The origin (all zeros)."""
    return torch.zeros(*shape, dtype=dtype, device=device)


def random(
    *shape: int,
    radius: float | torch.Tensor = 1.0,
    c: float | torch.Tensor = 1.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Points at hyperbolic distance ``radius`` from the origin in uniform directions."""
    g, r = _directions_and_radius(shape, radius, dtype, device, generator)
    sc = _as_batch(c, g).sqrt()
    return projx(g * torch.tanh(sc * r / 2.0) / sc, c)
