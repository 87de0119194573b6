r"""Pure functions on the Klein (Beltrami-Klein) model of curvature ``-c``, ``c > 0``.

Points are ``(..., D)`` tensors with ``c|k|^2 < 1``, the same ball as the
Poincaré model; geodesics are straight chords. With ``alpha = 1 - c|k|^2`` and the
Lorentz factor ``gamma = 1 / sqrt(alpha)`` the metric is

.. math::

    g_k(u, v) = \frac{\langle u, v\rangle}{\alpha} + \frac{c\,\langle k, u\rangle
                \langle k, v\rangle}{\alpha^2},

the pull-back of the hyperboloid through ``x = (gamma / sqrt(c), gamma k)``
(:func:`to_lorentz`). At the origin it is the Euclidean metric, so ``expmap0`` and
``logmap0`` move a Euclidean length ``|u|`` to a hyperbolic distance ``|u|`` (the
ball's metric is ``2x`` there). Functions work on the last dimension and broadcast
over the others; ``c`` is a float or a tensor broadcastable to the batch shape.

**Precision.** The Klein radius of a point at distance ``r`` is ``tanh(sqrt(c) r) /
sqrt(c)`` (the ball's is ``tanh(sqrt(c) r / 2) / sqrt(c)``), so ``alpha ~ 4 exp(-2
sqrt(c) r)`` shrinks twice as fast as the ball's. The boundary margin of
:func:`projx` is the ball's (:func:`~hypervldd.numerics.ball_margin`), which here
caps the hyperbolic radius at about 5.9 in float32 and 15.9 in float64 (c = 1):
half the ball's. A coordinate rounded to ``eps`` moves a point by about ``eps
cosh^2(r)`` radially, so float32 Klein coordinates are only meaningful to a few
units of radius; convert to the Lorentz model (:func:`to_lorentz`) for anything
farther out.

**The distance.** The closed form ``cosh(sqrt(c) d) = (1 - c<x, y>) /
sqrt(alpha_x alpha_y)`` cancels for close pairs (``acosh`` of ``1 + tiny``). By
Lagrange's identity ``(1 - c<x, y>)^2 - alpha_x alpha_y = c(alpha_m |delta|^2 +
c<m, delta>^2)`` with ``delta = y - x`` and ``m = (x + y) / 2`` (a sum of two
non-negative terms), so

.. math::

    \sinh(\sqrt c\, d) = \frac{\sqrt c \sqrt{\alpha_m |\delta|^2 + c\langle m,
        \delta\rangle^2}}{\sqrt{\alpha_x \alpha_y}}, \qquad
    d = \operatorname{asinh}(\cdot) / \sqrt c,

formed from the coordinate difference, symmetric in ``x, y`` bit for bit (``m``
is shared, ``delta`` only changes sign), nothing cancels, and the zero
subgradient of the norm at ``x = y``. It runs in float64 (an ``O(D)`` cost per
pair) and is rounded once: in float32 rounding ``m`` alone would perturb
``alpha_m`` by ``eps / alpha_m``, 1e-3 relative at radius 5. All-pairs distances,
maps and transport go through the Lorentz model (conversion in float64, ``O(N D)``),
whose formulas are the package's most careful ones.
"""

from __future__ import annotations

import torch

from . import lorentz_math as lm
from . import poincare_math as pm
from .lorentz_math import _as_batch, _directions_and_radius

__all__ = [
    "alpha",
    "gamma",
    "inner",
    "norm",
    "projx",
    "proju",
    "egrad2rgrad",
    "dist",
    "dist0",
    "pairwise_dist",
    "to_lorentz",
    "from_lorentz",
    "tangent_to_lorentz",
    "tangent_from_lorentz",
    "expmap",
    "expmap0",
    "logmap",
    "logmap0",
    "transp",
    "transp0",
    "transp0back",
    "origin",
    "random",
]


def _c64(c: float | torch.Tensor) -> float | torch.Tensor:
    return c.double() if isinstance(c, torch.Tensor) else float(c)


def _out_dtype(*ts: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in ts) else torch.float32


def _dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u * v).sum(-1, keepdim=True)


def alpha(k: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """``1 - c|k|^2``, accumulated in float64, in ``k``'s (compute) dtype. Shape ``(..., 1)``.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> klein_math.alpha(torch.tensor([[0.6, 0.0]]), 1.0)
    tensor([[0.6400]])
    """
    return pm.alpha(k, c)


def gamma(k: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Lorentz factor ``1 / sqrt(1 - c|k|^2)`` (``sqrt(c)`` times the Lorentz time). ``(..., 1)``.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> klein_math.gamma(torch.tensor([[0.6, 0.0]]), 1.0)
    tensor([[1.2500]])
    """
    return torch.rsqrt(alpha(k, c))


def inner(
    k: torch.Tensor, u: torch.Tensor, v: torch.Tensor | None = None, c: float | torch.Tensor = 1.0
) -> torch.Tensor:
    r"""Riemannian inner product :math:`\langle u,v\rangle/\alpha + c\langle k,u\rangle
    \langle k,v\rangle/\alpha^2`. Shape ``(..., 1)``.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> k, u = torch.tensor([[0.6, 0.0]]), torch.tensor([[1.0, 0.0]])
    >>> klein_math.inner(k, u, u, 1.0)  # radial: 1 / alpha^2 = 1 / 0.64^2
    tensor([[2.4414]])
    """
    v = u if v is None else v
    a = alpha(k, c)
    cb = _as_batch(c, a)
    return (_dot(u, v) + cb * _dot(k, u) * _dot(k, v) / a) / a


def norm(k: torch.Tensor, u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Riemannian norm :math:`\sqrt{\alpha|u|^2 + c\langle k,u\rangle^2}/\alpha`. ``(..., 1)``.

    A norm of the stacked vector ``(sqrt(alpha) u, sqrt(c)<k, u>)``: no cancellation,
    zero subgradient at ``u = 0``.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> klein_math.norm(torch.tensor([[0.6, 0.0]]), torch.tensor([[0.0, 1.0]]), 1.0)
    tensor([[1.2500]])
    """
    a = alpha(k, c)
    cb = _as_batch(c, a)
    stacked = torch.cat([a.sqrt() * u, cb.sqrt() * _dot(k, u)], dim=-1)
    return torch.linalg.vector_norm(stacked, dim=-1, keepdim=True) / a


def projx(k: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Pull points with ``sqrt(c)|k| > 1 - margin`` back onto that radius (the ball's rule).

    The margin is :func:`~hypervldd.numerics.ball_margin`: hyperbolic radius about
    5.9 in float32 and 15.9 in float64 for the Klein model (c = 1).

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> bool(klein_math.projx(torch.tensor([[2.0, 0.0]]), 1.0).norm() < 1)
    True
    """
    return pm.projx(k, c)


def proju(k: torch.Tensor, u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Tangent spaces are all of ``R^D``: the identity.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> klein_math.proju(torch.zeros(1, 2), torch.ones(1, 2), 1.0)
    tensor([[1., 1.]])
    """
    return u


def egrad2rgrad(k: torch.Tensor, g: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Riemannian gradient :math:`G^{-1} g = \alpha\,(g - c\langle k, g\rangle k)` (a new tensor).

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> klein_math.egrad2rgrad(torch.tensor([[0.6, 0.0]]), torch.tensor([[1.0, 1.0]]), 1.0)
    tensor([[0.4096, 0.6400]])
    """
    a = alpha(k, c)
    cb = _as_batch(c, a)
    return a * (g - cb * _dot(k, g) * k)


def dist(
    x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor, *, keepdim: bool = False
) -> torch.Tensor:
    """Geodesic distance (the cancellation-free form of the module docstring). ``(...,)``.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> x, y = torch.tensor([0.0, 0.0]), torch.tensor([0.7615942, 0.0])  # tanh(1)
    >>> round(float(klein_math.dist(x, y, 1.0)), 5)
    1.0
    """
    out_dtype = _out_dtype(x, y)
    x64, y64 = x.double(), y.double()
    c64 = _c64(c)
    cb = _as_batch(c64, x64)
    delta = y64 - x64
    m = 0.5 * (x64 + y64)
    stacked = torch.cat([alpha(m, c64).sqrt() * delta, cb.sqrt() * _dot(m, delta)], dim=-1)
    root = torch.linalg.vector_norm(stacked, dim=-1, keepdim=True)
    sc = cb.sqrt()
    t = sc * root / torch.sqrt(alpha(x64, c64) * alpha(y64, c64))
    out = (torch.asinh(t) / sc).to(out_dtype)
    return out if keepdim else out.squeeze(-1)


def dist0(k: torch.Tensor, c: float | torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    r"""Distance from the origin :math:`\operatorname{artanh}(\sqrt c|k|)/\sqrt c`, half the
    ball's formula for the same coordinates (evaluated as its ``asinh`` form).

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> round(float(klein_math.dist0(torch.tensor([0.7615942, 0.0]), 1.0)), 5)
    1.0
    """
    return 0.5 * pm.dist0(k, c, keepdim=keepdim)


def to_lorentz(k: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Klein ``(..., D)`` to Lorentz ``(..., D+1)``: ``xs = gamma k``, time from space.

    No validation (see :func:`hypervldd.manifolds.klein_to_lorentz` for the checked form).

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> klein_math.to_lorentz(torch.tensor([[0.6, 0.0]]), 1.0)
    tensor([[1.2500, 0.7500, 0.0000]])
    """
    xs = gamma(k, c) * k
    return torch.cat([lm.time_from_space(xs, c), xs], dim=-1)


def from_lorentz(x: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Lorentz ``(..., D+1)`` to Klein ``(..., D)``: ``k = xs / (sqrt(c) x0)``, time re-derived.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> klein_math.from_lorentz(torch.tensor([[1.25, 0.75, 0.0]]), 1.0)
    tensor([[0.6000, 0.0000]])
    """
    xs = x[..., 1:]
    sc = _as_batch(c, xs).sqrt()
    return projx(xs / (sc * lm.time_from_space(xs, c)), c)


def tangent_to_lorentz(k: torch.Tensor, u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Push a tangent vector ``u`` at ``k`` to the hyperboloid: ``(..., D) -> (..., D+1)``.

    :math:`u_s = \gamma(u + c\gamma^2\langle k,u\rangle k)`, :math:`u_0 = \sqrt c\langle k,
    u_s\rangle` (tangency). An isometry: ``<U, U>_L = g_k(u, u)``.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math, lorentz_math
    >>> k, u = torch.tensor([[0.6, 0.0]]), torch.tensor([[1.0, 0.0]])
    >>> U = klein_math.tangent_to_lorentz(k, u, 1.0)
    >>> torch.allclose(lorentz_math.inner(U, U), klein_math.inner(k, u, u, 1.0).squeeze(-1))
    True
    """
    g = gamma(k, c)
    cb = _as_batch(c, g)
    us = g * (u + cb * g * g * _dot(k, u) * k)
    return torch.cat([cb.sqrt() * _dot(k, us), us], dim=-1)


def tangent_from_lorentz(k: torch.Tensor, v: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Inverse of :func:`tangent_to_lorentz`: :math:`u = (v_s - c\langle k, v_s\rangle k)/\gamma`.

    Reads only the space part of ``v`` (the authoritative coordinates).

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> k, u = torch.tensor([[0.6, 0.0]]), torch.tensor([[0.3, -1.0]])
    >>> back = klein_math.tangent_from_lorentz(k, klein_math.tangent_to_lorentz(k, u, 1.0), 1.0)
    >>> torch.allclose(back, u)
    True
    """
    vs = v[..., 1:]
    a = alpha(k, c)
    cb = _as_batch(c, a)
    return (vs - cb * _dot(k, vs) * k) * a.sqrt()


def _work(*ts: torch.Tensor) -> tuple[torch.dtype, tuple[torch.Tensor, ...]]:
    """Output dtype and the tensors in float64: the maps run there and round once."""
    return _out_dtype(*ts), tuple(t.double() for t in ts)


def pairwise_dist(
    x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor, *, chunk: int = 1024
) -> torch.Tensor:
    """All-pairs distances ``(N, M)`` through the Lorentz model's chunked all-pairs form.

    Conversion and distances run in float64: rounding the converted Lorentz coordinates
    to float32 would move a point by ``eps sinh(r)``, 1e-2 of a distance 1e-3 at radius 5.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> x = torch.tensor([[0.0, 0.0], [0.7615942, 0.0]])
    >>> [[round(v, 4) for v in row] for row in klein_math.pairwise_dist(x, x, 1.0).tolist()]
    [[0.0, 1.0], [1.0, 0.0]]
    """
    out, (x64, y64) = _work(x, y)
    c64 = _c64(c)
    if isinstance(c64, torch.Tensor) and c64.dim() > 0:
        c64 = c64.reshape(())
    lx, ly = to_lorentz(x64, c64), to_lorentz(y64, c64)
    return lm.pairwise_dist(lx, ly, c64, chunk=chunk).to(out)


def expmap0(u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Exponential map at the origin :math:`\tanh(\sqrt c|u|)\frac{u}{\sqrt c|u|}`, projected.

    The metric at the origin is Euclidean, so ``dist0(expmap0(u)) = |u|``. This is the
    formula of :func:`.poincare_math.expmap0` (whose ``u`` has length ``2|u|``), reused
    with its overflow-safe norm and series branch.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> k = klein_math.expmap0(torch.tensor([[1.0, 0.0]]), 1.0)
    >>> [round(v, 5) for v in k[0].tolist()]  # tanh(1)
    [0.76159, 0.0]
    """
    return pm.expmap0(u, c)


def logmap0(k: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Logarithmic map at the origin :math:`\operatorname{artanh}(\sqrt c|k|)\frac{k}{\sqrt c|k|}`.

    The formula of :func:`.poincare_math.logmap0` (its accurate form near the boundary).

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> [round(v, 4) for v in klein_math.logmap0(torch.tensor([[0.7615942, 0.0]]), 1.0)[0].tolist()]
    [1.0, 0.0]
    """
    return pm.logmap0(k, c)


def expmap(x: torch.Tensor, u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Exponential map: through the hyperboloid (float64), back to Klein, projected.

    The geodesic is the chord from ``x`` along ``u``; the Lorentz map supplies its
    arc-length parametrisation.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> y = klein_math.expmap(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), 1.0)
    >>> [round(v, 5) for v in y[0].tolist()]
    [0.76159, 0.0]
    """
    out, (x64, u64) = _work(x, u)
    c64 = _c64(c)
    y = lm.expmap(to_lorentz(x64, c64), tangent_to_lorentz(x64, u64, c64), c64)
    return projx(from_lorentz(y, c64).to(out), c)


def logmap(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Logarithmic map: the Lorentz logmap (float64), pulled back to ``x``. ``(..., D)``.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> u = klein_math.logmap(torch.zeros(1, 2), torch.tensor([[0.7615942, 0.0]]), 1.0)
    >>> [round(v, 4) for v in u[0].tolist()]
    [1.0, 0.0]
    """
    out, (x64, y64) = _work(x, y)
    c64 = _c64(c)
    v = lm.logmap(to_lorentz(x64, c64), to_lorentz(y64, c64), c64)
    return tangent_from_lorentz(x64, v, c64).to(out)


def transp(
    x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, c: float | torch.Tensor
) -> torch.Tensor:
    """Parallel transport of ``v`` from ``x`` to ``y``: pushed to the hyperboloid, transported
    there (float64), pulled back at ``y``. ``(..., D)``.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> x, y = torch.zeros(1, 2), torch.tensor([[0.6, 0.0]])
    >>> klein_math.transp(x, y, torch.tensor([[0.0, 1.0]]), 1.0)  # across: times sqrt(alpha)
    tensor([[0.0000, 0.8000]])
    """
    out, (x64, y64, v64) = _work(x, y, v)
    c64 = _c64(c)
    lx, ly = to_lorentz(x64, c64), to_lorentz(y64, c64)
    w = lm.transp(lx, ly, tangent_to_lorentz(x64, v64, c64), c64)
    return tangent_from_lorentz(y64, w, c64).to(out)


def transp0(y: torch.Tensor, v: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Parallel transport from the origin to ``y``. ``(..., D)``.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> klein_math.transp0(torch.tensor([[0.6, 0.0]]), torch.tensor([[1.0, 0.0]]), 1.0)
    tensor([[0.6400, 0.0000]])
    """
    return transp(torch.zeros_like(y), y, v, c)


def transp0back(x: torch.Tensor, v: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Parallel transport from ``x`` back to the origin (inverse of :func:`transp0`).

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> v = klein_math.transp0back(torch.tensor([[0.6, 0.0]]), torch.tensor([[0.64, 0.0]]), 1.0)
    >>> [round(t, 4) for t in v[0].tolist()]
    [1.0, 0.0]
    """
    return transp(x, torch.zeros_like(x), v, c)


def origin(
    *shape: int,
    c: float | torch.Tensor = 1.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The origin (all zeros), ``shape`` ending with ``D``.

    >>> from hypervldd.manifolds import klein_math
    >>> klein_math.origin(1, 2)
    tensor([[0., 0.]])
    """
    return torch.zeros(*shape, dtype=dtype, device=device)


def random(
    *shape: int,
    radius: float | torch.Tensor = 1.0,
    c: float | torch.Tensor = 1.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Points at hyperbolic distance ``radius`` from the origin in uniform directions.

    ``radius`` may be a tensor broadcastable to ``shape[:-1]``.

    >>> import torch
    >>> from hypervldd.manifolds import klein_math
    >>> k = klein_math.random(3, 4, radius=2.0, dtype=torch.float64)
    >>> torch.allclose(klein_math.dist0(k, 1.0), torch.full((3,), 2.0, dtype=torch.float64))
    True
    """
    g, r = _directions_and_radius(shape, radius, dtype, device, generator)
    sc = _as_batch(c, g).sqrt()
    return projx(g * torch.tanh(sc * r) / sc, c)
