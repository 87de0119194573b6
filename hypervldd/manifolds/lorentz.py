"""The Lorentz (hyperboloid) model as a manifold class; math in :mod:`.lorentz_math`."""

from __future__ import annotations

import torch

from . import lorentz_math as math
from .base import Manifold
from .geoopt_parity import LorentzGeooptMethods

__all__ = ["Lorentz"]


class Lorentz(LorentzGeooptMethods, Manifold):
    """Hyperboloid ``{x : <x, x>_L = -1/c, x0 > 0}`` in ``R^{D+1}``, curvature ``-c``.

    Points are ``(..., D+1)`` tensors, time first. ``c > 0``; geoopt's
    ``Lorentz(k)`` is the same manifold with ``k = 1/c`` (see :attr:`k`).

    Args:
        c: curvature magnitude.
        learnable: learn ``c`` (see :class:`~hypervldd.manifolds.Curvature`).
        bounds: bounds of a learnable ``c``.

    >>> import torch
    >>> from hypervldd.manifolds import Lorentz
    >>> m = Lorentz(c=1.0)
    >>> x = m.lift(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))  # (2, 2) features -> (2, 3) points
    >>> tuple(x.shape), round(float(m.dist(x[0], x[1])), 4)
    ((2, 3), 1.0)
    >>> torch.allclose(m.logmap0(m.expmap0(torch.tensor([0.0, 0.3, -0.2]))),
    ...                torch.tensor([0.0, 0.3, -0.2]), atol=1e-6)
    True
    """

    name = "Lorentz"
    extra_dim = 1

    @property
    def k(self) -> torch.Tensor:
        """geoopt's parameter ``k = 1/c``."""
        return 1.0 / self.c

    def _residual(self, x: torch.Tensor, rtol: float) -> tuple[bool, str | None]:
        if x.shape[-1] < 2:
            return False, f"Lorentz points need at least 2 coordinates, got shape {tuple(x.shape)}"
        c = self._c(x)
        x = x.to(c.dtype)
        if bool((x[..., 0] <= 0).any()):
            return False, "time coordinate x[..., 0] must be positive (upper sheet)"
        scale = c * (x * x).sum(-1) + 1.0
        res = (c * math.inner(x, x) + 1.0).abs()
        worst = float((res / scale).max())
        if worst > rtol:
            return False, f"relative residual of c<x,x>_L + 1 is {worst:.3g} > {rtol:.3g}"
        return True, None

    def _tangent_residual(
        self, x: torch.Tensor, u: torch.Tensor, rtol: float
    ) -> tuple[bool, str | None]:
        # relative to |x| |u|: the residual of a tangent vector at the origin is
        # u0 / sqrt(c), which must be small against |u|, not against |x0 u0|
        scale = x.norm(dim=-1) * u.norm(dim=-1) + torch.finfo(u.dtype).tiny
        worst = float((math.inner(x, u).abs() / scale).max())
        if worst > rtol:
            return False, f"relative residual of <x,u>_L is {worst:.3g} > {rtol:.3g}"
        return True, None

    def inner(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        v: torch.Tensor | None = None,
        *,
        keepdim: bool = False,
    ) -> torch.Tensor:
        """Minkowski inner product of tangent vectors ``u, v`` at ``x`` (``x`` is unused)."""
        v = u if v is None else v
        return math.inner(u, v, keepdim=keepdim)

    def norm(self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Riemannian norm of a tangent vector."""
        return math.norm(self._vector(u, "u"), keepdim=keepdim)

    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Geodesic distance, ``(...,)``; accurate for close pairs far from the origin."""
        x, y = self._point(x, "x"), self._point(y, "y")
        self._same_dim((x, "x"), (y, "y"))
        return math.dist(x, y, self._c(x), keepdim=keepdim)

    def dist0(self, x: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Distance from the origin."""
        x = self._point(x, "x")
        return math.dist0(x, self._c(x), keepdim=keepdim)

    def pairwise_dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """All-pairs distances ``(N, M)`` for ``x (N, D+1)`` and ``y (M, D+1)`` (reference path)."""
        x, y = self._point(x, "x"), self._point(y, "y")
        _two_dims(x, y)
        return math.pairwise_dist(x, y, self._c(x))

    def expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        x, u = self._point(x, "x"), self._vector(u, "u")
        self._same_dim((x, "x"), (u, "u"))
        return math.expmap(x, u, self._c(x))

    def logmap(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = self._point(x, "x"), self._point(y, "y")
        self._same_dim((x, "x"), (y, "y"))
        return math.logmap(x, y, self._c(x))

    def expmap0(self, u: torch.Tensor) -> torch.Tensor:
        """Exponential map at the origin; ``u`` is ``(..., D+1)`` with ``u0`` ignored."""
        u = self._vector(u, "u")
        return math.expmap0(u, self._c(u))

    def logmap0(self, x: torch.Tensor) -> torch.Tensor:
        x = self._point(x, "x")
        return math.logmap0(x, self._c(x))

    def lift(self, v: torch.Tensor) -> torch.Tensor:
        """Euclidean features ``(..., D)`` to points ``(..., D+1)``: ``expmap0((0, v))``."""
        v = self._vector(v, "v")
        return math.expmap0(torch.nn.functional.pad(v, (1, 0)), self._c(v))

    def unlift(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`lift`: the space part of ``logmap0(x)``, ``(..., D)``."""
        return self.logmap0(x)[..., 1:]

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return math.transp(x, y, v, self._c(v))

    def transp0(self, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return math.transp0(y, v, self._c(v))

    def transp0back(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return math.transp0back(x, v, self._c(v))

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        return math.projx(x, self._c(x))

    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return math.proju(x, u, self._c(u))

    def egrad2rgrad(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return math.egrad2rgrad(x, u, self._c(u))

    def origin(self, *size, dtype=None, device=None, seed=None) -> torch.Tensor:  # noqa: ANN001
        size = _flat_size(size)
        o = math.origin(*size, c=self.c.detach(), dtype=dtype, device=device)
        return o

    def random(
        self,
        *size: int,
        radius: float | torch.Tensor = 1.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Points at distance ``radius`` from the origin; ``size`` ends with ``D + 1``."""
        size = _flat_size(size)
        return math.random(
            *size, radius=radius, c=self.c.detach(), dtype=dtype, device=device, generator=generator
        )

    random_normal = random


def _flat_size(size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        return tuple(size[0])
    return tuple(size)


def _two_dims(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 2 or y.dim() != 2:
        raise ValueError(
            f"x and y must be 2-D (N, D) and (M, D), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"x and y must share the last dimension, got {x.shape[-1]} and {y.shape[-1]}"
        )
