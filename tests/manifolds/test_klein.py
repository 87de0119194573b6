"""The Klein model: agreement with the other models, straight geodesics, its limits."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hypervldd
from hypervldd.manifolds import Klein, Lorentz, PoincareBall, conversions, get_manifold
from hypervldd.manifolds import klein_math as km
from hypervldd.numerics import ball_margin

F32, F64 = torch.float32, torch.float64
SETTINGS = settings(max_examples=20, deadline=None)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_get_manifold_builds_klein() -> None:
    m = get_manifold("Klein", c=0.5)
    assert isinstance(m, Klein) and math.isclose(float(m.c), 0.5)
    assert m.name == "Klein" and m.extra_dim == 0


@SETTINGS
@given(
    c=st.floats(min_value=0.05, max_value=5.0),
    radius=st.floats(min_value=0.0, max_value=8.0),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_distances_and_maps_agree_with_lorentz_and_poincare(
    c: float, radius: float, seed: int
) -> None:
    g = _gen(seed)
    r = torch.rand(6, generator=g, dtype=F64) * radius / c**0.5
    x = Lorentz(c).random(6, 5, radius=r, dtype=F64, generator=g)
    y = Lorentz(c).random(6, 5, radius=r.flip(0), dtype=F64, generator=g)
    kx, ky = conversions.lorentz_to_klein(x, c), conversions.lorentz_to_klein(y, c)
    m, lor, ball = Klein(c), Lorentz(c), PoincareBall(c)
    ref = lor.dist(x, y)
    # Klein coordinates carry eps cosh^2(r) relative error (1 - c|k|^2 ~ 4 exp(-2r))
    tol = 1e-9 + 8 * torch.finfo(F64).eps / float(km.alpha(torch.cat([kx, ky]), c).min())
    # (an absolute eps / alpha too: the radial metric is 1 / alpha)
    assert torch.allclose(m.dist(kx, ky), ref, rtol=tol, atol=tol)
    assert torch.allclose(m.pairwise_dist(kx, ky), lor.pairwise_dist(x, y), rtol=tol, atol=1e-9)
    assert torch.allclose(m.dist0(kx), lor.dist0(x), rtol=tol, atol=tol)
    p = conversions.lorentz_to_poincare(x, c)
    assert torch.allclose(m.dist0(kx), ball.dist0(p), rtol=tol, atol=tol)
    # exp map: the Klein image of the Lorentz geodesic's end point
    v = lor.proju(x, torch.randn(x.shape, generator=g, dtype=F64))
    v = v / lor.norm(x, v, keepdim=True)  # unit steps: end points within radius + 1
    u = km.tangent_from_lorentz(kx, v, c)
    assert torch.allclose(m.norm(kx, u), lor.norm(x, v), rtol=1e-9)
    end = conversions.lorentz_to_klein(lor.expmap(x, v), c)
    tol_end = tol + 8 * torch.finfo(F64).eps / float(km.alpha(end, c).min())
    assert torch.allclose(m.expmap(kx, u), end, rtol=tol_end, atol=tol_end)


def test_geodesics_are_straight_chords() -> None:
    m = Klein(1.3)
    g = _gen(1)
    x = m.random(4, 3, radius=2.0, dtype=F64, generator=g)
    u = torch.randn(4, 3, generator=g, dtype=F64)
    u = u / m.norm(x, u, keepdim=True)  # unit speed: the end points stay within radius 4
    ys = torch.stack([m.expmap(x, t * u) for t in (0.25, 0.5, 1.0, 2.0)])  # (4 steps, 4, 3)
    w = ys - x
    # every displacement is parallel to u (a straight line through x along u) ...
    cross = w - (w * u).sum(-1, keepdim=True) / (u * u).sum(-1, keepdim=True) * u
    assert cross.abs().max() < 1e-12
    assert ((w * u).sum(-1) > 0).all()
    # ... and the distance along it is the step length
    lengths = m.norm(x, u)
    for t, y in zip((0.25, 0.5, 1.0, 2.0), ys, strict=True):
        assert torch.allclose(m.dist(x, y), t * lengths, rtol=1e-10)


def test_spot_values_against_mpmath() -> None:
    mpmath.mp.dps = 40
    for c, r in [(1.0, 1e-6), (0.3, 2.0), (4.0, 6.0)]:
        k = km.expmap0(torch.tensor([[r / math.sqrt(c), 0.0]], dtype=F64), c)
        assert abs(float(k[0, 0]) - float(mpmath.tanh(r) / mpmath.sqrt(c))) <= 4e-16
        assert abs(float(km.dist0(k, c)[0]) * math.sqrt(c) - r) <= 1e-12 * max(1.0, r)
    # two points on a line through the origin: d = (artanh(a) - artanh(b)) / sqrt(c)
    for a, b in [(0.5, 0.49), (0.999, 0.998), (0.9999999, -0.3)]:
        x = torch.tensor([[a, 0.0]], dtype=F64)
        y = torch.tensor([[b, 0.0]], dtype=F64)
        exact = abs(mpmath.atanh(mpmath.mpf(a)) - mpmath.atanh(mpmath.mpf(b)))
        assert abs(float(km.dist(x, y, 1.0)[0]) - float(exact)) <= 1e-9 * float(exact)


def test_metric_and_gradient_conventions() -> None:
    m = Klein(0.8)
    g = _gen(2)
    x = m.random(5, 4, radius=3.0, dtype=F64, generator=g)
    e = torch.randn(5, 4, generator=g, dtype=F64)
    r = m.egrad2rgrad(x, e)
    u = torch.randn(5, 4, generator=g, dtype=F64)
    # the Riemannian gradient pairs with tangent vectors as the Euclidean one does
    assert torch.allclose(m.inner(x, r, u), (e * u).sum(-1), rtol=1e-10)
    assert torch.allclose(m.norm(x, u) ** 2, m.inner(x, u), rtol=1e-10)
    # the metric is the hyperboloid's pulled back
    lu = km.tangent_to_lorentz(x, u, 0.8)
    assert torch.allclose(Lorentz(0.8).inner(None, lu), m.inner(x, u), rtol=1e-10)
    # transport from the origin and back
    v = torch.randn(5, 4, generator=g, dtype=F64)
    assert torch.allclose(m.transp0back(x, m.transp0(x, v)), v, atol=1e-10)
    assert torch.allclose(m.transp0(x, v), m.transp(m.origin(5, 4, dtype=F64), x, v), atol=1e-12)
    assert torch.allclose(m.lorentz_factor(x), km.alpha(x, 0.8).squeeze(-1) ** -0.5)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_projection_margin_and_its_radius(dtype: torch.dtype) -> None:
    m = Klein(1.0)
    p = m.projx(torch.tensor([[3.0, 4.0]], dtype=dtype))
    assert math.isclose(
        float(p.norm()), 1.0 - ball_margin(dtype), rel_tol=4 * torch.finfo(dtype).eps
    )
    cap = float(m.dist0(p))
    # half the ball's radius cap: about 5.9 in float32 and 15.9 in float64
    expected = 0.5 * 2.0 * math.atanh(1.0 - ball_margin(dtype))
    assert math.isclose(cap, expected, rel_tol=1e-3)
    assert (5.5 < cap < 6.2) if dtype == F32 else (15.5 < cap < 16.2)
    m.check_point(p)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("norm", [1e20, 3e38])
def test_lift_of_huge_vectors_is_the_projected_point(dtype: torch.dtype, norm: float) -> None:
    d = torch.tensor([0.6, -0.8, 0.0], dtype=dtype)
    k = Klein(1.0).lift((d * norm)[None])
    assert torch.isfinite(k).all()
    assert torch.allclose(k[0] / k[0].norm(), d, atol=1e-6)
    assert float(k.norm()) > 1.0 - 2 * ball_margin(dtype)


def test_far_steps_stay_inside_the_ball_with_finite_gradients() -> None:
    m = Klein(1.0)
    x = m.random(3, 4, radius=5.0, generator=_gen(3)).requires_grad_(True)
    u = torch.randn(3, 4, generator=_gen(4)) * 1e6
    y = m.expmap(x, u)
    assert torch.isfinite(y).all() and (km.alpha(y, 1.0) > 0).all()
    (gx,) = torch.autograd.grad(m.dist(x, y.detach()).sum(), x)
    assert torch.isfinite(gx).all()


def test_nan_in_gives_nan_out_with_validation_off() -> None:
    m = Klein(1.0)
    x = m.random(2, 3, radius=1.0, dtype=F64)
    bad = x.clone()
    bad[0, 1] = float("nan")
    with hypervldd.validation(False):
        for out in (m.dist(bad, x)[0], m.pairwise_dist(bad, x)[0], m.logmap(bad, x)[0]):
            assert torch.isnan(out).all()
        assert torch.isnan(m.expmap(bad, torch.ones_like(x))[0]).all()
        assert not torch.isnan(m.dist(bad, x)[1])
    with pytest.raises(ValueError, match=r"^x must be finite"):
        m.dist(bad, x)


def test_klein_and_poincare_reject_points_outside_the_ball_alike():
    # Both models live on the open ball c|x|^2 < 1 and share one residual check.
    inside = torch.tensor([[0.3, 0.4]], dtype=torch.float64)
    outside = torch.tensor([[0.3, 0.4], [0.0, 1.5]], dtype=torch.float64)
    for m in (Klein(c=1.0), PoincareBall(c=1.0)):
        assert m._check_point_on_manifold(inside, rtol=1e-9) == (True, None)
        ok, msg = m._check_point_on_manifold(outside, rtol=1e-9)
        assert not ok and msg == "points must satisfy c|x|^2 < 1, got c|x|^2 up to 2.25"
