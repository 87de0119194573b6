"""row_stats: streaming LSE, softmax-weighted sums and smooth rank against float64."""

from __future__ import annotations

import pytest
import torch

import hypervldd.kernels as K
from hypervldd.kernels import reference as R

from ._helpers import MANIFOLDS, fused_module, points

SHAPES = [(1, 1, 1, 1), (1, 6, 3, 2), (5, 1, 2, 3), (23, 30, 4, 5)]


def materialised(x, y, manifold, c, tau, v, t, pos):  # noqa: ANN001, ANN201
    s = -R.pairwise_dist_ref(x, y, manifold, c) / tau
    lse = torch.logsumexp(s, 1)
    w = torch.softmax(s, 1) @ v
    n, m = s.shape
    sp = s[torch.arange(n), pos]
    own = pos[:, None] == torch.arange(m)[None, :]
    rank = 1 + torch.sigmoid((s - sp[:, None]) / t).masked_fill(own, 0).sum(1)
    return lse, w, rank


def _fn(use_ext: bool, tile: int):
    if use_ext:
        fused = fused_module()
        return lambda *a: fused.row_stats_op(*a, tile=tile)
    return lambda *a: R.row_stats_ref(*a, chunk=tile)


@pytest.mark.parametrize("use_ext", [True, False], ids=["fused", "reference"])
@pytest.mark.parametrize("manifold", MANIFOLDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_values_and_gradients(use_ext: bool, manifold: str, shape) -> None:
    n, m, dim, k = shape
    fn = _fn(use_ext, tile=4 if n * m < 100 else 16)
    x = points(manifold, n, dim, c=0.9).requires_grad_()
    y = points(manifold, m, dim, c=0.9).requires_grad_()
    v = torch.randn(m, k, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    pos = torch.randint(0, m, (n,))
    got = fn(x, y, manifold, c, tau, v, 0.5, pos)
    want = materialised(x, y, manifold, c, tau, v, 0.5, pos)
    ws = [torch.randn_like(t) for t in want]
    for a, b in zip(got, want, strict=False):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    la = sum((a * w).sum() for a, w in zip(got, ws, strict=False))
    lb = sum((b * w).sum() for b, w in zip(want, ws, strict=False))
    g1 = torch.autograd.grad(la, (x, y, v, c, tau))
    g2 = torch.autograd.grad(lb, (x, y, v, c, tau))
    for a, b in zip(g1, g2, strict=False):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("use_ext", [True, False], ids=["fused", "reference"])
def test_optional_outputs_and_column_stats(use_ext: bool) -> None:
    fn = _fn(use_ext, tile=3)
    x = points("lorentz", 7, 3)
    y = points("lorentz", 9, 3)
    only = fn(x, y, "lorentz", 1.0, 0.1, None, None, None)
    assert only.weighted is None and only.smooth_rank is None
    s = -R.pairwise_dist_ref(x, y) / 0.1
    assert torch.allclose(only.lse, torch.logsumexp(s, 1), rtol=1e-12)
    cols = fn(y, x, "lorentz", 1.0, 0.1, None, None, None)
    assert torch.allclose(cols.lse, torch.logsumexp(s, 0), rtol=1e-12)


def test_public_float32_and_errors() -> None:
    x = points("poincare", 40, 8, torch.float32)
    y = points("poincare", 50, 8, torch.float32)
    v = torch.randn(50, 3)
    st = K.row_stats(x, y, "poincare", tau=0.2, values=v, rank_temperature=0.1)
    want = materialised(
        x.double(), y.double(), "poincare", 1.0, 0.2, v.double(), 0.1, torch.arange(40)
    )
    for a, b in zip(st, want, strict=False):
        assert a.dtype == torch.float32
        assert torch.allclose(a.double(), b, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="values must have shape"):
        K.row_stats(x, y, "poincare", values=torch.randn(49, 3))
    with pytest.raises(ValueError, match="rank_temperature must be"):
        K.row_stats(x, y, "poincare", rank_temperature=-1.0)
    with pytest.raises(ValueError, match="values must be finite"):
        K.row_stats(x, y, "poincare", values=torch.full((50, 1), float("nan")))
    empty = K.row_stats(x[:0], y, "poincare", values=v, rank_temperature=0.1)
    assert empty.lse.shape == (0,) and empty.weighted.shape == (0, 3)


def test_gradcheck_and_opcheck() -> None:
    fused = fused_module()
    x = points("poincare", 4, 2).requires_grad_()
    y = points("poincare", 5, 2).requires_grad_()
    v = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(1.1, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, cc, t, vv: tuple(
            fused.row_stats_op(a, b, "poincare", cc, t, vv, 0.3, None, tile=3)
        ),
        (x, y, c, tau, v),
    )
    pos = torch.arange(4)
    op = torch.ops.hypervldd
    torch.library.opcheck(op.row_stats.default, (x, y, c, tau, v, pos, 0.3, 1, 3))
    with torch.no_grad():
        lse, w, r, sp = op.row_stats(x, y, c, tau, v, pos, 0.3, 1, 3)
    grads = (torch.randn(4, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64))
    args = (*grads, torch.randn(4, dtype=torch.float64), x.detach(), y.detach(), c.detach())
    args += (tau.detach(), v.detach(), pos, lse, w, sp, 0.3, 1, 3)
    torch.library.opcheck(op.row_stats_backward.default, args)
