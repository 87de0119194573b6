"""Learnable curvature: positive reparametrisation inside its bounds."""

from __future__ import annotations

import copy

import pytest
import torch

from hypervldd.manifolds import Curvature, Lorentz, PoincareBall


def test_fixed_curvature_is_a_buffer() -> None:
    c = Curvature(0.3)
    assert list(c.parameters()) == []
    assert c().item() == 0.3  # exact: stored in float64
    assert "_value" in c.state_dict()
    assert c.float()().dtype == torch.float64  # .float() does not round it


def test_learnable_curvature_starts_at_its_value_and_stays_in_bounds() -> None:
    c = Curvature(0.7, learnable=True)
    assert torch.isclose(c(), torch.tensor(0.7), rtol=1e-6)
    assert c.bounds == pytest.approx((0.07, 7.0), rel=1e-12)
    for raw in (-1e4, -30.0, 0.0, 30.0, 1e4):
        with torch.no_grad():
            c.raw.fill_(raw)
        v = float(c().detach())
        assert 0.07 * (1 - 1e-6) <= v <= 7.0 * (1 + 1e-6)


def test_learnable_curvature_gets_a_gradient_through_the_manifold() -> None:
    m = Lorentz(1.0, learnable=True)
    u, v = torch.randn(4, 3), 2 * torch.randn(4, 3)
    # Points are re-lifted from Euclidean features at every step: after c
    # changes, old points are no longer on the manifold.
    m.dist(m.lift(u), m.lift(v)).sum().backward()
    g = m.curvature.raw.grad
    assert g is not None and torch.isfinite(g) and g != 0
    # Recover the curvature that produced target distances.
    with torch.no_grad():
        target = Lorentz(2.0).dist(Lorentz(2.0).lift(u), Lorentz(2.0).lift(v))
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        (m.dist(m.lift(u), m.lift(v)) - target).pow(2).mean().backward()
        opt.step()
    assert abs(float(m.c.detach()) - 2.0) < 0.05


def test_state_dict_round_trip_and_deepcopy() -> None:
    m = PoincareBall(0.4, learnable=True)
    with torch.no_grad():
        m.curvature.raw.add_(0.3)
    m2 = PoincareBall(0.4, learnable=True)
    m2.load_state_dict(m.state_dict())
    assert torch.equal(m2.c, m.c)
    m3 = copy.deepcopy(m)
    assert torch.equal(m3.c, m.c)
