"""Geometric identities, property-tested with hypothesis, and spot values from mpmath."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hypervldd.manifolds import Euclidean, Klein, Lorentz, PoincareBall, Sphere, conversions
from hypervldd.manifolds import lorentz_math as lm
from hypervldd.manifolds import poincare_math as pm

F64 = torch.float64
SETTINGS = settings(max_examples=25, deadline=None)
curvatures = st.floats(min_value=0.05, max_value=5.0)
radii = st.floats(min_value=0.0, max_value=6.0)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pts(manifold, n: int, d: int, radius: float, seed: int) -> torch.Tensor:  # noqa: ANN001
    """Points within ``radius`` in curvature-normalised units (sqrt(c) d(o, x) <= radius).

    Far beyond that, Poincaré coordinates themselves are quantised (at unit
    radius 13, 1 - sqrt(c)|x| is 1e-11) and exp/log cannot round-trip to 1e-7.
    """
    g = _gen(seed)
    c = float(manifold.c)
    r = torch.rand(n, generator=g, dtype=F64) * radius / c**0.5
    return manifold.random(n, d, radius=r, dtype=F64, generator=g)


MANIFOLDS = [Lorentz, PoincareBall, Klein, Sphere, Euclidean]


@pytest.mark.parametrize("cls", MANIFOLDS)
@SETTINGS
@given(c=curvatures, radius=radii, seed=seeds)
def test_exp_log_inverse(cls, c: float, radius: float, seed: int) -> None:  # noqa: ANN001
    m = cls(c)
    if cls is Sphere:
        radius = min(radius, 2.5)  # stay off the cut locus
    x = _pts(m, 5, 6, radius, seed)
    y = _pts(m, 5, 6, radius, seed + 1)
    u = m.logmap(x, y)
    assert torch.allclose(m.expmap(x, u), y, rtol=1e-7, atol=1e-7 * (1 + y.abs().max()))
    # |log_x y| equals the distance
    assert torch.allclose(m.norm(x, u), m.dist(x, y), rtol=1e-7, atol=1e-9)
    v0 = m.logmap0(y)
    assert torch.allclose(m.expmap0(v0), y, rtol=1e-7, atol=1e-7 * (1 + y.abs().max()))


@pytest.mark.parametrize("cls", [Lorentz, PoincareBall, Klein])
@SETTINGS
@given(c=curvatures, radius=radii, seed=seeds)
def test_distance_from_origin_is_tangent_norm(cls, c: float, radius: float, seed: int) -> None:  # noqa: ANN001
    m = cls(c)
    x = _pts(m, 6, 5, radius, seed)
    v = m.logmap0(x)
    # At the origin the metric is 4 |v|^2 on the ball (lambda_0 = 2), |v|^2 on the
    # hyperboloid and in the Klein model.
    scale = 2.0 if cls is PoincareBall else 1.0
    assert torch.allclose(m.dist0(x), scale * v.norm(dim=-1), rtol=1e-9, atol=1e-12)
    assert torch.allclose(m.dist0(x), m.dist(m.origin(x.shape, dtype=F64), x), atol=1e-9)


@SETTINGS
@given(c=curvatures, radius=radii, seed=seeds)
def test_conversions_round_trip_and_preserve_distance(c: float, radius: float, seed: int) -> None:
    x = _pts(Lorentz(c), 6, 5, radius, seed)
    y = _pts(Lorentz(c), 6, 5, radius, seed + 7)
    p, q = conversions.lorentz_to_poincare(x, c), conversions.lorentz_to_poincare(y, c)
    k = conversions.lorentz_to_klein(x, c)
    tol = dict(rtol=1e-8, atol=1e-8 * (1 + float(x.abs().max())))
    assert torch.allclose(conversions.poincare_to_lorentz(p, c), x, **tol)
    assert torch.allclose(conversions.klein_to_lorentz(k, c), x, **tol)
    assert torch.allclose(conversions.poincare_to_klein(p, c), k, rtol=1e-9, atol=1e-12)
    assert torch.allclose(conversions.klein_to_poincare(k, c), p, rtol=1e-9, atol=1e-12)
    assert torch.allclose(pm.dist(p, q, c), lm.dist(x, y, c), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("cls", MANIFOLDS)
@SETTINGS
@given(c=curvatures, radius=radii, seed=seeds)
def test_triangle_inequality_and_symmetry(cls, c: float, radius: float, seed: int) -> None:  # noqa: ANN001
    m = cls(c)
    x, y, z = (_pts(m, 8, 4, radius, seed + i) for i in range(3))
    dxy, dyz, dxz = m.dist(x, y), m.dist(y, z), m.dist(x, z)
    assert torch.all(dxz <= dxy + dyz + 1e-9)
    assert torch.allclose(dxy, m.dist(y, x), rtol=1e-12, atol=1e-12)
    assert torch.all(m.dist(x, x) == 0)


@pytest.mark.parametrize("cls", [Lorentz, PoincareBall, Klein, Sphere])
@SETTINGS
@given(c=curvatures, radius=radii, seed=seeds)
def test_parallel_transport_is_an_isometry(cls, c: float, radius: float, seed: int) -> None:  # noqa: ANN001
    m = cls(c)
    if cls is Sphere:
        radius = min(radius, 2.5)
    x, y = _pts(m, 5, 5, radius, seed), _pts(m, 5, 5, radius, seed + 3)
    g = _gen(seed)
    u = m.proju(x, torch.randn(x.shape, generator=g, dtype=F64))
    v = m.proju(x, torch.randn(x.shape, generator=g, dtype=F64))
    tu, tv = m.transp(x, y, u), m.transp(x, y, v)
    assert torch.allclose(m.inner(y, tu, tv), m.inner(x, u, v), rtol=1e-7, atol=1e-9)
    ok, reason = m._check_vector_on_tangent(y, tu, rtol=1e-7)
    assert ok, reason
    # transporting log_x y to y gives -log_y x
    assert torch.allclose(m.transp(x, y, m.logmap(x, y)), -m.logmap(y, x), rtol=1e-6, atol=1e-8)


def test_transp0_and_back_are_inverse() -> None:
    m = Lorentz(0.8)
    y = m.random(4, 6, radius=2.0, dtype=F64)
    v = m.proju(m.origin(4, 6, dtype=F64), torch.randn(4, 6, dtype=F64))
    w = m.transp0(y, v)
    assert torch.allclose(m.transp0back(y, w), v, atol=1e-10)
    assert torch.allclose(w, m.transp(m.origin(4, 6, dtype=F64), y, v), atol=1e-10)


def test_egrad2rgrad_does_not_mutate_and_is_tangent() -> None:
    m = Lorentz(1.5)
    x = m.random(3, 5, radius=1.0, dtype=F64)
    g = torch.randn(3, 5, dtype=F64)
    g0 = g.clone()
    r = m.egrad2rgrad(x, g)
    assert torch.equal(g, g0)
    assert m._check_vector_on_tangent(x, r, rtol=1e-9)[0]
    # Riemannian gradient pairs with tangent vectors as the Euclidean one does
    u = m.proju(x, torch.randn(3, 5, dtype=F64))
    assert torch.allclose(m.inner(x, r, u), (g * u).sum(-1), atol=1e-9)


def test_spot_values_against_mpmath() -> None:
    mpmath.mp.dps = 40
    # Lorentz: a point at radius r from the origin has dist0 = r exactly.
    for c, r in [(1.0, 1e-7), (0.3, 2.0), (4.0, 9.0)]:
        x = lm.expmap0(torch.tensor([[0.0, r / math.sqrt(c), 0.0]], dtype=F64), c)
        assert abs(float(lm.dist0(x, c)[0]) - r / math.sqrt(c)) <= 1e-12 * max(1.0, r)
        xs = mpmath.sinh(mpmath.mpf(r)) / mpmath.sqrt(c)
        assert abs(float(x[0, 1]) - float(xs)) <= 1e-14 * float(xs) * 10
    # Poincaré: d(0, p) = (2 / sqrt(c)) artanh(sqrt(c) |p|)
    for c, rho in [(1.0, 0.5), (2.0, 0.7), (1.0, 0.999999)]:
        p = torch.tensor([[rho / math.sqrt(c), 0.0]], dtype=F64)
        exact = 2 / mpmath.sqrt(c) * mpmath.atanh(mpmath.mpf(rho))
        assert abs(float(pm.dist0(p, c)[0]) - float(exact)) <= 1e-12 * float(exact)


def test_poincare_transport_near_the_float32_boundary_preserves_norms() -> None:
    # x and y close together at radius 11: the gyration's denominator
    # ~ (1 - c|x|^2)^2 ~ 1e-9 cancels to 0 if evaluated in float32.
    x = pm.random(6, 8, radius=11.0, dtype=torch.float32, generator=_gen(3))
    y = pm.expmap(x, 1e-6 * torch.randn(6, 8, generator=_gen(4)), 1.0)
    v = torch.randn(6, 8, generator=_gen(5))
    t = pm.transp(x, y, v, 1.0)
    assert torch.isfinite(t).all()
    ratio = pm.norm(y, t, 1.0) / pm.norm(x, v, 1.0)
    assert torch.allclose(ratio, torch.ones_like(ratio), rtol=1e-3)
