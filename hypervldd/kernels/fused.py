"""Compiled ops: registration of fake impls and autograd, and the streaming drivers.

Ops (schemas in csrc/ops.cpp unless noted):

- ``hypervldd::pairwise_dist(x, y, c, manifold) -> d``: the fused GEMM + epilogue
  kernel (C++ on CPU, CUDA on GPU). Backward: ``pairwise_dist_factor`` returns the
  per-pair derivative factor ``f`` and the mask of slow pairs; the gradient is
  then two GEMMs with ``g * f`` plus the exact difference-form gradient of the
  (few) slow pairs, in float64.
- ``hypervldd::contrastive_loss`` and ``hypervldd::row_stats`` (defined here with
  :func:`torch.library.custom_op`): streaming drivers over ``tile x tile`` blocks
  of the fused distance kernel, with online log-sum-exp per row and per column.
  They never hold ``N x M``; backward recomputes each tile and adds its
  contribution to the row block of ``x`` and the column block of ``y`` (a
  sequential loop over tiles, so no atomics and a deterministic result).

Adding a row reduction to ``row_stats`` means: one accumulator in
:func:`_row_stats_forward` and its tile gradient in :func:`_row_stats_backward`.
"""

from __future__ import annotations

import torch

from .reference import RowStats, paired_dist_ref

__all__ = ["pairwise_dist_op", "contrastive_loss_op", "row_stats_op", "MANIFOLD_CODE", "TILE"]

MANIFOLD_CODE = {"lorentz": 0, "poincare": 1, "euclidean": 2}
_NAMES = {v: k for k, v in MANIFOLD_CODE.items()}
# Tile edge of the streaming ops: a tile of 1024 x 1024 float32 is 4 MiB.
TILE = 1024
# Slow pairs whose gradients are gathered at once (bounds the gather memory).
_SLOW_BATCH = 1 << 16


def _c_tensor(c: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if isinstance(c, torch.Tensor):
        return c.reshape(()).to(like.dtype)
    return torch.tensor(float(c), dtype=like.dtype)


# --------------------------------------------------------------------------- pairwise


@torch.library.register_fake("hypervldd::pairwise_dist")
def _pairwise_fake(x, y, c, manifold):  # noqa: ANN001, ANN202
    torch._check(x.dim() == 2 and y.dim() == 2, lambda: "x and y must be 2-D")
    return x.new_empty((x.shape[0], y.shape[0]))


@torch.library.register_fake("hypervldd::pairwise_dist_factor")
def _factor_fake(x, y, c, manifold):  # noqa: ANN001, ANN202
    n, m = x.shape[0], y.shape[0]
    return x.new_empty((n, m)), x.new_empty((n, m)), x.new_empty((n, m), dtype=torch.bool)


def _tile_vjp(
    gd: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor,
    man: int,
    d: torch.Tensor,
    f: torch.Tensor,
    bad: torch.Tensor,
    need_c: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Gradients of ``sum(gd * d)`` w.r.t. ``x``, ``y`` and ``c`` for one tile.

    ``f`` and ``bad`` come from ``pairwise_dist_factor``. Fast pairs: two GEMMs
    with ``u = gd * f`` (the formulas are in csrc/include/hyperbolic_math.h).
    Slow pairs: the difference form's autograd in float64.
    """
    dt = x.dtype
    u = gd * f
    cval = c.detach().to(dt)
    if man == 0:
        xs, ys = x[:, 1:], y[:, 1:]
        x0 = torch.sqrt(1.0 + cval * (xs * xs).sum(1))
        y0 = torch.sqrt(1.0 + cval * (ys * ys).sum(1))
        gxs = xs * ((u @ y0) / x0)[:, None] - u @ ys
        gys = ys * ((u.T @ x0) / y0)[:, None] - u.T @ xs
        gx = torch.cat([torch.zeros_like(x[:, :1]), gxs], 1)
        gy = torch.cat([torch.zeros_like(y[:, :1]), gys], 1)
    elif man == 1:
        x2, y2 = (x * x).sum(1), (y * y).sum(1)
        xd, yd = x.double(), y.double()
        ax = (1.0 - c.detach().double() * (xd * xd).sum(1)).to(dt)
        ay = (1.0 - c.detach().double() * (yd * yd).sum(1)).to(dt)
        uy, ux = u @ y, u.T @ x
        rs, cs = u.sum(1), u.sum(0)
        # sum_j u_ij |x_i - y_j|^2 expanded; u = 0 on the pairs where it would cancel.
        rsq = x2 * rs + u @ y2 - 2.0 * (x * uy).sum(1)
        csq = y2 * cs + u.T @ x2 - 2.0 * (y * ux).sum(1)
        gx = x * (rs + cval * rsq / ax)[:, None] - uy
        gy = y * (cs + cval * csq / ay)[:, None] - ux
    else:
        gx = x * u.sum(1)[:, None] - u @ y
        gy = y * u.sum(0)[:, None] - u.T @ x
    ii, jj = bad.nonzero(as_tuple=True)
    if ii.numel():
        name = _NAMES[man]
        c64 = c.detach().double()
        for k in range(0, ii.numel(), _SLOW_BATCH):
            ib, jb = ii[k : k + _SLOW_BATCH], jj[k : k + _SLOW_BATCH]
            # torch.func (not torch.autograd): this runs inside op implementations,
            # below the autograd dispatch key.
            _, vjp = torch.func.vjp(
                lambda a, b: paired_dist_ref(a, b, name, c64), x[ib].double(), y[jb].double()
            )
            ga, gb = vjp(gd[ib, jb].double())
            gx.index_add_(0, ib, ga.to(dt))
            gy.index_add_(0, jb, gb.to(dt))
    gc = None
    if need_c and man != 2:
        # d(x, y; c) = D(sqrt(c) x, sqrt(c) y) / sqrt(c) gives this identity.
        gc = (-(gd * d).sum() + (gx * x).sum() + (gy * y).sum()) / (2.0 * cval)
    return gx, gy, gc


@torch.library.custom_op("hypervldd::pairwise_dist_backward", mutates_args=())
def _pd_backward_op(
    grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, manifold: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (x, y, c) of ``sum(grad * pairwise_dist(x, y, c))``. An op of its
    own so that tracing (compile, export) sees one node, not the data-dependent
    gather of the slow pairs."""
    d, f, bad = torch.ops.hypervldd.pairwise_dist_factor(x, y, c, manifold)
    gx, gy, gc = _tile_vjp(grad.to(x.dtype).contiguous(), x, y, c, manifold, d, f, bad)
    gc = torch.zeros_like(c) if gc is None else gc.reshape(c.shape).to(c.dtype)
    return gx, gy, gc


@_pd_backward_op.register_fake
def _pd_backward_fake(grad, x, y, c, manifold):  # noqa: ANN001, ANN202
    return torch.empty_like(x), torch.empty_like(y), torch.empty_like(c)


def _pd_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    x, y, c, man = inputs
    ctx.save_for_backward(x, y, c)
    ctx.man = man


def _pd_backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN202
    x, y, c = ctx.saved_tensors
    gx, gy, gc = _pd_backward_op(grad, x, y, c, ctx.man)
    return gx, gy, gc if ctx.needs_input_grad[2] else None, None


torch.library.register_autograd("hypervldd::pairwise_dist", _pd_backward, setup_context=_pd_setup)


def pairwise_dist_op(
    x: torch.Tensor, y: torch.Tensor, manifold: str, c: float | torch.Tensor
) -> torch.Tensor:
    """Validated inputs (same dtype, float32/64) -> compiled ``pairwise_dist``."""
    return torch.ops.hypervldd.pairwise_dist(x, y, _c_tensor(c, x), MANIFOLD_CODE[manifold])


# --------------------------------------------------------------------- streaming drivers


def _tiles(n: int, t: int):
    return [(i, min(n, i + t)) for i in range(0, n, t)]


def _dist_tile(x, y, c, man):  # noqa: ANN001, ANN202
    return torch.ops.hypervldd.pairwise_dist(x, y, c, man)


@torch.library.custom_op("hypervldd::contrastive_loss", mutates_args=())
def _contrastive_fwd(
    x: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor,
    tau: torch.Tensor,
    positives: torch.Tensor,
    manifold: int,
    tile: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Streaming symmetric InfoNCE. Returns (loss, row_lse (N,), col_lse (M,))."""
    n, m = x.shape[0], y.shape[0]
    cv, tv = c.reshape(()), tau.reshape(()).to(x.dtype)
    row = x.new_full((n,), float("-inf"))
    col = x.new_full((m,), float("-inf"))
    for i0, i1 in _tiles(n, tile):
        for j0, j1 in _tiles(m, tile):
            s = _dist_tile(x[i0:i1], y[j0:j1], cv, manifold).div_(-tv)
            row[i0:i1] = torch.logaddexp(row[i0:i1], torch.logsumexp(s, 1))
            col[j0:j1] = torch.logaddexp(col[j0:j1], torch.logsumexp(s, 0))
    if n == 0:
        return x.new_zeros(()), row, col
    lpos = -paired_dist_ref(x, y[positives], _NAMES[manifold], cv) / tv
    loss = ((row - lpos).sum() + (col[positives] - lpos).sum()) / (2 * n)
    return loss, row, col


@_contrastive_fwd.register_fake
def _contrastive_fake(x, y, c, tau, positives, manifold, tile):  # noqa: ANN001, ANN202
    return x.new_empty(()), x.new_empty((x.shape[0],)), x.new_empty((y.shape[0],))


def _contrastive_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    x, y, c, tau, positives, manifold, tile = inputs
    _, row, col = output
    ctx.save_for_backward(x, y, c, tau, positives, row, col)
    ctx.manifold, ctx.tile = manifold, tile
    ctx.mark_non_differentiable(row, col)


def _contrastive_backward(ctx, gloss, _grow, _gcol):  # noqa: ANN001, ANN202
    x, y, c, tau, pos, row, col = ctx.saved_tensors
    gx, gy, gc, gt = _contrastive_backward_op(
        gloss, x, y, c, tau, pos, row, col, ctx.manifold, ctx.tile
    )
    return gx, gy, gc, gt, None, None, None


@torch.library.custom_op("hypervldd::contrastive_loss_backward", mutates_args=())
def _contrastive_backward_op(
    gloss: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor,
    tau: torch.Tensor,
    pos: torch.Tensor,
    row: torch.Tensor,
    col: torch.Tensor,
    man: int,
    tile: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Recomputes each tile; adds its gradient to the row block of x and the
    column block of y (sequentially: no atomics)."""
    n, m = x.shape[0], y.shape[0]
    dt = x.dtype
    tv = tau.reshape(()).to(dt).detach()
    cv = c.reshape(()).detach()
    gx, gy = torch.zeros_like(x), torch.zeros_like(y)
    gc = torch.zeros((), dtype=dt, device=x.device)
    gt = torch.zeros((), dtype=dt, device=x.device)
    if n == 0:
        return gx, gy, torch.zeros_like(c), torch.zeros_like(tau)
    scale = gloss.to(dt) / (2 * n)
    cnt = torch.bincount(pos, minlength=m).to(dt)
    for i0, i1 in _tiles(n, tile):
        for j0, j1 in _tiles(m, tile):
            xb, yb = x[i0:i1], y[j0:j1]
            d, f, bad = torch.ops.hypervldd.pairwise_dist_factor(xb, yb, cv, man)
            s = d / -tv
            # d loss / d s: the two softmaxes (the positive logits are handled below).
            gs = torch.exp(s - row[i0:i1, None]) + cnt[None, j0:j1] * torch.exp(
                s - col[None, j0:j1]
            )
            gs.mul_(scale)
            gt += (gs * d).sum() / (tv * tv)
            gxb, gyb, gcb = _tile_vjp(gs / -tv, xb, yb, cv, man, d, f, bad)
            gx[i0:i1] += gxb
            gy[j0:j1] += gyb
            if gcb is not None:
                gc += gcb
    # Positive logits: -(1/N) sum_i l_i,p(i), from the difference form.
    name = _NAMES[man]

    def positive_term(xr, yr, cr, tr):  # noqa: ANN001, ANN202
        return (paired_dist_ref(xr, yr[pos], name, cr) / tr).sum() * (2 * scale)

    _, vjp = torch.func.vjp(positive_term, x, y, cv.to(dt), tv)
    gxp, gyp, gcp, gtp = vjp(torch.ones((), dtype=dt, device=x.device))
    gx += gxp
    gy += gyp
    gc = gc + gcp.to(dt)
    gt = gt + gtp
    return (
        gx,
        gy,
        gc.reshape(c.shape).to(device=c.device, dtype=c.dtype),
        gt.reshape(tau.shape).to(device=tau.device, dtype=tau.dtype),
    )


@_contrastive_backward_op.register_fake
def _contrastive_backward_fake(gloss, x, y, c, tau, pos, row, col, man, tile):  # noqa: ANN001, ANN202
    return torch.empty_like(x), torch.empty_like(y), torch.empty_like(c), torch.empty_like(tau)


_contrastive_fwd.register_autograd(_contrastive_backward, setup_context=_contrastive_setup)


def contrastive_loss_op(
    x: torch.Tensor,
    y: torch.Tensor,
    manifold: str,
    c: float | torch.Tensor,
    tau: float | torch.Tensor,
    positives: torch.Tensor | None,
    tile: int = TILE,
) -> torch.Tensor:
    """Validated inputs -> the streaming ``hypervldd::contrastive_loss`` op."""
    if positives is None:
        positives = torch.arange(x.shape[0], device=x.device)
    loss, _, _ = _contrastive_fwd(
        x, y, _c_tensor(c, x), _c_tensor(tau, x), positives, MANIFOLD_CODE[manifold], tile
    )
    return loss


@torch.library.custom_op("hypervldd::row_stats", mutates_args=())
def _row_stats_fwd(
    x: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor,
    tau: torch.Tensor,
    values: torch.Tensor,
    positives: torch.Tensor,
    rank_temperature: float,
    manifold: int,
    tile: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Streaming row statistics. ``values`` (M, K) with K = 0 for none;
    ``rank_temperature <= 0`` for no rank. Returns (lse, weighted, rank, s_pos)."""
    n, m, k = x.shape[0], y.shape[0], values.shape[1]
    want_rank = rank_temperature > 0
    cv, tv = c.reshape(()), tau.reshape(()).to(x.dtype)
    lse = x.new_full((n,), float("-inf"))
    w = x.new_zeros((n, k))
    r = x.new_zeros((n,) if want_rank else (0,))
    spos = x.new_zeros((0,))
    if want_rank and n:
        spos = -paired_dist_ref(x, y[positives], _NAMES[manifold], cv) / tv
    for i0, i1 in _tiles(n, tile):
        for j0, j1 in _tiles(m, tile):
            s = _dist_tile(x[i0:i1], y[j0:j1], cv, manifold).div_(-tv)
            old = lse[i0:i1]
            new = torch.logaddexp(old, torch.logsumexp(s, 1))
            if k:
                # Online softmax: rescale the running sum to the new maximum.
                w[i0:i1] = (
                    w[i0:i1] * torch.exp(old - new)[:, None]
                    + torch.exp(s - new[:, None]) @ values[j0:j1]
                )
            if want_rank:
                sig = torch.sigmoid((s - spos[i0:i1, None]) / rank_temperature)
                own = positives[i0:i1, None] == torch.arange(j0, j1, device=x.device)[None, :]
                r[i0:i1] += sig.masked_fill_(own, 0.0).sum(1)
            lse[i0:i1] = new
    if want_rank:
        r = r + 1.0
    return lse, w, r, spos


@_row_stats_fwd.register_fake
def _row_stats_fake(x, y, c, tau, values, positives, rank_temperature, manifold, tile):  # noqa: ANN001, ANN202
    n = x.shape[0]
    want = rank_temperature > 0
    return (
        x.new_empty((n,)),
        x.new_empty((n, values.shape[1])),
        x.new_empty((n,) if want else (0,)),
        x.new_empty((n,) if want else (0,)),
    )


def _row_stats_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    x, y, c, tau, values, positives, rank_t, manifold, tile = inputs
    lse, w, r, spos = output
    ctx.save_for_backward(x, y, c, tau, values, positives, lse, w, spos)
    ctx.rank_t, ctx.manifold, ctx.tile = rank_t, manifold, tile
    ctx.mark_non_differentiable(spos)


def _row_stats_backward(ctx, g_lse, g_w, g_r, _g_spos):  # noqa: ANN001, ANN202
    x, y, c, tau, values, pos, lse, w, spos = ctx.saved_tensors
    g_lse = torch.zeros_like(lse) if g_lse is None else g_lse
    g_w = torch.zeros_like(w) if g_w is None else g_w
    g_r = torch.zeros_like(spos) if g_r is None else g_r
    gx, gy, gc, gt, gv = _row_stats_backward_op(
        g_lse,
        g_w,
        g_r,
        x,
        y,
        c,
        tau,
        values,
        pos,
        lse,
        w,
        spos,
        ctx.rank_t,
        ctx.manifold,
        ctx.tile,
    )
    return gx, gy, gc, gt, gv, None, None, None, None


@torch.library.custom_op("hypervldd::row_stats_backward", mutates_args=())
def _row_stats_backward_op(
    g_lse: torch.Tensor,
    g_w: torch.Tensor,
    g_r: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor,
    tau: torch.Tensor,
    values: torch.Tensor,
    pos: torch.Tensor,
    lse: torch.Tensor,
    w: torch.Tensor,
    spos: torch.Tensor,
    rank_t: float,
    man: int,
    tile: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Recomputes each tile; row-block and column-block gradient accumulation."""
    n, m, k = x.shape[0], y.shape[0], values.shape[1]
    dt = x.dtype
    want_rank = rank_t > 0
    tv = tau.reshape(()).to(dt).detach()
    cv = c.reshape(()).detach()
    gx, gy = torch.zeros_like(x), torch.zeros_like(y)
    gv = torch.zeros_like(values)
    gc = torch.zeros((), dtype=dt, device=x.device)
    gt = torch.zeros((), dtype=dt, device=x.device)
    g_lse = g_lse.to(dt)
    use_w = k > 0
    use_r = want_rank
    gw_dot_w = (g_w * w).sum(1) if use_w else None
    gspos = x.new_zeros((n,))
    for i0, i1 in _tiles(n, tile):
        for j0, j1 in _tiles(m, tile):
            xb, yb = x[i0:i1], y[j0:j1]
            d, f, bad = torch.ops.hypervldd.pairwise_dist_factor(xb, yb, cv, man)
            s = d / -tv
            p = torch.exp(s - lse[i0:i1, None])
            gs = p * g_lse[i0:i1, None]
            if use_w:
                vb = values[j0:j1]
                gb = g_w[i0:i1]
                gs += p * (gb @ vb.T - gw_dot_w[i0:i1, None])
                gv[j0:j1] += p.T @ gb
            if use_r:
                sig = torch.sigmoid((s - spos[i0:i1, None]) / rank_t)
                own = pos[i0:i1, None] == torch.arange(j0, j1, device=x.device)[None, :]
                dr = (sig * (1.0 - sig) / rank_t).masked_fill_(own, 0.0) * g_r[i0:i1, None]
                gs += dr
                gspos[i0:i1] -= dr.sum(1)
            gt += (gs * d).sum() / (tv * tv)
            gxb, gyb, gcb = _tile_vjp(gs / -tv, xb, yb, cv, man, d, f, bad)
            gx[i0:i1] += gxb
            gy[j0:j1] += gyb
            if gcb is not None:
                gc += gcb
    if use_r and n:
        name = _NAMES[man]

        def positive_logit(xr, yr, cr, tr):  # noqa: ANN001, ANN202
            return -paired_dist_ref(xr, yr[pos], name, cr) / tr

        _, vjp = torch.func.vjp(positive_logit, x, y, cv.to(dt), tv)
        gxp, gyp, gcp, gtp = vjp(gspos)
        gx += gxp
        gy += gyp
        gc = gc + gcp.to(dt)
        gt = gt + gtp
    return (
        gx,
        gy,
        gc.reshape(c.shape).to(device=c.device, dtype=c.dtype),
        gt.reshape(tau.shape).to(device=tau.device, dtype=tau.dtype),
        gv,
    )


@_row_stats_backward_op.register_fake
def _row_stats_backward_fake(
    g_lse, g_w, g_r, x, y, c, tau, values, pos, lse, w, spos, rank_t, man, tile
):  # noqa: ANN001, ANN202, E501
    return (
        torch.empty_like(x),
        torch.empty_like(y),
        torch.empty_like(c),
        torch.empty_like(tau),
        torch.empty_like(values),
    )


_row_stats_fwd.register_autograd(_row_stats_backward, setup_context=_row_stats_setup)


def row_stats_op(
    x: torch.Tensor,
    y: torch.Tensor,
    manifold: str,
    c: float | torch.Tensor,
    tau: float | torch.Tensor,
    values: torch.Tensor | None,
    rank_temperature: float | None,
    positives: torch.Tensor | None,
    tile: int = TILE,
) -> RowStats:
    """Validated inputs -> the streaming ``hypervldd::row_stats`` op."""
    n = x.shape[0]
    if positives is None:
        positives = torch.arange(n, device=x.device)
    v = values if values is not None else x.new_zeros((y.shape[0], 0))
    rt = float(rank_temperature) if rank_temperature is not None else -1.0
    lse, w, r, _ = _row_stats_fwd(
        x, y, _c_tensor(c, x), _c_tensor(tau, x), v, positives, rt, MANIFOLD_CODE[manifold], tile
    )
    return RowStats(lse, w if values is not None else None, r if rank_temperature else None)
