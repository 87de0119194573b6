"""The Poincaré ball as a manifold class; math in :mod:`.poincare_math`."""

from __future__ import annotations

import torch

from . import poincare_math as math
from .base import Manifold
from .geoopt_parity import PoincareGeooptMethods
from .lorentz import _flat_size, _two_dims

__all__ = ["PoincareBall"]


class PoincareBall(PoincareGeooptMethods, Manifold):
    """Ball ``{x : c|x|^2 < 1}`` in ``R^D`` with the conformal metric, curvature ``-c``.

    Same parametrisation as geoopt's ``PoincareBall(c)``.

    >>> import torch
    >>> from hypervldd.manifolds import PoincareBall
    >>> ball = PoincareBall(c=1.0)
    >>> x = ball.lift(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))  # exp map at the origin
    >>> tuple(x.shape), round(float(ball.dist(x[0], x[1])), 4)
    ((2, 2), 2.0)
    """

    name = "PoincareBall"

    def _residual(self, x: torch.Tensor, rtol: float) -> tuple[bool, str | None]:
        a = math.alpha(x, self._c(x))
        if bool((a <= 0).any()):
            worst = float((1.0 - a).max())
            return False, f"points must satisfy c|x|^2 < 1, got c|x|^2 up to {worst:.6g}"
        return True, None

    def _tangent_residual(
        self, x: torch.Tensor, u: torch.Tensor, rtol: float
    ) -> tuple[bool, str | None]:
        return True, None

    def lambda_x(self, x: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Conformal factor ``2 / (1 - c|x|^2)``."""
        out = math.lambda_x(x, self._c(x))
        return out if keepdim else out.squeeze(-1)

    def inner(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        v: torch.Tensor | None = None,
        *,
        keepdim: bool = False,
    ) -> torch.Tensor:
        out = math.inner(x, u, v, self._c(x))
        return out if keepdim else out.squeeze(-1)

    def norm(self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        out = math.norm(x, u, self._c(x))
        return out if keepdim else out.squeeze(-1)

    def mobius_add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return math.mobius_add(x, y, self._c(x))

    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        x, y = self._point(x, "x"), self._point(y, "y")
        self._same_dim((x, "x"), (y, "y"))
        return math.dist(x, y, self._c(x), keepdim=keepdim)

    def dist0(self, x: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        x = self._point(x, "x")
        return math.dist0(x, self._c(x), keepdim=keepdim)

    def pairwise_dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """All-pairs distances ``(N, M)`` (reference path)."""
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
        u = self._vector(u, "u")
        return math.expmap0(u, self._c(u))

    def logmap0(self, x: torch.Tensor) -> torch.Tensor:
        x = self._point(x, "x")
        return math.logmap0(x, self._c(x))

    def lift(self, v: torch.Tensor) -> torch.Tensor:
        """Euclidean features ``(..., D)`` to points ``(..., D)``: ``expmap0(v)``."""
        return self.expmap0(v)

    def unlift(self, x: torch.Tensor) -> torch.Tensor:
        return self.logmap0(x)

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return math.transp(x, y, v, self._c(v))

    def transp0(self, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return math.transp0(y, v, self._c(v))

    def transp0back(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return math.transp0back(x, v, self._c(v))

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        return math.projx(x, self._c(x))

    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return u

    def egrad2rgrad(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return math.egrad2rgrad(x, u, self._c(u))

    def origin(self, *size, dtype=None, device=None, seed=None) -> torch.Tensor:  # noqa: ANN001
        return math.origin(*_flat_size(size), dtype=dtype, device=device)

    def random(
        self,
        *size: int,
        radius: float | torch.Tensor = 1.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Points at hyperbolic distance ``radius`` from the origin."""
        return math.random(
            *_flat_size(size),
            radius=radius,
            c=self.c.detach(),
            dtype=dtype,
            device=device,
            generator=generator,
        )

    random_normal = random
