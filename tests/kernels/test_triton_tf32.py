"""The error bound of the Triton epilogue holds for the GPU's ``tl.dot`` precision.

The interpreter computes ``tl.dot`` in plain float32, so the GPU's TF32x3 is emulated
here (operands split into TF32 ``hi`` and ``lo`` parts, three products) and the GEMM
values are fed to the pure-torch mirror of the epilogue (``pair_bound.epilogue``):
the pairs the bound accepts must meet the accuracy envelope of docs/geometry.md. With
plain TF32 (one product) accepted pairs break it: the reason the kernels use TF32x3.
"""

from __future__ import annotations

import pytest
import torch

from hypervldd.kernels import reference as R
from hypervldd.kernels.pair_bound import epilogue, round_to_tf32, tf32_gemm, tf32x3_gemm
from hypervldd.manifolds import poincare_math as P

from ._helpers import envelope_pairs, points


def _operand(x: torch.Tensor, manifold: str) -> torch.Tensor:
    return x[:, 1:] if manifold == "lorentz" else x


def _cases(manifold: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The accuracy grid (pair i with pair i) plus close pairs of a random cloud."""
    x64, y64, _ = envelope_pairs(manifold, dim=16)
    x, y = x64.float(), y64.float()
    if manifold == "poincare":
        x, y = P.projx(x, 1.0), P.projx(y, 1.0)
    return x, y


def _errors(gemm, manifold: str) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Relative errors of the accepted pairs and the acceptance mask, diagonal pairs."""
    x, y = _cases(manifold)
    g = gemm(_operand(x, manifold), _operand(y, manifold)).diagonal()[:, None]
    errs, oks = [], []
    for i in range(x.shape[0]):
        d, ok = epilogue(g[i : i + 1], x[i : i + 1], y[i : i + 1], manifold)
        truth = R.paired_dist_ref(x[i : i + 1].double(), y[i : i + 1].double(), manifold, 1.0)
        errs.append(((d.double().flatten() - truth) / truth).abs())
        oks.append(ok.flatten())
    return torch.cat(errs), torch.cat(oks)


def test_round_to_tf32_keeps_ten_mantissa_bits_rounding_to_nearest() -> None:
    a = torch.tensor([1.0 + 2.0**-11, 1.0 + 2.0**-11 + 2.0**-20, 1.0 + 2.0**-12, -3.0])
    r = round_to_tf32(a)
    assert r.tolist() == [1.0 + 2.0**-10, 1.0 + 2.0**-10, 1.0, -3.0]
    x = torch.randn(1000)
    rel = ((round_to_tf32(x) - x) / x).abs()
    assert rel.max() <= 2.0**-11 and rel.max() > 2.0**-12


def test_tf32x3_gemm_is_float32_accurate_and_tf32_is_not() -> None:
    a, b = torch.randn(64, 128), torch.randn(32, 128)
    exact = a.double() @ b.double().T
    scale = (a.double().abs() @ b.double().abs().T).max()
    e3 = ((tf32x3_gemm(a, b).double() - exact).abs().max() / scale).item()
    e1 = ((tf32_gemm(a, b).double() - exact).abs().max() / scale).item()
    assert e3 <= 4 * torch.finfo(torch.float32).eps
    assert e1 >= 1e-5


@pytest.mark.parametrize("manifold", ["lorentz", "poincare", "euclidean"])
def test_bound_holds_for_tf32x3(manifold: str) -> None:
    if manifold == "euclidean":
        x = points("euclidean", 64, 16, torch.float32)
        y = x + 1e-3 * torch.randn_like(x)
        g = tf32x3_gemm(x, y)
        d, ok = epilogue(g, x, y, "euclidean")
        truth = torch.cdist(x.double(), y.double())
        rel = ((d.double() - truth) / truth).abs()
        assert ok.any() and rel[ok].max() <= 1e-3
        return
    rel, ok = _errors(tf32x3_gemm, manifold)
    assert ok.sum() >= 12, "the bound should accept the well-conditioned pairs"
    assert rel[ok].max() <= 1e-3, f"worst accepted pair {rel[ok].max():.3g}"
    # A cloud of typical features (radius up to 3, D = 64): all pairs, mostly accepted.
    x = points(manifold, 48, 64, torch.float32)
    y = points(manifold, 40, 64, torch.float32)
    d, ok = epilogue(tf32x3_gemm(_operand(x, manifold), _operand(y, manifold)), x, y, manifold)
    n, m = x.shape[0], y.shape[0]
    truth = R.paired_dist_ref(
        x.double().repeat_interleave(m, 0), y.double().repeat(n, 1), manifold, 1.0
    ).reshape(n, m)
    assert ok.float().mean() >= 0.9
    assert ((d.double() - truth) / truth).abs()[ok].max() <= 1e-3


@pytest.mark.parametrize("manifold", ["lorentz", "poincare"])
def test_plain_tf32_breaks_the_envelope(manifold: str) -> None:
    rel, ok = _errors(tf32_gemm, manifold)
    assert rel[ok].max() > 1e-3, "plain TF32 unexpectedly met the envelope"
