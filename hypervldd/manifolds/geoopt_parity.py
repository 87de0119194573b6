"""geoopt 0.5 methods beyond the common interface, built on the classes' own maps.

Mixed into :class:`~hypervldd.manifolds.Lorentz` and
:class:`~hypervldd.manifolds.PoincareBall` so that code written for ``geoopt.Lorentz`` /
``geoopt.PoincareBall`` finds the same methods. Each is a composition of the package's
accurate maps (``expmap``, ``logmap``, ``mobius_add``), not a second implementation of
the geometry; ``tests/manifolds/test_geoopt_parity.py`` runs each next to geoopt.
Differences that remain are listed in docs/geometry.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import lorentz_math
from . import poincare_math as pm
from .geoopt_args import along_dim, manifold_tensor, point_size

__all__ = ["HyperbolicGeooptMethods", "LorentzGeooptMethods", "PoincareGeooptMethods"]


class HyperbolicGeooptMethods:
    """``geodesic_unit`` and ``transp_follow_expmap`` with geoopt's ``dim=``/``project=``,
    shared by the Lorentz and Poincaré classes (both are compositions of their own maps)."""

    @along_dim("x", "u", "t")
    def geodesic_unit(
        self,
        t: torch.Tensor | float,
        x: torch.Tensor,
        u: torch.Tensor,
        *,
        dim: int = -1,
        project: bool = True,
    ) -> torch.Tensor:
        """The point at time ``t`` on the unit-speed geodesic from ``x`` along unit ``u``.

        >>> import torch
        >>> from hypervldd.manifolds import Lorentz
        >>> m = Lorentz()
        >>> o, u = m.origin(3), torch.tensor([0.0, 1.0, 0.0])
        >>> round(m.dist(o, m.geodesic_unit(2.0, o, u)).item(), 4)
        2.0
        """
        y = self.expmap(x, _per_point(t, u) * u)
        return self.projx(y) if project else y

    @along_dim("x", "u", "v")
    def transp_follow_expmap(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        v: torch.Tensor,
        *,
        dim: int = -1,
        project: bool = True,
    ) -> torch.Tensor:
        """Transport ``v`` from ``x`` to ``expmap(x, u)``. ``(..., D)`` each.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> o = torch.zeros(2)
        >>> v = torch.tensor([0.5, 0.0])
        >>> w = ball.transp_follow_expmap(o, torch.tensor([0.3, 0.0]), v)
        >>> y = ball.expmap(o, torch.tensor([0.3, 0.0]))
        >>> round((ball.norm(y, w) - ball.norm(o, v)).abs().item(), 6)  # an isometry
        0.0
        """
        return self.transp(x, self.expmap(x, u, project=project), v)


class LorentzGeooptMethods(HyperbolicGeooptMethods):
    """``inner0``, ``logmap0back`` and ``geodesic_unit`` of ``geoopt.Lorentz``."""

    @along_dim("v", reduces=True)
    def inner0(self, v: torch.Tensor, *, keepdim: bool = False, dim: int = -1) -> torch.Tensor:
        """Minkowski inner product ``<o, v>_L`` with the origin ``o``. ``(..., D+1) -> (...)``.

        >>> import torch
        >>> from hypervldd.manifolds import Lorentz
        >>> Lorentz(c=4.0).inner0(torch.tensor([2.0, 1.0, 0.0])).item()  # -x_0 / sqrt(c)
        -1.0
        """
        # The origin is (1/sqrt(c), 0, ..., 0), so only the time coordinate contributes.
        res = -v[..., :1] / self.c.to(v.dtype).sqrt()
        return res if keepdim else res.squeeze(-1)

    @along_dim("x")
    def logmap0back(self, x: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        """``log_x(o)``: the tangent vector at ``x`` pointing to the origin. ``(..., D+1)``.

        >>> import torch
        >>> from hypervldd.manifolds import Lorentz
        >>> m = Lorentz()
        >>> x = m.lift(torch.tensor([1.0, 0.0]))
        >>> round(m.norm(m.logmap0back(x)).item(), 4)  # as long as d(x, o)
        1.0
        """
        o = lorentz_math.origin(*x.shape, c=self.c.detach(), dtype=x.dtype, device=x.device)
        return self.logmap(x, o)


class PoincareGeooptMethods(HyperbolicGeooptMethods):
    """``k``, ``mobius_scalar_mul``, ``mobius_matvec``, ``geodesic``, ``geodesic_unit`` and
    ``dist2plane`` of ``geoopt.PoincareBall``."""

    @property
    def k(self) -> torch.Tensor:
        """geoopt's signed curvature of the ball, ``k = -c``."""
        return -self.c

    def _through_origin(
        self, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], project: bool
    ) -> torch.Tensor:
        # geoopt's Mobius maps all act in the tangent space at the origin: exp_0(fn(log_0(x))).
        y = self.expmap0(fn(self.logmap0(x)))
        return self.projx(y) if project else y

    @along_dim("x", "r")
    def mobius_scalar_mul(
        self, r: torch.Tensor | float, x: torch.Tensor, *, dim: int = -1, project: bool = True
    ) -> torch.Tensor:
        """``r ⊗ x = exp_0(r log_0(x))``: scales the distance to the origin by ``r``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x = ball.lift(torch.tensor([0.5, 0.0]))
        >>> round((ball.dist0(ball.mobius_scalar_mul(3.0, x)) / ball.dist0(x)).item(), 4)
        3.0
        """
        return self._through_origin(x, lambda v: _per_point(r, x) * v, project)

    @along_dim("x")
    def mobius_matvec(
        self, m: torch.Tensor, x: torch.Tensor, *, dim: int = -1, project: bool = True
    ) -> torch.Tensor:
        """``M ⊗ x = exp_0(M log_0(x))`` for ``m (D_out, D_in)``, ``x (..., D_in)``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x = ball.lift(torch.tensor([0.3, -0.2]))
        >>> torch.allclose(ball.mobius_matvec(torch.eye(2), x), x, atol=1e-6)
        True
        """
        return self._through_origin(x, lambda v: v @ m.transpose(-1, -2), project)

    @along_dim("x", "y", "t")
    def geodesic(
        self, t: torch.Tensor | float, x: torch.Tensor, y: torch.Tensor, *, dim: int = -1
    ) -> torch.Tensor:
        """The point at fraction ``t`` of the geodesic from ``x`` (``t = 0``) to ``y`` (``t = 1``).

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x, y = torch.tensor([0.1, 0.2]), torch.tensor([-0.4, 0.3])
        >>> mid = ball.geodesic(0.5, x, y)
        >>> round((ball.dist(x, mid) - ball.dist(mid, y)).item(), 5)
        0.0
        """
        return self.expmap(x, _per_point(t, x) * self.logmap(x, y))

    @along_dim("x", "p", "a", reduces=True)
    def dist2plane(
        self,
        x: torch.Tensor,
        p: torch.Tensor,
        a: torch.Tensor,
        *,
        dim: int = -1,
        keepdim: bool = False,
        signed: bool = False,
        scaled: bool = False,
    ) -> torch.Tensor:
        """Distance from ``x`` to the gyroplane through ``p`` with normal ``a`` (Ganea et al.).

        ``asinh(2 sqrt(c) <z, a> / ((1 - c|z|^2) |a|)) / sqrt(c)`` with ``z = (-p) ⊕ x``;
        ``signed`` keeps the side, ``scaled`` multiplies by ``|a|`` (geoopt's options).
        Shapes: ``x``, ``p``, ``a`` broadcast over ``(..., D)``; returns ``(...)``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x = ball.lift(torch.tensor([0.7, 0.2]))
        >>> plane_normal = torch.tensor([1.0, 0.0])  # the plane x_1 = 0 through the origin
        >>> round(ball.dist2plane(x, torch.zeros(2), plane_normal).item(), 3)
        1.421
        """
        sqrt_c = self.c.to(x.dtype).sqrt()
        z = self.mobius_add(-p, x)
        za = (z * a).sum(-1, keepdim=True)
        za = za if signed else za.abs()
        a_norm = a.norm(dim=-1, keepdim=True)
        # 1 - c|z|^2 as a product: no cancellation in the factor (1 + sqrt(c)|z|).
        rz = sqrt_c * z.norm(dim=-1, keepdim=True)
        denom = ((1 - rz) * (1 + rz)).clamp_min(torch.finfo(x.dtype).tiny) * a_norm
        d = torch.asinh(2 * sqrt_c * za / denom) / sqrt_c
        d = d * a_norm if scaled else d
        return d if keepdim else d.squeeze(-1)

    @property
    def radius(self) -> torch.Tensor:
        """geoopt's radius of the ball, ``1 / sqrt(c)``."""
        return self.c.rsqrt()

    @along_dim("x", "y", reduces=True)
    def dist2(
        self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False, dim: int = -1
    ) -> torch.Tensor:
        """Squared geodesic distance.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> round(ball.dist2(torch.zeros(2), ball.lift(torch.tensor([0.75, 0.0]))).item(), 4)
        2.25
        """
        return self.dist(x, y, keepdim=keepdim) ** 2

    @along_dim("x", "y")
    def mobius_sub(
        self, x: torch.Tensor, y: torch.Tensor, *, dim: int = -1, project: bool = True
    ) -> torch.Tensor:
        """``x ⊖ y = x ⊕ (-y)``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x = torch.tensor([0.3, -0.1])
        >>> ball.mobius_sub(x, x).abs().max().item()
        0.0
        """
        return self.mobius_add(x, -y, project=project)

    @along_dim("x", "y")
    def mobius_coadd(
        self, x: torch.Tensor, y: torch.Tensor, *, dim: int = -1, project: bool = True
    ) -> torch.Tensor:
        """Möbius coaddition ``x ⊞ y = x ⊕ gyr[x, ⊖y] y`` (commutative), in closed form.

        ``((1 - c|y|^2) x + (1 - c|x|^2) y) / (1 - c^2 |x|^2 |y|^2)``, with the
        denominator as ``a_x + c|x|^2 a_y`` (``a = 1 - c|.|^2``): a sum of positive terms.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x, y = torch.tensor([0.3, -0.1]), torch.tensor([-0.2, 0.4])
        >>> torch.allclose(ball.mobius_coadd(x, y), ball.mobius_coadd(y, x))
        True
        """
        c = self._c(x)
        ax, ay = pm.alpha(x, c), pm.alpha(y, c)
        den = ax + c * (x * x).sum(-1, keepdim=True) * ay
        out = (ay * x + ax * y) / den.clamp_min(torch.finfo(den.dtype).tiny)
        return self.projx(out) if project else out

    @along_dim("x", "y")
    def mobius_cosub(
        self, x: torch.Tensor, y: torch.Tensor, *, dim: int = -1, project: bool = True
    ) -> torch.Tensor:
        """``x ⊟ y = x ⊞ (-y)``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> x = torch.tensor([0.3, -0.1])
        >>> PoincareBall().mobius_cosub(x, x).abs().max().item()
        0.0
        """
        return self.mobius_coadd(x, -y, project=project)

    @along_dim("x", "w")
    def mobius_pointwise_mul(
        self, w: torch.Tensor, x: torch.Tensor, *, dim: int = -1, project: bool = True
    ) -> torch.Tensor:
        """``w ⊙ x = exp_0(w * log_0(x))``: a diagonal :meth:`mobius_matvec`.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x, w = torch.tensor([0.3, -0.1]), torch.tensor([2.0, 0.5])
        >>> torch.allclose(ball.mobius_pointwise_mul(w, x), ball.mobius_matvec(torch.diag(w), x))
        True
        """
        return self._through_origin(x, lambda v: w * v, project)

    def mobius_fn_apply(
        self,
        fn: Callable[..., torch.Tensor],
        x: torch.Tensor,
        *args: Any,
        dim: int = -1,
        project: bool = True,
        **kwargs: Any,
    ) -> torch.Tensor:
        """``exp_0(fn(log_0(x), *args, **kwargs))``: a Euclidean map applied through the origin.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x = torch.tensor([0.3, -0.1])
        >>> torch.allclose(ball.mobius_fn_apply(lambda v: 2 * v, x), ball.mobius_scalar_mul(2.0, x))
        True
        """
        return self.mobius_fn_apply_chain(
            x, lambda v: fn(v, *args, **kwargs), dim=dim, project=project
        )

    @along_dim("x")
    def mobius_fn_apply_chain(
        self,
        x: torch.Tensor,
        *fns: Callable[[torch.Tensor], torch.Tensor],
        project: bool = True,
        dim: int = -1,
    ) -> torch.Tensor:
        """``exp_0(f_n(... f_1(log_0(x))))``; ``x`` itself when no function is given.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x = torch.tensor([0.3, -0.1])
        >>> torch.allclose(ball.mobius_fn_apply_chain(x, torch.neg, torch.neg), x)
        True
        """
        if not fns:
            return x

        def chain(v: torch.Tensor) -> torch.Tensor:
            for fn in fns:
                v = fn(v)
            return v

        return self._through_origin(x, chain, project)

    @along_dim("x", "y", "z")
    def gyration(
        self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, *, dim: int = -1
    ) -> torch.Tensor:
        """``gyr[x, y] z = ⊖(x ⊕ y) ⊕ (x ⊕ (y ⊕ z))``: the rotation Möbius addition misses.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x, y, z = torch.tensor([0.3, -0.1]), torch.tensor([-0.2, 0.4]), torch.tensor([0.1, 0.1])
        >>> g = ball.gyration(x, y, z)  # an isometry: the length of z is kept
        >>> torch.allclose(g.norm(), z.norm())
        True
        """
        return pm.gyration(x, y, z, self._c(z))

    @along_dim("x")
    def antipode(self, x: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        """geoopt's antipode; on the ball (negative curvature) it is ``-x``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> PoincareBall().antipode(torch.tensor([0.5, -0.25])).tolist()
        [-0.5, 0.25]
        """
        return -x

    @along_dim("x")
    def sproj(self, x: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        """Stereographic projection from the hyperboloid, geoopt's layout: time **last**.

        ``(..., D+1) -> (..., D)``: ``x_s / (1 + sqrt(c) x_t)``; the inverse of :meth:`inv_sproj`.
        (``lorentz_to_poincare`` is the same map for this package's time-first points.)

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> p = torch.tensor([0.3, -0.1], dtype=torch.float64)
        >>> torch.allclose(ball.sproj(ball.inv_sproj(p)), p)
        True
        """
        sc = self._c(x).sqrt()
        return x[..., :-1] / (1.0 + sc * x[..., -1:])

    @along_dim("x")
    def inv_sproj(self, x: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        """Ball to hyperboloid in geoopt's layout, time last: ``(λ_x x, (λ_x - 1) / sqrt(c))``.

        ``lambda_x - 1 = (1 + c|x|^2) / (1 - c|x|^2)`` is formed without cancellation.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> X = PoincareBall().inv_sproj(torch.tensor([0.5, 0.0]))
        >>> [round(v, 4) for v in X.tolist()]  # -X_t^2 + |X_s|^2 = -1/c
        [1.3333, 0.0, 1.6667]
        """
        c = self._c(x)
        a = pm.alpha(x, c)
        lam = 2.0 / a
        time = (1.0 + c * (x * x).sum(-1, keepdim=True)) / (a * c.sqrt())
        return torch.cat([lam * x, time.to(x.dtype)], dim=-1)

    def weighted_midpoint(
        self,
        xs: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        reducedim: list[int] | None = None,
        dim: int = -1,
        keepdim: bool = False,
        lincomb: bool = False,
        posweight: bool = False,
        project: bool = True,
    ) -> torch.Tensor:
        """Weighted gyromidpoint ``½ ⊗ (Σ w λ_x x / Σ w (λ_x - 1))`` over ``reducedim``.

        ``xs (..., D)``; ``weights`` has ``xs``'s shape without the coordinate axis
        (default: equal); ``reducedim`` defaults to every axis but ``dim``. ``lincomb``
        scales the midpoint by the total weight (``⊗``), ``posweight`` replaces a point
        of negative weight by its antipode with the positive weight (geoopt's options).
        The inner quotient is the Einstein midpoint in Klein coordinates: it is mapped
        back with ``k / (1 + sqrt(1 - c|k|^2))``, which stays finite at the boundary.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> xs = torch.tensor([[0.5, 0.0], [-0.5, 0.0], [0.0, 0.5], [0.0, -0.5]])
        >>> ball.weighted_midpoint(xs).abs().max().item()  # symmetric points: the origin
        0.0
        >>> mid = ball.weighted_midpoint(xs[:2], torch.tensor([3.0, 1.0]))
        >>> mid[0].item() > 0.0
        True
        """
        n = xs.dim()
        d = dim - n if dim >= 0 else dim
        if not -n <= d < 0:
            raise ValueError(f"dim must be in [{-n}, {n - 1}] for xs of shape {tuple(xs.shape)}")
        coord = n + d
        if reducedim is None:
            reduce = [i for i in range(n) if i != coord]
        else:
            reduce = sorted({r + n if r < 0 else r for r in reducedim})
            if coord in reduce or not all(0 <= r < n for r in reduce):
                raise ValueError(
                    f"reducedim must name axes of xs {tuple(xs.shape)} other than dim={dim},"
                    f" got {reducedim}"
                )
        # Work with the coordinate axis last; the other axes keep their order.
        x = xs.movedim(coord, -1)
        red = [r if r < coord else r - 1 for r in reduce]
        c = self._c(x)
        w = torch.ones((), dtype=x.dtype, device=x.device) if weights is None else weights
        w = w.to(x.dtype).unsqueeze(-1)
        if posweight:
            x = torch.where(w < 0, -x, x)
            w = w.abs()
        lam = 2.0 / pm.alpha(x, c)
        num = (w * lam * x).sum(red, keepdim=True)
        den = (w * (lam - 1.0)).sum(red, keepdim=True)
        tiny = torch.finfo(den.dtype).tiny
        den = torch.where(den < 0, den.clamp_max(-tiny), den.clamp_min(tiny))
        klein = num / den
        mid = klein / (1.0 + pm.alpha(klein, c).clamp_min(0.0).sqrt())
        mid = pm.projx(mid, c)
        if lincomb:
            total = (w * torch.ones_like(lam)).sum(red, keepdim=True)
            mid = pm.expmap0(total * pm.logmap0(mid, c), c)
        if project:
            mid = pm.projx(mid, c)
        mid = mid.movedim(-1, coord)
        if not keepdim:
            mid = mid.squeeze(reduce) if reduce else mid
        return mid

    def wrapped_normal(
        self,
        *size: int,
        mean: torch.Tensor,
        std: float | torch.Tensor = 1.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``expmap(mean, v / lambda_mean)`` with ``v ~ N(0, std^2)``: a normal wrapped at ``mean``.

        Returns a ``geoopt.ManifoldTensor`` of shape ``size``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> mean = torch.tensor([0.5, 0.0], dtype=torch.float64)
        >>> x = ball.wrapped_normal(2000, 2, mean=mean, std=0.1, dtype=torch.float64)
        >>> ball.dist(x, mean).mean().item() < 0.2
        True
        """
        size = point_size(size)
        dtype = mean.dtype if dtype is None else dtype
        device = mean.device if device is None else device
        v = torch.randn(size, dtype=dtype, device=device, generator=generator) * std
        mean = mean.to(dtype=dtype, device=device)
        y = self.expmap(mean, v / self.lambda_x(mean, keepdim=True))
        return manifold_tensor(y, self)


def _per_point(t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A time or factor per point, shaped to multiply ``x`` (``(..., D)``).

    geoopt's form, a scalar or a tensor with the coordinate axis of size 1, broadcasts
    as it is; a tensor without that axis (lower rank than ``x``, or a last axis other
    than 1) is one value per point and gets the axis appended.
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0 or (t.dim() >= x.dim() and t.shape[-1] == 1):
        return t
    return t.unsqueeze(-1)
