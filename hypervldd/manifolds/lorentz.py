"""The Lorentz (hyperboloid) model as a manifold class; math in :mod:`.lorentz_math`."""

from __future__ import annotations

import torch

from . import lorentz_math as math
from .base import Manifold
from .geoopt_args import along_dim, manifold_tensor, point_size
from .geoopt_parity import LorentzGeooptMethods

__all__ = ["Lorentz"]


class Lorentz(LorentzGeooptMethods, Manifold):
    """Hyperboloid ``{x : <x, x>_L = -1/c, x0 > 0}`` in ``R^{D+1}``, curvature ``-c``.

    Points are ``(..., D+1)`` tensors, time first. ``c > 0``; geoopt's
    ``Lorentz(k)`` is the same manifold with ``k = 1/c`` (see :attr:`k`), and
    ``Lorentz(k=...)`` builds it from geoopt's parameter. The methods take geoopt's
    ``dim=`` and ``project=`` keywords (docs/geometry.md lists what differs).

    Args:
        c: curvature magnitude.
        learnable: learn ``c`` (see :class:`~hypervldd.manifolds.Curvature`).
        bounds: bounds of a learnable ``c``.
        k: geoopt's ``k = 1/c`` instead of ``c`` (give one of the two).

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

    def __init__(
        self,
        c: float | None = None,
        *,
        learnable: bool = False,
        bounds: tuple[float, float] | None = None,
        k: float | None = None,
    ) -> None:
        if c is not None and k is not None:
            raise ValueError(f"give c or geoopt's k = 1/c, not both (got c={c!r}, k={k!r})")
        if k is not None:
            k = float(k)
            if not k > 0.0 or k == float("inf"):
                raise ValueError(f"k must be a finite number > 0 (k = 1/c), got {k!r}")
            c = 1.0 / k
        super().__init__(1.0 if c is None else c, learnable=learnable, bounds=bounds)

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

    @along_dim("u", "v", reduces=True)
    def inner(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        v: torch.Tensor | None = None,
        *,
        keepdim: bool = False,
        dim: int = -1,
    ) -> torch.Tensor:
        """Minkowski inner product of tangent vectors ``u, v`` at ``x`` (``x`` is unused)."""
        v = u if v is None else v
        return math.inner(u, v, keepdim=keepdim)

    @along_dim("x", "u", reduces=True)
    def norm(
        self,
        x: torch.Tensor | None = None,
        u: torch.Tensor | None = None,
        *,
        keepdim: bool = False,
        dim: int = -1,
    ) -> torch.Tensor:
        """Riemannian (Minkowski) norm of a tangent vector, ``(...)``.

        geoopt's ``norm(u)`` and the ``norm(x, u)`` of every other manifold both work:
        with one tensor it is ``u``; with two, the first is the base point, which the
        norm on the hyperboloid does not depend on.

        >>> import torch
        >>> from hypervldd.manifolds import Lorentz
        >>> m = Lorentz()
        >>> x, u = m.origin(3), torch.tensor([0.0, 3.0, 4.0])
        >>> m.norm(u).item(), m.norm(x, u).item()
        (5.0, 5.0)
        """
        if u is None:
            if x is None:
                raise TypeError("norm needs a tangent vector: norm(u) or norm(x, u)")
            x, u = None, x
        return math.norm(self._vector(u, "u"), keepdim=keepdim)

    @along_dim("x", "y", reduces=True)
    def dist(
        self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False, dim: int = -1
    ) -> torch.Tensor:
        """Geodesic distance, ``(...,)``; accurate for close pairs far from the origin."""
        x, y = self._point(x, "x"), self._point(y, "y")
        self._same_dim((x, "x"), (y, "y"))
        return math.dist(x, y, self._c(x), keepdim=keepdim)

    @along_dim("x", reduces=True)
    def dist0(self, x: torch.Tensor, *, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
        """Distance from the origin."""
        x = self._point(x, "x")
        return math.dist0(x, self._c(x), keepdim=keepdim)

    def pairwise_dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """All-pairs distances ``(N, M)`` for ``x (N, D+1)`` and ``y (M, D+1)`` (reference path)."""
        x, y = self._point(x, "x"), self._point(y, "y")
        _two_dims(x, y)
        return math.pairwise_dist(x, y, self._c(x))

    @along_dim("x", "u")
    def expmap(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        *,
        norm_tan: bool = False,
        project: bool = True,
        dim: int = -1,
    ) -> torch.Tensor:
        """Exponential map; the result is always on the hyperboloid (``project`` is geoopt's).

        ``norm_tan=True`` first makes ``u`` tangent at ``x``: its time component is
        re-derived from the space parts, ``u0 = <xs / x0, us>``. Off by default (geoopt's
        default is on): for a radial step far from the origin the Minkowski norm of
        ``u`` is a difference of nearly equal terms, and the ``u0`` that this package's
        maps and optimisers produce is more accurate than a re-derived one.

        >>> import torch
        >>> from hypervldd.manifolds import Lorentz
        >>> m = Lorentz()
        >>> x = m.lift(torch.tensor([0.5, 0.0]))
        >>> y = m.expmap(x, torch.tensor([9.0, 0.0, 1.0]), norm_tan=True)  # u0 re-derived
        >>> round(m.dist(x, y).item(), 4)
        1.0
        """
        x, u = self._point(x, "x"), self._vector(u, "u")
        self._same_dim((x, "x"), (u, "u"))
        if norm_tan:
            u = _tangent_time(x, u, self._c(x))
        return math.expmap(x, u, self._c(x))

    @along_dim("x", "u")
    def retr(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        *,
        norm_tan: bool = False,
        project: bool = True,
        dim: int = -1,
    ) -> torch.Tensor:
        """Retraction: the exponential map, as in geoopt."""
        return self.expmap(x, u, norm_tan=norm_tan, project=project)

    @along_dim("x", "y")
    def logmap(self, x: torch.Tensor, y: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        x, y = self._point(x, "x"), self._point(y, "y")
        self._same_dim((x, "x"), (y, "y"))
        return math.logmap(x, y, self._c(x))

    @along_dim("u")
    def expmap0(self, u: torch.Tensor, *, project: bool = True, dim: int = -1) -> torch.Tensor:
        """Exponential map at the origin; ``u`` is ``(..., D+1)`` with ``u0`` ignored."""
        u = self._vector(u, "u")
        return math.expmap0(u, self._c(u))

    @along_dim("y")
    def logmap0(self, y: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        y = self._point(y, "y")
        return math.logmap0(y, self._c(y))

    def lift(self, v: torch.Tensor) -> torch.Tensor:
        """Euclidean features ``(..., D)`` to points ``(..., D+1)``: ``expmap0((0, v))``."""
        v = self._vector(v, "v")
        return math.expmap0(torch.nn.functional.pad(v, (1, 0)), self._c(v))

    def unlift(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`lift`: the space part of ``logmap0(x)``, ``(..., D)``."""
        return self.logmap0(x)[..., 1:]

    @along_dim("x", "y", "v")
    def transp(
        self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, *, dim: int = -1
    ) -> torch.Tensor:
        return math.transp(x, y, v, self._c(v))

    @along_dim("y", "u")
    def transp0(self, y: torch.Tensor, u: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        return math.transp0(y, u, self._c(u))

    @along_dim("x", "u")
    def transp0back(self, x: torch.Tensor, u: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        return math.transp0back(x, u, self._c(u))

    @along_dim("x")
    def projx(self, x: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        return math.projx(x, self._c(x))

    @along_dim("x", "v")
    def proju(self, x: torch.Tensor, v: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        return math.proju(x, v, self._c(v))

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
        """The origin ``(1/sqrt(c), 0, ..., 0)`` as a ``geoopt.ManifoldTensor`` (``seed`` unused).

        >>> from hypervldd.manifolds import Lorentz
        >>> o = Lorentz(c=4.0).origin(2, 3)
        >>> o.tolist(), o.manifold.name
        ([[0.5, 0.0, 0.0], [0.5, 0.0, 0.0]], 'Lorentz')
        """
        size = point_size(size)
        o = math.origin(*size, c=self.c.detach(), dtype=dtype, device=device)
        return manifold_tensor(o, self)

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
        """Points at distance ``radius`` (default 1) from the origin; ``size`` ends with ``D + 1``.

        Given ``mean`` / ``std`` instead of ``radius``, this is :meth:`random_normal`.
        Returns a ``geoopt.ManifoldTensor``.

        >>> import torch
        >>> from hypervldd.manifolds import Lorentz
        >>> m = Lorentz()
        >>> x = m.random(4, 3, radius=2.0, dtype=torch.float64)
        >>> torch.allclose(m.dist0(x), torch.full((4,), 2.0, dtype=torch.float64))
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
        size = point_size(size)
        x = math.random(
            *size,
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
        """geoopt's ball sampler carried to the hyperboloid, as a ``geoopt.ManifoldTensor``.

        ``size`` ends with ``D + 1``. The point is ``poincare_to_lorentz`` of what
        ``PoincareBall.random_normal`` draws from the same seed: ``expmap0`` of the
        tangent vector ``(0, 2 v)`` with ``v ~ N(mean, std^2 / D)`` per coordinate (the
        ball's metric at its origin is twice the Euclidean one). docs/geometry.md says
        why this is not geoopt's Lorentz sampler.

        >>> import torch
        >>> from hypervldd.manifolds import Lorentz
        >>> m = Lorentz()
        >>> x = m.random_normal(1000, 9, std=0.5, dtype=torch.float64)
        >>> x.manifold is m, 0.8 < m.dist0(x).mean().item() < 1.1
        (True, True)
        """
        size = point_size(size)
        if size[-1] < 2:
            raise ValueError(f"size must end with D + 1 >= 2 coordinates, got {size}")
        space = _normal_tangent(size[:-1] + (size[-1] - 1,), mean, std, dtype, device, generator)
        u = torch.nn.functional.pad(2.0 * space, (1, 0))
        return manifold_tensor(math.expmap0(u, self._c(u)), self)


def _tangent_time(x: torch.Tensor, u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``u`` with its time component set so that ``<x, u>_L = 0``, from the space parts."""
    xs, us = x[..., 1:], u[..., 1:]
    # <xs / x0, us>: xs / x0 is below 1, so no product overflows far from the origin.
    u0 = ((xs / math.time_from_space(xs, c)) * us).sum(-1, keepdim=True)
    batch = torch.broadcast_shapes(u0.shape[:-1], us.shape[:-1])
    return torch.cat([u0.expand(*batch, 1), us.expand(*batch, us.shape[-1])], dim=-1)


def _normal_tangent(
    size: tuple[int, ...],
    mean: float | torch.Tensor,
    std: float | torch.Tensor,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """``N(mean, std^2 / D)`` draws of shape ``size`` (``D = size[-1]``), geoopt's ball law."""
    g = torch.randn(size, dtype=dtype, device=device, generator=generator)
    return g * std / size[-1] ** 0.5 + mean


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
