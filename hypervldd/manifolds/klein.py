"""The Klein (Beltrami-Klein) model as a manifold class; math in :mod:`.klein_math`."""

from __future__ import annotations

import torch

from . import klein_math as math
from .base import Manifold
from .lorentz import _flat_size, _two_dims
from .poincare import _ball_residual

__all__ = ["Klein"]


class Klein(Manifold):
    """Ball ``{k : c|k|^2 < 1}`` in ``R^D`` with straight-line geodesics, curvature ``-c``.

    The metric is ``<u, v> / alpha + c <k, u><k, v> / alpha^2`` with ``alpha = 1 -
    c|k|^2`` (Euclidean at the origin, so ``lift(v)`` lies at distance ``|v|``). Its
    natural aggregation is the Einstein midpoint (:func:`hypervldd.nn.einstein_midpoint`).
    Coordinates lose precision twice as fast as the ball's: :meth:`projx` caps the
    radius at about 5.9 in float32 and 15.9 in float64 (c = 1); see
    :mod:`.klein_math` and docs/geometry.md.

    Args:
        c: curvature magnitude.
        learnable: learn ``c`` (see :class:`~hypervldd.manifolds.Curvature`).
        bounds: bounds of a learnable ``c``.

    >>> import torch
    >>> from hypervldd.manifolds import Klein
    >>> m = Klein(c=1.0)
    >>> x = m.lift(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))  # exp map at the origin
    >>> tuple(x.shape), round(float(m.dist(x[0], x[1])), 4)
    ((2, 2), 1.0)
    >>> u = torch.tensor([0.0, 0.5])  # at x[1] its length is 0.5 cosh(1)
    >>> y = m.expmap(x[1], u)
    >>> round(float(m.norm(x[1], u)), 4), round(float(m.dist(x[1], y)), 4)
    (0.7715, 0.7715)
    """

    name = "Klein"

    def _residual(self, x: torch.Tensor, rtol: float) -> tuple[bool, str | None]:
        return _ball_residual(x, self._c(x))

    def _tangent_residual(
        self, x: torch.Tensor, u: torch.Tensor, rtol: float
    ) -> tuple[bool, str | None]:
        return True, None

    def lorentz_factor(self, x: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """``gamma = 1 / sqrt(1 - c|x|^2)``, ``(...,)`` (the Einstein midpoint's weights)."""
        out = math.gamma(self._point(x, "x"), self._c(x))
        return out if keepdim else out.squeeze(-1)

    def inner(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        v: torch.Tensor | None = None,
        *,
        keepdim: bool = False,
    ) -> torch.Tensor:
        """The Klein metric at ``x`` on tangent vectors ``u, v`` (``v`` defaults to ``u``)."""
        out = math.inner(x, u, v, self._c(x))
        return out if keepdim else out.squeeze(-1)

    def norm(self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Riemannian norm of ``u`` at ``x``."""
        out = math.norm(x, self._vector(u, "u"), self._c(x))
        return out if keepdim else out.squeeze(-1)

    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Geodesic distance, ``(...,)``; cancellation-free for close pairs."""
        x, y = self._point(x, "x"), self._point(y, "y")
        self._same_dim((x, "x"), (y, "y"))
        return math.dist(x, y, self._c(x), keepdim=keepdim)

    def dist0(self, x: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Distance from the origin."""
        x = self._point(x, "x")
        return math.dist0(x, self._c(x), keepdim=keepdim)

    def pairwise_dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """All-pairs distances ``(N, M)`` for ``x (N, D)``, ``y (M, D)`` (reference path)."""
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
        """Inverse of :meth:`lift`: ``logmap0(x)``, ``(..., D)``."""
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
        """The origin (zeros), ``size`` ending with ``D``."""
        return math.origin(*_flat_size(size), dtype=dtype, device=device)

    def random(
        self,
        *size: int,
        radius: float | torch.Tensor = 1.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Points at hyperbolic distance ``radius`` from the origin; ``size`` ends with ``D``."""
        return math.random(
            *_flat_size(size),
            radius=radius,
            c=self.c.detach(),
            dtype=dtype,
            device=device,
            generator=generator,
        )

    random_normal = random
