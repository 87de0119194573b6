"""The accuracy envelope of docs/geometry.md as a test.

float32 distances against a float64 evaluation of the same (float32-rounded)
inputs, on the grid radius x distance x direction: relative error <= 1e-3 for
the library's distances (pointwise and pairwise), Lorentz and Poincaré. The
naive GEMM forms must fail the same grid, so the test has teeth. float64 is
checked against mpmath at 50 digits.
"""

from __future__ import annotations

import itertools

import mpmath
import pytest
import torch

from hypervldd.manifolds import klein_math as km
from hypervldd.manifolds import lorentz_math as lm
from hypervldd.manifolds import poincare_math as pm
from hypervldd.manifolds.accuracy import (
    DIRECTIONS,
    DISTANCES,
    RADII,
    envelope,
    klein_pairs,
    lorentz_pairs,
    poincare_pairs,
)

GRID = list(itertools.product(RADII, DISTANCES, DIRECTIONS))
ENVELOPE_F32 = 1e-3
ENVELOPE_F64 = 1e-9


def _rel_err(got: torch.Tensor, ref: torch.Tensor, *, exact_zero: bool = True) -> float:
    got, ref = got.double(), ref.double()
    pos = ref > 0
    if exact_zero:
        # A pair that rounding made coincident must come out exactly 0.
        assert torch.all(got[~pos] == 0)
    return float(((got - ref).abs() / ref)[pos].max()) if bool(pos.any()) else 0.0


def _naive_lorentz(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # MERU/geoopt-style GEMM form with the time re-derived: acosh(x0 y0 - xs.ys).
    x, y = lm.projx(x, 1.0), lm.projx(y, 1.0)
    return torch.acosh((-lm.inner(x, y)).clamp_min(1.0))


def _naive_poincare(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x2, y2, xy = (x * x).sum(-1), (y * y).sum(-1), (x * y).sum(-1)
    sq = (x2 + y2 - 2 * xy).clamp_min(0)
    return torch.acosh(1 + 2 * sq / ((1 - x2) * (1 - y2)))


@pytest.mark.parametrize("manifold", ["lorentz", "poincare"])
def test_float32_envelope_pointwise_and_pairwise(manifold: str) -> None:
    worst_lib = worst_pair = worst_naive = 0.0
    for r, d, direction in GRID:
        make = lorentz_pairs if manifold == "lorentz" else poincare_pairs
        mod = lm if manifold == "lorentz" else pm
        x, y = make(r, d, direction)
        x32, y32 = x.float(), y.float()
        if manifold == "poincare":
            # Radius-20 partners (x at 10, d = 10) round onto the boundary in
            # float32: only points inside the projection radius exist there.
            x32, y32 = pm.projx(x32, 1.0), pm.projx(y32, 1.0)
        ref = mod.dist(x32.double(), y32.double(), 1.0)
        worst_lib = max(worst_lib, _rel_err(mod.dist(x32, y32, 1.0), ref))
        pair = torch.diagonal(mod.pairwise_dist(x32, y32, 1.0))
        worst_pair = max(worst_pair, _rel_err(pair, ref))
        naive = _naive_lorentz if manifold == "lorentz" else _naive_poincare
        worst_naive = max(worst_naive, _rel_err(naive(x32, y32), ref, exact_zero=False))
    assert worst_lib <= ENVELOPE_F32, worst_lib
    assert worst_pair <= ENVELOPE_F32, worst_pair
    # The GEMM form collapses for close pairs far from the origin.
    assert worst_naive > 100 * ENVELOPE_F32, worst_naive


def test_reference_is_trustworthy_float64_vs_mpmath() -> None:
    mpmath.mp.dps = 50
    worst_l = worst_p = 0.0
    for r, d, direction in GRID[::3]:
        x, y = lorentz_pairs(r, d, direction, n=1, dim=16)
        got = float(lm.dist(x, y, 1.0)[0])
        xs = [mpmath.mpf(float(v)) for v in x[0, 1:]]
        ys = [mpmath.mpf(float(v)) for v in y[0, 1:]]
        x0 = mpmath.sqrt(1 + sum(a * a for a in xs))
        y0 = mpmath.sqrt(1 + sum(a * a for a in ys))
        exact = mpmath.acosh(x0 * y0 - sum(a * b for a, b in zip(xs, ys, strict=True)))
        worst_l = max(worst_l, abs(float((mpmath.mpf(got) - exact) / exact)))

        p, q = poincare_pairs(r, d, direction, n=1, dim=16)
        got = float(pm.dist(p, q, 1.0)[0])
        ps = [mpmath.mpf(float(v)) for v in p[0]]
        qs = [mpmath.mpf(float(v)) for v in q[0]]
        sq = sum((a - b) ** 2 for a, b in zip(ps, qs, strict=True))
        ap = 1 - sum(a * a for a in ps)
        aq = 1 - sum(a * a for a in qs)
        exact = mpmath.acosh(1 + 2 * sq / (ap * aq))
        worst_p = max(worst_p, abs(float((mpmath.mpf(got) - exact) / exact)))
    assert worst_l <= ENVELOPE_F64, worst_l
    assert worst_p <= ENVELOPE_F64, worst_p


@pytest.mark.parametrize("c", [0.1, 2.5])
def test_envelope_holds_for_other_curvatures(c: float) -> None:
    for r, d in [(5.0, 1e-2), (8.0, 0.1), (10.0, 1e-3)]:
        x, y = lorentz_pairs(r, d / c**0.5, "random", c=c)
        x32, y32 = x.float(), y.float()
        ref = lm.dist(x32.double(), y32.double(), c)
        assert _rel_err(lm.dist(x32, y32, c), ref) <= ENVELOPE_F32
        # The distance itself scales as 1/sqrt(c) for the same unit-radius geometry.
        assert torch.allclose(lm.dist(x, y, c), torch.full_like(ref, d / c**0.5), rtol=1e-6)


def _naive_klein(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # the closed form acosh((1 - x.y) / sqrt((1 - |x|^2)(1 - |y|^2)))
    x2, y2, xy = (x * x).sum(-1), (y * y).sum(-1), (x * y).sum(-1)
    return torch.acosh(((1 - xy) / torch.sqrt((1 - x2) * (1 - y2))).clamp_min(1.0))


def test_klein_float32_envelope_pointwise_and_pairwise() -> None:
    # Klein inputs are projected into the float32 ball (radius ~5.9) as the ball's are.
    worst = {
        "dist": envelope("klein", lambda x, y: km.dist(x, y, 1.0), n=4, dim=16),
        "pairwise": envelope(
            "klein", lambda x, y: km.pairwise_dist(x, y, 1.0).diagonal(), n=4, dim=16
        ),
        "naive": envelope("klein", _naive_klein, n=4, dim=16),
    }
    assert max(worst["dist"].values()) <= ENVELOPE_F32, worst["dist"]
    assert max(worst["pairwise"].values()) <= ENVELOPE_F32, worst["pairwise"]
    assert max(worst["naive"].values()) > 100 * ENVELOPE_F32


def test_klein_float64_against_mpmath() -> None:
    # Klein coordinates carry eps cosh^2(r) of relative uncertainty (1 - c|k|^2 ~
    # 4 exp(-2r)): the bound scales with it and is 1e-9 up to radius ~7.
    mpmath.mp.dps = 50
    eps = torch.finfo(torch.float64).eps
    for r, d, direction in GRID[::3]:
        x, y = klein_pairs(r, d, direction, n=1, dim=16)
        got = float(km.dist(x, y, 1.0)[0])
        xs = [mpmath.mpf(float(v)) for v in x[0]]
        ys = [mpmath.mpf(float(v)) for v in y[0]]
        ax = 1 - sum(a * a for a in xs)
        ay = 1 - sum(a * a for a in ys)
        exact = mpmath.acosh(
            (1 - sum(a * b for a, b in zip(xs, ys, strict=True))) / mpmath.sqrt(ax * ay)
        )
        cond = float(1 / min(ax, ay))  # cosh^2 of the farther point's radius
        tol = max(ENVELOPE_F64 * 1e-3, 4 * eps * cond)
        assert abs(float((mpmath.mpf(got) - exact) / exact)) <= tol, (r, d, direction)
