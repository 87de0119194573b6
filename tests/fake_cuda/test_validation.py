"""How input validation behaves on tensors without values, and the sweep harness itself."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import hypervldd
from hypervldd import kernels
from hypervldd._checks import check_curvature, check_finite, has_values
from hypervldd.manifolds import Lorentz

from ._engine import sweep_backward
from .conftest import CUDA


def test_data_checks_are_skipped_on_fake_tensors_and_still_run_on_the_cpu() -> None:
    bad = torch.tensor([1.0, float("nan")])
    with pytest.raises(ValueError, match="x must be finite, but it holds 1 NaN"):
        check_finite(bad, "x")
    with pytest.raises(ValueError, match="c must be a finite positive curvature"):
        check_curvature(torch.tensor(-1.0), "c")
    assert has_values(bad)
    with FakeTensorMode():
        fake = torch.randn(3, device=CUDA)
        assert not has_values(fake)
        assert not hypervldd.validation_enabled()
        assert check_finite(fake, "x") is fake
        assert check_curvature(fake[0], "c") is not None
    assert not has_values(torch.empty(3, device="meta"))
    assert hypervldd.validation_enabled()


def test_structural_checks_still_run_on_fake_tensors(fake) -> None:
    x = torch.randn(4, 3, device=CUDA)
    with pytest.raises(ValueError, match="x must have at least 2 dimension"):
        kernels.pairwise_dist(x[0], x, "euclidean")
    with pytest.raises(TypeError, match="positives must be an integer"):
        kernels.contrastive_loss(x, x, "euclidean", positives=torch.zeros(4, device=CUDA))


def test_leaving_a_validation_block_under_a_fake_mode_keeps_the_setting() -> None:
    with FakeTensorMode():
        with hypervldd.validation(True):
            pass
    # validation_enabled() reads False under the mode; the thread's setting must not
    # have been overwritten with that on the way out
    assert hypervldd.validation_enabled()


def test_sweep_matches_backward_on_the_cpu() -> None:
    """The harness computes the same gradients as torch's engine."""
    torch.manual_seed(1)
    m = Lorentz(0.8, learnable=True)
    x = m.random(6, 4).detach().requires_grad_(True)
    y = m.random(5, 4).detach().requires_grad_(True)

    def total() -> torch.Tensor:
        d = kernels.pairwise_dist(x, y, "lorentz", m.c)
        return (
            d.square().sum() + kernels.contrastive_loss(x[:5], y, "lorentz", m.c) + m.dist0(x).sum()
        )

    total().backward()
    want = [t.grad.clone() for t in (x, y, m.curvature.raw)]
    for t in (x, y, m.curvature.raw):
        t.grad = None
    sweep_backward(total())
    for t, w in zip((x, y, m.curvature.raw), want, strict=True):
        torch.testing.assert_close(t.grad, w, rtol=1e-6, atol=1e-7)
