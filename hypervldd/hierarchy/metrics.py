"""Reconstruction metrics of a hierarchy embedding: mean rank and mean average precision.

Following Nickel & Kiela (NeurIPS 2017, Sec. 4.1), the embedding of the whole
transitive closure is asked to *reconstruct* it: for every node ``u`` the other
nodes are ranked by their distance to ``u``, and the related nodes (ancestors
and descendants of ``u`` in the closure, the graph being undirected for a
symmetric distance) should come first.

* **rank** of a related pair ``(u, v)``: ``1 +`` the number of *unrelated* nodes
  strictly closer to ``u`` than ``v``; the mean rank averages it over all
  related ordered pairs (1 is perfect).
* **average precision** of ``u``: the mean, over its related nodes ``v``, of the
  fraction of related nodes among those at most as far as ``v``; MAP averages
  it over all nodes with at least one relation (1 is perfect).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Reconstruction", "adjacency", "reconstruction"]


@dataclass(frozen=True)
class Reconstruction:
    """Mean rank (>= 1, lower is better) and MAP (in (0, 1], higher is better)."""

    mean_rank: float
    map: float


def adjacency(num_nodes: int, edges: torch.Tensor | list[tuple[int, int]]) -> torch.Tensor:
    """Symmetric boolean relation matrix ``(N, N)`` of a closure's ``(E, 2)`` edges."""
    e = torch.as_tensor(edges, dtype=torch.long).reshape(-1, 2)
    if e.numel() and (int(e.min()) < 0 or int(e.max()) >= num_nodes):
        raise ValueError(
            f"edges must index nodes in [0, {num_nodes}), got range "
            f"[{int(e.min())}, {int(e.max())}]"
        )
    adj = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    adj[e[:, 0], e[:, 1]] = True
    adj[e[:, 1], e[:, 0]] = True
    adj.fill_diagonal_(False)
    return adj


@torch.no_grad()
def reconstruction(dist: torch.Tensor, adj: torch.Tensor, *, chunk: int = 256) -> Reconstruction:
    """Mean rank and MAP from a distance matrix.

    Args:
        dist: ``(N, N)`` distances between all embedded nodes (any unit).
        adj: ``(N, N)`` boolean symmetric relation matrix (:func:`adjacency`).
        chunk: rows processed at a time (memory ``chunk x N``).
    """
    if dist.dim() != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f"dist must be a square (N, N) matrix, got shape {tuple(dist.shape)}")
    if adj.shape != dist.shape or adj.dtype != torch.bool:
        raise ValueError(
            f"adj must be a boolean matrix of the same shape as dist {tuple(dist.shape)}, "
            f"got {tuple(adj.shape)} {adj.dtype}"
        )
    if not bool(torch.isfinite(dist).all()):
        raise ValueError("dist must be finite")
    n = dist.shape[0]
    rank_sum, rank_count, ap_sum, ap_count = 0.0, 0, 0.0, 0
    for i in range(0, n, chunk):
        d = dist[i : i + chunk].double().clone()
        pos = adj[i : i + chunk]
        rows = torch.arange(d.shape[0])
        d[rows, rows + i] = float("inf")  # a node is not its own candidate
        has = pos.any(1)
        # Rank among unrelated nodes: count unrelated nodes strictly closer.
        neg_d = torch.where(pos, torch.full_like(d, float("inf")), d)
        neg_d[rows, rows + i] = float("inf")
        neg_sorted = neg_d.sort(dim=1).values
        closer = torch.searchsorted(neg_sorted, d.contiguous(), right=False)
        rank_sum += float((closer + 1).double()[pos].sum())
        rank_count += int(pos.sum())
        # Average precision over the full ranking (ties broken by index, as a sort does).
        order = d.argsort(dim=1, stable=True)
        lab = pos.gather(1, order).double()
        hits = lab.cumsum(1)
        positions = torch.arange(1, n + 1, dtype=torch.float64).expand_as(hits)
        prec = hits / positions
        ap = (prec * lab).sum(1) / lab.sum(1).clamp_min(1)
        ap_sum += float(ap[has].sum())
        ap_count += int(has.sum())
    if rank_count == 0:
        raise ValueError("adj has no relations: nothing to reconstruct")
    return Reconstruction(rank_sum / rank_count, ap_sum / ap_count)
