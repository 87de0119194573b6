"""The backward of pairwise_dist: one op (hypervldd::pairwise_dist_backward) on the
distances, factors and slow-pair mask that the forward saved."""

from __future__ import annotations

import pytest
import torch

from hypervldd.kernels import reference as R

from ._helpers import DTYPES, MANIFOLDS, grad_rtol, need_ext, points

CODE = {"lorentz": 0, "poincare": 1, "euclidean": 2}


def _backward(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, man: str):
    """The backward op on what the forward saves (the outputs of pairwise_dist_factor)."""
    d, f, mask = torch.ops.hypervldd.pairwise_dist_factor(x, y, c, CODE[man])
    return torch.ops.hypervldd.pairwise_dist_backward(g, x, y, c, d, f, mask, CODE[man])


def _want(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor, manifold: str, c: float):
    """Autograd of the float64 reference: gradients of sum(g * d) w.r.t. x, y, c."""
    xr = x.double().requires_grad_()
    yr = y.double().requires_grad_()
    cr = torch.tensor(c, dtype=torch.float64, requires_grad=True)
    out = (R.pairwise_dist_ref(xr, yr, manifold, cr) * g.double()).sum()
    return torch.autograd.grad(out, (xr, yr, cr))


def _close(got: tuple, want: tuple, dtype: torch.dtype) -> None:
    for a, b in zip(got, want, strict=True):
        assert torch.isfinite(a).all()
        scale = b.abs().max().clamp_min(1.0)
        assert (a.double() - b).abs().max() / scale <= grad_rtol(dtype)


@pytest.mark.parametrize("manifold", MANIFOLDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_op_matches_float64_autograd(manifold: str, dtype: torch.dtype) -> None:
    """150 rows (with several threads, tiles of 64 rows, the last one partial);
    coincident pairs (slow path, zero subgradient) among them."""
    need_ext()
    torch.manual_seed(0)
    x = points(manifold, 150, 5, dtype, c=0.7)
    y = points(manifold, 70, 5, dtype, c=0.7)
    y[3] = x[3]
    y[40] = x[140]
    g = torch.randn(150, 70, dtype=dtype)
    c = torch.tensor(0.7, dtype=dtype)
    got = _backward(g, x, y, c, manifold)
    assert got[2].shape == c.shape and got[2].dtype == c.dtype
    if manifold == "lorentz":  # the time coordinate is re-derived: no gradient there
        assert torch.equal(got[0][:, 0], torch.zeros(150, dtype=dtype))
    _close(got, _want(g, x, y, manifold, 0.7), dtype)


@pytest.mark.parametrize("manifold", ["lorentz", "poincare"])
def test_backward_op_takes_any_grad_layout(manifold: str) -> None:
    """The gradient of a sum is an expanded scalar (strides 0) and of a transpose a
    column-major tensor: the op reads either as the dense gradient."""
    need_ext()
    x = points(manifold, 20, 4, torch.float32)
    y = points(manifold, 9, 4, torch.float32)
    c = torch.tensor(1.0)
    dense = torch.randn(9, 20).T
    expanded = torch.tensor(0.5).expand(20, 9)
    for g in (dense, expanded):
        got = _backward(g, x, y, c, manifold)
        ref = _backward(g.contiguous(), x, y, c, manifold)
        for a, b in zip(got, ref, strict=True):
            assert torch.equal(a, b)
        _close(got, _want(g, x, y, manifold, 1.0), torch.float32)


def test_backward_op_two_threads_many_chunks() -> None:
    """700 rows over 2 threads: tiles of 88 rows in 8 chunks, each with its own gy
    partial; twice bit for bit the same."""
    need_ext()
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = points("poincare", 700, 6, torch.float32)
        y = points("poincare", 300, 6, torch.float32)
        g = torch.randn(700, 300)
        c = torch.tensor(1.0)
        got = _backward(g, x, y, c, "poincare")
        again = _backward(g, x, y, c, "poincare")
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(got, again, strict=True):
        assert torch.equal(a, b)
    _close(got, _want(g, x, y, "poincare", 1.0), torch.float32)


def test_backward_op_nan_in_nan_out_and_empty() -> None:
    need_ext()
    x = points("lorentz", 4, 3, torch.float32)
    y = points("lorentz", 5, 3, torch.float32)
    c = torch.tensor(1.0)
    g = torch.ones(4, 5)
    g[1, 2] = float("nan")
    gx, gy, gc = _backward(g, x, y, c, "lorentz")
    assert torch.isnan(gx[1, 1:]).all() and torch.isfinite(gx[0]).all()
    assert torch.isnan(gy[2, 1:]).all() and torch.isfinite(gy[0]).all()
    assert torch.isnan(gc)
    gx, gy, gc = _backward(torch.ones(0, 5), x[:0], y, c, "lorentz")
    assert gx.shape == (0, 4) and torch.equal(gy, torch.zeros_like(y)) and gc == 0


def test_backward_op_rejects_a_wrong_grad_shape() -> None:
    need_ext()
    x = points("poincare", 4, 3, torch.float32)
    with pytest.raises(RuntimeError, match=r"must have the output's shape \(4, 4\), got \[4, 3\]"):
        _backward(torch.ones(4, 3), x, x, torch.tensor(1.0), "poincare")
    c = torch.tensor(1.0)
    d, f, mask = torch.ops.hypervldd.pairwise_dist_factor(x, x, c, 1)
    with pytest.raises(RuntimeError, match="the mask must be bool"):
        torch.ops.hypervldd.pairwise_dist_backward(d, x, x, c, d, f, mask.float(), 1)


@pytest.mark.parametrize("manifold", MANIFOLDS)
def test_backward_opcheck(manifold: str) -> None:
    need_ext()
    x = points(manifold, 6, 3, c=1.3)
    y = points(manifold, 5, 3, c=1.3)
    g = torch.randn(6, 5, dtype=torch.float64)
    c = torch.tensor(1.3, dtype=torch.float64)
    d, f, mask = torch.ops.hypervldd.pairwise_dist_factor(x, y, c, CODE[manifold])
    torch.library.opcheck(
        torch.ops.hypervldd.pairwise_dist_backward.default,
        (g, x, y, c, d, f, mask, CODE[manifold]),
    )


@pytest.mark.parametrize("manifold", ["lorentz", "poincare"])
def test_autograd_gives_only_the_needed_gradients(manifold: str) -> None:
    """The autograd of pairwise_dist (registered in C++): gradients for the inputs that
    need them, none for the others, values of the float64 reference."""
    need_ext()
    import hypervldd.kernels as K

    x = points(manifold, 7, 4, torch.float32, c=0.9)
    y = points(manifold, 6, 4, torch.float32, c=0.9)
    w = torch.randn(7, 6)
    yr = y.clone().requires_grad_()
    (K.pairwise_dist(x, yr, manifold, 0.9) * w).sum().backward()
    want = _want(w, x, y, manifold, 0.9)
    _close((yr.grad,), (want[1],), torch.float32)
    c = torch.tensor(0.9, requires_grad=True)
    (gc,) = torch.autograd.grad((K.pairwise_dist(x, y, manifold, c) * w).sum(), c)
    _close((gc,), (want[2],), torch.float32)
    with torch.no_grad():
        assert not K.pairwise_dist(x, yr, manifold, 0.9).requires_grad


@pytest.mark.parametrize("manifold", MANIFOLDS)
def test_op_applies_the_point_rule_when_asked(manifold: str) -> None:
    """check_points=True: the op refuses what hypervldd._checks.check_points refuses,
    naming the first offending input, before any work; the public call re-raises the
    rule's full message."""
    need_ext()
    import hypervldd.kernels as K
    from hypervldd.kernels.fused import POINT_RULE_ERROR

    x = points(manifold, 5, 3, torch.float32)
    y = points(manifold, 4, 3, torch.float32)
    c = torch.tensor(1.0)
    code = CODE[manifold]
    ok = torch.ops.hypervldd.pairwise_dist(x, y, c, code, True)
    assert torch.equal(ok, torch.ops.hypervldd.pairwise_dist(x, y, c, code))
    bad = y.clone()
    bad[2, 1] = float("nan")
    for a, b, name in ((bad, y, "x"), (x, bad, "y"), (bad, bad, "x")):
        with pytest.raises(ValueError, match=f"^{POINT_RULE_ERROR}{name} "):
            torch.ops.hypervldd.pairwise_dist(a, b, c, code, True)
        with pytest.raises(ValueError, match=f"{name} must be finite, but it holds 1 NaN"):
            K.pairwise_dist(a, b, manifold)
    # Unchecked, NaN in gives NaN out.
    assert torch.isnan(torch.ops.hypervldd.pairwise_dist(x, bad, c, code)[:, 2]).all()
    if manifold == "euclidean":
        return
    off = x.clone()
    off[1, 1] += 0.5 if manifold == "lorentz" else 2.0
    with pytest.raises(ValueError, match=f"^{POINT_RULE_ERROR}y "):
        xr = x.clone().requires_grad_()  # the autograd path checks too
        torch.ops.hypervldd.pairwise_dist(xr, off, c, code, True)
    what = "not on the Lorentz manifold" if manifold == "lorentz" else "inside the Poincaré ball"
    with pytest.raises(ValueError, match=f"y (is|must lie) {what}"):
        K.pairwise_dist(x, off, manifold)
