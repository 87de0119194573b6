"""Euclidean space and the sphere behind the same interface as the hyperbolic models."""

from __future__ import annotations

import torch

from . import flat_math as math
from .base import Manifold
from .lorentz import _flat_size, _two_dims

__all__ = ["Euclidean", "Sphere"]


class Euclidean(Manifold):
    """Flat ``R^D``: distances ``|x - y|``, exponential map ``x + u``.

    Has no curvature; the ``c`` argument exists only so that all manifolds share
    one constructor signature, and is fixed at 1 and ignored.

    >>> import torch
    >>> from hypervldd.manifolds import Euclidean
    >>> flat = Euclidean()
    >>> round(float(flat.dist(torch.tensor([0.0, 0.0]), torch.tensor([3.0, 4.0]))), 4)
    5.0
    """

    name = "Euclidean"

    def __init__(self, c: float = 1.0, *, learnable: bool = False, bounds=None) -> None:  # noqa: ANN001
        super().__init__(1.0, learnable=False)

    def _residual(self, x: torch.Tensor, rtol: float) -> tuple[bool, str | None]:
        return True, None

    def _tangent_residual(
        self, x: torch.Tensor, u: torch.Tensor, rtol: float
    ) -> tuple[bool, str | None]:
        return True, None

    def inner(self, x, u, v=None, *, keepdim: bool = False) -> torch.Tensor:  # noqa: ANN001
        v = u if v is None else v
        return (u * v).sum(-1, keepdim=keepdim)

    def norm(self, x, u, *, keepdim: bool = False) -> torch.Tensor:  # noqa: ANN001
        return torch.linalg.vector_norm(u, dim=-1, keepdim=keepdim)

    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        x, y = self._point(x, "x"), self._point(y, "y")
        self._same_dim((x, "x"), (y, "y"))
        return math.euclidean_dist(x, y, keepdim=keepdim)

    def dist0(self, x: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        return torch.linalg.vector_norm(self._point(x, "x"), dim=-1, keepdim=keepdim)

    def pairwise_dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = self._point(x, "x"), self._point(y, "y")
        _two_dims(x, y)
        return math.euclidean_pairwise_dist(x, y)

    def expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return x + u

    def logmap(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y - x

    def expmap0(self, u: torch.Tensor) -> torch.Tensor:
        return u

    def logmap0(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def lift(self, v: torch.Tensor) -> torch.Tensor:
        return self._vector(v, "v")

    def unlift(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def transp(self, x, y, v) -> torch.Tensor:  # noqa: ANN001
        return v

    def transp0(self, y, v) -> torch.Tensor:  # noqa: ANN001
        return v

    def transp0back(self, x, v) -> torch.Tensor:  # noqa: ANN001
        return v

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return u

    def egrad2rgrad(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return u

    def origin(self, *size, dtype=None, device=None, seed=None) -> torch.Tensor:  # noqa: ANN001
        return torch.zeros(*_flat_size(size), dtype=dtype, device=device)

    def random(
        self,
        *size: int,
        radius: float | torch.Tensor = 1.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Points at Euclidean norm ``radius`` in uniform directions."""
        size = _flat_size(size)
        dtype = dtype or torch.get_default_dtype()
        g = torch.randn(*size, dtype=dtype, device=device, generator=generator)
        g = g / torch.linalg.vector_norm(g, dim=-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
        r = torch.as_tensor(radius, dtype=dtype, device=device)
        return g * (r.unsqueeze(-1) if r.dim() > 0 else r)

    random_normal = random

    def extra_repr(self) -> str:
        return ""


class Sphere(Manifold):
    """Sphere ``{x : |x| = 1/sqrt(c)}`` in ``R^D``, curvature ``+c``.

    >>> import math, torch
    >>> from hypervldd.manifolds import Sphere
    >>> s = Sphere(c=1.0)
    >>> x, y = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    >>> round(float(s.dist(x, y)) / math.pi, 4)  # a quarter of a great circle
    0.5
    """

    name = "Sphere"

    def _residual(self, x: torch.Tensor, rtol: float) -> tuple[bool, str | None]:
        c = self._c(x)
        res = (c * (x.to(c.dtype) ** 2).sum(-1) - 1.0).abs()
        worst = float(res.max())
        if worst > rtol:
            return False, f"relative residual of c|x|^2 - 1 is {worst:.3g} > {rtol:.3g}"
        return True, None

    def _tangent_residual(
        self, x: torch.Tensor, u: torch.Tensor, rtol: float
    ) -> tuple[bool, str | None]:
        # relative to |x| |u|: the residual of a tangent vector at the origin is
        # u0 / sqrt(c), which must be small against |u|, not against |x0 u0|
        scale = x.norm(dim=-1) * u.norm(dim=-1) + torch.finfo(u.dtype).tiny
        worst = float(((x * u).sum(-1).abs() / scale).max())
        if worst > rtol:
            return False, f"relative residual of <x,u> is {worst:.3g} > {rtol:.3g}"
        return True, None

    def inner(self, x, u, v=None, *, keepdim: bool = False) -> torch.Tensor:  # noqa: ANN001
        v = u if v is None else v
        return (u * v).sum(-1, keepdim=keepdim)

    def norm(self, x, u, *, keepdim: bool = False) -> torch.Tensor:  # noqa: ANN001
        return torch.linalg.vector_norm(u, dim=-1, keepdim=keepdim)

    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        x, y = self._point(x, "x"), self._point(y, "y")
        self._same_dim((x, "x"), (y, "y"))
        return math.sphere_dist(x, y, self._c(x), keepdim=keepdim)

    def dist0(self, x: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        x = self._point(x, "x")
        o = self.origin(x.shape, dtype=x.dtype, device=x.device)
        return math.sphere_dist(x, o, self._c(x), keepdim=keepdim)

    def pairwise_dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = self._point(x, "x"), self._point(y, "y")
        _two_dims(x, y)
        return math.sphere_pairwise_dist(x, y, self._c(x))

    def expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return math.sphere_expmap(x, u, self._c(x))

    def logmap(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return math.sphere_logmap(x, y, self._c(x))

    def expmap0(self, u: torch.Tensor) -> torch.Tensor:
        """Exponential map at the north pole ``(1/sqrt(c), 0, ...)``; ``u0`` is ignored."""
        u = torch.cat([torch.zeros_like(u[..., :1]), u[..., 1:]], dim=-1)
        return self.expmap(self.origin(u.shape, dtype=u.dtype, device=u.device), u)

    def logmap0(self, x: torch.Tensor) -> torch.Tensor:
        return self.logmap(self.origin(x.shape, dtype=x.dtype, device=x.device), x)

    def lift(self, v: torch.Tensor) -> torch.Tensor:
        """Features ``(..., D)`` to points ``(..., D+1)`` by the exponential map at the pole."""
        return self.expmap0(torch.nn.functional.pad(self._vector(v, "v"), (1, 0)))

    def unlift(self, x: torch.Tensor) -> torch.Tensor:
        return self.logmap0(x)[..., 1:]

    def transp(self, x, y, v) -> torch.Tensor:  # noqa: ANN001
        return math.sphere_transp(x, y, v, self._c(v))

    def transp0(self, y, v) -> torch.Tensor:  # noqa: ANN001
        return self.transp(self.origin(y.shape, dtype=y.dtype, device=y.device), y, v)

    def transp0back(self, x, v) -> torch.Tensor:  # noqa: ANN001
        return self.transp(x, self.origin(x.shape, dtype=x.dtype, device=x.device), v)

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        return math.sphere_projx(x, self._c(x))

    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return math.sphere_proju(x, u, self._c(u))

    def egrad2rgrad(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.proju(x, u)

    def origin(self, *size, dtype=None, device=None, seed=None) -> torch.Tensor:  # noqa: ANN001
        size = _flat_size(size)
        o = torch.zeros(*size, dtype=dtype, device=device)
        o[..., 0] = 1.0 / self.c.detach().sqrt()
        return o

    def random(
        self,
        *size: int,
        radius: float | torch.Tensor = 1.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Points at geodesic distance ``radius`` from the pole ``(1/sqrt(c), 0, ...)``."""
        size = _flat_size(size)
        dtype = dtype or torch.get_default_dtype()
        g = torch.randn(*size, dtype=dtype, device=device, generator=generator)
        g[..., 0] = 0.0
        g = g / torch.linalg.vector_norm(g, dim=-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
        r = torch.as_tensor(radius, dtype=dtype, device=device)
        return self.expmap0(g * (r.unsqueeze(-1) if r.dim() > 0 else r))

    random_normal = random
