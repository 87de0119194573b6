r"""Pure functions on the Lorentz model (hyperboloid) of curvature ``-c``, ``c > 0``.

Points are full coordinates with time first, ``x = (x0, xs)`` with
:math:`\langle x, x\rangle_L = -x_0^2 + |x_s|^2 = -1/c` and ``x0 > 0``. Tangent
vectors at ``x`` satisfy :math:`\langle x, u\rangle_L = 0`. All functions work
on the last dimension and broadcast over the others; ``c`` is a float or a
tensor broadcastable to the batch shape (without the last dimension).

**The space coordinates are authoritative.** In floating point a point far from
the origin cannot satisfy the constraint exactly (at radius 10 in float32 the
residual of ``<x, x>_L`` is about ``eps * x0^2 ~ 10``), so every distance-like
function re-derives the time coordinate from the space part,
``x0 = sqrt(1/c + |xs|^2)``: the same projection that :func:`projx` applies.
The given ``x0`` is only used by the bilinear :func:`inner`, by projections of
tangent vectors and by transports, where it enters linearly.

**Distances without cancellation.** With ``X = sqrt(c) x`` on the unit
hyperboloid, radii ``a = |Xs| = sinh(r1)``, ``b = |Ys| = sinh(r2)`` and angle
``theta`` between the space parts, the hyperbolic law of cosines gives

.. math::

    s^2 := \sinh^2\!\Big(\frac{\sqrt{c}\, d}{2}\Big)
        = \sinh^2\!\Big(\frac{r_1 - r_2}{2}\Big) + a\, b\, \sin^2\!\frac{\theta}{2},

a sum of two non-negative terms, so nothing cancels. Both terms are formed from
coordinate differences: ``sinh(r1 - r2) = (a^2 - b^2) / (a Y0 + b X0)`` with
``a^2 - b^2 = (Xs - Ys).(Xs + Ys)``, and ``2 a b sin(theta/2) = |b Xs - a Ys|``,
written as ``|m (Xs - Ys) - (a - b) P|`` around the nearer point ``P`` (radius
``m``) so that its two products are of size ``a b``. When ``a b <= 1`` the
angular term is 0/0 near the origin and the difference form
``s^2 = (|Xs - Ys|^2 - (X0 - Y0)^2) / 4`` is used instead: there either both
points are within radius ~0.9 (cancellation at most a factor ~2) or the pair
is far apart (the cancellation is small against ``d``). The distance is
``d = 2 asinh(s) / sqrt(c)``; at ``s = 0`` its gradient is the zero subgradient.

The GEMM form ``acosh(-c <x, y>_L)`` loses everything for close pairs far out
(relative error 1.0 at radius 5, distance 0.01, float32). This form, in plain
float32, stays within 2e-5 relative on the whole accuracy grid of docs/geometry.md
(radius up to 10, all directions; table in ``docs/geometry.md``); its worst
case, a displacement at angle ``~1/cosh(r)`` from radial, is about
``eps cosh(r)``.
"""

from __future__ import annotations

import math

import torch

from ..numerics import asinhc, compute_dtype, max_radius, pow2_scale, sinhc

__all__ = [
    "inner",
    "norm",
    "time_from_space",
    "projx",
    "clip_radius",
    "proju",
    "egrad2rgrad",
    "sinh_half_dist",
    "dist",
    "dist0",
    "pairwise_dist",
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


def _as_batch(c: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Curvature as a tensor with a trailing singleton dim, in ``like``'s dtype."""
    if isinstance(c, torch.Tensor):
        return c.to(dtype=like.dtype, device=like.device).unsqueeze(-1)
    return torch.tensor(float(c), dtype=like.dtype, device=like.device)


def _up(x: torch.Tensor) -> torch.Tensor:
    """Upcast half precision to float32; leave float32 and float64 alone."""
    dt = compute_dtype(x)
    return x if x.dtype == dt else x.to(dt)


def _safe_sqrt(s2: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(s2, 0))`` whose gradient at 0 is 0 instead of inf/NaN.

    A NaN input stays NaN (``~(s2 <= 0)`` is true for NaN): hiding it as a
    zero distance would make bad input undetectable when validation is off.
    """
    pos = ~(s2 <= 0)
    return torch.where(pos, torch.sqrt(torch.where(pos, s2, torch.ones_like(s2))), 0.0)


def inner(u: torch.Tensor, v: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    r"""Minkowski inner product :math:`-u_0 v_0 + u_s \cdot v_s`. Shape ``(..., )``."""
    p = u * v
    out = p[..., 1:].sum(-1, keepdim=keepdim) - p[..., :1].sum(-1, keepdim=keepdim)
    return out


def norm(u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    r"""Norm of a tangent vector, :math:`\sqrt{\max(\langle u,u\rangle_L, 0)}`."""
    return _safe_sqrt(inner(u, u, keepdim=keepdim))


def time_from_space(xs: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Time coordinate :math:`\sqrt{1/c + |x_s|^2}` of the space part ``xs``. ``(..., 1)``."""
    cb = _as_batch(c, xs)
    return torch.sqrt(1.0 / cb + (xs * xs).sum(-1, keepdim=True))


def projx(x: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Project onto the hyperboloid by re-deriving the time coordinate from space."""
    xs = x[..., 1:]
    return torch.cat([time_from_space(xs, c), xs], dim=-1)


def clip_radius(x: torch.Tensor, c: float | torch.Tensor, radius: float) -> torch.Tensor:
    """Pull points farther than ``radius / sqrt(c)`` from the origin back onto that sphere.

    ``radius`` is in units of ``1/sqrt(c)`` (as :func:`~hypervldd.numerics.max_radius`).
    Only the space part is scaled; the time coordinate is re-derived. ``(..., D+1)``.
    """
    xs = x[..., 1:]
    sc = _as_batch(c, x).sqrt()
    n = sc * torch.linalg.vector_norm(xs, dim=-1, keepdim=True)
    cap = math.sinh(radius)
    over = n > cap
    xs = torch.where(over, xs * (cap / torch.where(over, n, torch.ones_like(n))), xs)
    return torch.cat([time_from_space(xs, c), xs], dim=-1)


def proju(x: torch.Tensor, u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Project ``u`` onto the tangent space at ``x``: :math:`u + c\langle x,u\rangle_L x`."""
    return u + _as_batch(c, u) * inner(x, u, keepdim=True) * x


def egrad2rgrad(x: torch.Tensor, g: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Riemannian gradient from a Euclidean one: :math:`P_x(J g)`, ``J = diag(-1, 1, ...)``.

    Returns a new tensor; ``g`` is never modified (geoopt flips its time sign in place).
    """
    jg = torch.cat([-g[..., :1], g[..., 1:]], dim=-1)
    return proju(x, jg, c)


def sinh_half_dist(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""``s = sinh(sqrt(c) d(x, y) / 2)`` without cancellation. Shape ``(...,)``.

    See the module docstring for the formula. Only the space parts are read.
    Computed in float32 for half-precision inputs, else in the input dtype.
    """
    x, y = _up(x), _up(y)
    dt = torch.promote_types(x.dtype, y.dtype)
    x, y = x.to(dt), y.to(dt)
    # Differences are taken on the raw coordinates and c is applied to the scalar
    # sums: scaling the coordinates first (X = sqrt(c) x) would round each one,
    # a perturbation of eps * sinh(r) in distance, 1e-3 at radius 10 in float32.
    cb = _as_batch(c, x).squeeze(-1) if isinstance(c, torch.Tensor) else float(c)
    xs = x[..., 1:]
    ys = y[..., 1:]
    delta = xs - ys
    a2 = cb * (xs * xs).sum(-1)
    b2 = cb * (ys * ys).sum(-1)
    # radii; the safe root keeps the gradient finite for a point at the origin
    a = _safe_sqrt(a2)
    b = _safe_sqrt(b2)
    x0 = torch.sqrt(1.0 + a2)
    y0 = torch.sqrt(1.0 + b2)
    # a^2 - b^2 from differences: no cancellation when the displacement is radial.
    a2mb2 = cb * (delta * (xs + ys)).sum(-1)
    d0 = a2mb2 / (x0 + y0)  # X0 - Y0, exact up to rounding of each factor

    # Near the origin: difference form, cancellation bounded by X0 * Y0.
    diff_s2 = (cb * (delta * delta).sum(-1) - d0 * d0).clamp_min(0) / 4.0

    # Away from it: law-of-cosines split, two non-negative terms.
    split = a * b > 1.0
    # One point near the origin, the other far (a b <= 1 < 2 < max(a, b)): the
    # difference form cancels by a factor ~max(X0, Y0) (float32 dist 14 from the
    # origin was off by 3e-3); the split with the angular term a b sin^2(theta/2)
    # = (a b - c xs.ys) / 2 has an absolute error ~eps there, against s^2 >= 0.25.
    lop = ~split & (torch.maximum(a, b) > 2.0)
    den = torch.where(split | lop, a * y0 + b * x0, torch.ones_like(a))
    sinh_dr = a2mb2 / den
    # sinh^2(dr/2) = sinh_dr^2 / (2 (1 + cosh dr)), with the square taken after the
    # division: sinh_dr^2 itself overflows float32 for radial gaps beyond ~44.
    sinh_half_dr2 = sinh_dr * (
        sinh_dr / (2.0 * (1.0 + torch.hypot(torch.ones_like(sinh_dr), sinh_dr)))
    )
    amb = a2mb2 / torch.where(split, a + b, torch.ones_like(a))
    # b Xs - a Ys = m (Xs - Ys) - (a - b) P with m the smaller radius and P its
    # point: the two products are then of size a b, not max(a, b)^2, so their
    # rounding does not swamp the angular term of far pairs. (X = sqrt(c) x, so
    # |w_X|^2 = c |w|^2 with w built from the raw coordinates.)
    # m must come from the same branch as P: torch.minimum would split its
    # gradient at a tie a == b and break the derivative of w.
    # w is divided by sqrt(a b) before it is squared: |w|^2 is of size (a b)^2,
    # which overflows float32 once a b passes ~1e19 (distances beyond ~44).
    a_le_b = (a <= b).unsqueeze(-1)
    m = torch.where(a_le_b, a.unsqueeze(-1), b.unsqueeze(-1))
    ab = torch.where(split, a * b, torch.ones_like(a))
    rab = torch.sqrt(ab).unsqueeze(-1)
    w = (m / rab) * delta - (amb.unsqueeze(-1) / rab) * torch.where(a_le_b, xs, ys)
    ang_s2 = cb * (w * w).sum(-1) / 4.0
    split_s2 = sinh_half_dr2 + ang_s2

    lop_s2 = sinh_half_dr2 + (a * b - cb * (xs * ys).sum(-1)).clamp_min(0) / 2.0
    s2 = torch.where(split, split_s2, torch.where(lop, lop_s2, diff_s2))
    return _safe_sqrt(s2)


def dist(
    x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor, *, keepdim: bool = False
) -> torch.Tensor:
    r"""Geodesic distance :math:`\frac{2}{\sqrt c}\operatorname{asinh}(s)`, ``s`` from
    :func:`sinh_half_dist`. Shape ``(...,)`` (``(..., 1)`` with ``keepdim``)."""
    s = sinh_half_dist(x, y, c)
    out = 2.0 * torch.asinh(s) / _sqrt_c(c, s)
    return out.unsqueeze(-1) if keepdim else out


def dist0(x: torch.Tensor, c: float | torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    r"""Distance from the origin, :math:`\operatorname{asinh}(\sqrt c |x_s|)/\sqrt c`."""
    x = _up(x)
    sc = _as_batch(c, x).sqrt()
    r = torch.linalg.vector_norm(sc * x[..., 1:], dim=-1, keepdim=True)
    out = torch.asinh(r) / sc
    return out if keepdim else out.squeeze(-1)


def _sqrt_c(c: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor | float:
    if isinstance(c, torch.Tensor):
        return c.to(dtype=like.dtype, device=like.device).sqrt()
    return float(c) ** 0.5


def pairwise_dist(
    x: torch.Tensor,
    y: torch.Tensor,
    c: float | torch.Tensor,
    *,
    chunk: int = 1024,
) -> torch.Tensor:
    r"""All-pairs distances ``(N, M)`` for ``x`` of shape ``(N, D+1)``, ``y`` ``(M, D+1)``.

    The reference path, chunked over rows (``chunk x M`` temporaries, never
    ``N x M x D``). Each chunk forms ``z = -c<x, y>_L - 1`` by one GEMM of the
    space parts and an outer product of the re-derived time parts. A pair whose
    rounding-error bound ``4 eps (X0 Y0 + |Xs||Ys|)`` is not small against ``z``
    (close pairs, and every pair far from the origin) is recomputed with
    :func:`sinh_half_dist`, in float64 when the inputs are float32. ``c`` must be
    a scalar here.
    """
    x, y = _up(x), _up(y)
    dt = torch.promote_types(x.dtype, y.dtype)
    x, y = x.to(dt), y.to(dt)
    if isinstance(c, torch.Tensor) and c.dim() > 0:
        c = c.reshape(())
    cf = c.to(dt) if isinstance(c, torch.Tensor) else float(c)
    sc = cf**0.5
    # Raw coordinates in the GEMM, c applied to the scalars (see sinh_half_dist).
    xs = x[:, 1:]
    ys = y[:, 1:]
    x0 = torch.sqrt(1.0 + cf * (xs * xs).sum(-1))
    y0 = torch.sqrt(1.0 + cf * (ys * ys).sum(-1))
    xn = sc * torch.linalg.vector_norm(xs, dim=-1)
    yn = sc * torch.linalg.vector_norm(ys, dim=-1)
    e = torch.finfo(dt).eps
    # Accept the GEMM value only where its error bound is below 1e-4 of z, so
    # the relative error of d (about half that of z) stays far inside 1e-3.
    accept = 1e-4
    slow = torch.float64 if dt == torch.float32 else dt
    out = []
    for i in range(0, x.shape[0], max(1, chunk)):
        xi, x0i, xni = xs[i : i + chunk], x0[i : i + chunk], xn[i : i + chunk]
        z = torch.outer(x0i, y0) - cf * (xi @ ys.T) - 1.0
        bound = 4.0 * e * (torch.outer(x0i, y0) + torch.outer(xni, yn))
        bad = bound > accept * z.clamp_min(0)
        s = _safe_sqrt(z / 2.0)
        if bool(bad.any()):
            ii, jj = bad.nonzero(as_tuple=True)
            xa = x[i : i + chunk][ii].to(slow)
            ya = y[jj].to(slow)
            cs = c.to(slow) if isinstance(c, torch.Tensor) else c
            s = s.index_put((ii, jj), sinh_half_dist(xa, ya, cs).to(dt))
        out.append(s)
    s = torch.cat(out, 0) if out else x.new_zeros((0, y.shape[0]))
    return 2.0 * torch.asinh(s) / sc


def expmap0(u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Exponential map at the origin ``o = (1/sqrt(c), 0)``.

    :math:`x_s = \frac{\sinh(\sqrt c |u_s|)}{\sqrt c |u_s|} u_s`, time from space.
    ``u`` is a tangent vector at ``o`` (its time component is ignored). The
    radius ``sqrt(c)|u_s|`` is capped at :func:`~hypervldd.numerics.max_radius`
    (39.9 in float32) so that no coordinate overflows.
    """
    u = _up(u)
    us = u[..., 1:]
    sc = _as_batch(c, u).sqrt()
    # The norm through an exact power-of-two rescaling: |us|^2 overflows float32
    # for |us| > 1.8e19, and a NaN radius would follow (lift of a norm-1e20 vector).
    k = pow2_scale(us)
    usk = us * k
    rk = torch.linalg.vector_norm(usk, dim=-1, keepdim=True)
    r = sc * rk / k
    rmax = max_radius(u.dtype)
    over = r > rmax
    xs_in = us * sinhc(torch.where(over, torch.zeros_like(r), r))
    direction = usk / torch.where(over, rk, torch.ones_like(rk))
    xs = torch.where(over, direction * (math.sinh(rmax) / sc), xs_in)
    return torch.cat([time_from_space(xs, c), xs], dim=-1)


def logmap0(x: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Logarithmic map at the origin: :math:`u_s = \frac{\operatorname{asinh}(\sqrt c|x_s|)}
    {\sqrt c |x_s|} x_s`, ``u0 = 0``. Inverse of :func:`expmap0`."""
    x = _up(x)
    xs = x[..., 1:]
    sc = _as_batch(c, x).sqrt()
    r = torch.linalg.vector_norm(sc * xs, dim=-1, keepdim=True)
    us = xs * asinhc(r)
    return torch.cat([torch.zeros_like(us[..., :1]), us], dim=-1)


def expmap(x: torch.Tensor, u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Exponential map :math:`\cosh(\sqrt c\|u\|)x + \frac{\sinh(\sqrt c\|u\|)}{\sqrt c\|u\|}u`.

    ``u`` must be tangent at ``x``; the step length ``sqrt(c)|u|_L`` is capped so
    that the result lies within :func:`~hypervldd.numerics.max_radius` of the
    origin. The result is re-projected.
    """
    x, u = _up(x), _up(u)
    sc = _as_batch(c, u).sqrt()
    # Norm through an exact power-of-two rescaling (|u|_L^2 overflows for huge steps).
    k = pow2_scale(u)
    uk = u * k
    nk = norm(uk, keepdim=True)
    n = sc * nk / k
    # Cap the step so that the end point stays within max_radius of the origin
    # (by the triangle inequality); beyond it coordinates would overflow.
    r_x = torch.asinh(sc * torch.linalg.vector_norm(x[..., 1:], dim=-1, keepdim=True))
    rmax = (max_radius(u.dtype) - r_x.detach()).clamp_min(0.0)
    over = n > rmax
    nc = torch.where(over, rmax, n)
    step_in = sinhc(torch.where(over, torch.zeros_like(n), n)) * u
    step_over = (torch.sinh(nc) / sc) * (uk / torch.where(over, nk, torch.ones_like(nk)))
    y = torch.cosh(nc) * x + torch.where(over, step_over, step_in)
    return projx(y, c)


def _time_diff(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """``y0 - x0`` with re-derived times, from differences: ``(|ys|^2-|xs|^2)/(x0+y0)``."""
    xs, ys = x[..., 1:], y[..., 1:]
    x0 = time_from_space(xs, c)
    y0 = time_from_space(ys, c)
    return ((ys - xs) * (ys + xs)).sum(-1, keepdim=True) / (x0 + y0)


def logmap(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Logarithmic map: the tangent vector at ``x`` pointing to ``y`` with norm ``d(x, y)``.

    :math:`\log_x y = \frac{D}{\sinh D}\big((y - x) - (\cosh D - 1)x\big)`,
    ``D = sqrt(c) d``, with ``y - x`` formed from coordinate differences (time
    difference re-derived from space) so that close pairs do not cancel. The
    time component is re-derived from tangency, ``u0 = xs.us / x0``.
    """
    x, y = _up(x), _up(y)
    s = sinh_half_dist(x, y, c).unsqueeze(-1)
    big_d = 2.0 * torch.asinh(s)
    z = 2.0 * s * s  # cosh(D) - 1
    xp = projx(x, c)
    delta = torch.cat([_time_diff(x, y, c), y[..., 1:] - x[..., 1:]], dim=-1)
    # Divide before multiplying: z * xp overflows float32 for distances beyond ~40.
    sh = sinhc(big_d)
    u = delta / sh - (z / sh) * xp
    # Tangency from the space part (the authoritative coordinates): u0 = xs.us / x0.
    # proju's c<x, u>_L x is of size x0^3 |u| and overflows float32 past radius ~30.
    us = u[..., 1:]
    u0 = (xp[..., 1:] * us).sum(-1, keepdim=True) / xp[..., :1]
    return torch.cat([u0, us], dim=-1)


def transp(
    x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, c: float | torch.Tensor
) -> torch.Tensor:
    r"""Parallel transport of ``v`` from ``x`` to ``y`` along the geodesic.

    :math:`P(v) = v + \frac{c\langle y, v\rangle_L}{1 - c\langle x, y\rangle_L}(x + y)`,
    with ``1 - c<x, y>_L = 2 + 2 s^2`` from :func:`sinh_half_dist` (never small).
    """
    x, y, v = _up(x), _up(y), _up(v)
    # Time coordinates re-derived (the space part is authoritative): a float32 x0
    # cast to float64 is off by eps x0, which the transport multiplies by x0 again.
    x, y = projx(x, c), projx(y, c)
    cb = _as_batch(c, v)
    s = sinh_half_dist(x, y, c).unsqueeze(-1)
    den = 2.0 + 2.0 * s * s
    return v + cb * inner(y, v, keepdim=True) / den * (x + y)


def origin(
    *shape: int,
    c: float | torch.Tensor = 1.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The origin ``(1/sqrt(c), 0, ..., 0)`` with shape ``shape`` (last dim = D+1)."""
    o = torch.zeros(*shape, dtype=dtype, device=device)
    sc = _as_batch(c, o).sqrt()
    return torch.cat([torch.ones_like(o[..., :1]) / sc, o[..., 1:]], dim=-1)


def transp0(y: torch.Tensor, v: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Parallel transport of ``v`` (tangent at the origin ``o``) to ``y``:
    :math:`v + \frac{c\langle y,v\rangle_L}{1 + \sqrt c\, y_0}(o + y)`."""
    y, v = _up(y), _up(v)
    cb = _as_batch(c, v)
    sc = cb.sqrt()
    y0 = time_from_space(y[..., 1:], c)
    o = torch.cat([torch.ones_like(y0) / sc, torch.zeros_like(y[..., 1:])], dim=-1)
    return v + cb * inner(y, v, keepdim=True) / (1.0 + sc * y0) * (o + y)


def transp0back(x: torch.Tensor, v: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Parallel transport of ``v`` from ``x`` back to the origin (inverse of :func:`transp0`)."""
    x, v = _up(x), _up(v)
    cb = _as_batch(c, v)
    sc = cb.sqrt()
    x0 = time_from_space(x[..., 1:], c)
    o = torch.cat([torch.ones_like(x0) / sc, torch.zeros_like(x[..., 1:])], dim=-1)
    return v + cb * inner(o, v, keepdim=True) / (1.0 + sc * x0) * (o + x)


def _directions_and_radius(
    shape: tuple[int, ...],
    radius: float | torch.Tensor,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors ``(*shape)`` in uniform directions and ``radius`` shaped to scale them.

    A tensor ``radius`` (broadcastable to ``shape[:-1]``) gets a trailing singleton dim.
    """
    dtype = dtype or torch.get_default_dtype()
    g = torch.randn(*shape, dtype=dtype, device=device, generator=generator)
    g = g / torch.linalg.vector_norm(g, dim=-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    r = torch.as_tensor(radius, dtype=dtype, device=device)
    if r.dim() > 0:
        r = r.unsqueeze(-1)
    return g, r


def random(
    *shape: int,
    radius: float | torch.Tensor = 1.0,
    c: float | torch.Tensor = 1.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Points at hyperbolic distance ``radius`` from the origin in uniform directions.

    ``shape`` includes the last dimension ``D + 1``. ``radius`` may be a tensor
    broadcastable to ``shape[:-1]`` (e.g. log-uniform radii for a sweep).
    """
    g, r = _directions_and_radius((*shape[:-1], shape[-1] - 1), radius, dtype, device, generator)
    us = g * r  # at the origin the tangent norm is the distance
    return expmap0(torch.cat([torch.zeros_like(us[..., :1]), us], dim=-1), c)
