"""Straightforward dense float64 formulas: the oracles of the loss tests."""

from __future__ import annotations

import torch


def lorentz_lift(u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """expmap0 written out: space ``sinh(sqrt(c)|u|) u / (sqrt(c)|u|)``, time from space."""
    c = torch.as_tensor(c, dtype=u.dtype)
    r = c.sqrt() * u.norm(dim=-1, keepdim=True)
    xs = torch.sinh(r) / r * u
    return torch.cat([torch.sqrt(1 / c + (xs * xs).sum(-1, keepdim=True)), xs], -1)


def poincare_lift(u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    c = torch.as_tensor(c, dtype=u.dtype)
    r = c.sqrt() * u.norm(dim=-1, keepdim=True)
    return torch.tanh(r) / r * u


def lorentz_pdist(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """``acosh(-c <x, y>_L) / sqrt(c)`` for all pairs (fine in float64 for distinct points).

    The time coordinates are re-derived from the space parts (the package convention:
    space is authoritative, so the given time carries no gradient).
    """
    c = torch.as_tensor(c, dtype=x.dtype)
    x0 = torch.sqrt(1 / c + (x[:, 1:] ** 2).sum(-1, keepdim=True))
    y0 = torch.sqrt(1 / c + (y[:, 1:] ** 2).sum(-1, keepdim=True))
    inner = x[:, 1:] @ y[:, 1:].T - x0 @ y0.T
    return torch.acosh((-c * inner).clamp_min(1.0)) / c.sqrt()


def poincare_pdist(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    c = torch.as_tensor(c, dtype=x.dtype)
    sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    ax = 1 - c * (x * x).sum(-1)
    ay = 1 - c * (y * y).sum(-1)
    return torch.acosh(1 + 2 * c * sq / (ax[:, None] * ay[None, :])) / c.sqrt()


def euclidean_pdist(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor = 1.0):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1).sqrt()


LIFT = {"lorentz": lorentz_lift, "poincare": poincare_lift, "euclidean": lambda u, c: u}
PDIST = {"lorentz": lorentz_pdist, "poincare": poincare_pdist, "euclidean": euclidean_pdist}


def info_nce(logits: torch.Tensor, t2i: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE with one term per caption, written with explicit loops over captions."""
    n, m = logits.shape
    t2i = torch.arange(m) if t2i is None else t2i
    total = logits.new_zeros(())
    for j in range(m):
        i = int(t2i[j])
        col = logits[:, j]
        row = logits[i, :]
        total = total - (col[i] - torch.log(torch.exp(col).sum()))
        total = total - (row[j] - torch.log(torch.exp(row).sum()))
    return total / (2 * m)
