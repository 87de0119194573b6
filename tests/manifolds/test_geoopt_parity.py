"""geoopt-style calls run on hypervldd's classes and agree with geoopt (float64)."""

from __future__ import annotations

import geoopt
import pytest
import torch

from hypervldd import validation
from hypervldd.manifolds import Lorentz, PoincareBall

torch.set_default_dtype(torch.float32)
G = torch.Generator().manual_seed(0)


def _ball_points(n: int = 5, d: int = 3) -> torch.Tensor:
    return PoincareBall().lift(torch.randn(n, d, generator=G, dtype=torch.float64))


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    # geoopt's Mobius forms lose ~1e-8 relative in float64 for points at radius 3 (1 - |x|^2
    # cancels); 1e-6 still catches any wrong formula, sign or curvature scaling.
    torch.testing.assert_close(a, b.to(a.dtype), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_poincare_methods_match_geoopt(c: float) -> None:
    # geoopt keeps c in its parameter's dtype: give it float64 so both sides are float64.
    ours, theirs = PoincareBall(c=c), geoopt.PoincareBall(c=torch.tensor(c, dtype=torch.float64))
    x, y = _ball_points() * c**-0.5, _ball_points() * c**-0.5
    p, a = _ball_points() * c**-0.5, torch.randn(5, 3, generator=G, dtype=torch.float64)
    _close(ours.k, theirs.k)
    # project=False on both: geoopt clips to a fixed margin, this package to the float one.
    _close(
        ours.mobius_scalar_mul(0.7, x, project=False),
        theirs.mobius_scalar_mul(torch.tensor(0.7), x, project=False),
    )
    m = 0.3 * torch.randn(4, 3, generator=G, dtype=torch.float64)
    _close(ours.mobius_matvec(m, x, project=False), theirs.mobius_matvec(m, x, project=False))
    t = torch.tensor([[0.0], [0.25], [0.5], [0.75], [1.0]], dtype=torch.float64)
    _close(ours.geodesic(t.squeeze(-1), x, y), theirs.geodesic(t, x, y))
    u = theirs.proju(x, torch.randn(5, 3, generator=G, dtype=torch.float64))
    u = u / theirs.norm(x, u, keepdim=True)
    _close(
        ours.geodesic_unit(t.squeeze(-1), x, u, project=False),
        theirs.geodesic_unit(t, x, u, project=False),
    )
    for signed in (False, True):
        for scaled in (False, True):
            _close(
                ours.dist2plane(x, p, a, signed=signed, scaled=scaled),
                theirs.dist2plane(x, p, a, signed=signed, scaled=scaled),
            )


def test_lorentz_methods_match_geoopt() -> None:
    ours, theirs = Lorentz(c=1.0), geoopt.Lorentz(k=1.0)
    x = ours.lift(torch.randn(5, 3, generator=G, dtype=torch.float64))
    v = ours.proju(x, torch.randn(5, 4, generator=G, dtype=torch.float64))
    _close(ours.inner0(v), theirs.inner0(v))
    _close(ours.logmap0back(x), theirs.logmap0back(x))
    u = v / ours.norm(x, v, keepdim=True)
    t = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    _close(ours.geodesic_unit(t, x, u), theirs.geodesic_unit(t.unsqueeze(-1), x, u))


def test_parity_methods_keep_nan_and_zero_cases_defined() -> None:
    ball = PoincareBall()
    o = torch.zeros(3, dtype=torch.float64)
    assert torch.equal(ball.mobius_scalar_mul(2.0, o), o)  # the origin is fixed
    with validation(False):  # validation rejects NaN with a ValueError; without it, NaN out
        assert torch.isnan(ball.mobius_scalar_mul(2.0, torch.full((3,), float("nan")))).all()
    x = _ball_points(1).squeeze(0).requires_grad_()
    ball.geodesic(0.0, x, x).sum().backward()  # zero distance: a defined gradient
    assert torch.isfinite(x.grad).all()
