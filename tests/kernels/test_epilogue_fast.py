"""The float32 fast pass of the CPU epilogue against float64, at the edges of its maths.

The fast pass (csrc/cpu/epilogue_avx2.h on x86-64 with AVX2, else the vectorised
scalar loop) computes every pair from the GEMM value with reciprocal-square-root and
reciprocal estimates, switches the Lorentz root sqrt(z (z + 2)) to z + 1 past z = 4096
(distance ~9.0), and handles the last M % 32 columns of a row on a padded copy. These
tests read the raw op (distances, factors, slow-pair mask) straight from the kernel, on
pairs around each of those edges, and compare every value with float64.
"""

from __future__ import annotations

import math

import pytest
import torch

from hypervldd.kernels import reference as R
from hypervldd.manifolds import lorentz_math as L
from hypervldd.manifolds import poincare_math as P

from ._helpers import envelope_pairs, fused_module, rtol

F32 = torch.float32
#: The envelope of docs/geometry.md in float32.
ENVELOPE = rtol(F32)


def _raw(x: torch.Tensor, y: torch.Tensor, manifold: str, c: float):
    fused = fused_module()
    ct = torch.tensor(c, dtype=x.dtype)
    return torch.ops.hypervldd.pairwise_dist_factor(x, y, ct, fused.MANIFOLD_CODE[manifold])


def _truth(x: torch.Tensor, y: torch.Tensor, manifold: str, c: float):
    """float64 distances (the reference's difference forms, pair by pair) and factors
    of every pair of the float32 inputs (as given). Lorentz: f = sqrt(c) / sinh(sqrt(c) d);
    Poincaré: f = 2 sqrt(c) / (t h a_x a_y) with t = sinh(sqrt(c) d / 2), h = cosh(...),
    a = 1 - c|.|^2."""
    n, m = x.shape[0], y.shape[0]
    x, y = x.double(), y.double()
    xi, yj = x.repeat_interleave(m, 0), y.repeat(n, 1)
    d = R.paired_dist_ref(xi, yj, manifold, c).reshape(n, m)
    sc = math.sqrt(c)
    if manifold == "lorentz":
        return d, sc / torch.sinh(sc * d)
    ax = 1 - c * (x * x).sum(1)
    ay = 1 - c * (y * y).sum(1)
    t, h = torch.sinh(sc * d / 2), torch.cosh(sc * d / 2)
    return d, 2 * sc / (t * h * ax[:, None] * ay[None, :])


def _check(x, y, manifold, c, d_rtol=ENVELOPE, f_rtol=ENVELOPE):
    d, f, bad = _raw(x, y, manifold, c)
    td, tf = _truth(x, y, manifold, c)
    pos = td > 0
    rel = ((d.double() - td).abs() / td)[pos]
    assert rel.max() <= d_rtol, f"distance error {rel.max():.3g}"
    ok = ~bad & pos
    assert ok.any()
    frel = ((f.double() - tf).abs() / tf)[ok]
    assert frel.max() <= f_rtol, f"factor error {frel.max():.3g}"
    return d, f, bad


def _lorentz_at(radius: torch.Tensor, dirs: torch.Tensor, c: float) -> torch.Tensor:
    v = torch.cat([torch.zeros(len(dirs), 1, dtype=torch.float64), dirs * radius[:, None]], 1)
    return L.expmap0(v, c)


@pytest.mark.parametrize("c", [1.0, 0.3, 2.5])
def test_lorentz_across_the_root_switch_and_far(c: float) -> None:
    """Antipodal pairs at distances 8 to 79.8 (sqrt(c) d): z crosses 4096 near 9.0,
    and z (z + 2) would overflow float32 past ~44. Fast path everywhere."""
    g = torch.Generator().manual_seed(0)
    u = torch.randn(1, 6, dtype=torch.float64, generator=g)
    u = (u / u.norm()).expand(40, 6)
    half = torch.cat([torch.linspace(4.0, 4.9, 20), torch.linspace(5.0, 39.9, 20)]).double()
    x = _lorentz_at(half / math.sqrt(c), u, c).float()
    y = _lorentz_at(half / math.sqrt(c), -u, c).float()
    d, _, bad = _check(x, y, "lorentz", c, d_rtol=1e-5, f_rtol=1e-4)
    assert not bad.diagonal().any()
    assert torch.isfinite(d).all()


@pytest.mark.parametrize("manifold", ["lorentz", "poincare"])
@pytest.mark.parametrize("c", [1.0, 0.25])
def test_accuracy_grid_every_column_width(manifold: str, c: float) -> None:
    """The accuracy grid of docs/geometry.md (radius 0 to 10, distances 1e-3 to 10) as a
    full matrix, cut to widths that leave every remainder of the 32-pair blocks."""
    x, y, _ = envelope_pairs(manifold, c=c)
    x, y = x.float(), y.float()
    if manifold == "poincare":
        x, y = P.projx(x, c), P.projx(y, c)
    for m in (1, 7, 8, 31, 32, 33, 45, y.shape[0]):
        _check(x, y[:m], manifold, c)


@pytest.mark.parametrize("manifold", ["lorentz", "poincare"])
def test_close_pairs_near_zero_distance(manifold: str) -> None:
    """z near 0: pairs 1e-6 to 1e-2 apart at radius 0.01 to 2; the ones the fast path
    accepts meet the envelope (the rest take the float64 slow path)."""
    g = torch.Generator().manual_seed(2)
    n = 64
    base = torch.randn(n, 5, dtype=torch.float64, generator=g)
    base = base / base.norm(dim=1, keepdim=True)
    r = torch.logspace(-2, math.log10(2.0), n, dtype=torch.float64)
    step = torch.logspace(-6, -2, n, dtype=torch.float64)
    jitter = torch.randn(n, 5, dtype=torch.float64, generator=g)
    if manifold == "lorentz":
        x = _lorentz_at(r, base, 1.0)
        y = _lorentz_at(r, base + step[:, None] * jitter / r[:, None], 1.0)
    else:
        x = P.expmap0(base * r[:, None], 1.0)
        y = P.expmap0((base + step[:, None] * jitter / r[:, None]) * r[:, None], 1.0)
    _check(x.float(), y.float(), manifold, 1.0)


@pytest.mark.parametrize("manifold", ["lorentz", "poincare"])
def test_nan_stays_in_its_row_and_column(manifold: str) -> None:
    """A NaN coordinate makes its row (or column) NaN; every other pair keeps its value
    bit for bit (the pass is elementwise, blocks and padding included)."""
    x, y, _ = envelope_pairs(manifold)
    x, y = x.float()[:37], y.float()[:45]
    if manifold == "poincare":
        x, y = P.projx(x, 1.0), P.projx(y, 1.0)
    d0, f0, _ = _raw(x, y, manifold, 1.0)
    xn, yn = x.clone(), y.clone()
    xn[5, -1] = float("nan")
    yn[40, -1] = float("nan")
    d, f, _ = _raw(xn, yn, manifold, 1.0)
    assert d[5].isnan().all() and d[:, 40].isnan().all()
    keep = torch.ones_like(d, dtype=torch.bool)
    keep[5] = False
    keep[:, 40] = False
    assert torch.equal(d[keep], d0[keep]) and torch.equal(f[keep], f0[keep])


def test_infinite_lorentz_coordinate_gives_infinite_or_nan_distance() -> None:
    """An infinite coordinate (invalid input, validation off) never yields a finite
    distance, and leaves the other rows as they were."""
    x, y, _ = envelope_pairs("lorentz")
    x, y = x.float()[:9], y.float()[:40]
    d0, _, _ = _raw(x, y, "lorentz", 1.0)
    xi = x.clone()
    xi[2, 1] = float("inf")
    d, _, _ = _raw(xi, y, "lorentz", 1.0)
    assert not torch.isfinite(d[2]).any()
    rows = [i for i in range(9) if i != 2]
    assert torch.equal(d[rows], d0[rows])
