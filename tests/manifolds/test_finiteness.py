"""Finiteness sweeps: no NaN or inf in values or gradients over log-uniform grids.

Norms from 1e-15 to 10 for tangent vectors and features, Lorentz radii up to 15,
Poincaré points up to the projection radius; float32 and float64.
"""

from __future__ import annotations

import pytest
import torch

from hypervldd.manifolds import conversions, flat_math
from hypervldd.manifolds import klein_math as km
from hypervldd.manifolds import lorentz_math as lm
from hypervldd.manifolds import poincare_math as pm
from hypervldd.numerics import ball_margin

DTYPES = [torch.float32, torch.float64]
C = 1.3


def _log_uniform(lo: float, hi: float, n: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.logspace(torch.log10(torch.tensor(lo)), torch.log10(torch.tensor(hi)), n).to(dtype)


def _directions(n: int, d: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.randn(n, d, dtype=dtype)
    return g / g.norm(dim=-1, keepdim=True)


def _assert_finite_with_grads(out: torch.Tensor, *inputs: torch.Tensor) -> None:
    assert torch.isfinite(out).all(), "non-finite value"
    grads = torch.autograd.grad(out.sum(), inputs, allow_unused=True, retain_graph=True)
    for g in grads:
        assert g is None or torch.isfinite(g).all(), "non-finite gradient"


@pytest.mark.parametrize("dtype", DTYPES)
def test_lorentz_sweep(dtype: torch.dtype) -> None:
    n, d = 40, 6
    norms = _log_uniform(1e-15, 10.0, n, dtype)
    u = (_directions(n, d, dtype) * norms[:, None]).requires_grad_(True)
    x = lm.expmap0(torch.nn.functional.pad(u, (1, 0)), C)
    _assert_finite_with_grads(x, u)
    _assert_finite_with_grads(lm.logmap0(x, C), u)

    radii = torch.cat([torch.zeros(1, dtype=dtype), _log_uniform(1e-15, 15.0, n - 1, dtype)])
    x = lm.random(n, d + 1, radius=radii, c=C, dtype=dtype).requires_grad_(True)
    y = lm.random(n, d + 1, radius=radii.flip(0), c=C, dtype=dtype).requires_grad_(True)
    for out in (
        lm.dist(x, y, C),
        lm.dist(x, x.detach(), C),  # coincident pairs
        lm.dist(x, lm.expmap(x, 1e-12 * lm.proju(x, torch.ones_like(x), C), C), C),
        lm.dist0(x, C),
        lm.pairwise_dist(x, y, C),
        lm.logmap(x, y, C),
        lm.logmap(x, x.detach(), C),
        lm.transp(x, y, lm.proju(x, torch.ones_like(x), C), C),
        lm.egrad2rgrad(x, torch.ones_like(x), C),
        conversions.lorentz_to_poincare(x, C),
        conversions.lorentz_to_klein(x, C),
    ):
        _assert_finite_with_grads(out, x, y)
    # Unit tangent vectors carried from the origin, scaled over the norm grid.
    t0 = torch.nn.functional.pad(_directions(n, d, dtype), (1, 0))
    t = (lm.transp0(x, t0, C) * norms[:, None]).detach().requires_grad_(True)
    _assert_finite_with_grads(lm.expmap(x, t, C), x, t)


@pytest.mark.parametrize("dtype", DTYPES)
def test_poincare_sweep(dtype: torch.dtype) -> None:
    n, d = 40, 6
    maxr = (1.0 - ball_margin(dtype)) / C**0.5
    norms = (
        torch.cat(
            [torch.zeros(1, dtype=dtype), _log_uniform(1e-15, 1.0, n - 2, dtype), torch.ones(1)]
        ).to(dtype)
        * maxr
    )
    x = pm.projx(_directions(n, d, dtype) * norms[:, None], C).requires_grad_(True)
    y = pm.projx(_directions(n, d, dtype) * norms.flip(0)[:, None], C).requires_grad_(True)
    v = torch.ones_like(x)
    for out in (
        pm.dist(x, y, C),
        pm.dist(x, x.detach(), C),
        pm.dist0(x, C),
        pm.pairwise_dist(x, y, C),
        pm.logmap(x, y, C),
        pm.logmap(x, x.detach(), C),
        pm.logmap0(x, C),
        pm.expmap(x, v * 1e-3, C),
        pm.transp(x, y, v, C),
        pm.mobius_add(x, y, C),
        pm.egrad2rgrad(x, v, C),
        conversions.poincare_to_lorentz(x, C),
        conversions.poincare_to_klein(x, C),
    ):
        _assert_finite_with_grads(out, x, y)
    u = (_directions(n, d, dtype) * _log_uniform(1e-15, 10.0, n, dtype)[:, None]).requires_grad_()
    _assert_finite_with_grads(pm.expmap0(u, C), u)


@pytest.mark.parametrize("dtype", DTYPES)
def test_klein_sweep(dtype: torch.dtype) -> None:
    n, d = 40, 6
    maxr = (1.0 - ball_margin(dtype)) / C**0.5
    norms = (
        torch.cat(
            [torch.zeros(1, dtype=dtype), _log_uniform(1e-15, 1.0, n - 2, dtype), torch.ones(1)]
        ).to(dtype)
        * maxr
    )
    x = km.projx(_directions(n, d, dtype) * norms[:, None], C).requires_grad_(True)
    y = km.projx(_directions(n, d, dtype) * norms.flip(0)[:, None], C).requires_grad_(True)
    v = torch.ones_like(x)
    for out in (
        km.dist(x, y, C),
        km.dist(x, x.detach(), C),
        km.dist0(x, C),
        km.pairwise_dist(x, y, C),
        km.logmap(x, y, C),
        km.logmap(x, x.detach(), C),
        km.logmap0(x, C),
        km.expmap(x, v * 1e-3, C),
        km.expmap(x, v * 1e3, C),
        km.transp(x, y, v, C),
        km.inner(x, v, v, C),
        km.norm(x, v, C),
        km.egrad2rgrad(x, v, C),
        conversions.klein_to_lorentz(x, C),
        conversions.klein_to_poincare(x, C),
    ):
        _assert_finite_with_grads(out, x, y)
    u = (_directions(n, d, dtype) * _log_uniform(1e-15, 10.0, n, dtype)[:, None]).requires_grad_()
    _assert_finite_with_grads(km.expmap0(u, C), u)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sphere_and_euclidean_sweep(dtype: torch.dtype) -> None:
    n, d = 20, 5
    x = flat_math.sphere_projx(torch.randn(n, d, dtype=dtype), C).requires_grad_(True)
    y = torch.cat([x[:10].detach(), -x[10:].detach()]).requires_grad_(True)  # equal and antipodal
    _assert_finite_with_grads(flat_math.sphere_dist(x, y, C), x, y)
    _assert_finite_with_grads(flat_math.euclidean_dist(x, x.detach()), x)


def test_expmap0_caps_radius_instead_of_overflowing() -> None:
    u = torch.zeros(2, 4)
    u[:, 1] = torch.tensor([50.0, 1e6])
    x = lm.expmap0(u, 1.0)
    assert torch.isfinite(x).all()
    assert torch.isfinite(lm.dist0(x, 1.0)).all()
