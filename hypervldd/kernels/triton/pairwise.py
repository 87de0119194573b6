"""``hypervldd::triton_pairwise_dist`` and its backward: the GPU pairwise distance.

Forward: one program per ``(BM, BN)`` output tile (GEMM + epilogue + in-kernel slow
path, :func:`._tile.dist_tile`). Backward: "owner" passes, so every output has one
writer (no atomics, deterministic): a grid over (row blocks of x, column blocks of D)
recomputes the tiles of its rows against all of y and assembles ``dL/dx``; the same
kernel with x and y swapped (and the incoming gradient transposed) gives ``dL/dy``.
Same semantics as the C++ ``hypervldd::pairwise_dist`` (see docs/kernels.md).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._host import block_d, c_scalar, gpu_op, launch, operand, precision, row_data, tile_configs
from ._tile import curvature, dist_tile, grad_tile, load_rows, store_owner_grad

__all__ = ["triton_pairwise_dist", "triton_pairwise_dist_backward"]


@triton.autotune(configs=tile_configs(), key=["N", "M", "D", "MAN", "IS64"])
@triton.jit
def _pairwise_fwd(
    x_ptr, sx0, sx1, xr0, xr1, xr64,
    y_ptr, sy0, sy1, yr0, yr1, yr64,
    c_ptr, out_ptr, so0, so1, N, M, D,
    MAN: tl.constexpr, IS64: tl.constexpr, PREC: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    offs_a = tl.program_id(0) * BM + tl.arange(0, BM)
    offs_b = tl.program_id(1) * BN + tl.arange(0, BN)
    c, sc, c64, sc64 = curvature(c_ptr, x_ptr)
    ra0, ra1, ra64 = load_rows(xr0, xr1, xr64, offs_a, N)
    rb0, rb1, rb64 = load_rows(yr0, yr1, yr64, offs_b, M)
    d, f, ok, sq, A, Ba, valid = dist_tile(
        x_ptr, sx0, sx1, offs_a, N, ra0, ra1, ra64,
        y_ptr, sy0, sy1, offs_b, M, rb0, rb1, rb64,
        D, c, sc, c64, sc64, MAN, IS64, BM, BN, BK, PREC,
    )  # fmt: skip
    tl.store(out_ptr + offs_a[:, None] * so0 + offs_b[None, :] * so1, d, valid)


@triton.autotune(configs=tile_configs(), key=["N", "M", "D", "MAN", "IS64"])
@triton.jit
def _pairwise_bwd(
    x_ptr, sx0, sx1, xr0, xr1, xr64,
    y_ptr, sy0, sy1, yr0, yr1, yr64,
    c_ptr, g_ptr, sg0, sg1, gx_ptr, sgx0, sgx1, sgd_ptr, N, M, D,
    MAN: tl.constexpr, IS64: tl.constexpr, PREC: tl.constexpr, BD: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    """Owner pass: ``dL/dx`` for BM rows of x and BD of its columns, and (column block 0)
    the per-row ``sum_j G_ij d_ij`` in float64 (for the gradient of c)."""
    pid_d = tl.program_id(1)
    offs_a = tl.program_id(0) * BM + tl.arange(0, BM)
    offs_d = pid_d * BD + tl.arange(0, BD)
    c, sc, c64, sc64 = curvature(c_ptr, x_ptr)
    ra0, ra1, ra64 = load_rows(xr0, xr1, xr64, offs_a, N)
    acc = tl.zeros((BM, BD), dtype=x_ptr.dtype.element_ty)
    acc64 = tl.zeros((BM, BD), dtype=tl.float64)
    sgd = tl.zeros((BM,), dtype=tl.float64)
    for j0 in range(0, M, BN):
        offs_b = j0 + tl.arange(0, BN)
        rb0, rb1, rb64 = load_rows(yr0, yr1, yr64, offs_b, M)
        d, f, ok, sq, A, Ba, valid = dist_tile(
            x_ptr, sx0, sx1, offs_a, N, ra0, ra1, ra64,
            y_ptr, sy0, sy1, offs_b, M, rb0, rb1, rb64,
            D, c, sc, c64, sc64, MAN, IS64, BM, BN, BK, PREC,
        )  # fmt: skip
        G = tl.load(g_ptr + offs_a[:, None] * sg0 + offs_b[None, :] * sg1, valid, 0.0)
        sgd += tl.sum(tl.where(valid, G * d, 0.0).to(tl.float64), 1)
        acc, acc64 = grad_tile(
            acc, acc64, G, f, ok, sq, A, Ba, ra0, ra1, rb0, c,
            x_ptr, sx0, sx1, offs_a, N, y_ptr, sy0, sy1, offs_b, M, offs_d, D, MAN, PREC,
        )  # fmt: skip
    store_owner_grad(gx_ptr, sgx0, sgx1, acc, acc64, sgd_ptr, sgd, offs_a, offs_d, N, D, pid_d)


def _check(x: torch.Tensor, y: torch.Tensor, manifold: int) -> None:
    torch._check(x.dim() == 2 and y.dim() == 2, lambda: "x and y must be 2-D")
    torch._check(x.shape[1] == y.shape[1], lambda: "x and y must have the same columns")
    torch._check(x.dtype == y.dtype, lambda: "x and y must share a dtype")
    torch._check(manifold in (0, 1, 2), lambda: f"manifold code must be 0, 1 or 2, not {manifold}")


@gpu_op("hypervldd::triton_pairwise_dist")
def triton_pairwise_dist(
    x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, manifold: int
) -> torch.Tensor:
    """All-pairs distances ``(N, D'), (M, D') -> (N, M)`` by the Triton kernel.

    ``c``: one-element tensor (curvature ``-c``); ``manifold``: 0 Lorentz, 1 Poincaré,
    2 Euclidean. Inputs validated by :func:`hypervldd.kernels.pairwise_dist`.

    >>> # doctest: +SKIP  (needs TRITON_INTERPRET=1 on a CPU)
    >>> torch.ops.hypervldd.triton_pairwise_dist(x, y, torch.tensor(1.0), 0)
    """
    _check(x, y, manifold)
    n, m = x.shape[0], y.shape[0]
    out = x.new_empty((n, m))
    if n == 0 or m == 0:
        return out
    c64 = c_scalar(c, x)
    xr, yr = row_data(x, c64, manifold), row_data(y, c64, manifold)
    xa, ya = operand(x, manifold), operand(y, manifold)
    dim = xa.shape[1]

    def grid(meta):  # noqa: ANN001, ANN202
        return (triton.cdiv(n, meta["BM"]), triton.cdiv(m, meta["BN"]))

    launch(_pairwise_fwd, grid,
        xa, xa.stride(0), xa.stride(1), *xr,
        ya, ya.stride(0), ya.stride(1), *yr,
        c64, out, out.stride(0), out.stride(1), n, m, dim,
        MAN=manifold, IS64=x.dtype == torch.float64, PREC=precision(x.dtype),
    )  # fmt: skip
    return out


def owner_grad(
    launch_kernel,  # noqa: ANN001
    x: torch.Tensor,
    y: torch.Tensor,
    c64: torch.Tensor,
    manifold: int,
    extra: tuple,
    **constexprs: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs one owner pass ``launch_kernel`` (rows of ``x`` against all of ``y``) and
    returns ``(dL/dx (N, D'), per-row sum G d (N,) float64)``."""
    n, m = x.shape[0], y.shape[0]
    gx = torch.zeros_like(x)
    sgd = torch.zeros(n, dtype=torch.float64, device=x.device)
    xr, yr = row_data(x, c64, manifold), row_data(y, c64, manifold)
    xa, ya = operand(x, manifold), operand(y, manifold)
    ga = operand(gx, manifold)
    dim = xa.shape[1]
    bd = block_d(dim)

    def grid(meta):  # noqa: ANN001, ANN202
        return (triton.cdiv(n, meta["BM"]), triton.cdiv(dim, bd))

    launch(launch_kernel, grid,
        xa, xa.stride(0), xa.stride(1), *xr,
        ya, ya.stride(0), ya.stride(1), *yr,
        c64, *extra, ga, ga.stride(0), ga.stride(1), sgd, n, m, dim,
        MAN=manifold, IS64=x.dtype == torch.float64, PREC=precision(x.dtype), BD=bd,
        **constexprs,
    )  # fmt: skip
    return gx, sgd


def grad_c(
    manifold: int,
    c: torch.Tensor,
    sgd: torch.Tensor,
    x: torch.Tensor,
    gx: torch.Tensor,
    y: torch.Tensor,
    gy: torch.Tensor,
) -> torch.Tensor:
    """dL/dc from ``d(x, y; c) = D(sqrt(c) x, sqrt(c) y) / sqrt(c)``:
    ``(-sum G d + sum x.gx + sum y.gy) / (2c)`` (zero for Euclidean)."""
    if manifold == 2:
        return torch.zeros_like(c)
    xg = (x.double() * gx.double()).sum() + (y.double() * gy.double()).sum()
    gc = (xg - sgd) / (2.0 * c.double())
    return gc.reshape(c.shape).to(c.dtype)


@gpu_op("hypervldd::triton_pairwise_dist_backward")
def triton_pairwise_dist_backward(
    grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, manifold: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(x, y, c)`` of ``sum(grad * pairwise_dist(x, y, c))`` by two owner
    passes (tiles recomputed, never more than the ``(N, M)`` incoming gradient)."""
    _check(x, y, manifold)
    n, m = x.shape[0], y.shape[0]
    if n == 0 or m == 0:
        return torch.zeros_like(x), torch.zeros_like(y), torch.zeros_like(c)
    g = grad.to(x.dtype)
    c64 = c_scalar(c, x)
    gx, sgd = owner_grad(_pairwise_bwd, x, y, c64, manifold, (g, g.stride(0), g.stride(1)))
    gy, _ = owner_grad(_pairwise_bwd, y, x, c64, manifold, (g, g.stride(1), g.stride(0)))
    return gx, gy, grad_c(manifold, c, sgd.sum(), x, gx, y, gy)


def _setup(ctx, inputs, output) -> None:  # noqa: ANN001
    x, y, c, man = inputs
    ctx.save_for_backward(x, y, c)
    ctx.man = man


def _backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN202
    x, y, c = ctx.saved_tensors
    gx, gy, gc = torch.ops.hypervldd.triton_pairwise_dist_backward(grad, x, y, c, ctx.man)
    return gx, gy, gc if ctx.needs_input_grad[2] else None, None


triton_pairwise_dist.register_autograd(_backward, setup_context=_setup)
