"""Optimiser steps at the edges: the float64 update must land on a valid point of the
parameter's own dtype (inside the ball, within the Lorentz radius cap)."""

from __future__ import annotations

import warnings

import pytest
import torch

from hypervldd.manifolds import Lorentz, PoincareBall
from hypervldd.manifolds import lorentz_math as lm
from hypervldd.manifolds import poincare_math as pm
from hypervldd.numerics import max_radius
from hypervldd.optim import RiemannianAdam, RiemannianAdamW, RiemannianSGD

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import geoopt

OPTS = [
    (RiemannianSGD, dict(lr=1.0)),
    (RiemannianSGD, dict(lr=1.0, momentum=0.9)),
    (RiemannianAdam, dict(lr=5.0)),
    (RiemannianAdamW, dict(lr=5.0, weight_decay=1e-3)),
]


@pytest.mark.parametrize("opt_cls,kw", OPTS)
def test_large_poincare_step_from_radius_8_stays_inside_the_float32_ball(opt_cls, kw) -> None:
    # The update runs in float64; rounding its result to float32 put the point
    # exactly on the boundary c|x|^2 = 1 in about half of these seeds.
    m = PoincareBall(1.0)
    bad = 0
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        x = m.random(1, 6, radius=8.0, dtype=torch.float32, generator=g)
        p = geoopt.ManifoldParameter(x.clone(), manifold=m)
        opt = opt_cls([p], **kw)
        # a gradient pointing outwards, large in Riemannian units
        p.grad = -x / x.norm() * 1e6
        opt.step()
        with torch.no_grad():
            a = pm.alpha(p.detach().double(), 1.0)
            bad += int((a <= 0).any())
            m.check_point(p.detach(), "p")  # raises on the boundary
            assert torch.isfinite(m.dist0(p.detach())).all()
    assert bad == 0


@pytest.mark.parametrize("opt_cls,kw", OPTS)
def test_large_lorentz_step_stays_within_the_float32_radius_cap(opt_cls, kw) -> None:
    # Plain SGD from any radius; with a momentum or Adam state only from radius 20:
    # a stored float32 tangent vector at the cap has coordinates x0 |v| ~ 1e17 |v|,
    # and the Riemannian gradient of a Euclidean gradient of norm 30 there is ~3e18.
    radii = (
        [1.0, 10.0, 30.0, 39.0]
        if kw.get("momentum", 0) == 0 and opt_cls is RiemannianSGD
        else [1.0, 10.0, 20.0]
    )
    m = Lorentz(1.0)
    g = torch.Generator().manual_seed(0)
    x = m.random(len(radii), 7, radius=torch.tensor(radii), dtype=torch.float32, generator=g)
    p = geoopt.ManifoldParameter(x.clone(), manifold=m)
    opt = opt_cls([p], **kw)
    # One step with SGD momentum: its float32 buffer at the cap would hold ~3e35 x 10
    # (not representable; the buffers are kept in the parameter dtype, a known limit).
    for _ in range(1 if kw.get("momentum") else 3):
        # Euclidean gradient of norm 30 on the space part, pointing outwards
        xs = p.detach()[:, 1:]
        grad = torch.zeros_like(p)
        grad[:, 1:] = -30.0 * xs / xs.norm(dim=-1, keepdim=True)
        p.grad = grad
        opt.step()
        assert torch.isfinite(p).all()
        with torch.no_grad():
            r = lm.dist0(p.detach(), 1.0)
            assert float(r.max()) <= max_radius(torch.float32) * (1 + 1e-5)
            m.check_point(p.detach(), "p")


def test_expmap_and_one_sgd_step_agree_at_the_cap() -> None:
    # the optimiser's step is the exponential map, capped the same way
    m = Lorentz(1.0)
    x = m.random(2, 5, radius=20.0, dtype=torch.float32)
    p = geoopt.ManifoldParameter(x.clone(), manifold=m)
    grad = torch.zeros_like(x)
    grad[:, 1:] = -30.0 * x[:, 1:] / x[:, 1:].norm(dim=-1, keepdim=True)
    p.grad = grad
    RiemannianSGD([p], lr=1.0).step()
    want = m.expmap(x.double(), -m.egrad2rgrad(x.double(), grad.double()))
    assert torch.allclose(
        lm.dist0(p.detach().double(), 1.0), lm.dist0(want, 1.0).clamp_max(max_radius(torch.float32))
    )
