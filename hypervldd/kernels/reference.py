"""Pure-PyTorch references of the compiled ops: the oracle and the fallback.

Every function here has exactly the semantics of the compiled op of the same
name (without ``_ref``) and is differentiable by autograd, including with
respect to a tensor curvature ``c`` and a tensor temperature ``tau``.

Memory: :func:`pairwise_dist_ref` holds ``chunk x M`` temporaries (never
``N x M x D``); the streaming references :func:`contrastive_loss_ref` and
:func:`row_stats_ref` hold ``chunk x chunk`` tiles, and wrap each tile in
activation checkpointing so that autograd saves only O(N + M) per tile row
instead of every tile.

Point formats: Lorentz points are full coordinates ``(N, D+1)``, time first;
only the space part is read and the time is re-derived (``sqrt(1/c + |xs|^2)``).
Poincaré and Euclidean points are ``(N, D)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.utils.checkpoint import checkpoint

from ..manifolds import lorentz_math

__all__ = [
    "MANIFOLDS",
    "RowStats",
    "lorentz_dist_rows_ref",
    "paired_dist_ref",
    "pairwise_dist_ref",
    "contrastive_loss_ref",
    "row_stats_ref",
    "ACCEPT_RTOL",
]

MANIFOLDS = ("lorentz", "poincare", "euclidean")

# A GEMM value is accepted when its rounding-error bound is below this fraction
# of the value itself: the relative error of the distance is then at most about
# 1e-4 (float32) or 1e-10 (float64), ten times inside the envelopes 1e-3 and 1e-9.
# The same constants are in csrc/include/hyperbolic_math.h (accept_rtol).
ACCEPT_RTOL = {torch.float32: 1e-4, torch.float64: 1e-10}
# Constant of the per-pair error bound 4 eps (x0 y0 + |xs||ys|) (Lorentz) and
# 4 eps (|x|^2 + |y|^2) (Poincaré, Euclidean).
BOUND_FACTOR = 4.0


class RowStats(NamedTuple):
    """Streaming statistics of each row of the logits ``s = -d / tau``.

    ``lse``: ``(N,)`` log-sum-exp of the row. ``weighted``: ``(N, K)``
    ``sum_j softmax_j(s_i) v_j`` or ``None``. ``smooth_rank``: ``(N,)``
    ``1 + sum_{j != pos_i} sigmoid((s_ij - s_i,pos_i) / t)`` or ``None``.

    >>> import torch
    >>> from hypervldd.kernels import row_stats
    >>> from hypervldd.manifolds import Lorentz
    >>> x = Lorentz().lift(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)))
    >>> stats = row_stats(x, x, tau=1.0)
    >>> tuple(stats.lse.shape), stats.weighted is None, stats.smooth_rank is None
    ((3,), True, True)
    """

    lse: torch.Tensor
    weighted: torch.Tensor | None
    smooth_rank: torch.Tensor | None


def _compute_dtype(*ts: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in ts) else torch.float32


def _slow_dtype(dt: torch.dtype) -> torch.dtype:
    return torch.float64


def _safe_sqrt(s2: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(s2, 0))`` with gradient 0 (not inf/NaN) at 0; NaN stays NaN."""
    pos = ~(s2 <= 0)  # true for NaN: bad input must not become a zero distance
    return torch.where(pos, torch.sqrt(torch.where(pos, s2, torch.ones_like(s2))), 0.0)


def _scalar(c: float | torch.Tensor, dt: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(c, torch.Tensor):
        return c.reshape(()).to(dtype=dt, device=device)
    return torch.tensor(float(c), dtype=dt, device=device)


def lorentz_dist_rows_ref(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """Lorentz distance of paired rows ``d(x_i, y_i)``: ``(N, D+1), (N, D+1) -> (N,)``."""
    return lorentz_math.dist(x, y, c)


def _lorentz_sinh_half_sq(xs: torch.Tensor, ys: torch.Tensor, sc: torch.Tensor) -> torch.Tensor:
    """``sinh^2(sqrt(c) d / 2)`` of paired space parts ``(P, D)``: the shared
    cancellation-free formula of csrc/include/hyperbolic_math.h, with gradients
    that stay finite at coincident points and at the origin."""
    xk = sc * xs
    yk = sc * ys
    a2 = (xk * xk).sum(-1)
    b2 = (yk * yk).sum(-1)
    delta = xk - yk
    dsig = (delta * (xk + yk)).sum(-1)  # a^2 - b^2 from differences
    dd = (delta * delta).sum(-1)
    x0 = torch.sqrt(1.0 + a2)
    y0 = torch.sqrt(1.0 + b2)
    d0 = dsig / (x0 + y0)
    diff_s2 = (dd - d0 * d0).clamp_min(0) / 4.0
    split = a2 * b2 > 1.0
    # one point near the origin, the other far: see lorentz_math.sinh_half_dist
    lop = ~split & (torch.maximum(a2, b2) > 4.0)
    one = torch.ones_like(a2)
    a = torch.sqrt(torch.where(split, a2, one))
    b = torch.sqrt(torch.where(split, b2, one))
    al = _safe_sqrt(torch.where(lop, a2, one))
    bl = _safe_sqrt(torch.where(lop, b2, one))
    lop_dr = dsig / torch.where(lop, al * y0 + bl * x0, one)
    lop_s2 = (
        lop_dr * (lop_dr / (2.0 * (1.0 + torch.hypot(one, lop_dr))))
        + (al * bl - (xk * yk).sum(-1)).clamp_min(0) / 2.0
    )
    sinh_dr = dsig / (a * y0 + b * x0)
    # Squares taken after the divisions: sinh_dr^2 and |w|^2 (of size (a b)^2)
    # overflow float32 for distances beyond ~44, well inside the radius cap.
    radial = sinh_dr * (sinh_dr / (2.0 * (1.0 + torch.hypot(torch.ones_like(sinh_dr), sinh_dr))))
    amb = dsig / (a + b)
    a_le_b = (a <= b).unsqueeze(-1)
    m = torch.minimum(a, b).unsqueeze(-1)
    rab = torch.sqrt(a * b).unsqueeze(-1)
    w = (m / rab) * delta - (amb.unsqueeze(-1) / rab) * torch.where(a_le_b, xk, yk)
    split_s2 = radial + (w * w).sum(-1) / 4.0
    return torch.where(split, split_s2, torch.where(lop, lop_s2, diff_s2))


def _alpha(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``1 - c|x|^2`` accumulated in float64 (the ball's conformal denominator)."""
    x64 = x.double()
    return (1.0 - c.double() * (x64 * x64).sum(-1)).to(x.dtype)


def _prep(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor):
    dt = _compute_dtype(x, y)
    x = x.to(dt)
    y = y.to(dt)
    return x, y, _scalar(c, dt, x.device), dt


def paired_dist_ref(
    x: torch.Tensor, y: torch.Tensor, manifold: str = "lorentz", c: float | torch.Tensor = 1.0
) -> torch.Tensor:
    """Distance of paired rows ``d(x_i, y_i)``, ``(P, D') x (P, D') -> (P,)``.

    Always the difference form (no GEMM), in the compute dtype of the inputs.
    """
    x, y, cc, dt = _prep(x, y, c)
    sc = cc.sqrt()
    if manifold == "lorentz":
        s2 = _lorentz_sinh_half_sq(x[:, 1:], y[:, 1:], sc)
        return 2.0 * torch.asinh(_safe_sqrt(s2)) / sc
    if manifold == "poincare":
        diff = x - y
        t2 = cc * (diff * diff).sum(-1) / (_alpha(x, cc) * _alpha(y, cc))
        return 2.0 * torch.asinh(_safe_sqrt(t2)) / sc
    diff = x - y
    d = _safe_sqrt((diff * diff).sum(-1))
    # Euclidean distances do not depend on c: keep c in the graph (zero gradient).
    return d + 0.0 * cc if cc.requires_grad else d


def _slow_pairs(
    x: torch.Tensor,
    y: torch.Tensor,
    ii: torch.Tensor,
    jj: torch.Tensor,
    manifold: str,
    c: torch.Tensor,
    budget: int,
) -> torch.Tensor:
    """Distances of the listed pairs from coordinate differences, in float64,
    gathered in batches of at most ``budget`` coordinates."""
    slow = _slow_dtype(x.dtype)
    d = max(1, x.shape[1])
    step = max(1, budget // d)
    out = []
    for k in range(0, ii.numel(), step):
        xa = x[ii[k : k + step]].to(slow)
        ya = y[jj[k : k + step]].to(slow)
        out.append(paired_dist_ref(xa, ya, manifold, c.to(slow)).to(x.dtype))
    return torch.cat(out) if out else x.new_zeros((0,))


def _pairwise_rows(
    x: torch.Tensor,
    y: torch.Tensor,
    manifold: str,
    cc: torch.Tensor,
    budget: int,
    pre: tuple,
    count: list | None = None,
) -> torch.Tensor:
    """Distances of a block of rows ``x`` against all of ``y`` (inputs already prepared)."""
    e = torch.finfo(x.dtype).eps
    tol = ACCEPT_RTOL[x.dtype]
    sc = cc.sqrt()
    if manifold == "lorentz":
        xk = sc * x[:, 1:]
        a2 = (xk * xk).sum(-1)
        x0 = torch.sqrt(1.0 + a2)
        yk, b2, y0 = pre
        p = torch.outer(x0, y0)
        z = (p - 1.0) - xk @ yk.T
        with torch.no_grad():
            bound = BOUND_FACTOR * e * (p + torch.outer(a2.sqrt(), b2.sqrt()))
            bad = bound > tol * z
        zs = torch.where(bad, torch.ones_like(z), z)
        # sqrt(z) sqrt(z + 2), not sqrt(z (z + 2)): the product overflows float32
        # for distances beyond ~44 (z ~ 1e19), well inside the radius cap.
        dfast = torch.log1p(zs + torch.sqrt(zs) * torch.sqrt(zs + 2.0)) / sc
    else:
        y2, ay = pre
        x2 = (x * x).sum(-1)
        sq = (x2[:, None] + y2[None, :]) - 2.0 * (x @ y.T)
        with torch.no_grad():
            bad = BOUND_FACTOR * e * (x2[:, None] + y2[None, :]) > tol * sq
        sqs = torch.where(bad, torch.ones_like(sq), sq)
        if manifold == "poincare":
            t = torch.sqrt(cc * sqs / (_alpha(x, cc)[:, None] * ay[None, :]))
            dfast = 2.0 * torch.asinh(t) / sc
        else:
            dfast = torch.sqrt(sqs) + 0.0 * cc if cc.requires_grad else torch.sqrt(sqs)
    ii, jj = bad.nonzero(as_tuple=True)
    if count is not None:
        count[0] += ii.numel()
    if ii.numel() == 0:
        return dfast
    return dfast.index_put((ii, jj), _slow_pairs(x, y, ii, jj, manifold, cc, budget))


def _pre(y: torch.Tensor, manifold: str, cc: torch.Tensor) -> tuple:
    if manifold == "lorentz":
        yk = cc.sqrt() * y[:, 1:]
        b2 = (yk * yk).sum(-1)
        return yk, b2, torch.sqrt(1.0 + b2)
    return (y * y).sum(-1), _alpha(y, cc)


def pairwise_dist_ref(
    x: torch.Tensor,
    y: torch.Tensor,
    manifold: str = "lorentz",
    c: float | torch.Tensor = 1.0,
    *,
    chunk: int = 1024,
    slow_count: list | None = None,
) -> torch.Tensor:
    """All-pairs distances ``(N, M)`` for ``x`` ``(N, D')`` and ``y`` ``(M, D')``.

    Per row chunk: one GEMM, then the distance epilogue. A pair whose
    rounding-error bound (``4 eps (x0 y0 + |xs||ys|)`` for Lorentz,
    ``4 eps (|x|^2 + |y|^2)`` otherwise) exceeds ``ACCEPT_RTOL[dtype]`` of the GEMM
    value is recomputed from coordinate differences in float64. Temporaries are
    ``chunk x M``. ``slow_count``, if a one-element list, is incremented by the
    number of recomputed pairs.

    >>> import torch
    >>> from hypervldd.kernels import pairwise_dist, pairwise_dist_ref
    >>> from hypervldd.manifolds import PoincareBall
    >>> x = PoincareBall().lift(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))
    >>> ref = pairwise_dist_ref(x, x, "poincare")
    >>> bool(torch.allclose(ref, pairwise_dist(x, x, "poincare"), atol=1e-4))
    True
    """
    x, y, cc, dt = _prep(x, y, c)
    n, m = x.shape[0], y.shape[0]
    if n == 0 or m == 0:
        # Empty, but connected to the inputs so that backward yields (empty) gradients.
        return x[:, :1] * 0.0 + (y[:, :1] * 0.0).T + 0.0 * cc
    chunk = max(1, int(chunk))
    pre = _pre(y, manifold, cc)
    budget = chunk * max(m, 1)
    out = [
        _pairwise_rows(x[i : i + chunk], y, manifold, cc, budget, pre, slow_count)
        for i in range(0, n, chunk)
    ]
    return torch.cat(out, 0)


def _tile(x, y, manifold, cc, tau):
    pre = _pre(y, manifold, cc)
    d = _pairwise_rows(x, y, manifold, cc, x.shape[0] * y.shape[0], pre)
    return -d / tau


def _lse_merge(a: torch.Tensor | None, b: torch.Tensor) -> torch.Tensor:
    return b if a is None else torch.logaddexp(a, b)


def _default_positives(n: int, m: int, device: torch.device) -> torch.Tensor:
    if n > m:
        raise ValueError(
            f"positives=None pairs row i with column i, which needs N <= M; got N={n}, M={m}:"
            " pass positives explicitly"
        )
    return torch.arange(n, device=device)


def _lse_tiles(x, y, manifold, cc, tau, chunk):
    """Row and column log-sum-exp of ``-d/tau``, tile by tile (checkpointed tiles)."""
    n, m = x.shape[0], y.shape[0]
    row = []
    col: list = [None] * ((m + chunk - 1) // chunk)

    def tile_lse(xb, yb, cc_, tau_):
        s = _tile(xb, yb, manifold, cc_, tau_)
        return torch.logsumexp(s, 1), torch.logsumexp(s, 0)

    for i in range(0, n, chunk):
        r = None
        for jb, j in enumerate(range(0, m, chunk)):
            lr, lc = checkpoint(
                tile_lse, x[i : i + chunk], y[j : j + chunk], cc, tau, use_reentrant=False
            )
            r = _lse_merge(r, lr)
            col[jb] = _lse_merge(col[jb], lc)
        row.append(r)
    return torch.cat(row), torch.cat(col)


def contrastive_loss_ref(
    x: torch.Tensor,
    y: torch.Tensor,
    manifold: str = "lorentz",
    c: float | torch.Tensor = 1.0,
    tau: float | torch.Tensor = 0.07,
    positives: torch.Tensor | None = None,
    *,
    chunk: int = 512,
) -> torch.Tensor:
    """Symmetric hyperbolic InfoNCE over logits ``l_ij = -d(x_i, y_j) / tau``. 0-d tensor.

    ``loss = (1/2N) sum_i [(lse_j l_ij - l_i,p(i)) + (lse_i' l_i',p(i) - l_i,p(i))]``
    with ``p = positives`` (default ``arange(N)``). The column term of row ``i``
    is the cross-entropy of column ``p(i)`` (a softmax over all ``N`` rows) with
    target row ``i``: when several rows share a positive column, that column
    contributes one term per row, each with its own row as the target. Tiles are
    ``chunk x chunk``.

    >>> import math, torch
    >>> from hypervldd.kernels import contrastive_loss_ref
    >>> x = torch.zeros(4, 3)  # all points equal: uniform logits
    >>> round(float(contrastive_loss_ref(x, x, "euclidean", tau=1.0)), 4) == round(math.log(4), 4)
    True
    """
    x, y, cc, dt = _prep(x, y, c)
    tt = _scalar(tau, dt, x.device)
    n, m = x.shape[0], y.shape[0]
    if n == 0:
        return (x.sum() + y.sum()) * 0.0 + 0.0 * (cc + tt)
    pos = _default_positives(n, m, x.device) if positives is None else positives.to(x.device)
    row_lse, col_lse = _lse_tiles(x, y, manifold, cc, tt, max(1, int(chunk)))
    lpos = -paired_dist_ref(x, y[pos], manifold, cc) / tt
    total = (row_lse - lpos).sum() + (col_lse[pos] - lpos).sum()
    return total / (2 * n)


def row_stats_ref(
    x: torch.Tensor,
    y: torch.Tensor,
    manifold: str = "lorentz",
    c: float | torch.Tensor = 1.0,
    tau: float | torch.Tensor = 0.07,
    values: torch.Tensor | None = None,
    rank_temperature: float | None = None,
    positives: torch.Tensor | None = None,
    *,
    chunk: int = 512,
) -> RowStats:
    """Streaming row statistics of ``s_ij = -d(x_i, y_j) / tau``.

    Returns :class:`RowStats` with ``lse`` ``(N,)``; ``weighted`` ``(N, K)`` =
    ``sum_j softmax_j(s_i) values_j`` when ``values`` ``(M, K)`` is given;
    ``smooth_rank`` ``(N,)`` = ``1 + sum_{j != p(i)} sigmoid((s_ij - s_i,p(i)) / t)``
    when ``rank_temperature`` ``t`` is given (``p = positives``, default
    ``arange(N)``; ``s_i,p(i)`` from the difference form). Column statistics are
    ``row_stats_ref(y, x, ...)``.

    >>> import math, torch
    >>> from hypervldd.kernels import row_stats_ref
    >>> x = torch.zeros(2, 3)
    >>> lse = row_stats_ref(x, torch.zeros(5, 3), "euclidean", tau=1.0).lse  # log(5) per row
    >>> [round(v, 4) for v in lse.tolist()]
    [1.6094, 1.6094]
    """
    x, y, cc, dt = _prep(x, y, c)
    tt = _scalar(tau, dt, x.device)
    n, m = x.shape[0], y.shape[0]
    chunk = max(1, int(chunk))
    v = values.to(dt) if values is not None else None
    want_rank = rank_temperature is not None
    if want_rank:
        pos = _default_positives(n, m, x.device) if positives is None else positives.to(x.device)
        spos = -paired_dist_ref(x, y[pos], manifold, cc) / tt if n else x.new_zeros((0,))
    lse_rows, w_rows, r_rows = [], [], []
    for i in range(0, n, chunk):
        xb = x[i : i + chunk]
        lse = None
        wacc = None
        racc = None
        for j in range(0, m, chunk):
            yb = y[j : j + chunk]

            def tile(xb_, yb_, cc_, tau_, v_, sp_, i0=i, j0=j):
                s = _tile(xb_, yb_, manifold, cc_, tau_)
                outs = [torch.logsumexp(s, 1)]
                if v_ is not None:
                    p = torch.softmax(s, 1)
                    outs.append(p @ v_)
                if sp_ is not None:
                    sig = torch.sigmoid((s - sp_[:, None]) / rank_temperature)
                    cols = torch.arange(j0, j0 + s.shape[1], device=s.device)
                    own = pos[i0 : i0 + s.shape[0], None] == cols[None, :]
                    outs.append(torch.where(own, 0.0, sig).sum(1))
                return tuple(outs)

            vb = v[j : j + chunk] if v is not None else None
            sp = spos[i : i + chunk] if want_rank else None
            outs = checkpoint(tile, xb, yb, cc, tt, vb, sp, use_reentrant=False)
            tl = outs[0]
            k = 1
            if v is not None:
                tw = outs[k]
                k += 1
                if wacc is None:
                    wacc = tw
                else:
                    new = torch.logaddexp(lse, tl)
                    wacc = wacc * torch.exp(lse - new)[:, None] + tw * torch.exp(tl - new)[:, None]
            if want_rank:
                racc = outs[k] if racc is None else racc + outs[k]
            lse = _lse_merge(lse, tl)
        if lse is None:  # M == 0
            lse = xb.new_full((xb.shape[0],), float("-inf"))
            if v is not None:
                wacc = xb.new_zeros((xb.shape[0], v.shape[1]))
            if want_rank:
                racc = xb.new_zeros((xb.shape[0],))
        lse_rows.append(lse)
        w_rows.append(wacc)
        r_rows.append(racc)
    k = v.shape[1] if v is not None else 0
    lse = torch.cat(lse_rows) if n else x.new_zeros((0,))
    weighted = None
    if v is not None:
        weighted = torch.cat(w_rows) if n else x.new_zeros((0, k))
    rank = None
    if want_rank:
        rank = 1.0 + torch.cat(r_rows) if n else x.new_zeros((0,))
    return RowStats(lse, weighted, rank)
