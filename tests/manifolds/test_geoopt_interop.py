"""Agreement with geoopt, and geoopt's ManifoldParameter + RiemannianAdam on our manifolds.

Our classes subclass ``geoopt.Manifold``: that is the interop decision (see
docs/geometry.md), so geoopt's optimisers and tensors work on them unchanged.
"""

from __future__ import annotations

import geoopt
import pytest
import torch

from hypervldd.manifolds import Klein, Lorentz, PoincareBall, Sphere

F64 = torch.float64


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_lorentz_agrees_with_geoopt(c: float) -> None:
    # geoopt keeps its curvature in the default dtype: give it float64 for a fair check
    ours, theirs = Lorentz(c), geoopt.Lorentz(k=torch.tensor(1.0 / c, dtype=F64))
    x = ours.random(16, 6, radius=torch.linspace(0.1, 3, 16, dtype=F64), dtype=F64)
    y = ours.random(16, 6, radius=2.0, dtype=F64)
    u = ours.proju(x, torch.randn(16, 6, dtype=F64))
    assert torch.allclose(ours.dist(x, y), theirs.dist(x, y), rtol=1e-8)
    assert torch.allclose(ours.expmap(x, u), theirs.expmap(x, u), rtol=1e-8, atol=1e-8)
    assert torch.allclose(ours.logmap(x, y), theirs.logmap(x, y), rtol=1e-7, atol=1e-8)
    assert torch.allclose(ours.transp(x, y, u), theirs.transp(x, y, u), rtol=1e-8, atol=1e-8)
    assert torch.allclose(ours.inner(x, u), theirs.inner(x, u), rtol=1e-10)
    assert torch.allclose(ours.egrad2rgrad(x, u.clone()), theirs.egrad2rgrad(x, u.clone()))
    assert torch.allclose(ours.k, torch.tensor(1.0 / c, dtype=F64))


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_poincare_agrees_with_geoopt(c: float) -> None:
    ours, theirs = PoincareBall(c), geoopt.PoincareBall(c=torch.tensor(c, dtype=F64))
    x = ours.random(16, 5, radius=torch.linspace(0.1, 4, 16, dtype=F64), dtype=F64)
    y = ours.random(16, 5, radius=1.5, dtype=F64)
    # Steps that end inside both projection radii (geoopt stops 1e-5 from the
    # boundary in float64, we stop 128 ulps from it): beyond, each saturates.
    u = torch.randn(16, 5, dtype=F64) / ours.lambda_x(x, keepdim=True)  # Riemannian norm ~2
    assert torch.allclose(ours.dist(x, y), theirs.dist(x, y), rtol=1e-8)
    assert torch.allclose(ours.expmap(x, u), theirs.expmap(x, u), rtol=1e-7, atol=1e-9)
    assert torch.allclose(ours.logmap(x, y), theirs.logmap(x, y), rtol=1e-7, atol=1e-9)
    assert torch.allclose(ours.transp(x, y, u), theirs.transp(x, y, u), rtol=1e-7, atol=1e-9)
    assert torch.allclose(ours.mobius_add(x, y), theirs.mobius_add(x, y), rtol=1e-9)
    assert torch.allclose(ours.egrad2rgrad(x, u), theirs.egrad2rgrad(x, u), rtol=1e-9)


def test_sphere_agrees_with_geoopt_unit_sphere() -> None:
    ours, theirs = Sphere(1.0), geoopt.Sphere()
    x = ours.random(8, 4, radius=1.0, dtype=F64)
    y = ours.random(8, 4, radius=2.0, dtype=F64)
    assert torch.allclose(ours.dist(x, y), theirs.dist(x, y), rtol=1e-7)


@pytest.mark.parametrize("cls", [Lorentz, PoincareBall, Klein, Sphere])
def test_geoopt_riemannian_adam_trains_on_our_manifolds(cls) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    m = cls(1.0)
    target = m.random(1, 4, radius=1.5, dtype=F64)
    p = geoopt.ManifoldParameter(m.random(1, 4, radius=0.2, dtype=F64), manifold=m)
    opt = geoopt.optim.RiemannianAdam([p], lr=0.05)
    start = float(m.dist(p.detach(), target))
    for _ in range(200):
        opt.zero_grad()
        loss = m.dist(p, target).pow(2).sum()
        loss.backward()
        opt.step()
    end = float(m.dist(p.detach(), target))
    assert end < 1e-2 * start, (start, end)
    assert m._check_point_on_manifold(p.detach(), rtol=1e-9)[0]
