"""``hypervldd::triton_row_stats`` and its backward: streaming row statistics of
``s = -d / tau`` on the GPU (log-sum-exp, softmax-weighted values, smooth rank), never
``N x M``.

Forward: one owner pass over row blocks of x, online log-sum-exp over column tiles with
the softmax-weighted values rescaled as the maximum moves (``tl.dot`` of the tile's
probabilities with the values) and the sigmoid sum of the smooth rank. The positive
logit of the rank comes from the difference form (float64, O(N D')). Backward: owner
passes recomputing the tiles (x owner: ``dL/dx``; y owner: ``dL/dy`` and ``dL/dvalues``),
then the positives' difference-form gradient. Same semantics as the C++ op.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._autograd import needed_grads
from ..reference import _lorentz_sinh_half_sq, paired_dist_ref
from ._host import c_scalar, gpu_op, launch, operand, precision, row_data, tile_configs
from ._tile import curvature, dist_tile, grad_tile, load_rows, online_lse_step, store_owner_grad
from .pairwise import grad_c, owner_grad

__all__ = ["triton_row_stats", "triton_row_stats_backward"]

_NAMES = {0: "lorentz", 1: "poincare", 2: "euclidean"}


def _inv_t(rank_temperature: float, like: torch.Tensor) -> torch.Tensor:
    """``1 / t`` as a float64 device scalar (a float argument would be float32)."""
    v = 1.0 / rank_temperature if rank_temperature > 0 else 0.0
    return torch.full((1,), v, dtype=torch.float64, device=like.device)


def _block_k(k: int) -> int:
    return max(16, triton.next_power_of_2(max(int(k), 1)))


@triton.autotune(configs=tile_configs(), key=["N", "M", "D", "K", "MAN", "IS64"])
@triton.jit
def _row_stats_fwd(
    x_ptr, sx0, sx1, xr0, xr1, xr64,
    y_ptr, sy0, sy1, yr0, yr1, yr64,
    c_ptr, tau_ptr, v_ptr, sv0, sv1, pos_ptr, spos_ptr, invt_ptr,
    lse_ptr, w_ptr, rank_ptr, N, M, D, K,
    MAN: tl.constexpr, IS64: tl.constexpr, PREC: tl.constexpr,
    HAS_V: tl.constexpr, HAS_RANK: tl.constexpr, BKV: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    offs_a = tl.program_id(0) * BM + tl.arange(0, BM)
    ma = offs_a < N
    dt = x_ptr.dtype.element_ty
    c, sc, c64, sc64 = curvature(c_ptr, x_ptr)
    inv_tau = 1.0 / tl.load(tau_ptr).to(dt)
    inv_t = tl.load(invt_ptr).to(dt)
    ra0, ra1, ra64 = load_rows(xr0, xr1, xr64, offs_a, N)
    offs_v = tl.arange(0, BKV)
    mx = tl.full((BM,), float("-inf"), dtype=dt)
    sm = tl.zeros((BM,), dtype=dt)
    n_nan = tl.zeros((BM,), dtype=tl.int32)
    wacc = tl.zeros((BM, BKV), dtype=dt)
    racc = tl.zeros((BM,), dtype=dt)
    if HAS_RANK:
        pos = tl.load(pos_ptr + offs_a, ma, -1)
        sp = tl.load(spos_ptr + offs_a, ma, 0.0)
    for j0 in range(0, M, BN):
        offs_b = j0 + tl.arange(0, BN)
        rb0, rb1, rb64 = load_rows(yr0, yr1, yr64, offs_b, M)
        d, f, ok, sq, A, Ba, valid = dist_tile(
            x_ptr, sx0, sx1, offs_a, N, ra0, ra1, ra64,
            y_ptr, sy0, sy1, offs_b, M, rb0, rb1, rb64,
            D, c, sc, c64, sc64, MAN, IS64, BM, BN, BK, PREC,
        )  # fmt: skip
        s = -d * inv_tau
        mx, sm, n_nan, e, alpha = online_lse_step(mx, sm, n_nan, s, valid)
        if HAS_V:
            v = tl.load(v_ptr + offs_b[:, None] * sv0 + offs_v[None, :] * sv1,
                        (offs_b[:, None] < M) & (offs_v[None, :] < K), 0.0)  # fmt: skip
            wacc = wacc * alpha[:, None] + tl.dot(e.to(v.dtype), v, input_precision=PREC)
        if HAS_RANK:
            sg = 1.0 / (1.0 + tl.exp((sp[:, None] - s) * inv_t))
            own = pos[:, None] == offs_b[None, :]
            racc += tl.sum(tl.where(valid & (own == 0), sg, 0.0), 1)
    lse = mx + tl.log(sm)
    lse = tl.where(n_nan > 0, float("nan"), lse)
    tl.store(lse_ptr + offs_a, lse, ma)
    if HAS_V:
        w = wacc / sm[:, None]
        w = tl.where(n_nan[:, None] > 0, float("nan"), w)
        tl.store(w_ptr + offs_a[:, None] * K + offs_v[None, :], w,
                 ma[:, None] & (offs_v[None, :] < K))  # fmt: skip
    if HAS_RANK:
        tl.store(rank_ptr + offs_a, 1.0 + racc, ma)


def _positive_logits(x, y, c64, tau64, manifold, pos) -> torch.Tensor:  # noqa: ANN001
    """``-d(x_i, y_p(i)) / tau`` from the difference form in float64 (as the C++ op)."""
    d = paired_dist_ref(x.double(), y.double().index_select(0, pos), _NAMES[manifold], c64[0])
    return (-d / tau64[0]).to(x.dtype)


@gpu_op("hypervldd::triton_row_stats")
def triton_row_stats(
    x: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor,
    tau: torch.Tensor,
    values: torch.Tensor,
    positives: torch.Tensor,
    rank_temperature: float,
    manifold: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lse (N,), weighted (N, K), smooth rank (N,) or (0,), positive logits (N,) or
    (0,))``, as the C++ ``hypervldd::row_stats`` (``values`` ``(M, K)``, ``K = 0`` for
    none; ``rank_temperature <= 0`` for no rank).

    >>> # doctest: +SKIP  (needs TRITON_INTERPRET=1 on a CPU)
    >>> lse, w, r, sp = torch.ops.hypervldd.triton_row_stats(x, y, c, tau, v, pos, 0.1, 0)
    """
    n, m, k = x.shape[0], y.shape[0], values.shape[1]
    want_rank = rank_temperature > 0
    lse = x.new_full((n,), float("-inf"))
    w = x.new_zeros((n, k))
    rank = x.new_ones((n if want_rank else 0,))
    spos = x.new_zeros((n if want_rank else 0,))
    if n == 0 or m == 0:
        return lse, w, rank, spos
    c64, tau64 = c_scalar(c, x), c_scalar(tau, x)
    if want_rank:
        spos = _positive_logits(x, y, c64, tau64, manifold, positives)
    v = values.to(x.dtype)
    xr, yr = row_data(x, c64, manifold), row_data(y, c64, manifold)
    xa, ya = operand(x, manifold), operand(y, manifold)

    def grid(meta):  # noqa: ANN001, ANN202
        return (triton.cdiv(n, meta["BM"]),)

    launch(
        _row_stats_fwd, grid,
        xa, xa.stride(0), xa.stride(1), *xr,
        ya, ya.stride(0), ya.stride(1), *yr,
        c64, tau64, v, v.stride(0), v.stride(1), positives, spos if want_rank else lse,
        _inv_t(rank_temperature, x),
        lse, w, rank if want_rank else lse, n, m, xa.shape[1], k,
        MAN=manifold, IS64=x.dtype == torch.float64, PREC=precision(x.dtype),
        HAS_V=k > 0, HAS_RANK=want_rank, BKV=_block_k(k),
    )  # fmt: skip
    return lse, w, rank, spos


@triton.autotune(configs=tile_configs(), key=["N", "M", "D", "MAN", "IS64"])
@triton.jit
def _row_stats_bwd(
    x_ptr, sx0, sx1, xr0, xr1, xr64,
    y_ptr, sy0, sy1, yr0, yr1, yr64,
    c_ptr, tau_ptr, lse_ptr, base_ptr, sp_ptr, gr_ptr, pos_ptr, invt_ptr,
    gw_ptr, v_ptr, K, gv_ptr, gsp_ptr,
    gx_ptr, sgx0, sgx1, sgd_ptr, N, M, D,
    MAN: tl.constexpr, IS64: tl.constexpr, PREC: tl.constexpr, BD: tl.constexpr,
    SWAP: tl.constexpr, HAS_V: tl.constexpr, HAS_RANK: tl.constexpr, BKV: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    """Owner pass of the row_stats gradient. Row (x) quantities — lse, base = g_lse -
    g_w.w, positive logit, g_rank, positive, g_w — are indexed by the owner (SWAP False)
    or the other side (SWAP True); values by the other side or the owner. Tile weights
    ``G = dL/dd = -(P (base + g_w.v) + [j != p(i)] sg (1 - sg) g_rank / t) / tau`` with
    ``P = exp(s - lse)``, ``sg = sigmoid((s - s_pos) / t)``. SWAP False also writes
    ``-sum_j`` of the rank term per row (gsp); SWAP True writes ``dL/dvalues``."""
    pid_d = tl.program_id(1)
    offs_a = tl.program_id(0) * BM + tl.arange(0, BM)
    offs_d = pid_d * BD + tl.arange(0, BD)
    offs_v = tl.arange(0, BKV)
    ma = offs_a < N
    dt = x_ptr.dtype.element_ty
    c, sc, c64, sc64 = curvature(c_ptr, x_ptr)
    inv_tau = 1.0 / tl.load(tau_ptr).to(dt)
    inv_t = tl.load(invt_ptr).to(dt)
    ra0, ra1, ra64 = load_rows(xr0, xr1, xr64, offs_a, N)
    acc = tl.zeros((BM, BD), dtype=dt)
    acc64 = tl.zeros((BM, BD), dtype=tl.float64)
    sgd = tl.zeros((BM,), dtype=tl.float64)
    gsp = tl.zeros((BM,), dtype=dt)
    gv = tl.zeros((BM, BKV), dtype=dt)
    mv_a = ma[:, None] & (offs_v[None, :] < K)
    if SWAP:
        # The owner is a column of the statistics: its values row.
        v_o = tl.load(v_ptr + offs_a[:, None] * K + offs_v[None, :], mv_a, 0.0)
    else:
        lse_o = tl.load(lse_ptr + offs_a, ma, 0.0)[:, None]
        base_o = tl.load(base_ptr + offs_a, ma, 0.0)[:, None]
        sp_o = tl.load(sp_ptr + offs_a, ma, 0.0)[:, None]
        gr_o = tl.load(gr_ptr + offs_a, ma, 0.0)[:, None]
        pos_o = tl.load(pos_ptr + offs_a, ma, -1)[:, None]
        gw_o = tl.load(gw_ptr + offs_a[:, None] * K + offs_v[None, :], mv_a, 0.0)
    for j0 in range(0, M, BN):
        offs_b = j0 + tl.arange(0, BN)
        mb = offs_b < M
        mv_b = mb[:, None] & (offs_v[None, :] < K)
        rb0, rb1, rb64 = load_rows(yr0, yr1, yr64, offs_b, M)
        d, f, ok, sq, A, Ba, valid = dist_tile(
            x_ptr, sx0, sx1, offs_a, N, ra0, ra1, ra64,
            y_ptr, sy0, sy1, offs_b, M, rb0, rb1, rb64,
            D, c, sc, c64, sc64, MAN, IS64, BM, BN, BK, PREC,
        )  # fmt: skip
        s = -d * inv_tau
        if SWAP:
            lse_i = tl.load(lse_ptr + offs_b, mb, 0.0)[None, :]
            base_i = tl.load(base_ptr + offs_b, mb, 0.0)[None, :]
            sp_i = tl.load(sp_ptr + offs_b, mb, 0.0)[None, :]
            gr_i = tl.load(gr_ptr + offs_b, mb, 0.0)[None, :]
            own = tl.load(pos_ptr + offs_b, mb, -1)[None, :] == offs_a[:, None]
        else:
            lse_i, base_i, sp_i, gr_i = lse_o, base_o, sp_o, gr_o
            own = pos_o == offs_b[None, :]
        P = tl.where(valid, tl.exp(s - lse_i), 0.0)
        gs = base_i
        if HAS_V:
            if SWAP:
                gw_k = tl.load(gw_ptr + offs_b[:, None] * K + offs_v[None, :], mv_b, 0.0)
                E = tl.dot(v_o, tl.trans(gw_k), input_precision=PREC)
                gv += tl.dot(P.to(gw_k.dtype), gw_k, input_precision=PREC)
            else:
                v_k = tl.load(v_ptr + offs_b[:, None] * K + offs_v[None, :], mv_b, 0.0)
                E = tl.dot(gw_o, tl.trans(v_k), input_precision=PREC)
            gs = gs + E
        gs = P * gs
        if HAS_RANK:
            sg = 1.0 / (1.0 + tl.exp((sp_i - s) * inv_t))
            dr = tl.where(valid & (own == 0), sg * (1.0 - sg) * inv_t * gr_i, 0.0)
            gs += dr
            if not SWAP:
                gsp -= tl.sum(dr, 1)
        G = tl.where(valid, -gs * inv_tau, 0.0)
        sgd += tl.sum(tl.where(valid, G * d, 0.0).to(tl.float64), 1)
        acc, acc64 = grad_tile(
            acc, acc64, G, f, ok, sq, A, Ba, ra0, ra1, rb0, c,
            x_ptr, sx0, sx1, offs_a, N, y_ptr, sy0, sy1, offs_b, M, offs_d, D, MAN, PREC,
        )  # fmt: skip
    store_owner_grad(gx_ptr, sgx0, sgx1, acc, acc64, sgd_ptr, sgd, offs_a, offs_d, N, D, pid_d)
    if pid_d == 0:
        if SWAP:
            if HAS_V:
                tl.store(gv_ptr + offs_a[:, None] * K + offs_v[None, :], gv, mv_a)
        else:
            if HAS_RANK:
                tl.store(gsp_ptr + offs_a, gsp, ma)


def _paired_slow_grad(
    x: torch.Tensor, y: torch.Tensor, c64: torch.Tensor, manifold: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distance of paired rows and its gradients ``(d (P,), dd/dx, dd/dy (P, D'))`` in
    float64 from coordinate differences, as ``pair_slow_grad``:
    ``dd/dx = A (x - y) + Bx x``, ``dd/dy = -A (x - y) + By y`` (Lorentz: space part;
    the zero subgradient at zero distance). Explicit formulas, no autograd: this runs
    inside the op, below the autograd dispatch."""
    off = 1 if manifold == 0 else 0
    xs, ys = x[:, off:].double(), y[:, off:].double()
    diff = xs - ys
    sc = torch.sqrt(c64)
    zero = torch.zeros_like(xs[:, 0])
    if manifold == 0:
        s2 = _lorentz_sinh_half_sq(xs, ys, sc)
        d = 2.0 * torch.asinh(torch.sqrt(s2)) / sc
        pos = s2 > 0
        A = torch.where(pos, sc / (2.0 * torch.sqrt(torch.where(pos, s2 * (1 + s2), 1.0))), zero)
        dsig = c64 * (diff * (xs + ys)).sum(1)
        x0 = torch.sqrt(1.0 + c64 * (xs * xs).sum(1))
        y0 = torch.sqrt(1.0 + c64 * (ys * ys).sum(1))
        bx = -A * dsig / (x0 * (x0 + y0))
        by = A * dsig / (y0 * (x0 + y0))
    else:
        sq = (diff * diff).sum(1)
        if manifold == 1:
            ax = 1.0 - c64 * (xs * xs).sum(1)
            ay = 1.0 - c64 * (ys * ys).sum(1)
            q = c64 * sq / (ax * ay)
            t, h = torch.sqrt(q), torch.sqrt(1.0 + q)
            d = 2.0 * torch.asinh(t) / sc
            pos = q > 0
            A = torch.where(pos, 2.0 * sc / torch.where(pos, t * h * ax * ay, 1.0), zero)
            bx, by = A * c64 * sq / ax, A * c64 * sq / ay
        else:
            d = torch.sqrt(sq)
            A = torch.where(sq > 0, 1.0 / torch.where(sq > 0, d, 1.0), zero)
            bx, by = zero, zero
    gx = torch.zeros_like(x, dtype=torch.float64)
    gy = torch.zeros_like(y, dtype=torch.float64)
    gx[:, off:] = A[:, None] * diff + bx[:, None] * xs
    gy[:, off:] = -A[:, None] * diff + by[:, None] * ys
    return d, gx, gy


@gpu_op("hypervldd::triton_row_stats_backward")
def triton_row_stats_backward(
    g_lse: torch.Tensor,
    g_w: torch.Tensor,
    g_r: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor,
    tau: torch.Tensor,
    values: torch.Tensor,
    positives: torch.Tensor,
    lse: torch.Tensor,
    w: torch.Tensor,
    spos: torch.Tensor,
    rank_temperature: float,
    manifold: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(x, y, c, tau, values)`` given the output gradients and outputs, by
    owner passes recomputing the tiles (memory O((N + M)(D' + K)))."""
    n, m, k = x.shape[0], y.shape[0], values.shape[1]
    want_rank = rank_temperature > 0
    if n == 0 or m == 0:
        return (
            torch.zeros_like(x), torch.zeros_like(y), torch.zeros_like(c),
            torch.zeros_like(tau), torch.zeros_like(values),
        )  # fmt: skip
    dt = x.dtype
    c64, tau64 = c_scalar(c, x), c_scalar(tau, x)
    v = values.to(dt).contiguous()
    gw = g_w.to(dt).contiguous()
    base = (g_lse.to(dt) - (gw * w.to(dt)).sum(1)).contiguous()
    zeros = x.new_zeros((n,))
    sp = spos.to(dt).contiguous() if want_rank else zeros
    gr = g_r.to(dt).contiguous() if want_rank else zeros
    gsp = x.new_zeros((n,))
    gv = x.new_zeros((m, k))
    inv_t = _inv_t(rank_temperature, x)
    extra = (tau64, lse.contiguous(), base, sp, gr, positives, inv_t, gw, v, k, gv, gsp)
    flags = {"HAS_V": k > 0, "HAS_RANK": want_rank, "BKV": _block_k(k)}
    gx, sgd = owner_grad(_row_stats_bwd, x, y, c64, manifold, extra, SWAP=False, **flags)
    gy, _ = owner_grad(_row_stats_bwd, y, x, c64, manifold, extra, SWAP=True, **flags)
    sgd = sgd.sum()
    if want_rank:
        # The positive logits s_pos = -d(x_i, y_p(i)) / tau (difference form, float64).
        gpos = -gsp.double() / tau64[0]
        dpos, ga, gb = _paired_slow_grad(x, y.index_select(0, positives), c64[0], manifold)
        gx = gx + (gpos[:, None] * ga).to(dt)
        gy = gy.index_add(0, positives, (gpos[:, None] * gb).to(dt))
        sgd = sgd + (gpos * dpos).sum()
    gtau = (-sgd / tau64[0]).reshape(tau.shape).to(tau.dtype)
    return gx, gy, grad_c(manifold, c, sgd, x, gx, y, gy), gtau, gv.to(values.dtype)


def _setup(ctx, inputs, output) -> None:  # noqa: ANN001
    x, y, c, tau, values, positives, rank_t, manifold = inputs
    lse, w, r, spos = output
    ctx.save_for_backward(x, y, c, tau, values, positives, lse, w, spos)
    ctx.rank_t, ctx.manifold = rank_t, manifold
    ctx.mark_non_differentiable(spos)


def _backward(ctx, g_lse, g_w, g_r, _g_spos):  # noqa: ANN001, ANN202
    x, y, c, tau, values, pos, lse, w, spos = ctx.saved_tensors
    g_lse = torch.zeros_like(lse) if g_lse is None else g_lse
    g_w = torch.zeros_like(w) if g_w is None else g_w
    g_r = torch.zeros_like(spos) if g_r is None else g_r
    gx, gy, gc, gt, gv = torch.ops.hypervldd.triton_row_stats_backward(
        g_lse, g_w, g_r, x, y, c, tau, values, pos, lse, w, spos, ctx.rank_t, ctx.manifold
    )
    return needed_grads(ctx, gx, gy, gc, gt, gv)


triton_row_stats.register_autograd(_backward, setup_context=_setup)
