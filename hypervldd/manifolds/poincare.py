"""The Poincaré ball as a manifold class; math in :mod:`.poincare_math`."""

from __future__ import annotations

import torch

from . import poincare_math as math
from .base import Manifold
from .geoopt_args import along_dim, manifold_tensor, point_size
from .geoopt_parity import PoincareGeooptMethods
from .lorentz import _normal_tangent, _two_dims

__all__ = ["PoincareBall"]


class PoincareBall(PoincareGeooptMethods, Manifold):
    """Ball ``{x : c|x|^2 < 1}`` in ``R^D`` with the conformal metric, curvature ``-c``.

    Same parametrisation as geoopt's ``PoincareBall(c)`` (``k = -c``, see :attr:`k`); the
    methods take geoopt's ``dim=`` and ``project=`` keywords (docs/geometry.md lists what
    differs).

    >>> import torch
    >>> from hypervldd.manifolds import PoincareBall
    >>> ball = PoincareBall(c=1.0)
    >>> x = ball.lift(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))  # exp map at the origin
    >>> tuple(x.shape), round(float(ball.dist(x[0], x[1])), 4)
    ((2, 2), 2.0)
    """

    name = "PoincareBall"

    def _residual(self, x: torch.Tensor, rtol: float) -> tuple[bool, str | None]:
        return _ball_residual(x, self._c(x))

    def _tangent_residual(
        self, x: torch.Tensor, u: torch.Tensor, rtol: float
    ) -> tuple[bool, str | None]:
        return True, None

    @along_dim("x", reduces=True)
    def lambda_x(self, x: torch.Tensor, *, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
        """Conformal factor ``2 / (1 - c|x|^2)``."""
        out = math.lambda_x(x, self._c(x))
        return out if keepdim else out.squeeze(-1)

    @along_dim("x", "u", "v", reduces=True)
    def inner(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        v: torch.Tensor | None = None,
        *,
        keepdim: bool = False,
        dim: int = -1,
    ) -> torch.Tensor:
        out = math.inner(x, u, v, self._c(x))
        return out if keepdim else out.squeeze(-1)

    @along_dim("x", "u", reduces=True)
    def norm(
        self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False, dim: int = -1
    ) -> torch.Tensor:
        out = math.norm(x, u, self._c(x))
        return out if keepdim else out.squeeze(-1)

    @along_dim("x", "y")
    def mobius_add(
        self, x: torch.Tensor, y: torch.Tensor, *, dim: int = -1, project: bool = True
    ) -> torch.Tensor:
        """Möbius addition ``x ⊕ y``; ``project`` (geoopt's default) keeps it inside the ball.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x = torch.tensor([0.5, 0.0])
        >>> ball.mobius_add(x, -x).abs().max().item(), ball.mobius_add(x, torch.zeros(2)).tolist()
        (0.0, [0.5, 0.0])
        """
        out = math.mobius_add(x, y, self._c(x))
        return math.projx(out, self._c(x)) if project else out

    @along_dim("x", "y", reduces=True)
    def dist(
        self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False, dim: int = -1
    ) -> torch.Tensor:
        x, y = self._point(x, "x"), self._point(y, "y")
        self._same_dim((x, "x"), (y, "y"))
        return math.dist(x, y, self._c(x), keepdim=keepdim)

    @along_dim("x", reduces=True)
    def dist0(self, x: torch.Tensor, *, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
        x = self._point(x, "x")
        return math.dist0(x, self._c(x), keepdim=keepdim)

    def pairwise_dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """All-pairs distances ``(N, M)`` (reference path)."""
        x, y = self._point(x, "x"), self._point(y, "y")
        _two_dims(x, y)
        return math.pairwise_dist(x, y, self._c(x))

    @along_dim("x", "u")
    def expmap(
        self, x: torch.Tensor, u: torch.Tensor, *, project: bool = True, dim: int = -1
    ) -> torch.Tensor:
        """Exponential map; the result is always inside the ball (``project`` is geoopt's)."""
        x, u = self._point(x, "x"), self._vector(u, "u")
        self._same_dim((x, "x"), (u, "u"))
        return math.expmap(x, u, self._c(x))

    @along_dim("x", "y")
    def logmap(self, x: torch.Tensor, y: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        x, y = self._point(x, "x"), self._point(y, "y")
        self._same_dim((x, "x"), (y, "y"))
        return math.logmap(x, y, self._c(x))

    @along_dim("u")
    def expmap0(self, u: torch.Tensor, *, dim: int = -1, project: bool = True) -> torch.Tensor:
        u = self._vector(u, "u")
        return math.expmap0(u, self._c(u))

    @along_dim("x")
    def logmap0(self, x: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        x = self._point(x, "x")
        return math.logmap0(x, self._c(x))

    def lift(self, v: torch.Tensor) -> torch.Tensor:
        """Euclidean features ``(..., D)`` to points ``(..., D)``: ``expmap0(v)``."""
        return self.expmap0(v)

    def unlift(self, x: torch.Tensor) -> torch.Tensor:
        return self.logmap0(x)

    @along_dim("x", "y", "v")
    def transp(
        self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, *, dim: int = -1
    ) -> torch.Tensor:
        return math.transp(x, y, v, self._c(v))

    @along_dim("y", "u")
    def transp0(self, y: torch.Tensor, u: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        return math.transp0(y, u, self._c(u))

    @along_dim("y", "u")
    def transp0back(self, y: torch.Tensor, u: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        """Transport ``u`` from the point ``y`` back to the origin (geoopt's argument names)."""
        return math.transp0back(y, u, self._c(u))

    @along_dim("x", "u", "v")
    def transp_follow_retr(
        self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor, *, dim: int = -1
    ) -> torch.Tensor:
        return self.transp(x, self.retr(x, u), v)

    @along_dim("x", "u", "v")
    def expmap_transp(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        v: torch.Tensor,
        *,
        dim: int = -1,
        project: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.expmap(x, u, project=project)
        return y, self.transp(x, y, v)

    @along_dim("x", "u", "v")
    def retr_transp(
        self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor, *, dim: int = -1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.expmap_transp(x, u, v)

    @along_dim("x", "u")
    def retr(self, x: torch.Tensor, u: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        """Retraction: the exact exponential map (geoopt's ball uses ``projx(x + u)``).

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> y = ball.retr(torch.zeros(2), torch.tensor([0.25, 0.0]))  # |u|_x = 0.5
        >>> round(ball.dist0(y).item(), 4)
        0.5
        """
        return self.expmap(x, u)

    @along_dim("x")
    def projx(self, x: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        return math.projx(x, self._c(x))

    @along_dim("x", "u")
    def proju(self, x: torch.Tensor, u: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        return u

    @along_dim("x", "u")
    def egrad2rgrad(self, x: torch.Tensor, u: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        return math.egrad2rgrad(x, u, self._c(u))

    def origin(
        self,
        *size: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        seed: int | None = 42,
    ) -> torch.Tensor:
        """The origin (zeros) as a ``geoopt.ManifoldTensor`` (``seed`` is unused, as in geoopt).

        >>> from hypervldd.manifolds import PoincareBall
        >>> o = PoincareBall().origin(2)
        >>> o.tolist(), o.manifold.name
        ([0.0, 0.0], 'PoincareBall')
        """
        return manifold_tensor(math.origin(*point_size(size), dtype=dtype, device=device), self)

    def random(
        self,
        *size: int,
        radius: float | torch.Tensor | None = None,
        mean: float | torch.Tensor | None = None,
        std: float | torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Points at hyperbolic distance ``radius`` (default 1) from the origin.

        Given ``mean`` / ``std`` instead of ``radius``, this is :meth:`random_normal`
        (what geoopt's ``PoincareBall.random`` is). Returns a ``geoopt.ManifoldTensor``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x = ball.random(4, 3, radius=2.0, dtype=torch.float64)
        >>> torch.allclose(ball.dist0(x), torch.full((4,), 2.0, dtype=torch.float64))
        True
        """
        if mean is not None or std is not None:
            if radius is not None:
                raise ValueError("give radius, or mean/std (random_normal), not both")
            return self.random_normal(
                *size,
                mean=0.0 if mean is None else mean,
                std=1.0 if std is None else std,
                dtype=dtype,
                device=device,
                generator=generator,
            )
        x = math.random(
            *point_size(size),
            radius=1.0 if radius is None else radius,
            c=self.c.detach(),
            dtype=dtype,
            device=device,
            generator=generator,
        )
        return manifold_tensor(x, self)

    def random_normal(
        self,
        *size: int,
        mean: float | torch.Tensor = 0.0,
        std: float | torch.Tensor = 1.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """geoopt's sampler: ``expmap0(v)`` with ``v ~ N(mean, std^2 / D)`` per coordinate.

        Draws ``torch.randn(size)`` once, as geoopt does, so the same seed gives the same
        points. Returns a ``geoopt.ManifoldTensor``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x = ball.random_normal(1000, 8, std=0.5, dtype=torch.float64)
        >>> x.manifold is ball, 0.8 < ball.dist0(x).mean().item() < 1.1
        (True, True)
        """
        v = _normal_tangent(point_size(size), mean, std, dtype, device, generator)
        return manifold_tensor(math.expmap0(v, self._c(v)), self)


def _ball_residual(x: torch.Tensor, c: float | torch.Tensor) -> tuple[bool, str | None]:
    # The open ball c|x|^2 < 1 is the domain of both the Poincare and the Klein models.
    a = math.alpha(x, c)
    if bool((a <= 0).any()):
        worst = float((1.0 - a).max())
        return False, f"points must satisfy c|x|^2 < 1, got c|x|^2 up to {worst:.6g}"
    return True, None
