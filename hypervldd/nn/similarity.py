"""Distance-similarity head: logits ``-d(x, y) / tau`` for contrastive losses."""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_finite, check_tensor
from ..manifolds import Euclidean, Lorentz, PoincareBall, flat_math, lorentz_math, poincare_math
from ..manifolds.base import Manifold
from ._util import BoundedPositive, c_of, make_manifold

__all__ = ["DistanceSimilarity"]


class DistanceSimilarity(nn.Module):
    """All-pairs logits ``-d(x_i, y_j) / tau`` on a manifold, with a learnable temperature.

    Distances are the manifolds' pointwise forms (accurate for close pairs far
    from the origin, the positives of a contrastive loss), evaluated in row
    chunks, with a zero subgradient at zero distance. For large batches the fused
    kernels of :mod:`hypervldd.kernels` are the faster route.

    Args:
        manifold: ``"lorentz"``, ``"poincare"``, ``"euclidean"`` or an instance
            (share it with the :class:`~hypervldd.nn.ExpMapHead` producing the points).
        tau: initial temperature (in units of distance), ``> 0``.
        learn_tau: learn ``tau`` within ``tau_bounds``.
        tau_bounds: default ``(0.01, 1.0)`` around CLIP's usual range.

    Shapes: ``x (N, P)``, ``y (M, P)`` -> ``(N, M)`` with ``P = D + 1`` on Lorentz.

    >>> import torch
    >>> from hypervldd.manifolds import Lorentz
    >>> from hypervldd.nn import DistanceSimilarity
    >>> sim = DistanceSimilarity("lorentz", tau=0.5)
    >>> x = Lorentz().lift(torch.randn(3, 4))
    >>> logits = sim(x, x)  # (3, 3) = -d(x_i, x_j) / tau
    >>> tuple(logits.shape), bool(torch.allclose(logits.diagonal(), torch.zeros(3), atol=1e-3))
    ((3, 3), True)
    """

    def __init__(
        self,
        manifold: str | Manifold = "lorentz",
        *,
        c: float = 1.0,
        learn_c: bool = False,
        tau: float = 0.07,
        learn_tau: bool = True,
        tau_bounds: tuple[float, float] = (0.01, 1.0),
    ) -> None:
        super().__init__()
        self.manifold = make_manifold(manifold, c, learn_c)
        self.tau = BoundedPositive(tau, tau_bounds, learnable=learn_tau, name="tau")

    def distances(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """All-pairs distances ``(N, M)``."""
        for t, name in ((x, "x"), (y, "y")):
            check_tensor(t, name)
            if t.dim() != 2:
                raise ValueError(f"{name} must be 2-D (rows, coordinates), got {tuple(t.shape)}")
            check_finite(t, name)
        if x.shape[-1] != y.shape[-1]:
            raise ValueError(
                f"x and y must share the last dimension, got {x.shape[-1]}, {y.shape[-1]}"
            )
        m = self.manifold
        if isinstance(m, Euclidean):
            return flat_math.euclidean_pairwise_dist(x, y)
        if isinstance(m, Lorentz):
            fn = lorentz_math.dist
        elif isinstance(m, PoincareBall):
            fn = poincare_math.dist
        else:
            return m.pairwise_dist(x, y)
        # The manifolds' GEMM-based pairwise paths take sqrt of a clamped value, whose
        # gradient at zero distance is NaN; the pointwise distances have a zero
        # subgradient there and are exact for close pairs. Rows are processed in
        # chunks so that the broadcast temporaries stay below ~4M elements.
        c = c_of(m, x)
        rows = max(1, (1 << 22) // max(1, y.shape[0] * x.shape[-1]))
        out = [fn(x[i : i + rows, None, :], y[None, :, :], c) for i in range(0, len(x), rows)]
        return torch.cat(out, 0) if out else x.new_zeros((0, y.shape[0]))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = self.distances(x, y)
        return -d / self.tau().to(d.dtype)
