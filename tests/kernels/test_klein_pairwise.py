"""pairwise_dist(..., "klein"): Klein points on the Lorentz kernel."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from hypervldd.kernels import contrastive_loss, pairwise_dist, row_stats
from hypervldd.manifolds import Klein
from hypervldd.manifolds import klein_math as km
from hypervldd.manifolds.accuracy import envelope

F32, F64 = torch.float32, torch.float64


def _points(n: int, d: int, radius: float, c: float, seed: int, dtype=F64) -> torch.Tensor:  # noqa: ANN001
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, generator=g, dtype=F64) * radius
    return km.random(n, d, radius=r, c=c, dtype=F64, generator=g).to(dtype)


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_matches_the_manifold_reference(c: float) -> None:
    x, y = _points(9, 5, 6.0, c, 0), _points(7, 5, 6.0, c, 1)
    got = pairwise_dist(x, y, "klein", c)
    assert got.shape == (9, 7) and got.dtype == F64
    assert torch.allclose(got, Klein(c).pairwise_dist(x, y), rtol=1e-9, atol=1e-10)
    assert torch.allclose(got.diagonal(), km.dist(x[:7], y, c), rtol=1e-9, atol=1e-10)


def test_float32_envelope() -> None:
    # the accuracy grid of docs/geometry.md, projected into the float32 Klein ball
    table = envelope(
        "klein", lambda a, b: pairwise_dist(a, b, "klein", 1.0).diagonal(), n=4, dim=16
    )
    assert max(table.values()) <= 1e-3, table


def test_output_dtype_and_gradients() -> None:
    x32 = _points(4, 3, 3.0, 1.0, 2, F32)
    assert pairwise_dist(x32, x32, "klein", 1.0).dtype == F32
    x, y = _points(4, 3, 3.0, 0.7, 3), _points(3, 3, 3.0, 0.7, 4)
    c = torch.tensor(0.7, dtype=F64)
    inputs = tuple(t.clone().requires_grad_(True) for t in (x, y, c))
    assert gradcheck(lambda a, b, cc: pairwise_dist(a, b, "klein", cc), inputs, eps=1e-7)
    # zero distance: a defined (zero) gradient on the diagonal
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(pairwise_dist(xr, x, "klein", 0.7).diagonal().sum(), xr)
    assert torch.isfinite(g).all() and g.abs().max() < 1e-6


def test_bad_input_gets_clear_errors() -> None:
    x = _points(3, 2, 1.0, 1.0, 5)
    with pytest.raises(ValueError, match=r"^y must lie inside the Klein ball"):
        pairwise_dist(x, torch.tensor([[0.9, 0.9]], dtype=F64), "klein", 1.0)
    with pytest.raises(ValueError, match="x must be 2-D"):
        pairwise_dist(x[None], x, "klein", 1.0)
    with pytest.raises(ValueError, match="same number of columns"):
        pairwise_dist(x, torch.zeros(2, 3, dtype=F64), "klein", 1.0)
    with pytest.raises(ValueError, match="c must be a finite positive"):
        pairwise_dist(x, x, "klein", -1.0)
    for fn in (contrastive_loss, row_stats):
        with pytest.raises(ValueError, match="klein_to_lorentz"):
            fn(x, x, "klein", 1.0)


def test_the_triton_path_gives_the_same_distances(triton_cpu) -> None:  # noqa: ANN001
    # the Lorentz Triton kernel in float64, under Triton's interpreter on the CPU
    x, y = _points(5, 3, 5.0, 0.7, 6, F32), _points(4, 3, 5.0, 0.7, 7, F32)
    got = pairwise_dist(x, y, "klein", 0.7)
    assert got.dtype == F32
    ref = km.pairwise_dist(x.double(), y.double(), 0.7)
    assert torch.allclose(got.double(), ref, rtol=1e-6, atol=1e-7)
