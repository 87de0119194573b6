"""Both Riemannian optimisers step parameters on fake CUDA tensors, states included."""

from __future__ import annotations

import pytest
import torch

from hypervldd.manifolds import Lorentz, PoincareBall, Sphere
from hypervldd.optim import RiemannianAdam, RiemannianAdamW, RiemannianSGD

from ._engine import sweep_backward
from .conftest import CUDA

OPTIMISERS = [
    ("sgd", lambda ps: RiemannianSGD(ps, lr=0.01, momentum=0.9, weight_decay=0.01)),
    ("sgd-nesterov", lambda ps: RiemannianSGD(ps, lr=0.01, momentum=0.9, nesterov=True)),
    ("sgd-single", lambda ps: RiemannianSGD(ps, lr=0.01, momentum=0.5, foreach=False)),
    ("adam", lambda ps: RiemannianAdam(ps, lr=0.01, amsgrad=True, weight_decay=0.01)),
    ("adamw", lambda ps: RiemannianAdamW(ps, lr=0.01, stabilize=1)),
]


def _on(manifold, x: torch.Tensor) -> torch.nn.Parameter:  # noqa: ANN001
    # geoopt's ManifoldParameter cannot wrap a fake tensor (both are tensor
    # subclasses); the optimisers read only the parameter's `manifold` attribute.
    p = torch.nn.Parameter(x)
    p.manifold = manifold
    return p


@pytest.mark.parametrize("name, make", OPTIMISERS, ids=[n for n, _ in OPTIMISERS])
def test_optimiser_steps_on_cuda(fake, name: str, make) -> None:  # noqa: ANN001
    with torch.device(CUDA):
        lor, ball, sph = Lorentz(1.0), PoincareBall(0.5), Sphere(1.0)
        params = [
            _on(lor, lor.random(4, 3)),
            _on(lor, lor.random(2, 3)),  # shares a bucket with the first
            _on(ball, ball.random(3, 2)),
            _on(sph, sph.random(3, 3)),
            torch.nn.Parameter(torch.randn(5)),
        ]
    opt = make(params)
    for _ in range(2):
        opt.zero_grad()
        sweep_backward(sum((p * p).sum() for p in params))
        opt.step()
    for p in params:
        assert p.device == CUDA
        for key, value in opt.state[p].items():
            if isinstance(value, torch.Tensor) and key != "step":
                assert value.device == CUDA, f"{name}: state {key!r} on {value.device}"
