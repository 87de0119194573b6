"""pairwise_dist: values, gradients, accuracy envelope, opcheck, errors."""

from __future__ import annotations

import pytest
import torch

import hypervldd.kernels as K
from hypervldd._checks import validation
from hypervldd.kernels import reference as R
from hypervldd.manifolds import lorentz_math as L
from hypervldd.manifolds import poincare_math as P

from ._helpers import (
    DTYPES,
    MANIFOLDS,
    envelope_pairs,
    fused_module,
    grad_rtol,
    need_ext,
    points,
    rtol,
)

SHAPES = [(1, 1, 1), (1, 7, 3), (6, 1, 2), (33, 17, 5), (130, 97, 9)]


def _rel(d: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Relative error; where the float32 inputs coincide (truth 0) the value itself."""
    d = d.double()
    return torch.where(truth > 0, (d - truth).abs() / truth.clamp_min(1e-300), d.abs())


def _oracle(x: torch.Tensor, y: torch.Tensor, manifold: str, c: float) -> torch.Tensor:
    """float64 difference form of every pair (no GEMM): independent of the kernel."""
    n, m = x.shape[0], y.shape[0]
    xi = x.double().repeat_interleave(m, 0)
    yj = y.double().repeat(n, 1)
    return R.paired_dist_ref(xi, yj, manifold, c).reshape(n, m)


@pytest.mark.parametrize("manifold", MANIFOLDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_values_match_float64_oracle(manifold: str, dtype: torch.dtype, shape) -> None:
    n, m, dim = shape
    x = points(manifold, n, dim, dtype, c=0.7)
    y = points(manifold, m, dim, dtype, c=0.7)
    d = K.pairwise_dist(x, y, manifold, 0.7)
    assert d.shape == (n, m) and d.dtype == dtype
    ref = _oracle(x, y, manifold, 0.7)
    err = _rel(d, ref).max()
    assert err <= rtol(dtype), f"max relative error {err:.3g}"
    # The reference path agrees with the compiled path (same semantics).
    dr = R.pairwise_dist_ref(x, y, manifold, 0.7, chunk=5)
    assert torch.allclose(d, dr, rtol=rtol(dtype), atol=0)


@pytest.mark.parametrize("manifold", MANIFOLDS)
def test_several_row_blocks(manifold: str) -> None:
    """N above the kernel's row block (4096 rows at small M): blocks join seamlessly."""
    x = points(manifold, 5000, 2, torch.float32)
    y = points(manifold, 3, 2, torch.float32)
    d = K.pairwise_dist(x, y, manifold)
    assert torch.allclose(d, R.pairwise_dist_ref(x, y, manifold), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("manifold", ["lorentz", "poincare"])
def test_accuracy_envelope_float32(manifold: str) -> None:
    x64, y64, labels = envelope_pairs(manifold)
    x, y = x64.float(), y64.float()
    if manifold == "poincare":
        # Radius 15 and 20 round onto the boundary in float32: the float32 inputs
        # are the projected ones (radius <= 11.8), evaluated in float64 as given.
        x, y = P.projx(x, 1.0), P.projx(y, 1.0)
    truth = R.paired_dist_ref(x.double(), y.double(), manifold, 1.0)
    d = K.pairwise_dist(x, y, manifold).diagonal()
    rel = _rel(d, truth)
    worst = int(rel.argmax())
    assert rel.max() <= 1e-3, f"worst {rel.max():.3g} at {labels[worst]}"
    # The reference path meets the same envelope.
    dr = R.pairwise_dist_ref(x, y, manifold).diagonal()
    assert _rel(dr, truth).max() <= 1e-3


@pytest.mark.parametrize("manifold", ["lorentz", "poincare"])
def test_accuracy_envelope_float64(manifold: str) -> None:
    x, y, labels = envelope_pairs(manifold)
    truth = R.paired_dist_ref(x, y, manifold, 1.0)
    d = K.pairwise_dist(x, y, manifold).diagonal()
    rel = _rel(d, truth)
    assert rel.max() <= 1e-9, f"worst {rel.max():.3g} at {labels[int(rel.argmax())]}"


def _near_origin(n: int, dim: int, seed: int) -> torch.Tensor:
    """Lorentz points at radius uniform in [0, 0.05]: every pair closer than 0.1."""
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, dtype=torch.float64, generator=g) * 0.05
    torch.manual_seed(seed)
    return L.random(n, dim + 1, radius=r, dtype=torch.float64).float()


def test_near_origin_pairs_take_the_fast_path() -> None:
    """Close pairs near the origin are well conditioned in the second form of z: the
    compiled op accepts (almost) all of them, within the float32 envelope."""
    fused = fused_module()
    x, y = _near_origin(200, 16, 1), _near_origin(150, 16, 2)
    c = torch.tensor(1.0)
    d, f, bad = torch.ops.hypervldd.pairwise_dist_factor(x, y, c, fused.MANIFOLD_CODE["lorentz"])
    frac = float(bad.float().mean())
    assert frac <= 0.01, f"slow-path fraction {frac:.3f} near the origin"
    truth = _oracle(x, y, "lorentz", 1.0)
    assert _rel(d, truth).max() <= 1e-3
    # The factor of accepted pairs is the derivative of the distance in z:
    # sqrt(c) / sinh(sqrt(c) d).
    ok = ~bad.bool()
    want = 1.0 / torch.sinh(truth)
    assert ((f.double() - want).abs() / want)[ok].max() <= 1e-3


def test_near_origin_gradients_match_float64() -> None:
    x, y = _near_origin(40, 8, 3), _near_origin(30, 8, 4)
    w = torch.randn(40, 30, dtype=torch.float64)

    def grads(dt):
        xr, yr = x.to(dt).requires_grad_(), y.to(dt).requires_grad_()
        out = (K.pairwise_dist(xr, yr).double() * w).sum()
        return torch.autograd.grad(out, (xr, yr))

    for g, r in zip(grads(torch.float32), grads(torch.float64), strict=True):
        assert ((g.double() - r).abs().max() / r.abs().max()) <= grad_rtol(torch.float32)


def test_naive_gemm_form_fails_the_envelope() -> None:
    """The test above has teeth: the MERU-style GEMM form misses it by far."""
    x64, y64, _ = envelope_pairs("lorentz")
    x, y = x64.float(), y64.float()
    truth = R.paired_dist_ref(x.double(), y.double(), "lorentz", 1.0)
    xs, ys = x[:, 1:], y[:, 1:]
    x0 = torch.sqrt(1 + (xs * xs).sum(1))
    y0 = torch.sqrt(1 + (ys * ys).sum(1))
    naive = torch.acosh(torch.clamp(x0 * y0 - (xs * ys).sum(1), min=1.0)).double()
    assert ((naive - truth).abs() / truth).max() > 0.1


@pytest.mark.parametrize("manifold", MANIFOLDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_match_reference(manifold: str, dtype: torch.dtype) -> None:
    x = points(manifold, 37, 6, dtype, c=1.3)
    y = points(manifold, 29, 6, dtype, c=1.3)
    y[3] = x[3]  # a coincident pair: zero subgradient, no NaN
    w = torch.randn(37, 29, dtype=torch.float64)

    def grads(fn, dt):
        xr = x.to(dt).requires_grad_()
        yr = y.to(dt).requires_grad_()
        c = torch.tensor(1.3, dtype=dt, requires_grad=True)
        out = (fn(xr, yr, manifold, c).double() * w).sum()
        return torch.autograd.grad(out, (xr, yr, c))

    got = grads(K.pairwise_dist, dtype)
    want = grads(R.pairwise_dist_ref, torch.float64)
    for g, r in zip(got, want, strict=False):
        assert torch.isfinite(g).all()
        scale = r.abs().max().clamp_min(1.0)
        assert ((g.double() - r).abs().max() / scale) <= grad_rtol(dtype)


@pytest.mark.parametrize("manifold", MANIFOLDS)
def test_gradcheck_float64(manifold: str) -> None:
    x = points(manifold, 5, 3, c=1.3).requires_grad_()
    y = points(manifold, 4, 3, c=1.3).requires_grad_()
    c = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    # Finite differences move Lorentz points off the hyperboloid (the op reads only the
    # space part): the entry point's on-manifold check is off for them.
    with validation(False):
        assert torch.autograd.gradcheck(
            lambda a, b, cc: K.pairwise_dist(a, b, manifold, cc), (x, y, c)
        )


def test_zero_distance_gradient_is_zero() -> None:
    for manifold in MANIFOLDS:
        x = points(manifold, 3, 4, torch.float32).requires_grad_()
        d = K.pairwise_dist(x, x.detach().clone(), manifold)
        (g,) = torch.autograd.grad(d.diagonal().sum(), x)
        assert torch.equal(g, torch.zeros_like(g)), manifold
        assert d.diagonal().abs().max() == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [1.0, 0.731, 2.0])
def test_pair_of_origins_has_the_zero_gradient(dtype: torch.dtype, c: float) -> None:
    """Two points at the origin: the fast path's factor 1/sinh(d) is infinite there, so
    the pair must go to the slow path (distance 0, zero subgradient), not give NaN."""
    for manifold in MANIFOLDS:
        x = torch.zeros(3, 5, dtype=dtype)
        if manifold == "lorentz":
            x[:, 0] = c**-0.5
        x[2, 1:] = 0.3  # one point away from the origin
        if manifold == "lorentz":
            x[2, 0] = (1.0 / c + 4 * 0.09) ** 0.5
        xg = x.clone().requires_grad_()
        d = K.pairwise_dist(xg, x, manifold, c)
        (g,) = torch.autograd.grad(d.sum(), xg)
        assert bool(torch.isfinite(g).all()), (manifold, c)
        assert d[0, 1] == 0 and torch.equal(g[0], g[1]), (manifold, c)
        # Row 0 gets the zero subgradient from its two coincident pairs, so its gradient
        # is that of its one distance to the far point alone.
        x0 = x[:1].clone().requires_grad_()
        (g0,) = torch.autograd.grad(K.pairwise_dist(x0, x[2:], manifold, c).sum(), x0)
        torch.testing.assert_close(g[0], g0[0], rtol=grad_rtol(dtype), atol=0.0)


@pytest.mark.parametrize("manifold", MANIFOLDS)
def test_opcheck(manifold: str) -> None:
    need_ext()
    code = {"lorentz": 0, "poincare": 1, "euclidean": 2}[manifold]
    x = points(manifold, 6, 3, c=1.3).requires_grad_()
    y = points(manifold, 5, 3, c=1.3).requires_grad_()
    c = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.hypervldd.pairwise_dist.default, (x, y, c, code))
    torch.library.opcheck(
        torch.ops.hypervldd.pairwise_dist_factor.default, (x.detach(), y.detach(), c.detach(), code)
    )


def test_compiled_op_is_used() -> None:
    need_ext()
    x = points("lorentz", 4, 3, torch.float32)
    # The fused op and its Python face give bit-identical results.
    c = torch.tensor(1.0, dtype=torch.float32)
    assert torch.equal(K.pairwise_dist(x, x), torch.ops.hypervldd.pairwise_dist(x, x, c, 0))


def test_non_contiguous_and_half_inputs() -> None:
    x = points("lorentz", 10, 7, torch.float32)
    y = points("lorentz", 12, 7, torch.float32)
    d = K.pairwise_dist(x, y)
    xt = x.T.contiguous().T  # column-major
    big = torch.zeros(12, 16)
    big[:, ::2] = y
    assert torch.allclose(K.pairwise_dist(xt, big[:, ::2]), d, rtol=1e-6, atol=0)
    dh = K.pairwise_dist(x.bfloat16(), y.bfloat16())
    assert dh.dtype == torch.float32
    ref = _oracle(x.bfloat16().float(), y.bfloat16().float(), "lorentz", 1.0)
    assert ((dh.double() - ref).abs() / ref).max() <= 1e-3


@pytest.mark.parametrize("manifold", MANIFOLDS)
def test_empty_batches(manifold: str) -> None:
    dim = 4 if manifold == "lorentz" else 3
    x = torch.zeros(0, dim, requires_grad=True)
    y = points(manifold, 3, 3, torch.float32)
    d = K.pairwise_dist(x, y, manifold)
    assert d.shape == (0, 3)
    d.sum().backward()
    assert x.grad.shape == (0, dim)
    assert K.pairwise_dist(y, x.detach(), manifold).shape == (3, 0)


def test_errors_name_the_argument() -> None:
    x = points("lorentz", 3, 4, torch.float32)
    with pytest.raises(ValueError, match="same number of columns"):
        K.pairwise_dist(x, x[:, :3])
    with pytest.raises(ValueError, match="one device"):
        K.pairwise_dist(x, x.to("meta"))
    with pytest.raises(ValueError, match="c must be"):
        K.pairwise_dist(x, x, c=0.0)
    with pytest.raises(ValueError, match="c must be"):
        K.pairwise_dist(x, x, c=torch.tensor(-1.0))
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="y must be finite"):
        K.pairwise_dist(x, bad)
    with pytest.raises(ValueError, match="manifold"):
        K.pairwise_dist(x, x, manifold="sphere")
    with pytest.raises(ValueError, match="x must be 2-D"):
        K.pairwise_dist(x[None], x)
    with pytest.raises(TypeError, match="x must be a floating-point"):
        K.pairwise_dist(x.long(), x)
    outside = torch.tensor([[0.6, 0.9]])
    with pytest.raises(ValueError, match="x must lie inside the Poincar"):
        K.pairwise_dist(outside, outside * 0.1, manifold="poincare")


def test_lorentz_dist_rows_still_works() -> None:
    x = points("lorentz", 5, 3, torch.float64)
    y = points("lorentz", 5, 3, torch.float64)
    d = K.lorentz_dist_rows(x, y, 1.0)
    assert torch.allclose(d, K.pairwise_dist(x, y).diagonal(), rtol=1e-12)
