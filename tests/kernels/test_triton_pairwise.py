"""The Triton pairwise_dist (forward and backward) under Triton's interpreter, against
the float64 reference and the C++ op: values, gradients, accuracy envelope, opcheck."""

from __future__ import annotations

import pytest
import torch

import hypervldd.kernels as K
from hypervldd.kernels import backend_for
from hypervldd.kernels import reference as R
from hypervldd.kernels.pair_bound import epilogue
from hypervldd.manifolds import poincare_math as P

from ._helpers import DTYPES, MANIFOLDS, RADII, envelope_pairs, grad_rtol, points, rtol
from .conftest import BACKWARD_OPCHECK

CODE = {"lorentz": 0, "poincare": 1, "euclidean": 2}
# Row counts 1, 17, 129 and D = 1, 3, 65 (space dimensions), each at least once.
SHAPES = [(1, 9, 65), (17, 3, 1), (129, 17, 3)]


def _rel(d: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    d = d.double()
    return torch.where(truth > 0, (d - truth).abs() / truth.clamp_min(1e-300), d.abs())


def _oracle(x: torch.Tensor, y: torch.Tensor, manifold: str, c: float) -> torch.Tensor:
    n, m = x.shape[0], y.shape[0]
    xi = x.double().repeat_interleave(m, 0)
    yj = y.double().repeat(n, 1)
    return R.paired_dist_ref(xi, yj, manifold, c).reshape(n, m)


def test_backend_for_routes_cpu_tensors_to_triton_only_on_request(triton_cpu, monkeypatch) -> None:
    assert backend_for("cpu") == "triton"
    monkeypatch.setenv("HYPERVLDD_TRITON_ON_CPU", "0")
    assert backend_for("cpu") in ("cpp", "reference")
    assert backend_for("cuda") == "triton"


@pytest.mark.parametrize("manifold", MANIFOLDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_values_match_oracle_and_cpp(triton_cpu, manifold, dtype, shape) -> None:
    n, m, dim = shape
    x = points(manifold, n, dim, dtype, c=0.7)
    y = points(manifold, m, dim, dtype, c=0.7)
    d = K.pairwise_dist(x, y, manifold, 0.7)
    assert d.shape == (n, m) and d.dtype == dtype
    err = _rel(d, _oracle(x, y, manifold, 0.7)).max()
    assert err <= rtol(dtype), f"max relative error {err:.3g}"
    cpp = torch.ops.hypervldd.pairwise_dist(x, y, torch.tensor(0.7, dtype=dtype), CODE[manifold])
    assert torch.allclose(d, cpp, rtol=10 * rtol(dtype), atol=0)


def test_non_contiguous_inputs(triton_cpu) -> None:
    x = points("lorentz", 17, 6, torch.float32)
    y = points("lorentz", 9, 6, torch.float32)
    xt = x.T.contiguous().T  # column-major
    yb = torch.zeros(9, 14)
    yb[:, ::2] = y
    yb = yb[:, ::2]
    assert not xt.is_contiguous() and not yb.is_contiguous()
    d = K.pairwise_dist(xt, yb, "lorentz")
    assert torch.equal(d, K.pairwise_dist(x, y, "lorentz"))


@pytest.mark.parametrize("manifold", MANIFOLDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(17, 5, 3)])
def test_gradients_match_reference_and_cpp(triton_cpu, manifold, dtype, shape) -> None:
    n, m, dim = shape
    x = points(manifold, n, dim, dtype, c=0.7)
    y = points(manifold, m, dim, dtype, c=0.7)
    y[0] = x[0]  # a zero-distance pair: the zero subgradient
    g = torch.randn(n, m, dtype=dtype)

    def grads(fn, dt):  # noqa: ANN001, ANN202
        xx = x.detach().clone().to(dt).requires_grad_()
        yy = y.detach().clone().to(dt).requires_grad_()
        cc = torch.tensor(0.7, dtype=dt, requires_grad=True)
        torch.autograd.backward(fn(xx, yy, cc), g.to(dt))
        return xx.grad, yy.grad, cc.grad

    got = grads(lambda a, b, cc: K.pairwise_dist(a, b, manifold, cc), dtype)
    ref = grads(lambda a, b, cc: R.pairwise_dist_ref(a, b, manifold, cc), torch.float64)
    cpp = grads(lambda a, b, cc: torch.ops.hypervldd.pairwise_dist(a, b, cc, CODE[manifold]), dtype)
    tol = grad_rtol(dtype)
    for a, b, c_ in zip(got, ref, cpp, strict=True):
        scale = b.abs().max().clamp_min(1.0)
        assert torch.isfinite(a).all()
        assert (a.double() - b).abs().max() <= tol * scale
        assert (a - c_).abs().max() <= 2 * tol * scale


@pytest.mark.parametrize("manifold", MANIFOLDS)
def test_gradcheck_float64(triton_cpu, manifold) -> None:
    x = points(manifold, 2, 2, torch.float64).requires_grad_()
    y = points(manifold, 3, 2, torch.float64).requires_grad_()
    c = torch.tensor(0.8, dtype=torch.float64, requires_grad=manifold != "euclidean")

    def f(a, b, cc):  # noqa: ANN001, ANN202
        return torch.ops.hypervldd.triton_pairwise_dist(a, b, cc, CODE[manifold])

    # Lorentz: the time column is re-derived from the space part (zero gradient),
    # so perturb only through the space part.
    if manifold == "lorentz":
        xs = x[:, 1:].detach().requires_grad_()
        ys = y[:, 1:].detach().requires_grad_()

        def g(a, b, cc):  # noqa: ANN001, ANN202
            t = torch.zeros_like(a[:, :1])
            return f(
                torch.cat([t + 1, a], 1), torch.cat([t[:1].expand(b.shape[0], 1) + 1, b], 1), cc
            )

        assert torch.autograd.gradcheck(g, (xs, ys, c), fast_mode=True)
    else:
        assert torch.autograd.gradcheck(f, (x, y, c), fast_mode=True)


def test_opcheck(triton_cpu) -> None:
    x = points("poincare", 3, 2, torch.float32)
    y = points("poincare", 2, 2, torch.float32)
    c = torch.tensor(1.0)
    torch.library.opcheck(triton_cpu.triton_pairwise_dist, (x, y, c, 1))
    xl, yl = points("lorentz", 3, 2), points("lorentz", 2, 2)
    c64 = torch.tensor(1.0, dtype=torch.float64)
    g = torch.randn(3, 2, dtype=torch.float64)
    torch.library.opcheck(
        triton_cpu.triton_pairwise_dist_backward, (g, xl, yl, c64, 0), test_utils=BACKWARD_OPCHECK
    )


@pytest.mark.parametrize("manifold", ["lorentz", "poincare"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_accuracy_envelope(triton_cpu, manifold, dtype) -> None:
    """Every radius x distance x direction of docs/geometry.md."""
    x64, y64, labels = envelope_pairs(manifold, dim=4)
    x, y = x64.to(dtype), y64.to(dtype)
    if manifold == "poincare" and dtype == torch.float32:
        x, y = P.projx(x, 1.0), P.projx(y, 1.0)
    truth = R.paired_dist_ref(x.double(), y.double(), manifold, 1.0)
    # One small call per radius (20 pairs): only the diagonal is wanted.
    d = torch.cat([K.pairwise_dist(x[i : i + 20], y[i : i + 20], manifold).diagonal()
                   for i in range(0, x.shape[0], 20)])  # fmt: skip
    assert len(set(labels[i][0] for i in range(0, x.shape[0], 20))) == len(RADII)
    rel = _rel(d, truth)
    worst = int(rel.argmax())
    assert rel.max() <= rtol(dtype), f"worst {rel.max():.3g} at {labels[worst]}"


def test_nan_in_nan_out_and_no_overflow(triton_cpu) -> None:
    x = points("lorentz", 3, 2, torch.float32)
    x[1, 2] = float("nan")
    with __import__("hypervldd").validation(False):
        d = K.pairwise_dist(x, x, "lorentz")
        assert torch.isnan(d[1]).all() and torch.isnan(d[:, 1]).all()
        assert torch.isfinite(d[0, 2]) and torch.isfinite(d[2, 0])
        # Far points (z near 1e36, past sqrt(float32 max)): finite distances.
        far = torch.zeros(2, 3)
        far[0, 1], far[1, 1] = 1e18, -1e18
        far[:, 0] = 1e18
        df = K.pairwise_dist(far, far, "lorentz")
        assert torch.isfinite(df).all() and df[0, 1] > 80


def test_origin_form_keeps_close_pairs_near_the_origin_on_the_fast_path() -> None:
    """Near the origin form 1 cancels against the 1: alone it would send almost every
    close pair there to the slow path; with form 2 almost none goes."""
    torch.manual_seed(3)
    xs = 1e-2 * torch.randn(64, 8, dtype=torch.float64)
    ys = xs + 3e-3 * torch.randn(64, 8, dtype=torch.float64)
    x = torch.cat([torch.sqrt(1 + (xs * xs).sum(1, keepdim=True)), xs], 1).float()
    y = torch.cat([torch.sqrt(1 + (ys * ys).sum(1, keepdim=True)), ys], 1).float()
    g = x[:, 1:] @ y[:, 1:].T
    d, ok = epilogue(g, x, y, "lorentz")
    x0 = torch.sqrt(1 + (x[:, 1:].double() ** 2).sum(1))[:, None]
    y0 = torch.sqrt(1 + (y[:, 1:].double() ** 2).sum(1))[None, :]
    z1_bound = 4 * torch.finfo(torch.float32).eps * (x0 * y0)
    z1_ok = z1_bound <= 1e-4 * (x0 * y0 - 1 - g.double())
    assert ok.float().mean() >= 0.99
    assert z1_ok.float().mean() <= 0.5
    truth = _oracle(x, y, "lorentz", 1.0)
    assert _rel(d[ok], truth[ok]).max() <= 1e-3
