"""The Einstein midpoint: the same point as the Lorentz and Poincaré midpoints."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from hypervldd.manifolds import Klein, conversions
from hypervldd.manifolds import klein_math as km
from hypervldd.nn import EinsteinMidpoint, einstein_midpoint, lorentz_midpoint, poincare_midpoint

F32, F64 = torch.float32, torch.float64


def _points(c: float, radius: float, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(shape[:-1], generator=g, dtype=F64) * radius
    return km.random(*shape, radius=r, c=c, dtype=F64, generator=g)


@pytest.mark.parametrize("c", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("radius", [0.5, 4.0, 8.0])
def test_agrees_with_lorentz_and_poincare_midpoints(c: float, radius: float) -> None:
    k = _points(c, radius, (3, 7, 5))
    w = torch.rand(3, 7, generator=torch.Generator().manual_seed(1), dtype=F64)
    mid = einstein_midpoint(k, c, w, dim=1)
    via_lorentz = conversions.lorentz_to_klein(
        lorentz_midpoint(conversions.klein_to_lorentz(k, c), c, w, dim=1), c
    )
    via_ball = conversions.poincare_to_klein(
        poincare_midpoint(conversions.klein_to_poincare(k, c), c, w, dim=1), c
    )
    m = Klein(c)
    # compared as hyperbolic distances: coordinates near the boundary say little
    assert m.dist(mid, via_lorentz).max() < 1e-8
    assert m.dist(mid, via_ball).max() < 1e-8


@pytest.mark.parametrize("dtype", [F32, F64])
def test_equal_weights_of_two_points_give_the_geodesic_midpoint(dtype: torch.dtype) -> None:
    m = Klein(1.3)
    k = _points(1.3, 5.0, (6, 2, 4), seed=2).to(dtype)
    mid = einstein_midpoint(k, 1.3)
    d = m.dist(k[:, 0], k[:, 1])
    tol = 1e-10 if dtype == F64 else 2e-3
    assert torch.allclose(m.dist(k[:, 0], mid), d / 2, rtol=tol, atol=tol)
    assert torch.allclose(m.dist(mid, k[:, 1]), d / 2, rtol=tol, atol=tol)
    assert mid.dtype == dtype


def test_weights_select_and_keepdim() -> None:
    k = _points(1.0, 3.0, (4, 3), seed=3)
    onehot = torch.tensor([0.0, 0.0, 2.0, 0.0], dtype=F64)
    assert torch.allclose(einstein_midpoint(k, 1.0, onehot, dim=0), k[2], atol=1e-12)
    assert einstein_midpoint(k, 1.0, dim=0, keepdim=True).shape == (1, 3)
    # the module pools the same way and takes its curvature from the manifold
    pool = EinsteinMidpoint(Klein(0.5), dim=0)
    assert torch.allclose(pool(k * 0.5), einstein_midpoint(k * 0.5, 0.5, dim=0))


def test_gradcheck() -> None:
    k = _points(0.7, 2.0, (5, 3), seed=4).requires_grad_(True)
    w = torch.rand(5, dtype=F64).requires_grad_(True)
    c = torch.tensor(0.7, dtype=F64, requires_grad=True)
    assert gradcheck(lambda a, b, cc: einstein_midpoint(a, cc, b, dim=0), (k, w, c), eps=1e-6)


def test_bad_input_is_rejected_with_clear_errors() -> None:
    k = _points(1.0, 1.0, (4, 3), seed=5)
    with pytest.raises(ValueError, match="weights must be non-negative"):
        einstein_midpoint(k, 1.0, torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=F64), dim=0)
    with pytest.raises(ValueError, match="weights must not all be zero"):
        einstein_midpoint(k, 1.0, torch.zeros(4, dtype=F64), dim=0)
    with pytest.raises(ValueError, match="dim must not be the last"):
        einstein_midpoint(k, 1.0, dim=-1)
    with pytest.raises(ValueError, match="k must lie strictly inside the ball"):
        einstein_midpoint(torch.ones(2, 3), 1.0)
    with pytest.raises(TypeError, match="manifold must be an instance of"):
        EinsteinMidpoint(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="manifold must be one of"):
        EinsteinMidpoint("lorentz")
