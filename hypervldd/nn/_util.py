"""Small helpers shared by the layers."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from .._checks import check_finite, check_tensor
from ..manifolds import Euclidean, Klein, Lorentz, PoincareBall
from ..manifolds.base import Manifold

__all__ = ["make_manifold", "BoundedPositive", "c_of", "ManifoldLayer"]

_BY_NAME = {"lorentz": Lorentz, "poincare": PoincareBall, "klein": Klein, "euclidean": Euclidean}


def make_manifold(
    manifold: str | Manifold,
    c: float = 1.0,
    learn_c: bool = False,
    allowed: tuple[type, ...] = (Lorentz, PoincareBall, Euclidean),
    name: str = "manifold",
) -> Manifold:
    """A manifold instance from a name (``"lorentz"``, ``"poincare"``, ``"euclidean"``) or as given.

    Passing an instance shares its (possibly learnable) curvature between layers.
    """
    if isinstance(manifold, str):
        key = manifold.lower()
        if key not in _BY_NAME or _BY_NAME[key] not in allowed:
            names = sorted(k for k, v in _BY_NAME.items() if v in allowed)
            raise ValueError(f"{name} must be one of {names} or an instance, got {manifold!r}")
        return _BY_NAME[key](c, learnable=learn_c)
    if not isinstance(manifold, allowed):
        raise TypeError(
            f"{name} must be an instance of {[t.__name__ for t in allowed]}, "
            f"got {type(manifold).__name__}"
        )
    return manifold


def c_of(manifold: Manifold, like: torch.Tensor) -> torch.Tensor:
    """The manifold's curvature as a 0-d tensor in ``like``'s compute dtype and device."""
    dt = torch.float64 if like.dtype == torch.float64 else torch.float32
    return manifold.c.to(dtype=dt, device=like.device)


class ManifoldLayer(nn.Module):
    """What the layers on one manifold share: the manifold, the input check, the repr.

    The manifold is built from a name or shared as given (:func:`make_manifold`, among
    the subclass's ``manifolds``); ``sizes`` (``out_features=...`` or
    ``num_classes=...``) become attributes beside ``in_features`` and make up the repr.
    With ``time_coord`` (the Lorentz model) input points carry ``in_features + 1``
    coordinates, time first.
    """

    manifolds: ClassVar[tuple[type, ...]] = ()
    time_coord: ClassVar[bool] = False

    def __init__(
        self,
        manifold: str | Manifold,
        c: float,
        learn_c: bool,
        in_features: int,
        **sizes: int,
    ) -> None:
        super().__init__()
        self.manifold = make_manifold(manifold, c, learn_c, self.manifolds)
        self.in_features = in_features
        for key, value in sizes.items():
            setattr(self, key, value)
        self._sizes = ("in_features", *sizes)

    def _points(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` checked (a finite tensor of this layer's points) and the curvature ``c``."""
        x = check_tensor(x, "x")
        width = self.in_features + int(self.time_coord)
        if x.shape[-1] != width:
            what = (
                f"be Lorentz points with last dimension {width} (time + {self.in_features} space)"
                if self.time_coord
                else f"have last dimension {width}"
            )
            raise ValueError(f"x must {what}, got shape {tuple(x.shape)}")
        check_finite(x, "x")
        x = self.manifold._point(x, "x")
        return x, c_of(self.manifold, x)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={getattr(self, key)}" for key in self._sizes)


class BoundedPositive(nn.Module):
    """A positive scalar, fixed or learnable, kept inside ``(lo, hi)`` smoothly.

    ``value = exp(log lo + (log hi - log lo) sigmoid(raw))``: no clamp, so the
    gradient never switches off abruptly and the optimiser state stays consistent.

    Args:
        init: initial value, strictly inside the bounds.
        bounds: ``(lo, hi)`` with ``0 < lo < init < hi``.
        learnable: make ``raw`` a parameter.
        name: used in error messages.

    >>> from hypervldd.nn import BoundedPositive
    >>> tau = BoundedPositive(0.07, (0.01, 1.0))
    >>> round(tau().item(), 4), len(list(tau.parameters()))
    (0.07, 1)
    """

    def __init__(
        self,
        init: float,
        bounds: tuple[float, float],
        *,
        learnable: bool = True,
        name: str = "value",
    ) -> None:
        super().__init__()
        lo, hi = float(bounds[0]), float(bounds[1])
        init = float(init)
        if not (0.0 < lo < init < hi < math.inf):
            raise ValueError(
                f"{name} must satisfy 0 < lo < {name} < hi, got {name}={init} and bounds={bounds}"
            )
        self.bounds = (lo, hi)
        self.learnable = bool(learnable)
        frac = (math.log(init) - math.log(lo)) / (math.log(hi) - math.log(lo))
        raw = torch.tensor(math.log(frac / (1.0 - frac)), dtype=torch.get_default_dtype())
        if self.learnable:
            self.raw = nn.Parameter(raw)
        else:
            self.register_buffer("raw", raw)

    def forward(self) -> torch.Tensor:
        lo, hi = math.log(self.bounds[0]), math.log(self.bounds[1])
        return torch.exp(lo + (hi - lo) * torch.sigmoid(self.raw))

    def extra_repr(self) -> str:
        return (
            f"value={float(self().detach()):.4g}, bounds={self.bounds}, learnable={self.learnable}"
        )
