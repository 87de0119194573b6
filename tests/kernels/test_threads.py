"""Several chunks per thread, handed out dynamically: same values, deterministic."""

from __future__ import annotations

import pytest
import torch

import hypervldd.kernels as K

from ._helpers import grad_rtol, need_ext, points, rtol


@pytest.fixture
def two_threads():  # noqa: ANN201
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("manifold", ["lorentz", "poincare"])
def test_many_chunks_match_float64_and_repeat_exactly(manifold: str, two_threads) -> None:  # noqa: ANN001
    """N = 700 rows: 11 row tiles of the streaming ops (8 chunks over 2 threads) and 3
    row blocks of the pairwise op; values and gradients against the float64 reference,
    and a second call bit for bit equal (the merge order does not depend on which
    thread ran a chunk)."""
    need_ext()
    x = points(manifold, 700, 6, torch.float32)
    y = points(manifold, 650, 6, torch.float32)
    d = K.pairwise_dist(x, y, manifold)
    torch.testing.assert_close(
        d.double(),
        K.pairwise_dist_ref(x.double(), y.double(), manifold),
        rtol=rtol(torch.float32),
        atol=1e-5,
    )
    assert torch.equal(d, K.pairwise_dist(x, y, manifold))

    def loss_and_grads(a: torch.Tensor, b: torch.Tensor, fn) -> list[torch.Tensor]:  # noqa: ANN001
        a, b = a.clone().requires_grad_(), b.clone().requires_grad_()
        loss = fn(a, b, manifold, 1.0, 0.1, torch.arange(650).repeat(2)[:700] % 650)
        return [loss.detach(), *torch.autograd.grad(loss, (a, b))]

    got = loss_and_grads(x, y, K.contrastive_loss)
    again = loss_and_grads(x, y, K.contrastive_loss)
    want = loss_and_grads(x.double(), y.double(), K.contrastive_loss_ref)
    for g, a, w in zip(got, again, want, strict=True):
        assert torch.equal(g, a)
        torch.testing.assert_close(g.double(), w, rtol=grad_rtol(torch.float32), atol=1e-6)
