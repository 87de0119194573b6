"""Fixed or learnable curvature magnitude ``c > 0`` with stated bounds.

A learnable curvature is stored as an unconstrained parameter ``raw`` and mapped
smoothly into its bounds::

    c = exp(log_lo + (log_hi - log_lo) * sigmoid(raw))

so ``c`` is positive and strictly inside ``(lo, hi)`` whatever the optimiser does,
and its gradient never vanishes abruptly (a ``clamp`` through ``.data``, as in
MERU, is invisible to the optimiser state). The default bounds are
``(c0 / 10, 10 c0)`` around the initial value ``c0``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_curvature, has_values

__all__ = ["Curvature"]


class Curvature(nn.Module):
    """Curvature magnitude ``c`` (sectional curvature ``-c``; ``+c`` for the sphere).

    Args:
        c: initial value, ``> 0``.
        learnable: make it a parameter (``raw``) trained through the sigmoid map.
        bounds: ``(lo, hi)`` with ``0 < lo < c < hi``; default ``(c / 10, 10 c)``.
            Ignored when not learnable.

    >>> from hypervldd.manifolds import Curvature
    >>> curv = Curvature(2.0, learnable=True)
    >>> round(curv().item(), 4), len(list(curv.parameters()))
    (2.0, 1)
    """

    def __init__(
        self,
        c: float = 1.0,
        *,
        learnable: bool = False,
        bounds: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        c = float(check_curvature(c, "c"))
        self.learnable = bool(learnable)
        if bounds is None:
            bounds = (c / 10.0, c * 10.0)
        lo, hi = (float(b) for b in bounds)
        if not (0.0 < lo < c < hi < math.inf):
            raise ValueError(
                f"bounds must satisfy 0 < lo < c < hi, got bounds={bounds!r} and c={c}"
            )
        self.bounds = (lo, hi)
        self.register_buffer("_log_lo", torch.tensor(math.log(lo), dtype=torch.float64))
        self.register_buffer("_log_hi", torch.tensor(math.log(hi), dtype=torch.float64))
        if self.learnable:
            frac = (math.log(c) - math.log(lo)) / (math.log(hi) - math.log(lo))
            raw = math.log(frac / (1.0 - frac))
            self.raw = nn.Parameter(torch.tensor(raw, dtype=torch.get_default_dtype()))
        else:
            # float64 so that c = 0.7 is not rounded for float64 users; kept so by _apply.
            self.register_buffer("_value", torch.tensor(c, dtype=torch.float64))

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001, ANN202
        # Module.float()/half() would round the fixed value and the log-bounds;
        # device moves still apply. The learnable raw parameter follows the module.
        super()._apply(fn, recurse)
        for name in ("_value", "_log_lo", "_log_hi"):
            buf = getattr(self, name, None)
            if buf is not None and buf.dtype != torch.float64:
                setattr(self, name, buf.to(torch.float64))
        return self

    def forward(self) -> torch.Tensor:
        """The current value of ``c`` as a 0-d tensor."""
        if not self.learnable:
            return self._value
        lo = self._log_lo.to(self.raw.dtype)
        hi = self._log_hi.to(self.raw.dtype)
        return torch.exp(lo + (hi - lo) * torch.sigmoid(self.raw))

    @property
    def value(self) -> torch.Tensor:
        """Same as calling the module."""
        return self()

    def extra_repr(self) -> str:
        value = self().detach()
        # a fake (traced) curvature has no value to print
        v = f"{float(value):.4g}" if has_values(value) else "?"
        if self.learnable:
            return f"c={v}, learnable=True, bounds={self.bounds}"
        return f"c={v}"
