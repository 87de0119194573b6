"""contrastive_loss: streaming symmetric InfoNCE against a materialised float64 loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hypervldd.kernels as K
from hypervldd.kernels import reference as R
from hypervldd.manifolds import lorentz_math as L

from ._helpers import DTYPES, MANIFOLDS, fused_module, grad_rtol, points

SHAPES = [(1, 1, 1), (1, 5, 3), (7, 7, 2), (37, 45, 5)]


def materialised(x, y, manifold, c, tau, positives=None):  # noqa: ANN001, ANN201
    """The textbook loss on the full N x M logits (float64 oracle)."""
    n = x.shape[0]
    pos = torch.arange(n) if positives is None else positives
    logits = -R.pairwise_dist_ref(x, y, manifold, c) / tau
    row = F.cross_entropy(logits, pos, reduction="sum")
    col_lse = torch.logsumexp(logits, 0)
    col = (col_lse[pos] - logits[torch.arange(n), pos]).sum()
    return (row + col) / (2 * n)


def _ext_or_ref(use_ext: bool, tile: int):
    if use_ext:
        fused = fused_module()
        return lambda x, y, m, c, t, p=None: fused.contrastive_loss_op(x, y, m, c, t, p, tile=tile)
    return lambda x, y, m, c, t, p=None: R.contrastive_loss_ref(x, y, m, c, t, p, chunk=tile)


@pytest.mark.parametrize("use_ext", [True, False], ids=["fused", "reference"])
@pytest.mark.parametrize("manifold", MANIFOLDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_values_and_gradients(use_ext: bool, manifold: str, shape) -> None:
    n, m, dim = shape
    # Tiles smaller than N and M that do not divide them.
    fn = _ext_or_ref(use_ext, tile=4 if n * m < 100 else 16)
    x = points(manifold, n, dim, c=0.8).requires_grad_()
    y = points(manifold, m, dim, c=0.8).requires_grad_()
    c = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    got = fn(x, y, manifold, c, tau)
    want = materialised(x, y, manifold, c, tau)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    g1 = torch.autograd.grad(got, (x, y, c, tau))
    g2 = torch.autograd.grad(want, (x, y, c, tau))
    for a, b in zip(g1, g2, strict=False):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_public_float32_against_float64(dtype: torch.dtype) -> None:
    x = points("lorentz", 50, 16, dtype, max_radius=4.0)
    # Perturbed, then back on the hyperboloid (the entry point refuses off-manifold points).
    y = L.projx(x.double() + 0.01 * torch.randn(50, 17, dtype=torch.float64), 1.0).to(dtype)
    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
    loss = K.contrastive_loss(xr, yr, tau=0.1)
    assert loss.dtype == dtype
    ref = materialised(x.double(), y.double(), "lorentz", 1.0, 0.1)
    assert abs(float(loss.detach()) - float(ref)) <= 1e-3 * abs(float(ref))
    loss.backward()
    xd, yd = x.double().requires_grad_(), y.double().requires_grad_()
    materialised(xd, yd, "lorentz", 1.0, 0.1).backward()
    scale = xd.grad.abs().max()
    assert (xr.grad.double() - xd.grad).abs().max() / scale <= grad_rtol(dtype) * 10


def test_near_origin_float32_against_float64() -> None:
    """Every pair near the origin (radius <= 0.05; the fast path's second form of z):
    loss and gradients of float32 against the materialised float64 definition."""
    x = points("lorentz", 60, 8, torch.float32, max_radius=0.05)
    y = points("lorentz", 60, 8, torch.float32, max_radius=0.05)
    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
    loss = K.contrastive_loss(xr, yr, tau=0.01)
    ref = materialised(x.double(), y.double(), "lorentz", 1.0, 0.01)
    assert abs(float(loss.detach()) - float(ref)) <= 1e-3 * abs(float(ref))
    loss.backward()
    xd, yd = x.double().requires_grad_(), y.double().requires_grad_()
    materialised(xd, yd, "lorentz", 1.0, 0.01).backward()
    for got, want in ((xr.grad, xd.grad), (yr.grad, yd.grad)):
        assert (got.double() - want).abs().max() / want.abs().max() <= grad_rtol(torch.float32)


@pytest.mark.parametrize("use_ext", [True, False], ids=["fused", "reference"])
def test_explicit_positives_shared_columns(use_ext: bool) -> None:
    fn = _ext_or_ref(use_ext, tile=3)
    x = points("poincare", 6, 3).requires_grad_()
    y = points("poincare", 4, 3)
    pos = torch.tensor([0, 0, 1, 3, 3, 3])
    got = fn(x, y, "poincare", 1.0, 0.5, pos)
    want = materialised(x, y, "poincare", 1.0, 0.5, pos)
    assert torch.allclose(got, want, rtol=1e-10)
    (ga,) = torch.autograd.grad(got, x)
    (gb,) = torch.autograd.grad(want, x)
    assert torch.allclose(ga, gb, rtol=1e-8, atol=1e-12)


def test_gradcheck_and_opcheck() -> None:
    fused = fused_module()
    x = points("lorentz", 5, 2).requires_grad_()
    y = points("lorentz", 6, 2).requires_grad_()
    c = torch.tensor(1.2, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, cc, t: fused.contrastive_loss_op(a, b, "lorentz", cc, t, None, tile=4),
        (x, y, c, tau),
    )
    pos = torch.arange(5)
    op = torch.ops.hypervldd
    torch.library.opcheck(op.contrastive_loss.default, (x, y, c, tau, pos, 0, 4))
    loss, row, col = op.contrastive_loss(x, y, c, tau, pos, 0, 4)
    args = (torch.ones(()), x.detach(), y.detach(), c.detach(), tau.detach(), pos, row, col, 0, 4)
    torch.library.opcheck(op.contrastive_loss_backward.default, args)


def test_empty_batch_and_errors() -> None:
    x = torch.zeros(0, 4, requires_grad=True)
    y = points("lorentz", 3, 3, torch.float32)
    loss = K.contrastive_loss(x, y)
    assert loss.shape == () and float(loss.detach()) == 0.0
    loss.backward()
    x = points("lorentz", 4, 3, torch.float32)
    with pytest.raises(ValueError, match="tau must be"):
        K.contrastive_loss(x, x, tau=0.0)
    with pytest.raises(ValueError, match="positives must have shape"):
        K.contrastive_loss(x, x, positives=torch.arange(3))
    with pytest.raises(ValueError, match="positives must lie"):
        K.contrastive_loss(x, x, positives=torch.tensor([0, 1, 2, 9]))
    with pytest.raises(ValueError, match="N <= M"):
        K.contrastive_loss(x, x[:2])
    with pytest.raises(ValueError, match="c must be"):
        K.contrastive_loss(x, x, c=-2.0)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        K.contrastive_loss(bad, x)


_RSS_SCRIPT = """
import resource, sys, torch
torch.set_num_threads(2)
from hypervldd.kernels import fused
from hypervldd.manifolds import lorentz_math as L
n = int(sys.argv[1])
x = L.random(n, 5, radius=torch.rand(n) * 2).float().requires_grad_()
y = L.random(n, 5, radius=torch.rand(n) * 2).float().requires_grad_()
fused.contrastive_loss_op(x[:64], y[:64], "lorentz", 1.0, 0.1, None).backward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
loss = fused.contrastive_loss_op(x, y, "lorentz", 1.0, 0.1, None)
loss.backward()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024.0, bool(torch.isfinite(x.grad).all()))
"""


def test_streaming_never_forms_the_full_matrix() -> None:
    """Forward + backward at N = M = 6000 grow the peak RSS by far less than one
    N x M float32 matrix (137 MiB): the op holds tiles, not the matrix."""
    import subprocess
    import sys

    fused_module()
    n = 6000
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(n)], capture_output=True, text=True, check=True
    )
    grew_mib, finite = out.stdout.split()
    assert finite == "True"
    assert float(grew_mib) < 0.2 * n * n * 4 / 2**20, out.stdout


def test_parts_give_row_and_column_lse() -> None:
    fused = fused_module()
    x = points("euclidean", 9, 3)
    y = points("euclidean", 11, 3)
    loss, row, col = fused.contrastive_loss_parts(x, y, "euclidean", 1.0, 0.5, None, tile=4)
    s = -R.pairwise_dist_ref(x, y, "euclidean") / 0.5
    assert torch.allclose(row, torch.logsumexp(s, 1), rtol=1e-12)
    assert torch.allclose(col, torch.logsumexp(s, 0), rtol=1e-12)
    assert torch.allclose(loss, materialised(x, y, "euclidean", 1.0, 0.5), rtol=1e-12)


# Vectorised tile loops (lane reductions of 8 with a scalar tail) and the block
# shape that grows with small M at one thread: sizes with tails, several tiles,
# one and two threads, float32 against the float64 definition.
@pytest.mark.parametrize(("n", "m", "tile"), [(5, 13, 512), (70, 61, 24), (150, 40, 512)])
@pytest.mark.parametrize("threads", [1, 2])
def test_float32_tails_tiles_and_threads(n: int, m: int, tile: int, threads: int) -> None:
    fused = fused_module()
    g = torch.Generator().manual_seed(n + m)
    x = points("lorentz", n, 9, torch.float32, max_radius=3.0)
    y = points("lorentz", m, 9, torch.float32, max_radius=3.0)
    pos = torch.randint(0, m, (n,), generator=g)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
        loss = fused.contrastive_loss_op(xr, yr, "lorentz", 1.0, 0.1, pos, tile=tile)
        loss.backward()
    finally:
        torch.set_num_threads(before)
    xd, yd = x.double().requires_grad_(), y.double().requires_grad_()
    ref = materialised(xd, yd, "lorentz", 1.0, 0.1, pos)
    ref.backward()
    assert abs(float(loss.detach()) - float(ref)) <= 1e-4 * abs(float(ref))
    for got, want in ((xr.grad, xd.grad), (yr.grad, yd.grad)):
        err = (got.double() - want).abs().max() / want.abs().max()
        assert err <= grad_rtol(torch.float32) * 10


@pytest.mark.parametrize("threads", [1, 2])
def test_float64_large_blocks_exact(threads: int) -> None:
    """One thread, M < tile: blocks of up to 64 x tile / M rows (150 rows in one block
    here); loss and every gradient as tight as the small-tile float64 test."""
    fused = fused_module()
    x = points("lorentz", 150, 4).requires_grad_()
    y = points("lorentz", 40, 4).requires_grad_()
    pos = torch.arange(150) % 40
    c = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = fused.contrastive_loss_op(x, y, "lorentz", c, tau, pos)
        g1 = torch.autograd.grad(got, (x, y, c, tau))
    finally:
        torch.set_num_threads(before)
    want = materialised(x, y, "lorentz", c, tau, pos)
    g2 = torch.autograd.grad(want, (x, y, c, tau))
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    for a, b in zip(g1, g2, strict=True):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nan_row_reaches_every_column(dtype: torch.dtype) -> None:
    """A NaN point poisons its row's and every column's log-sum-exp (the lane maxima
    skip NaN; the exponentials must not), while the other rows stay finite."""
    import hypervldd

    fused = fused_module()
    x = points("lorentz", 20, 5, dtype)
    y = points("lorentz", 20, 5, dtype)
    x[3, 2] = float("nan")
    with hypervldd.validation(False):
        loss, row, col = fused.contrastive_loss_parts(x, y, "lorentz", 1.0, 0.1, None, tile=8)
    assert torch.isnan(loss) and torch.isnan(row[3]) and torch.isnan(col).all()
    assert torch.isfinite(row[torch.arange(20) != 3]).all()
