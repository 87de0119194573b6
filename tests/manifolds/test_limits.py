"""The manifolds at the edges of their documented domain.

Each test reproduces a failure found by an adversarial review: Lorentz distances
past ~44 in float32, the Poincaré transport near the boundary, radial Poincaré
maps through the origin, lifts of huge vectors.
"""

from __future__ import annotations

import math

import pytest
import torch

from hypervldd.manifolds import Lorentz, PoincareBall
from hypervldd.numerics import max_radius

F32, F64 = torch.float32, torch.float64


def _unit(d: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    g = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return g / g.norm()


# -- Lorentz far pairs (distances up to twice the radius cap) -------------------------


@pytest.mark.parametrize("radius", [23.0, 30.0, max_radius(F32) - 0.01])
def test_lorentz_dist_of_antipodal_lifts_float32(radius: float) -> None:
    man = Lorentz(1.0)
    u = (_unit(8, 0) * radius).float()
    x = man.lift(u[None]).requires_grad_(True)
    y = man.lift(-u[None])
    d = man.dist(x, y)
    assert math.isclose(float(d), 2 * radius, rel_tol=1e-5), float(d)
    assert math.isclose(float(man.pairwise_dist(x, y)), 2 * radius, rel_tol=1e-5)
    (g,) = torch.autograd.grad(d.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_lorentz_far_angular_pair_float32_matches_float64() -> None:
    # both at radius 35, 60 degrees apart: the angular term alone is ~1e30
    man = Lorentz(1.0)
    e1, e2 = torch.zeros(6, dtype=F64), torch.zeros(6, dtype=F64)
    e1[0], e2[0], e2[1] = 1.0, 0.5, math.sqrt(0.75)
    x = man.lift((35.0 * e1)[None])
    y = man.lift((35.0 * e2)[None])
    truth = man.dist(x, y)
    d32 = man.dist(x.float(), y.float())
    assert torch.isfinite(d32).all()
    assert float((d32.double() - truth).abs() / truth) < 1e-5


def test_lorentz_logmap_expmap_of_far_pair_float32() -> None:
    man = Lorentz(1.0)
    u = (_unit(6, 1) * 38.0).float()
    x, y = man.lift(u[None]), man.lift(-u[None])
    v = man.logmap(x, y)
    assert torch.isfinite(v).all()
    # the same float32 inputs in float64 (the Minkowski norm itself cancels in float32)
    v64 = man.logmap(x.double(), y.double())
    assert float((v.double() - v64).norm() / v64.norm()) < 1e-4


# -- Poincaré transport near the boundary ------------------------------------------


@pytest.mark.parametrize("radius", [22.0, 28.0, 31.5])
def test_poincare_transp_of_close_points_far_out_float64(radius: float) -> None:
    man = PoincareBall(1.3)
    g = torch.Generator().manual_seed(2)
    x = man.random(4, 6, radius=radius, dtype=F64, generator=g)
    step = torch.randn(4, 6, generator=g, dtype=F64) * 1e-3 / man.lambda_x(x, keepdim=True)
    y = man.expmap(x, step)
    v = torch.randn(4, 6, generator=g, dtype=F64)
    w = torch.randn(4, 6, generator=g, dtype=F64)
    tv, tw = man.transp(x, y, v), man.transp(x, y, w)
    assert torch.isfinite(tv).all()
    # an isometry between tangent spaces; the inputs' own alpha carries eps / alpha
    tol = 1e3 * torch.finfo(F64).eps / float(man.projx(x).pow(2).sum(-1).mul(-1.3).add(1).min())
    scale = man.norm(x, v) * man.norm(x, w)
    assert ((man.inner(y, tv, tw) - man.inner(x, v, w)).abs() / scale).max() < tol
    back = man.transp(y, x, tv)
    assert ((back - v).norm(dim=-1) / v.norm(dim=-1)).max() < tol


def test_poincare_transp_matches_gyration_form_away_from_the_boundary() -> None:
    from hypervldd.manifolds import poincare_math as pm

    g = torch.Generator().manual_seed(4)
    man = PoincareBall(0.7)
    x = man.random(6, 5, radius=2.0, dtype=F64, generator=g)
    y = man.random(6, 5, radius=3.0, dtype=F64, generator=g)
    v = torch.randn(6, 5, generator=g, dtype=F64)
    gyr = pm.gyration(y, -x, v, 0.7) * (pm.alpha(y, 0.7) / pm.alpha(x, 0.7))
    assert torch.allclose(man.transp(x, y, v), gyr, rtol=1e-12, atol=1e-13)


def test_mobius_add_of_nearly_opposite_points_far_out_float64() -> None:
    # x (+) (-x') for x' next to x at radius 25: the expanded denominator is ~alpha^2 ~ 1e-21
    man = PoincareBall(1.0)
    x = man.random(3, 4, radius=25.0, dtype=F64, generator=torch.Generator().manual_seed(5))
    y = man.expmap(x, 1e-2 * x / man.lambda_x(x, keepdim=True) / x.norm(dim=-1, keepdim=True))
    z = man.mobius_add(-x, y)
    # |(-x) (+) y| = tanh(d(x, y) / 2) for c = 1, up to the conditioning eps / alpha
    # of points this far out (the expanded form was off by 4% at radius 15, inf here)
    tol = 100 * torch.finfo(F64).eps / float((1 - x.pow(2).sum(-1)).min())
    truth = torch.tanh(man.dist(x, y) / 2)
    assert ((z.norm(dim=-1) - truth).abs() / truth).max() < tol


# -- radial Poincaré maps through the origin -------------------------------------


@pytest.mark.parametrize("radius", [10.0, 11.0, 11.5])
@pytest.mark.parametrize("fraction", [2.0, 1.5, 1.0])
def test_poincare_radial_expmap_through_the_origin_float32(radius: float, fraction: float) -> None:
    # x on the diagonal and u exactly antiparallel in float32 (equal components):
    # the geodesic passes through the origin and ends at radius |1 - fraction| radius
    man = PoincareBall(1.0)
    e = torch.tensor([[1.0, 1.0, 0.0]], dtype=F64) / math.sqrt(2.0)
    x = man.expmap0(e * (radius / 2)).float()  # lambda_0 = 2: at distance radius
    r = float(man.dist0(x.double()))
    u = (-e * (fraction * r / man.lambda_x(x.double(), keepdim=True))).float()
    y = man.expmap(x, u)
    end = abs(1.0 - fraction) * r
    assert math.isclose(float(man.dist(x, y)), fraction * r, rel_tol=1e-4)
    assert math.isclose(float(man.dist0(y)), end, rel_tol=1e-4, abs_tol=1e-4)
    if fraction > 1:  # on the far side of the origin, not at it
        assert float((y * x).sum()) < 0


# -- lifts of huge vectors -----------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("norm", [1e20, 1e30, 3e38])
def test_lift_of_huge_vectors_is_the_capped_point(dtype: torch.dtype, norm: float) -> None:
    d = _unit(5, 7).to(dtype)
    v = (d * norm)[None] if torch.isfinite(d * norm).all() else None
    assert v is not None and torch.isfinite(v).all()
    lor = Lorentz(1.0).lift(v)
    assert torch.isfinite(lor).all()
    rmax = max_radius(dtype)
    assert math.isclose(float(Lorentz(1.0).dist0(lor)), min(rmax, norm), rel_tol=1e-5)
    assert torch.allclose(lor[0, 1:] / lor[0, 1:].norm(), d, rtol=1e-5, atol=1e-6)
    ball = PoincareBall(1.0)
    p = ball.lift(v)
    assert torch.isfinite(p).all()
    # the projection radius, in the direction of v (not the origin)
    assert float(ball.dist0(p)) > 0.9 * float(ball.dist0(ball.projx(d[None] * 2)))
    assert torch.allclose(p[0] / p[0].norm(), d, rtol=1e-5, atol=1e-6)


def test_lorentz_expmap_of_a_huge_step_stays_capped() -> None:
    man = Lorentz(1.0)
    x = man.random(2, 5, radius=3.0)
    u = man.proju(x, torch.randn(2, 5) * 1e25)
    y = man.expmap(x, u)
    assert torch.isfinite(y).all()
    assert (man.dist0(y) <= max_radius(F32) * (1 + 1e-5)).all()


# -- one point near the origin, the other far ----------------------------------------


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("far", [3.0, 14.0, 30.0])
def test_lorentz_dist_from_near_the_origin_to_far_out(dtype: torch.dtype, far: float) -> None:
    # a b <= 1 < max(a, b): the difference form cancelled by ~max(x0, y0) (float32
    # distance 14 from the origin was off by 3e-3; float64 at 24 by 1e-6)
    import mpmath

    man = Lorentz(1.0)
    e = _unit(5, 9)
    near = [0.0, 0.01, 0.3]
    x = man.lift(torch.stack([r * e for r in near]).to(dtype))
    y = man.lift((far * _unit(5, 10)).to(dtype)[None]).expand_as(x)
    d = man.dist(x, y)
    mpmath.mp.dps = 50
    for i in range(len(near)):
        xs = [mpmath.mpf(float(v)) for v in x[i, 1:].double()]
        ys = [mpmath.mpf(float(v)) for v in y[i, 1:].double()]
        x0 = mpmath.sqrt(1 + sum(v * v for v in xs))
        y0 = mpmath.sqrt(1 + sum(v * v for v in ys))
        truth = mpmath.acosh(x0 * y0 - sum(a * b for a, b in zip(xs, ys, strict=True)))
        tol = 1e-5 if dtype == F32 else 1e-12
        assert abs(float(d[i]) - float(truth)) / float(truth) < tol


def test_lorentz_transp_rederives_the_time_of_rounded_points() -> None:
    # float32 points cast to float64: their stored x0 is off by eps x0, which the
    # transport multiplied by x0 again (2e-3 at radius 6)
    man = Lorentz(1.0)
    x = man.lift((6.0 * _unit(6, 11))[None]).float().double()
    y = man.lift((6.5 * _unit(6, 11) + 0.3 * _unit(6, 12))[None]).float().double()
    t = man.transp(x, y, man.logmap(x, y))
    back = -man.logmap(y, x)
    assert float((t - back).norm() / back.norm()) < 1e-9
