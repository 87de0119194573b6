"""The kernels at the edges of their domain: far pairs up to the radius cap, NaN input.

Lorentz points may lie up to ``max_radius`` (39.9 in float32) from the origin,
so distances up to ~80 are legal; ``z (z + 2)`` overflowed float32 past ~44.
NaN input must give NaN output with validation off and under ``torch.compile``.
"""

from __future__ import annotations

import math

import pytest
import torch

import hypervldd
import hypervldd.kernels as K
from hypervldd.kernels import reference as R
from hypervldd.manifolds import lorentz_math as L
from hypervldd.numerics import max_radius

from ._helpers import need_ext


def _antipodal(radius: float, dtype: torch.dtype, d: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Points at ``radius`` in opposite directions (distance ``2 radius``), plus a near pair."""
    g = torch.Generator().manual_seed(3)
    u = torch.randn(3, d, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=-1, keepdim=True) * radius
    v = torch.stack([-u[0], u[1] * 0.5, -u[2] * 0.25])
    pad = torch.zeros(3, 1, dtype=torch.float64)
    x = L.expmap0(torch.cat([pad, u], 1), 1.0)
    y = L.expmap0(torch.cat([pad, v], 1), 1.0)
    return x.to(dtype), y.to(dtype)


def _truth(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    n, m = x.shape[0], y.shape[0]
    xi = x.double().repeat_interleave(m, 0)
    yj = y.double().repeat(n, 1)
    return R.paired_dist_ref(xi, yj, "lorentz", 1.0).reshape(n, m)


@pytest.mark.parametrize("radius", [23.0, 30.0, max_radius(torch.float32) - 0.01])
@pytest.mark.parametrize("use_ext", [True, False])
def test_far_lorentz_pairs_float32(radius: float, use_ext: bool) -> None:
    if use_ext:
        need_ext()
    x, y = _antipodal(radius, torch.float32)
    x.requires_grad_(True)
    fn = K.pairwise_dist if use_ext else R.pairwise_dist_ref
    d = fn(x, y, "lorentz", 1.0)
    truth = _truth(x.detach(), y)
    assert torch.isfinite(d).all()
    assert math.isclose(float(truth[0, 0]), 2 * radius, rel_tol=1e-6)
    assert ((d.double() - truth).abs() / truth).max() < 1e-5
    (g,) = torch.autograd.grad(d.sum(), x)
    assert torch.isfinite(g).all() and g[:, 1:].abs().sum() > 0


def test_paired_reference_far_float32() -> None:
    x, y = _antipodal(max_radius(torch.float32) - 0.01, torch.float32)
    d = R.paired_dist_ref(x, y, "lorentz", 1.0)
    truth = R.paired_dist_ref(x.double(), y.double(), "lorentz", 1.0)
    assert torch.isfinite(d).all()
    # Pair 1 is radial up to the float32 rounding of its direction: an angle of
    # ~eps at radius 40 is ill-conditioned in pure float32 (error ~eps cosh r,
    # docs/geometry.md); the pairwise kernels recompute such pairs in float64.
    keep = [0, 2]
    assert ((d.double() - truth).abs() / truth)[keep].max() < 1e-5


def _with_nan(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = L.random(5, 5, radius=torch.rand(5, generator=g, dtype=torch.float64) * 3, dtype=dtype)
    y = L.random(5, 5, radius=1.0, dtype=dtype, generator=g)
    x = x.clone()
    x[1, 2] = float("nan")
    return x, y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("manifold", ["lorentz", "poincare", "euclidean"])
@pytest.mark.parametrize("use_ext", [True, False])
def test_nan_in_nan_out_validation_off(dtype: torch.dtype, manifold: str, use_ext: bool) -> None:
    if use_ext:
        need_ext()
    x, y = _with_nan(dtype)
    if manifold != "lorentz":
        x, y = x[:, 1:] * 0.1, y[:, 1:] * 0.1
    pd = K.pairwise_dist if use_ext else R.pairwise_dist_ref
    loss = K.contrastive_loss if use_ext else R.contrastive_loss_ref
    with hypervldd.validation(False):
        d = pd(x, y, manifold, 1.0)
        # the NaN row (and only it) is NaN; every other distance is finite
        assert torch.isnan(d[1]).all()
        assert torch.isfinite(d[[0, 2, 3, 4]]).all()
        assert torch.isnan(loss(x, y, manifold, 1.0, 0.1))
        stats = (K.row_stats if use_ext else R.row_stats_ref)(
            x, y, manifold, 1.0, 0.1, rank_temperature=0.5
        )
        assert torch.isnan(stats.lse[1]) and torch.isnan(stats.smooth_rank[1])
        assert torch.isfinite(stats.lse[[0, 2, 3, 4]]).all()


def test_nan_in_nan_out_under_compile() -> None:
    need_ext()
    x, y = _with_nan(torch.float32)

    def f(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return K.pairwise_dist(a, b, "lorentz", 1.0), K.contrastive_loss(a, b, "lorentz", 1.0)

    d, loss = torch.compile(f, backend="aot_eager")(x, y)
    assert torch.isnan(d[1]).all() and torch.isfinite(d[0]).all()
    assert torch.isnan(loss)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("use_ext", [True, False])
def test_near_origin_to_far_pairs(dtype: torch.dtype, use_ext: bool) -> None:
    # a b <= 1 < max(a, b): the slow path's difference form cancelled by
    # ~max(x0, y0) (float64 distance 24 from the origin off by ~1e-6)
    if use_ext:
        need_ext()
    g = torch.Generator().manual_seed(8)
    u = torch.randn(3, 5, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=-1, keepdim=True)
    pad = torch.zeros(3, 1, dtype=torch.float64)
    x = L.expmap0(torch.cat([pad, u * torch.tensor([[0.0], [0.01], [0.3]])], 1), 1.0).to(dtype)
    y = L.expmap0(torch.cat([pad[:2], u[:2] * torch.tensor([[24.0], [30.0]])], 1), 1.0)
    y = y.to(dtype)
    fn = K.pairwise_dist if use_ext else R.pairwise_dist_ref
    d = fn(x, y, "lorentz", 1.0)
    n, m = x.shape[0], y.shape[0]
    truth = L.dist(x.double().repeat_interleave(m, 0), y.double().repeat(n, 1), 1.0)
    tol = 1e-6 if dtype == torch.float32 else 1e-12  # float32: the output's own rounding
    assert ((d.double().reshape(-1) - truth).abs() / truth).max() < tol
