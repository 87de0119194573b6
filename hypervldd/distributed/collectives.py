"""Collectives of the package: sharding, autograd-aware gathers, partial-statistics combines.

Gradient convention (the one ``DistributedDataParallel`` expects): a loss computed from
gathered rows returns the *global* value on every rank, and the mean over ranks of the
per-rank gradients of a replicated parameter is the single-process gradient. The backward
of :func:`all_gather_rows` sums the incoming gradients over ranks and keeps this rank's
rows; with a loss replicated on every rank, the gradient of a rank's own rows is then
``world_size`` times their single-process gradient, which the averaging of DDP (or of
:func:`all_reduce_mean_`) turns into the exact gradient of the parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ._group import get_rank, get_world_size, guarded

__all__ = [
    "shard_range",
    "shard_rows",
    "gather_sizes",
    "all_gather_rows",
    "all_reduce_mean_",
    "all_reduce_row_stats",
    "broadcast_",
    "broadcast_module_",
    "broadcast_object",
]


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(start, stop)`` of rank ``rank``'s contiguous shard of ``n`` rows.

    Shards follow the rank order and differ in size by at most one (the first
    ``n % world_size`` ranks hold one more row); their concatenation in rank order is
    ``0..n``, so gathered results keep the single-process row order. A shard is empty when
    ``n < world_size``.
    """
    if isinstance(n, bool) or int(n) < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if int(world_size) < 1 or not 0 <= int(rank) < int(world_size):
        raise ValueError(
            f"rank must lie in [0, world_size), got rank={rank}, world_size={world_size}"
        )
    base, extra = divmod(int(n), int(world_size))
    start = int(rank) * base + min(int(rank), extra)
    return start, start + base + (1 if int(rank) < extra else 0)


def shard_rows(x: torch.Tensor, group: Any = None) -> torch.Tensor:
    """This rank's contiguous shard of the rows of ``x`` ``(N, ...)`` (a view)."""
    lo, hi = shard_range(x.shape[0], get_rank(group), get_world_size(group))
    return x[lo:hi]


def gather_sizes(n: int, group: Any, device: torch.device | str = "cpu") -> list[int]:
    """Row counts of every rank of ``group`` (one small all-gather)."""
    world = dist.get_world_size(group)
    mine = torch.tensor([int(n)], dtype=torch.int64, device=device)
    out = [torch.empty_like(mine) for _ in range(world)]
    with guarded("all_gather of row counts", group):
        dist.all_gather(out, mine, group=group)
    return [int(t.item()) for t in out]


def _gather_padded(x: torch.Tensor, group: Any) -> tuple[torch.Tensor, list[int]]:
    sizes = gather_sizes(x.shape[0], group, x.device)
    most = max(sizes)
    x = x.detach().contiguous()
    if x.shape[0] < most:
        # all_gather needs one shape on every rank: pad, then drop the padding.
        x = torch.cat([x, x.new_zeros((most - x.shape[0], *x.shape[1:]))])
    bufs = [torch.empty_like(x) for _ in sizes]
    with guarded("all_gather of rows", group):
        dist.all_gather(bufs, x, group=group)
    return torch.cat([b[:s] for b, s in zip(bufs, sizes, strict=True)]), sizes


class _AllGatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any) -> torch.Tensor:
        out, sizes = _gather_padded(x, group)
        ctx.group, ctx.sizes, ctx.rank = group, sizes, dist.get_rank(group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        # Every rank's loss may depend on this rank's rows: their gradient is the sum of
        # the per-rank contributions.
        grad = grad.contiguous().clone()
        with guarded("all_reduce of gathered gradients", ctx.group):
            dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        lo = sum(ctx.sizes[: ctx.rank])
        return grad[lo : lo + ctx.sizes[ctx.rank]], None


def all_gather_rows(x: torch.Tensor, group: Any) -> torch.Tensor:
    """Concatenate the rows of ``x`` ``(N_r, ...)`` of every rank in rank order, ``(sum N_r, ...)``.

    Ranks may hold different numbers of rows (also none). Differentiable when ``x``
    requires grad (every rank must then run the backward, or the others wait until the
    timeout): see the module docstring for the gradient convention.
    """
    if x.requires_grad and torch.is_grad_enabled():
        return _AllGatherRows.apply(x, group)
    return _gather_padded(x, group)[0]


def all_reduce_mean_(tensors: Sequence[torch.Tensor | None], group: Any) -> None:
    """Average tensors over ``group`` in place, in one collective (``None`` entries skipped).

    All tensors must share a dtype and device. Used for the gradients of replicated
    parameters (the synthetic set), which then stay identical on every rank.
    """
    ts = [t for t in tensors if t is not None]
    if not ts:
        return
    flat = torch.cat([t.reshape(-1) for t in ts])
    with guarded("all_reduce of gradients", group):
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    flat /= dist.get_world_size(group)
    i = 0
    for t in ts:
        t.copy_(flat[i : i + t.numel()].view_as(t))
        i += t.numel()


@torch.no_grad()
def all_reduce_row_stats(
    lse: torch.Tensor, weighted: torch.Tensor | None, group: Any
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Combine per-rank partial row statistics into those of the union of the shards.

    Each rank holds, for the same ``R`` rows, its shard's log-sum-exp ``lse_r`` ``(R,)``
    and its shard-normalised weighted mean ``P_r`` ``(R, K)`` (``None`` if there is none),
    as :func:`hypervldd.kernels.row_stats` returns them. The union has

    .. math:: \mathrm{lse} = \log \sum_r e^{\mathrm{lse}_r}, \qquad
              P = \sum_r e^{\mathrm{lse}_r - \mathrm{lse}} P_r,

    computed stably with the running maximum ``m = max_r lse_r``: one MAX all-reduce of
    ``lse``, then one SUM all-reduce of ``[e^{lse_r - m}, e^{lse_r - m} P_r]``. An empty
    shard (``lse_r = -inf``, ``P_r = 0``) drops out; a row empty on every rank stays
    ``-inf`` with ``P = 0``. Equal to the single-process statistics up to rounding.
    """
    m = lse.detach().clone()
    with guarded("all_reduce (max) of row log-sum-exp", group):
        dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
    finite = torch.isfinite(m)
    shift = torch.where(finite, m, torch.zeros_like(m))
    e = torch.exp(lse - shift)  # exp(-inf) = 0 for an empty shard
    parts = [e[:, None]]
    if weighted is not None:
        parts.append(e[:, None] * weighted)
    buf = torch.cat(parts, 1)
    with guarded("all_reduce (sum) of row statistics", group):
        dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=group)
    s = buf[:, 0]
    pos = s > 0
    out_lse = torch.where(
        pos, shift + torch.log(torch.where(pos, s, torch.ones_like(s))), -math.inf
    )
    out_w = None
    if weighted is not None:
        denom = torch.where(pos, s, torch.ones_like(s))[:, None]
        out_w = torch.where(pos[:, None], buf[:, 1:] / denom, torch.zeros_like(buf[:, 1:]))
    return out_lse, out_w


@torch.no_grad()
def broadcast_(tensors: Sequence[torch.Tensor], group: Any, src: int = 0) -> None:
    """Overwrite ``tensors`` on every rank with those of group rank ``src``, in place."""
    src_global = dist.get_global_rank(group, src) if group is not None else src
    with guarded(f"broadcast from rank {src}", group):
        for t in tensors:
            buf = t.detach().contiguous()
            dist.broadcast(buf, src=src_global, group=group)
            if buf.data_ptr() != t.data_ptr():
                t.copy_(buf)


def broadcast_module_(module: nn.Module, group: Any, src: int = 0) -> None:
    """Make ``module``'s parameters and buffers equal to those of rank ``src``, in place."""
    broadcast_([*module.parameters(), *module.buffers()], group, src)


def broadcast_object(obj: Any, group: Any, src: int = 0) -> Any:
    """Rank ``src``'s picklable ``obj`` on every rank (small objects: metrics, paths).

    The object travels pickled between the processes of one job; nothing is read from
    files, so the package's rule that loading never unpickles is untouched.
    """
    src_global = dist.get_global_rank(group, src) if group is not None else src
    box = [obj]
    with guarded(f"broadcast of an object from rank {src}", group):
        dist.broadcast_object_list(box, src=src_global, group=group)
    return box[0]
