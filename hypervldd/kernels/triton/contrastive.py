"""``hypervldd::triton_contrastive_loss`` and its backward: the streaming symmetric
hyperbolic InfoNCE on the GPU, never ``N x M``.

Forward: two owner passes of one kernel (:func:`_lse_pass`), online log-sum-exp over
column tiles (Inf-CL style): rows of x against all of y give the row log-sum-exps and
the positive logits; rows of y against all of x give the column log-sum-exps. The loss
is assembled from these O(N + M) vectors. Backward: the owner-pass gradient kernel with
the tile weights ``dL/dd`` of the loss, recomputing every tile (x owner, then y owner).
Memory O((N + M) D'). Same semantics as the C++ ``hypervldd::contrastive_loss``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._autograd import needed_grads
from ._host import c_scalar, gpu_op, launch, operand, precision, row_data, tile_configs
from ._tile import (
    curvature,
    dist_tile,
    grad_tile,
    load_rows,
    online_lse_step,
    store_owner_grad,
)
from .pairwise import grad_c, owner_grad

__all__ = ["lse_pass", "triton_contrastive_loss", "triton_contrastive_loss_backward"]


@triton.autotune(configs=tile_configs(), key=["N", "M", "D", "MAN", "IS64"])
@triton.jit
def _lse_pass(
    x_ptr, sx0, sx1, xr0, xr1, xr64,
    y_ptr, sy0, sy1, yr0, yr1, yr64,
    c_ptr, tau_ptr, pos_ptr, lse_ptr, lpos_ptr, N, M, D,
    MAN: tl.constexpr, IS64: tl.constexpr, PREC: tl.constexpr, HAS_POS: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    """Row log-sum-exp of ``s = -d / tau`` over all of y for BM rows of x, and (HAS_POS)
    the logit of each row's positive column. A NaN logit makes the row's lse NaN."""
    offs_a = tl.program_id(0) * BM + tl.arange(0, BM)
    c, sc, c64, sc64 = curvature(c_ptr, x_ptr)
    inv_tau = 1.0 / tl.load(tau_ptr).to(x_ptr.dtype.element_ty)
    ra0, ra1, ra64 = load_rows(xr0, xr1, xr64, offs_a, N)
    if HAS_POS:
        pos = tl.load(pos_ptr + offs_a, offs_a < N, -1)
    mx = tl.full((BM,), float("-inf"), dtype=x_ptr.dtype.element_ty)
    sm = tl.zeros((BM,), dtype=x_ptr.dtype.element_ty)
    lp = tl.zeros((BM,), dtype=x_ptr.dtype.element_ty)
    n_nan = tl.zeros((BM,), dtype=tl.int32)
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
        if HAS_POS:
            lp += tl.sum(tl.where(valid & (pos[:, None] == offs_b[None, :]), s, 0.0), 1)
    lse = mx + tl.log(sm)
    lse = tl.where(n_nan > 0, float("nan"), lse)
    tl.store(lse_ptr + offs_a, lse, offs_a < N)
    if HAS_POS:
        tl.store(lpos_ptr + offs_a, lp, offs_a < N)


def lse_pass(
    x: torch.Tensor,
    y: torch.Tensor,
    c64: torch.Tensor,
    tau64: torch.Tensor,
    manifold: int,
    positives: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lse (N,), positive logit (N,))`` of ``s = -d(x_i, y_j) / tau`` over j."""
    n, m = x.shape[0], y.shape[0]
    lse = x.new_empty((n,))
    lpos = x.new_zeros((n,))
    xr, yr = row_data(x, c64, manifold), row_data(y, c64, manifold)
    xa, ya = operand(x, manifold), operand(y, manifold)
    pos = positives if positives is not None else lse  # any pointer: unread

    def grid(meta):  # noqa: ANN001, ANN202
        return (triton.cdiv(n, meta["BM"]),)

    launch(
        _lse_pass, grid,
        xa, xa.stride(0), xa.stride(1), *xr,
        ya, ya.stride(0), ya.stride(1), *yr,
        c64, tau64, pos, lse, lpos, n, m, xa.shape[1],
        MAN=manifold, IS64=x.dtype == torch.float64, PREC=precision(x.dtype),
        HAS_POS=positives is not None,
    )  # fmt: skip
    return lse, lpos


@gpu_op("hypervldd::triton_contrastive_loss")
def triton_contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor,
    tau: torch.Tensor,
    positives: torch.Tensor,
    manifold: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss (), row lse (N,), col lse (M,))`` of the symmetric InfoNCE over logits
    ``-d / tau`` with positive columns ``positives`` ``(N,)`` (int64), as the C++ op.

    >>> # doctest: +SKIP  (needs TRITON_INTERPRET=1 on a CPU)
    >>> loss, row, col = torch.ops.hypervldd.triton_contrastive_loss(x, y, c, tau, pos, 0)
    """
    torch._check(x.shape[1] == y.shape[1], lambda: "x and y must have the same columns")
    n, m = x.shape[0], y.shape[0]
    if n == 0:
        return x.new_zeros(()), x.new_full((0,), float("-inf")), x.new_full((m,), float("-inf"))
    torch._check(m > 0, lambda: "contrastive_loss needs M >= 1 columns")
    c64, tau64 = c_scalar(c, x), c_scalar(tau, x)
    row, lpos = lse_pass(x, y, c64, tau64, manifold, positives)
    col, _ = lse_pass(y, x, c64, tau64, manifold, None)
    lp = lpos.double()
    total = (row.double() - lp).sum() + (col.double().index_select(0, positives) - lp).sum()
    return (total / (2 * n)).to(x.dtype), row, col


@triton.autotune(configs=tile_configs(), key=["N", "M", "D", "MAN", "IS64"])
@triton.jit
def _contrastive_bwd(
    x_ptr, sx0, sx1, xr0, xr1, xr64,
    y_ptr, sy0, sy1, yr0, yr1, yr64,
    c_ptr, gs_ptr, tau_ptr, row_ptr, col_ptr, cnt_ptr, pos_ptr,
    gx_ptr, sgx0, sgx1, sgd_ptr, N, M, D,
    MAN: tl.constexpr, IS64: tl.constexpr, PREC: tl.constexpr, BD: tl.constexpr,
    SWAP: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    """Owner pass of the loss gradient. The owner side is x (SWAP False: row_lse and
    positives are indexed by the owner, col_lse and counts by the other side) or y
    (SWAP True: the other way round). Tile weights ``G = dL/dd``:
    ``-gs/tau [exp(s - row_i) + cnt_j exp(s - col_j)] + [j = p(i)] 2 gs/tau``."""
    pid_d = tl.program_id(1)
    offs_a = tl.program_id(0) * BM + tl.arange(0, BM)
    offs_d = pid_d * BD + tl.arange(0, BD)
    c, sc, c64, sc64 = curvature(c_ptr, x_ptr)
    tau = tl.load(tau_ptr).to(x_ptr.dtype.element_ty)
    gs = tl.load(gs_ptr).to(x_ptr.dtype.element_ty)
    ra0, ra1, ra64 = load_rows(xr0, xr1, xr64, offs_a, N)
    ma = offs_a < N
    if SWAP:
        col_o = tl.load(col_ptr + offs_a, ma, 0.0)[:, None]
        cnt_o = tl.load(cnt_ptr + offs_a, ma, 0.0)[:, None]
    else:
        row_o = tl.load(row_ptr + offs_a, ma, 0.0)[:, None]
        pos_o = tl.load(pos_ptr + offs_a, ma, -1)[:, None]
    acc = tl.zeros((BM, BD), dtype=x_ptr.dtype.element_ty)
    acc64 = tl.zeros((BM, BD), dtype=tl.float64)
    sgd = tl.zeros((BM,), dtype=tl.float64)
    for j0 in range(0, M, BN):
        offs_b = j0 + tl.arange(0, BN)
        mb = offs_b < M
        rb0, rb1, rb64 = load_rows(yr0, yr1, yr64, offs_b, M)
        d, f, ok, sq, A, Ba, valid = dist_tile(
            x_ptr, sx0, sx1, offs_a, N, ra0, ra1, ra64,
            y_ptr, sy0, sy1, offs_b, M, rb0, rb1, rb64,
            D, c, sc, c64, sc64, MAN, IS64, BM, BN, BK, PREC,
        )  # fmt: skip
        s = -d / tau
        if SWAP:
            row_k = tl.load(row_ptr + offs_b, mb, 0.0)[None, :]
            pos_k = tl.load(pos_ptr + offs_b, mb, -1)[None, :]
            col_i, cnt_i = col_o, cnt_o
            is_pos = pos_k == offs_a[:, None]
        else:
            row_k = row_o
            col_i = tl.load(col_ptr + offs_b, mb, 0.0)[None, :]
            cnt_i = tl.load(cnt_ptr + offs_b, mb, 0.0)[None, :]
            is_pos = pos_o == offs_b[None, :]
        G = (-gs / tau) * (tl.exp(s - row_k) + cnt_i * tl.exp(s - col_i))
        G = tl.where(is_pos, G + 2.0 * gs / tau, G)
        G = tl.where(valid, G, 0.0)
        sgd += tl.sum(tl.where(valid, G * d, 0.0).to(tl.float64), 1)
        acc, acc64 = grad_tile(
            acc, acc64, G, f, ok, sq, A, Ba, ra0, ra1, rb0, c,
            x_ptr, sx0, sx1, offs_a, N, y_ptr, sy0, sy1, offs_b, M, offs_d, D, MAN, PREC,
        )  # fmt: skip
    store_owner_grad(gx_ptr, sgx0, sgx1, acc, acc64, sgd_ptr, sgd, offs_a, offs_d, N, D, pid_d)


@gpu_op("hypervldd::triton_contrastive_loss_backward")
def triton_contrastive_loss_backward(
    gloss: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor,
    tau: torch.Tensor,
    positives: torch.Tensor,
    row: torch.Tensor,
    col: torch.Tensor,
    manifold: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(x, y, c, tau)`` of ``gloss * loss``, recomputing the tiles (two owner
    passes; memory O((N + M) D'))."""
    n, m = x.shape[0], y.shape[0]
    if n == 0 or m == 0:
        return torch.zeros_like(x), torch.zeros_like(y), torch.zeros_like(c), torch.zeros_like(tau)
    c64, tau64 = c_scalar(c, x), c_scalar(tau, x)
    gs = (gloss.reshape(1).to(device=x.device, dtype=torch.float64)) / (2 * n)
    cnt = torch.zeros(m, dtype=x.dtype, device=x.device).index_add_(
        0, positives, torch.ones(n, dtype=x.dtype, device=x.device)
    )
    row, col = row.contiguous(), col.contiguous()
    extra = (gs, tau64, row, col, cnt, positives)
    gx, sgd = owner_grad(_contrastive_bwd, x, y, c64, manifold, extra, SWAP=False)
    gy, _ = owner_grad(_contrastive_bwd, y, x, c64, manifold, extra, SWAP=True)
    sgd = sgd.sum()
    gtau = (-sgd / tau64).reshape(tau.shape).to(tau.dtype)
    return gx, gy, grad_c(manifold, c, sgd, x, gx, y, gy), gtau


def _setup(ctx, inputs, output) -> None:  # noqa: ANN001
    x, y, c, tau, positives, manifold = inputs
    _, row, col = output
    ctx.save_for_backward(x, y, c, tau, positives, row, col)
    ctx.manifold = manifold
    ctx.mark_non_differentiable(row, col)


def _backward(ctx, gloss, _grow, _gcol):  # noqa: ANN001, ANN202
    x, y, c, tau, pos, row, col = ctx.saved_tensors
    gx, gy, gc, gt = torch.ops.hypervldd.triton_contrastive_loss_backward(
        gloss, x, y, c, tau, pos, row, col, ctx.manifold
    )
    return needed_grads(ctx, gx, gy, gc, gt)


triton_contrastive_loss.register_autograd(_backward, setup_context=_setup)
