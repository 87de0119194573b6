"""Pure-PyTorch references of the compiled ops: the oracle and the fallback."""

from __future__ import annotations

import torch

from ..manifolds import lorentz_math

__all__ = ["lorentz_dist_rows_ref"]


def lorentz_dist_rows_ref(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """Lorentz distance of paired rows ``d(x_i, y_i)``: ``(N, D+1), (N, D+1) -> (N,)``."""
    return lorentz_math.dist(x, y, c)
