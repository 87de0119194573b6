"""float64 gradcheck for every differentiable function of the geometry core."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from hypervldd.manifolds import Curvature, conversions, flat_math
from hypervldd.manifolds import klein_math as km
from hypervldd.manifolds import lorentz_math as lm
from hypervldd.manifolds import poincare_math as pm

F64 = torch.float64


def _lorentz(n: int = 3, d: int = 4, radius: float = 1.5, c: float = 0.7) -> torch.Tensor:
    return lm.random(n, d + 1, radius=radius, c=c, dtype=F64)


def _tangent(x: torch.Tensor, c: float) -> torch.Tensor:
    return lm.proju(x, torch.randn_like(x), c)


def _ball(n: int = 3, d: int = 4, radius: float = 1.5, c: float = 0.7) -> torch.Tensor:
    return pm.random(n, d, radius=radius, c=c, dtype=F64)


C = 0.7


def _check(fn, *inputs: torch.Tensor) -> None:  # noqa: ANN001
    inputs = tuple(t.detach().clone().requires_grad_(True) for t in inputs)
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("radius", [0.3, 3.0, 8.0])
def test_lorentz_dist(radius: float) -> None:
    x, y = _lorentz(radius=radius), _lorentz(radius=radius)
    _check(lambda a, b: lm.dist(a, b, C), x, y)
    # close pairs (the difference form and the split form both get exercised)
    y_close = lm.expmap(x, 1e-3 * _tangent(x, C), C)
    _check(lambda a, b: lm.dist(a, b, C), x, y_close)


def test_lorentz_dist_wrt_curvature() -> None:
    x, y = _lorentz(), _lorentz()
    c = torch.tensor(C, dtype=F64)
    _check(lambda cc: lm.dist(x, y, cc), c)


def test_lorentz_maps() -> None:
    x, y = _lorentz(), _lorentz()
    u = _tangent(x, C)
    _check(lambda a, b: lm.expmap(a, b, C), x, u)
    _check(lambda a, b: lm.logmap(a, b, C), x, y)
    _check(lambda b: lm.expmap0(b, C), u)
    _check(lambda a: lm.logmap0(a, C), x)
    _check(lambda a, b, v: lm.transp(a, b, v, C), x, y, u)
    _check(lambda b, v: lm.transp0(b, v, C), y, u)
    _check(lambda a, v: lm.transp0back(a, v, C), x, u)
    _check(lambda a: lm.dist0(a, C), x)
    _check(lambda a, g: lm.egrad2rgrad(a, g, C), x, torch.randn_like(x))
    _check(lambda a: lm.projx(a, C), x)
    _check(lambda a, b: lm.pairwise_dist(a, b, C), x, y)


def test_poincare_functions() -> None:
    x, y = _ball(), _ball()
    u = torch.randn_like(x)
    _check(lambda a, b: pm.dist(a, b, C), x, y)
    _check(lambda a, b: pm.pairwise_dist(a, b, C), x, y)
    _check(lambda a: pm.dist0(a, C), x)
    _check(lambda a, b: pm.mobius_add(a, b, C), x, y)
    _check(lambda a, b: pm.expmap(a, b, C), x, u)
    _check(lambda a, b: pm.logmap(a, b, C), x, y)
    _check(lambda b: pm.expmap0(b, C), u)
    _check(lambda a: pm.logmap0(a, C), x)
    _check(lambda a, b, v: pm.transp(a, b, v, C), x, y, u)
    _check(lambda a, g: pm.egrad2rgrad(a, g, C), x, u)
    c = torch.tensor(C, dtype=F64)
    _check(lambda cc: pm.dist(x, y, cc), c)


@pytest.mark.parametrize("radius", [0.3, 2.0, 4.0])
def test_klein_functions(radius: float) -> None:
    x = km.random(3, 4, radius=radius, c=C, dtype=F64)
    y = km.random(3, 4, radius=radius, c=C, dtype=F64)
    u = torch.randn_like(x)
    # Far out the coordinates' scale 1 - c|k|^2 (4e-3 at radius 4) is not large against
    # gradcheck's step: the finite differences need a step scaled to it.
    step = 1e-6 * min(1.0, float(km.alpha(torch.cat([x, y]), C).min()) * 10)

    def _check(fn, *inputs: torch.Tensor) -> None:  # noqa: ANN001
        inputs = tuple(t.detach().clone().requires_grad_(True) for t in inputs)
        assert gradcheck(fn, inputs, eps=step, atol=1e-6, rtol=1e-5)

    _check(lambda a, b: km.dist(a, b, C), x, y)
    _check(lambda a, b: km.dist(a, b, C), x, km.expmap(x, 1e-3 * u, C))  # close pairs
    _check(lambda a, b: km.pairwise_dist(a, b, C), x, y)
    _check(lambda a: km.dist0(a, C), x)
    _check(lambda a, b: km.expmap(a, b, C), x, u)
    _check(lambda a, b: km.logmap(a, b, C), x, y)
    _check(lambda b: km.expmap0(b, C), u)
    _check(lambda a: km.logmap0(a, C), x)
    _check(lambda a, b, v: km.transp(a, b, v, C), x, y, u)
    _check(lambda a, v: km.inner(a, v, u, C), x, u)
    _check(lambda a, v: km.norm(a, v, C), x, u)
    _check(lambda a, g: km.egrad2rgrad(a, g, C), x, u)
    c = torch.tensor(C, dtype=F64)
    _check(lambda cc: km.dist(x, y, cc), c)


def test_flat_and_sphere_functions() -> None:
    x, y = torch.randn(3, 4, dtype=F64), torch.randn(3, 4, dtype=F64)
    _check(flat_math.euclidean_dist, x, y)
    _check(flat_math.euclidean_pairwise_dist, x, y)
    xs, ys = flat_math.sphere_projx(x, C), flat_math.sphere_projx(y, C)
    _check(lambda a, b: flat_math.sphere_dist(a, b, C), xs, ys)
    u = flat_math.sphere_proju(xs, torch.randn_like(xs), C)
    _check(lambda a, b: flat_math.sphere_expmap(a, b, C), xs, u)
    _check(lambda a, b: flat_math.sphere_logmap(a, b, C), xs, ys)


def test_conversions() -> None:
    x = _lorentz()
    p = conversions.lorentz_to_poincare(x, C)
    k = conversions.lorentz_to_klein(x, C)
    _check(lambda a: conversions.lorentz_to_poincare(a, C), x)
    _check(lambda a: conversions.poincare_to_lorentz(a, C), p)
    _check(lambda a: conversions.lorentz_to_klein(a, C), x)
    _check(lambda a: conversions.klein_to_lorentz(a, C), k)
    _check(lambda a: conversions.poincare_to_klein(a, C), p)
    _check(lambda a: conversions.klein_to_poincare(a, C), k)


def test_learnable_curvature() -> None:
    curv = Curvature(0.5, learnable=True).double()
    raw = curv.raw.detach().clone()

    def fn(r: torch.Tensor) -> torch.Tensor:
        curv.raw.data = r.detach()
        lo, hi = curv._log_lo, curv._log_hi
        return torch.exp(lo + (hi - lo) * torch.sigmoid(r))

    _check(fn, raw)


def test_zero_distance_gradient_is_zero_not_nan() -> None:
    for x in (_lorentz(radius=0.0), _lorentz(radius=4.0)):
        x = x.clone().requires_grad_(True)
        d = lm.dist(x, x.detach(), C).sum()
        (g,) = torch.autograd.grad(d, x)
        assert torch.isfinite(g).all() and torch.all(g == 0)
    p = _ball().requires_grad_(True)
    (g,) = torch.autograd.grad(pm.dist(p, p.detach(), C).sum(), p)
    assert torch.all(g == 0)
    for r in (0.0, 5.0):
        k = km.random(3, 4, radius=r, c=C, dtype=F64).requires_grad_(True)
        (g,) = torch.autograd.grad(km.dist(k, k.detach(), C).sum(), k)
        assert torch.isfinite(g).all() and torch.all(g == 0)
        (g,) = torch.autograd.grad(km.logmap(k, k.detach(), C).sum(), k)
        assert torch.isfinite(g).all()
    # pairwise: the diagonal of d(x, x) is a zero-distance pair too
    x = _lorentz(radius=5.0).requires_grad_(True)
    (g,) = torch.autograd.grad(lm.pairwise_dist(x, x.detach(), C).diagonal().sum(), x)
    assert torch.isfinite(g).all() and torch.all(g == 0)
    p = _ball(radius=3.0).requires_grad_(True)
    (g,) = torch.autograd.grad(pm.pairwise_dist(p, p.detach(), C).sum(), p)
    assert torch.isfinite(g).all()
    (g,) = torch.autograd.grad(pm.pairwise_dist(p, p.detach(), C).diagonal().sum(), p)
    assert torch.all(g == 0)
