"""Bad input raises clear errors that name the argument."""

from __future__ import annotations

import pytest
import torch

import hypervldd
from hypervldd.manifolds import (
    Curvature,
    Euclidean,
    Klein,
    Lorentz,
    PoincareBall,
    Sphere,
    get_manifold,
)


def test_curvature_must_be_positive_and_finite() -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        for cls in (Lorentz, PoincareBall, Klein, Sphere):
            with pytest.raises(ValueError, match="c must be a finite positive"):
                cls(bad)
    with pytest.raises(TypeError, match="c must be a float"):
        Lorentz("1.0")  # type: ignore[arg-type]


def test_bounds_of_learnable_curvature_are_checked() -> None:
    with pytest.raises(ValueError, match="bounds must satisfy"):
        Curvature(1.0, learnable=True, bounds=(2.0, 3.0))


def test_nan_and_inf_are_rejected_with_the_argument_name() -> None:
    m = Lorentz()
    x = m.random(3, 4)
    y = x.clone()
    y[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"^y must be finite.*1 NaN"):
        m.dist(x, y)
    z = x.clone()
    z[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"^x must be finite"):
        m.dist(z, x)
    with pytest.raises(ValueError, match=r"^u must be finite"):
        m.expmap0(torch.full((2, 4), float("nan")))


def test_off_manifold_points_are_rejected() -> None:
    m = Lorentz(1.0)
    x = m.random(3, 4, radius=1.0)
    bad = x.clone()
    bad[:, 0] *= 1.5
    with pytest.raises(ValueError, match=r"^y is not on the Lorentz manifold: relative residual"):
        m.dist(x, bad)
    lower = x.clone()
    lower[:, 0] = -lower[:, 0]
    with pytest.raises(ValueError, match="upper sheet"):
        m.check_point(lower, "points")
    ball = PoincareBall(2.0)
    outside = torch.tensor([[0.8, 0.0]])  # c |x|^2 = 1.28
    with pytest.raises(ValueError, match=r"^x is not on the PoincareBall manifold: .*c\|x\|\^2"):
        ball.dist(outside, torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"^y is not on the Klein manifold: .*c\|x\|\^2"):
        Klein(2.0).logmap(torch.zeros(1, 2), outside)
    with pytest.raises(ValueError, match="not on the Sphere"):
        Sphere(1.0).dist(torch.ones(1, 3), torch.ones(1, 3))


def test_a_float32_point_cast_to_float64_is_accepted() -> None:
    m = Lorentz()
    x = m.random(5, 8, radius=6.0, dtype=torch.float32)
    m.check_point(x.double(), "x")


def test_wrong_shapes_are_rejected() -> None:
    m = Lorentz()
    with pytest.raises(ValueError, match="last dimensions must match"):
        m.dist(m.random(2, 4), m.random(2, 5))
    with pytest.raises(ValueError, match="batch shapes must broadcast"):
        m.dist(m.random(2, 4), m.random(3, 4))
    with pytest.raises(ValueError, match="x and y must be 2-D"):
        m.pairwise_dist(m.random(2, 3, 4), m.random(2, 4))
    with pytest.raises(ValueError, match="at least 2 coordinates"):
        m.check_point(torch.ones(3, 1))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        m.dist(torch.ones(2, 3, dtype=torch.long), m.random(2, 3))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        Euclidean().dist([1.0, 2.0], torch.ones(2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name must be one of"):
        get_manifold("hyperbolic")


def test_validation_can_be_switched_off_for_hot_paths() -> None:
    m = Lorentz()
    x = m.random(2, 3)
    y = x.clone()
    y[0, 1] = float("nan")
    with hypervldd.validation(False):
        assert not hypervldd.validation_enabled()
        out = m.dist(x, y)  # no check, NaN propagates
        assert torch.isnan(out[0])
    assert hypervldd.validation_enabled()
    with pytest.raises(ValueError):
        m.dist(x, y)


def test_conversions_validate_like_the_manifolds() -> None:
    from hypervldd.manifolds import conversions as cv

    boundary = torch.tensor([[1.0, 0.0]])
    inside = torch.tensor([[0.1, 0.2]])
    for fn, name in (
        (cv.poincare_to_lorentz, "p"),
        (cv.poincare_to_klein, "p"),
        (cv.klein_to_lorentz, "k"),
        (cv.klein_to_poincare, "k"),
    ):
        with pytest.raises(ValueError, match=f"{name} must lie strictly inside the ball"):
            fn(boundary, 1.0)
        with pytest.raises(ValueError, match=f"{name} must be finite"):
            fn(torch.tensor([[float("nan"), 0.0]]), 1.0)
        for bad_c in (0.0, -1.0, float("inf")):
            with pytest.raises(ValueError, match="c must be a finite positive"):
                fn(inside, bad_c)
        with pytest.raises(ValueError, match="c must be a finite positive"):
            fn(inside, torch.tensor(0.0))
        # a valid input still converts to finite coordinates
        assert torch.isfinite(fn(inside, 1.0)).all()
    x = Lorentz(1.0).random(3, 4)
    for fn in (cv.lorentz_to_poincare, cv.lorentz_to_klein):
        with pytest.raises(ValueError, match="x must be finite"):
            fn(torch.full((1, 3), float("inf")), 1.0)
        with pytest.raises(ValueError, match="at least 2 coordinates"):
            fn(torch.ones(2, 1), 1.0)
        with pytest.raises(ValueError, match="c must be a finite positive"):
            fn(x, 0.0)
        assert torch.isfinite(fn(x, 1.0)).all()
    # switched off for hot paths, like the manifolds' own checks
    with hypervldd.validation(False):
        assert torch.isinf(cv.poincare_to_lorentz(boundary, 1.0)).any()
