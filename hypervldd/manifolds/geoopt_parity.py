"""geoopt 0.5 method names that the classes lack, built on the classes' own maps.

Mixed into :class:`~hypervldd.manifolds.Lorentz` and
:class:`~hypervldd.manifolds.PoincareBall` so that code written for ``geoopt.Lorentz`` /
``geoopt.PoincareBall`` finds the same methods. Each is a composition of the package's
accurate maps (``expmap``, ``logmap``, ``mobius_add``), not a second implementation of
the geometry; ``tests/manifolds/test_geoopt_parity.py`` runs each next to geoopt.
Differences that remain are listed in docs/geometry.md.
"""

from __future__ import annotations

import torch

__all__ = ["LorentzGeooptMethods", "PoincareGeooptMethods"]


class LorentzGeooptMethods:
    """``inner0``, ``logmap0back`` and ``geodesic_unit`` of ``geoopt.Lorentz``."""

    def inner0(self, v: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Minkowski inner product ``<o, v>_L`` with the origin ``o``. ``(..., D+1) -> (...)``.

        >>> import torch
        >>> from hypervldd.manifolds import Lorentz
        >>> Lorentz(c=4.0).inner0(torch.tensor([2.0, 1.0, 0.0])).item()  # -x_0 / sqrt(c)
        -1.0
        """
        # The origin is (1/sqrt(c), 0, ..., 0), so only the time coordinate contributes.
        res = -v[..., :1] / self.c.to(v.dtype).sqrt()
        return res if keepdim else res.squeeze(-1)

    def logmap0back(self, x: torch.Tensor) -> torch.Tensor:
        """``log_x(o)``: the tangent vector at ``x`` pointing to the origin. ``(..., D+1)``.

        >>> import torch
        >>> from hypervldd.manifolds import Lorentz
        >>> m = Lorentz()
        >>> x = m.lift(torch.tensor([1.0, 0.0]))
        >>> round(m.norm(x, m.logmap0back(x)).item(), 4)  # as long as d(x, o)
        1.0
        """
        o = self.origin(*x.shape, dtype=x.dtype, device=x.device)
        return self.logmap(x, o)

    def geodesic_unit(
        self, t: torch.Tensor | float, x: torch.Tensor, u: torch.Tensor, *, project: bool = True
    ) -> torch.Tensor:
        """The point at time ``t`` on the unit-speed geodesic from ``x`` along unit ``u``.

        >>> import torch
        >>> from hypervldd.manifolds import Lorentz
        >>> m = Lorentz()
        >>> o, u = m.origin(3), torch.tensor([0.0, 1.0, 0.0])
        >>> round(m.dist(o, m.geodesic_unit(2.0, o, u)).item(), 4)
        2.0
        """
        t = torch.as_tensor(t, dtype=u.dtype, device=u.device)
        y = self.expmap(x, t.unsqueeze(-1) * u if t.dim() else t * u)
        return self.projx(y) if project else y


class PoincareGeooptMethods:
    """``k``, ``mobius_scalar_mul``, ``mobius_matvec``, ``geodesic``, ``geodesic_unit`` and
    ``dist2plane`` of ``geoopt.PoincareBall``."""

    @property
    def k(self) -> torch.Tensor:
        """geoopt's signed curvature of the ball, ``k = -c``."""
        return -self.c

    def mobius_scalar_mul(
        self, r: torch.Tensor | float, x: torch.Tensor, *, project: bool = True
    ) -> torch.Tensor:
        """``r ⊗ x = exp_0(r log_0(x))``: scales the distance to the origin by ``r``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x = ball.lift(torch.tensor([0.5, 0.0]))
        >>> round((ball.dist0(ball.mobius_scalar_mul(3.0, x)) / ball.dist0(x)).item(), 4)
        3.0
        """
        r = torch.as_tensor(r, dtype=x.dtype, device=x.device)
        y = self.expmap0((r.unsqueeze(-1) if r.dim() else r) * self.logmap0(x))
        return self.projx(y) if project else y

    def mobius_matvec(
        self, m: torch.Tensor, x: torch.Tensor, *, project: bool = True
    ) -> torch.Tensor:
        """``M ⊗ x = exp_0(M log_0(x))`` for ``m (D_out, D_in)``, ``x (..., D_in)``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x = ball.lift(torch.tensor([0.3, -0.2]))
        >>> torch.allclose(ball.mobius_matvec(torch.eye(2), x), x, atol=1e-6)
        True
        """
        y = self.expmap0(self.logmap0(x) @ m.transpose(-1, -2))
        return self.projx(y) if project else y

    def geodesic(self, t: torch.Tensor | float, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The point at fraction ``t`` of the geodesic from ``x`` (``t = 0``) to ``y`` (``t = 1``).

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> x, y = torch.tensor([0.1, 0.2]), torch.tensor([-0.4, 0.3])
        >>> mid = ball.geodesic(0.5, x, y)
        >>> round((ball.dist(x, mid) - ball.dist(mid, y)).item(), 5)
        0.0
        """
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        return self.expmap(x, (t.unsqueeze(-1) if t.dim() else t) * self.logmap(x, y))

    def geodesic_unit(
        self, t: torch.Tensor | float, x: torch.Tensor, u: torch.Tensor, *, project: bool = True
    ) -> torch.Tensor:
        """The point at time ``t`` on the unit-speed geodesic from ``x`` along unit ``u``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> o, u = torch.zeros(2), torch.tensor([0.5, 0.0])  # unit length at o: lambda_o = 2
        >>> round(ball.dist0(ball.geodesic_unit(1.5, o, u)).item(), 4)
        1.5
        """
        t = torch.as_tensor(t, dtype=u.dtype, device=u.device)
        y = self.expmap(x, (t.unsqueeze(-1) if t.dim() else t) * u)
        return self.projx(y) if project else y

    def dist2plane(
        self,
        x: torch.Tensor,
        p: torch.Tensor,
        a: torch.Tensor,
        *,
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
