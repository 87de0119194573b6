"""The Triton streaming contrastive loss (forward and backward) under Triton's
interpreter, against the float64 reference and the C++ op."""

from __future__ import annotations

import pytest
import torch

import hypervldd
import hypervldd.kernels as K
from hypervldd.kernels import reference as R

from ._helpers import DTYPES, MANIFOLDS, grad_rtol, points, rtol
from .conftest import BACKWARD_OPCHECK

CODE = {"lorentz": 0, "poincare": 1, "euclidean": 2}


def _grads(fn, x, y, dt, pos):  # noqa: ANN001, ANN202
    xx = x.detach().clone().to(dt).requires_grad_()
    yy = y.detach().clone().to(dt).requires_grad_()
    cc = torch.tensor(0.7, dtype=dt, requires_grad=True)
    tt = torch.tensor(0.2, dtype=dt, requires_grad=True)
    loss = fn(xx, yy, cc, tt, pos)
    loss.backward()
    return loss.detach(), xx.grad, yy.grad, cc.grad, tt.grad


# Rows 1, 17, 129 against 17 or 33 columns; D = 1, 3, 65: the larger shapes once each
# (interpreter time), the small one for every manifold and dtype.
CASES = [(man, dt, (17, 33, 3)) for man in MANIFOLDS for dt in DTYPES] + [
    ("lorentz", torch.float32, (1, 17, 65)),
    ("poincare", torch.float64, (129, 17, 1)),
]


@pytest.mark.parametrize(("manifold", "dtype", "shape"), CASES)
def test_loss_and_gradients_match_reference_and_cpp(triton_cpu, manifold, dtype, shape) -> None:
    n, m, dim = shape
    x = points(manifold, n, dim, dtype, c=0.7)
    y = points(manifold, m, dim, dtype, c=0.7)
    pos = torch.randint(0, m, (n,))
    pos[: min(n, 3)] = 0  # several rows share a positive column
    got = _grads(lambda *a: K.contrastive_loss(a[0], a[1], manifold, a[2], a[3], a[4]), x, y,
                 dtype, pos)  # fmt: skip
    ref = _grads(lambda *a: R.contrastive_loss_ref(a[0], a[1], manifold, a[2], a[3], a[4]), x,
                 y, torch.float64, pos)  # fmt: skip
    cpp = _grads(
        lambda a, b, cc, tt, p: torch.ops.hypervldd.contrastive_loss(
            a, b, cc, tt, p, CODE[manifold], 512
        )[0],
        x, y, dtype, pos,
    )  # fmt: skip
    assert abs(float(got[0]) - float(ref[0])) <= rtol(dtype) * abs(float(ref[0]))
    tol = grad_rtol(dtype)
    for a, b, c_ in zip(got[1:], ref[1:], cpp[1:], strict=True):
        if manifold == "euclidean" and a.dim() == 0 and b is None:
            continue
        scale = b.abs().max().clamp_min(1.0)
        assert torch.isfinite(a).all()
        assert (a.double() - b).abs().max() <= tol * scale
        assert (a - c_).abs().max() <= 2 * tol * scale


def test_row_and_column_lse_match_reference(triton_cpu) -> None:
    x = points("lorentz", 17, 3, torch.float64)
    y = points("lorentz", 40, 3, torch.float64)
    pos = torch.arange(17)
    loss, row, col = triton_cpu.triton_contrastive_loss(
        x, y, torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64),
        pos, 0,
    )  # fmt: skip
    s = -R.pairwise_dist_ref(x, y, "lorentz", 1.0) / 0.1
    assert torch.allclose(row, torch.logsumexp(s, 1), rtol=1e-12, atol=0)
    assert torch.allclose(col, torch.logsumexp(s, 0), rtol=1e-12, atol=0)
    ce = (row - s.diagonal()).sum() + (col[:17] - s.diagonal()).sum()
    assert torch.allclose(loss, ce / 34, rtol=1e-12, atol=0)


def test_non_contiguous_and_nan(triton_cpu) -> None:
    x = points("poincare", 9, 4, torch.float32)
    y = points("poincare", 9, 4, torch.float32)
    xt = x.T.contiguous().T
    yb = torch.zeros(9, 8)
    yb[:, ::2] = y
    yb = yb[:, ::2]
    assert not xt.is_contiguous() and not yb.is_contiguous()
    a = K.contrastive_loss(xt, yb, "poincare", 1.0, 0.1)
    b = K.contrastive_loss(x, y, "poincare", 1.0, 0.1)
    assert torch.equal(a, b)
    x[2, 1] = float("nan")
    with hypervldd.validation(False):
        assert torch.isnan(K.contrastive_loss(x, y, "poincare", 1.0, 0.1))


def test_gradcheck_and_opcheck(triton_cpu) -> None:
    x = points("lorentz", 3, 2, torch.float64)
    y = points("lorentz", 4, 2, torch.float64)
    xs = x[:, 1:].clone().requires_grad_()
    ys = y[:, 1:].clone().requires_grad_()
    c = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    pos = torch.tensor([1, 1, 3])

    def f(a, b, cc, tt):  # noqa: ANN001, ANN202
        one = torch.ones_like(a[:, :1])
        full_a = torch.cat([one, a], 1)
        full_b = torch.cat([torch.ones_like(b[:, :1]), b], 1)
        return triton_cpu.triton_contrastive_loss(full_a, full_b, cc, tt, pos, 0)[0]

    assert torch.autograd.gradcheck(f, (xs, ys, c, tau), fast_mode=True)
    args = (x, y, c.detach(), tau.detach(), pos, 0)
    torch.library.opcheck(triton_cpu.triton_contrastive_loss, args)
    loss, row, col = triton_cpu.triton_contrastive_loss(*args)
    g = torch.tensor(1.5, dtype=torch.float64)
    bargs = (g, x, y, c.detach(), tau.detach(), pos, row, col, 0)
    torch.library.opcheck(
        triton_cpu.triton_contrastive_loss_backward, bargs, test_utils=BACKWARD_OPCHECK
    )
