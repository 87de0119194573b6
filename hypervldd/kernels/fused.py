"""Compiled ops: registration of fake impls and autograd, and the streaming drivers.

Ops (schemas in csrc/ops.cpp unless noted):

- ``hypervldd::pairwise_dist(x, y, c, manifold) -> d``: the fused GEMM + epilogue
  kernel (C++ on CPU). When a gradient is needed, the forward runs
  ``pairwise_dist_factor`` (distances, the per-pair derivative factor ``f``, the mask
  of slow pairs) and autograd (registered in C++, csrc/cpu/pairwise.cpp) saves them;
  ``pairwise_dist_backward`` is then one op: two GEMMs with ``g * f`` per tile of rows
  plus the exact difference-form gradient of the (few) slow pairs, in float64.
- ``hypervldd::contrastive_loss`` / ``contrastive_loss_backward`` and
  ``hypervldd::row_stats`` / ``row_stats_backward``: single compiled ops
  (csrc/cpu/streaming.cpp; on a GPU the Triton ops of .triton) that stream over tiles of at
  most ``64 x tile`` values (CPU) with online log-sum-exp per row; they never hold
  ``N x M``. Backward recomputes each tile. This module registers their fake
  impls and autograd.

Adding a row reduction to ``row_stats`` means one accumulator in the forward
tile loop of csrc/cpu/streaming.cpp (``row_stats_forward``) and its term of the
tile weights in ``row_stats_backward_cpu`` (plus the Triton twins in .triton); the distance
tile, the gradient assembly and the Python side do not change.
"""

from __future__ import annotations

import torch

from .._checks import has_values
from ._autograd import needed_grads
from .reference import RowStats

__all__ = [
    "pairwise_dist_op",
    "contrastive_loss_op",
    "contrastive_loss_parts",
    "row_stats_op",
    "MANIFOLD_CODE",
    "TILE",
]

MANIFOLD_CODE = {"lorentz": 0, "poincare": 1, "euclidean": 2}
_NAMES = {v: k for k, v in MANIFOLD_CODE.items()}
# Columns per tile of the streaming ops (the CPU kernels take 64 rows at a time:
# a 64 x 512 float32 tile is 128 KiB, three of them fit a core's L2).
TILE = 512


# 0-d tensors of the float c and tau values in use, per dtype: building one costs
# about as much as validating a small call (issue 19). Never mutated: the ops read
# them on the host, and autograd only saves them.
_SCALARS: dict[tuple[float, torch.dtype], torch.Tensor] = {}


def _c_tensor(c: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if isinstance(c, torch.Tensor):
        if c.dim() == 0 and c.dtype == like.dtype:
            return c
        return c.reshape(()).to(like.dtype)
    key = (float(c), like.dtype)
    t = _SCALARS.get(key)
    if t is not None:
        return t
    if torch.compiler.is_compiling() or not has_values():
        return torch.tensor(key[0], dtype=like.dtype)  # a traced or fake value: no cache
    with torch.inference_mode(False):  # usable by autograd outside any inference block
        t = torch.tensor(key[0], dtype=like.dtype)
    if len(_SCALARS) < 256:
        _SCALARS[key] = t
    return t


# --------------------------------------------------------------------------- pairwise


@torch.library.register_fake("hypervldd::pairwise_dist")
def _pairwise_fake(x, y, c, manifold, check_points=False):  # noqa: ANN001, ANN202
    torch._check(x.dim() == 2 and y.dim() == 2, lambda: "x and y must be 2-D")
    return x.new_empty((x.shape[0], y.shape[0]))


@torch.library.register_fake("hypervldd::pairwise_dist_factor")
def _factor_fake(x, y, c, manifold, check_points=False):  # noqa: ANN001, ANN202
    n, m = x.shape[0], y.shape[0]
    return x.new_empty((n, m)), x.new_empty((n, m)), x.new_empty((n, m), dtype=torch.bool)


@torch.library.register_fake("hypervldd::pairwise_dist_backward")
def _pd_backward_fake(grad, x, y, c, d, f, mask, manifold):  # noqa: ANN001, ANN202
    return torch.empty_like(x), torch.empty_like(y), torch.empty_like(c)


# The autograd of pairwise_dist is registered in C++ (csrc/cpu/pairwise.cpp): the
# Python form's interpreter time exceeded the backward's arithmetic at N = 128.


#: The start of the ValueError of the compiled op's point check (csrc/cpu/pairwise.cpp).
POINT_RULE_ERROR = "hypervldd point rule: "


def pairwise_dist_op(
    x: torch.Tensor,
    y: torch.Tensor,
    manifold: str,
    c: float | torch.Tensor,
    check_points: bool = False,
) -> torch.Tensor:
    """Validated inputs (same dtype, float32/64) -> compiled ``pairwise_dist``.

    ``check_points``: the op itself applies the point rule of
    :func:`hypervldd._checks.check_points` to ``x`` and ``y`` before any work and raises a
    ``ValueError`` starting with :data:`POINT_RULE_ERROR` (the caller re-raises the full
    message)."""
    return torch.ops.hypervldd.pairwise_dist.default(
        x, y, _c_tensor(c, x), MANIFOLD_CODE[manifold], check_points
    )


# --------------------------------------------------------------------- streaming ops


@torch.library.register_fake("hypervldd::contrastive_loss")
def _contrastive_fake(x, y, c, tau, positives, manifold, tile):  # noqa: ANN001, ANN202
    return x.new_empty(()), x.new_empty((x.shape[0],)), x.new_empty((y.shape[0],))


@torch.library.register_fake("hypervldd::contrastive_loss_backward")
def _contrastive_backward_fake(gloss, x, y, c, tau, pos, row, col, man, tile):  # noqa: ANN001, ANN202
    return torch.empty_like(x), torch.empty_like(y), torch.empty_like(c), torch.empty_like(tau)


def _contrastive_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    x, y, c, tau, positives, manifold, tile = inputs
    _, row, col = output
    ctx.save_for_backward(x, y, c, tau, positives, row, col)
    ctx.manifold, ctx.tile = manifold, tile
    ctx.mark_non_differentiable(row, col)


def _contrastive_backward(ctx, gloss, _grow, _gcol):  # noqa: ANN001, ANN202
    x, y, c, tau, pos, row, col = ctx.saved_tensors
    gx, gy, gc, gt = torch.ops.hypervldd.contrastive_loss_backward(
        gloss, x, y, c, tau, pos, row, col, ctx.manifold, ctx.tile
    )
    return needed_grads(ctx, gx, gy, gc, gt)


torch.library.register_autograd(
    "hypervldd::contrastive_loss", _contrastive_backward, setup_context=_contrastive_setup
)


def contrastive_loss_op(
    x: torch.Tensor,
    y: torch.Tensor,
    manifold: str,
    c: float | torch.Tensor,
    tau: float | torch.Tensor,
    positives: torch.Tensor | None,
    tile: int = TILE,
) -> torch.Tensor:
    """Validated inputs -> the streaming ``hypervldd::contrastive_loss`` op (0-d loss)."""
    return contrastive_loss_parts(x, y, manifold, c, tau, positives, tile)[0]


def contrastive_loss_parts(
    x: torch.Tensor,
    y: torch.Tensor,
    manifold: str,
    c: float | torch.Tensor,
    tau: float | torch.Tensor,
    positives: torch.Tensor | None,
    tile: int = TILE,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, row_lse (N,), col_lse (M,))``: the loss and the log-sum-exps of the
    logits ``-d/tau`` over each row and each column (not differentiable; for
    combining partial results, e.g. across processes)."""
    if positives is None:
        positives = torch.arange(x.shape[0], device=x.device)
    return torch.ops.hypervldd.contrastive_loss(
        x, y, _c_tensor(c, x), _c_tensor(tau, x), positives, MANIFOLD_CODE[manifold], int(tile)
    )


@torch.library.register_fake("hypervldd::row_stats")
def _row_stats_fake(x, y, c, tau, values, positives, rank_temperature, manifold, tile):  # noqa: ANN001, ANN202
    n = x.shape[0]
    want = rank_temperature > 0
    return (
        x.new_empty((n,)),
        x.new_empty((n, values.shape[1])),
        x.new_empty((n,) if want else (0,)),
        x.new_empty((n,) if want else (0,)),
    )


@torch.library.register_fake("hypervldd::row_stats_backward")
def _row_stats_backward_fake(
    g_lse, g_w, g_r, x, y, c, tau, values, pos, lse, w, spos, rank_t, man, tile
):  # noqa: ANN001, ANN202
    return (
        torch.empty_like(x),
        torch.empty_like(y),
        torch.empty_like(c),
        torch.empty_like(tau),
        torch.empty_like(values),
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
    gx, gy, gc, gt, gv = torch.ops.hypervldd.row_stats_backward(
        g_lse, g_w, g_r, x, y, c, tau, values, pos, lse, w, spos,
        ctx.rank_t, ctx.manifold, ctx.tile,
    )  # fmt: skip
    return needed_grads(ctx, gx, gy, gc, gt, gv)


torch.library.register_autograd(
    "hypervldd::row_stats", _row_stats_backward, setup_context=_row_stats_setup
)


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
    lse, w, r, _ = torch.ops.hypervldd.row_stats(
        x, y, _c_tensor(c, x), _c_tensor(tau, x), v, positives, rt, MANIFOLD_CODE[manifold],
        int(tile),
    )  # fmt: skip
    return RowStats(lse, w if values is not None else None, r if rank_temperature else None)
