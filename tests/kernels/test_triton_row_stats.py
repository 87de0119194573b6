"""The Triton row_stats (forward and backward) under Triton's interpreter, against the
float64 reference and the C++ op."""

from __future__ import annotations

import pytest
import torch

import hypervldd
import hypervldd.kernels as K
from hypervldd.kernels import reference as R

from ._helpers import DTYPES, MANIFOLDS, grad_rtol, points, rtol
from .conftest import BACKWARD_OPCHECK

CODE = {"lorentz": 0, "poincare": 1, "euclidean": 2}
CASES = [(man, dt, (17, 33, 3, 5)) for man in MANIFOLDS for dt in DTYPES] + [
    ("lorentz", torch.float32, (1, 17, 65, 1)),
    ("euclidean", torch.float64, (129, 17, 1, 3)),
]


def _run(fn, x, y, v, pos, dt):  # noqa: ANN001, ANN202
    """Outputs and gradients of a scalar mixing all three statistics."""
    xx = x.detach().clone().to(dt).requires_grad_()
    yy = y.detach().clone().to(dt).requires_grad_()
    vv = v.detach().clone().to(dt).requires_grad_()
    cc = torch.tensor(0.7, dtype=dt, requires_grad=True)
    tt = torch.tensor(0.3, dtype=dt, requires_grad=True)
    lse, w, r = fn(xx, yy, cc, tt, vv, pos)
    k = torch.linspace(-1, 1, v.shape[1], dtype=dt)
    (lse.sum() + (w * k).sum() + (r * r).sum()).backward()
    return lse.detach(), w.detach(), r.detach(), xx.grad, yy.grad, cc.grad, tt.grad, vv.grad


@pytest.mark.parametrize(("manifold", "dtype", "shape"), CASES)
def test_statistics_and_gradients_match_reference_and_cpp(
    triton_cpu, manifold, dtype, shape
) -> None:
    n, m, dim, k = shape
    x = points(manifold, n, dim, dtype, c=0.7)
    y = points(manifold, m, dim, dtype, c=0.7)
    v = torch.randn(m, k, dtype=dtype)
    pos = torch.randint(0, m, (n,))

    def public(a, b, cc, tt, vv, p):  # noqa: ANN001, ANN202
        return tuple(K.row_stats(a, b, manifold, cc, tt, vv, 0.5, p))

    def ref(a, b, cc, tt, vv, p):  # noqa: ANN001, ANN202
        return tuple(R.row_stats_ref(a, b, manifold, cc, tt, vv, 0.5, p))

    def cpp(a, b, cc, tt, vv, p):  # noqa: ANN001, ANN202
        o = torch.ops.hypervldd.row_stats(a, b, cc, tt, vv, p, 0.5, CODE[manifold], 512)
        return o[:3]

    got = _run(public, x, y, v, pos, dtype)
    want = _run(ref, x, y, v, pos, torch.float64)
    other = _run(cpp, x, y, v, pos, dtype)
    for i, (a, b, c_) in enumerate(zip(got, want, other, strict=True)):
        tol = rtol(dtype) if i < 3 else grad_rtol(dtype)
        if b is None:  # Euclidean c
            continue
        scale = b.abs().max().clamp_min(1.0)
        assert torch.isfinite(a).all(), i
        assert (a.double() - b).abs().max() <= tol * scale, i
        assert (a - c_).abs().max() <= 2 * tol * scale, i


def test_without_values_or_rank_and_nan(triton_cpu) -> None:
    x = points("poincare", 9, 3, torch.float32)
    y = points("poincare", 11, 3, torch.float32)
    st = K.row_stats(x, y, "poincare", 1.0, 0.2)
    assert st.weighted is None and st.smooth_rank is None
    s = -R.pairwise_dist_ref(x.double(), y.double(), "poincare", 1.0) / 0.2
    assert torch.allclose(st.lse.double(), torch.logsumexp(s, 1), rtol=1e-5, atol=0)
    x[4, 0] = float("nan")
    with hypervldd.validation(False):
        st = K.row_stats(x, y, "poincare", 1.0, 0.2, torch.randn(11, 2), 0.5, torch.arange(9))
    assert torch.isnan(st.lse[4]) and torch.isnan(st.weighted[4]).all()
    assert torch.isfinite(st.lse[torch.arange(9) != 4]).all()


def test_gradcheck_and_opcheck(triton_cpu) -> None:
    dt = torch.float64
    x = points("poincare", 3, 2, dt).requires_grad_()
    y = points("poincare", 4, 2, dt).requires_grad_()
    v = torch.randn(4, 2, dtype=dt, requires_grad=True)
    c = torch.tensor(0.8, dtype=dt, requires_grad=True)
    tau = torch.tensor(0.3, dtype=dt, requires_grad=True)
    pos = torch.tensor([1, 1, 3])

    def f(a, b, cc, tt, vv):  # noqa: ANN001, ANN202
        lse, w, r, _ = triton_cpu.triton_row_stats(a, b, cc, tt, vv, pos, 0.4, 1)
        return lse, w, r

    assert torch.autograd.gradcheck(f, (x, y, c, tau, v), fast_mode=True)
    args = (x.detach(), y.detach(), c.detach(), tau.detach(), v.detach(), pos, 0.4, 1)
    torch.library.opcheck(triton_cpu.triton_row_stats, args)
    lse, w, r, sp = triton_cpu.triton_row_stats(*args)
    bargs = (torch.randn(3, dtype=dt), torch.randn(3, 2, dtype=dt), torch.randn(3, dtype=dt),
             *args[:4], args[4], pos, lse, w, sp, 0.4, 1)  # fmt: skip
    torch.library.opcheck(triton_cpu.triton_row_stats_backward, bargs, test_utils=BACKWARD_OPCHECK)
