"""Manifolds and layers on fake CUDA tensors: outputs and gradients stay on the GPU."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    FakeTensorDeviceMismatchError,
)

from hypervldd import manifolds as M
from hypervldd import nn as hnn

from ._engine import sweep_backward
from .conftest import CUDA

MANIFOLDS = ["lorentz", "poincare", "klein", "euclidean", "sphere"]
# These two pick the exact slow path for close pairs with a data-dependent
# `if bad.any(): bad.nonzero()` per row chunk: a GPU sync per 4096 rows by design
# (the fused kernels, hypervldd.kernels.pairwise_dist, have none); fake tensors
# have no values to branch on.
_SYNCS = "pairwise_dist picks the exact path of close pairs by a data-dependent branch"


def _cuda_manifold(name: str, learnable: bool) -> M.Manifold:
    with torch.device(CUDA):  # only while building: a default device would hide mix-ups
        return M.get_manifold(name, 0.7, learnable=learnable)


def _outputs(m: M.Manifold, d: int) -> dict[str, object]:
    x = m.random(5, d, device=CUDA)
    y = m.random(5, d, device=CUDA)
    u = m.proju(x, torch.randn(5, d, device=CUDA))
    v = torch.randn(5, d - m.extra_dim, device=CUDA)
    return {
        "random": x,
        "origin": m.origin(5, d, device=CUDA),
        "inner": m.inner(x, u, u),
        "norm": m.norm(x, u),
        "dist": m.dist(x, y),
        "dist0": m.dist0(x),
        "expmap": m.expmap(x, u),
        "logmap": m.logmap(x, y),
        "expmap0": m.expmap0(torch.randn(5, d, device=CUDA)),
        "logmap0": m.logmap0(x),
        "lift": m.lift(v),
        "unlift": m.unlift(x),
        "transp": m.transp(x, y, u),
        "transp0": m.transp0(y, torch.randn(5, d, device=CUDA)),
        "transp0back": m.transp0back(x, u),
        "projx": m.projx(torch.randn(5, d, device=CUDA)),
        "proju": m.proju(x, torch.randn(5, d, device=CUDA)),
        "egrad2rgrad": m.egrad2rgrad(x, torch.randn(5, d, device=CUDA)),
        "retr": m.retr(x, u),
        "check_point": m.check_point(x),
        "c": m.c,
    }


@pytest.mark.parametrize("learnable", [False, True])
@pytest.mark.parametrize("name", MANIFOLDS)
def test_manifold_methods_stay_on_cuda(fake, name: str, learnable: bool) -> None:
    m = _cuda_manifold(name, learnable)
    d = 4
    outs = _outputs(m, d)
    for what, t in outs.items():
        assert t.device == CUDA, f"{name}.{what} returned a tensor on {t.device}"
    assert outs["dist"].shape == (5,) and outs["logmap"].shape == (5, d)
    if name != "euclidean":  # a fake curvature has no value to print
        assert "c=?" in repr(m)
    x = m.random(5, d, device=CUDA).detach().requires_grad_(True)
    y = m.random(5, d, device=CUDA)
    sweep_backward(m.dist(x, y).sum() + m.dist0(x).sum() + m.logmap0(x).sum())
    assert x.grad is not None and x.grad.device == CUDA
    if learnable and name != "euclidean":  # a flat space has no curvature to learn
        raw = m.curvature.raw
        assert raw.grad is not None and raw.grad.device == CUDA


@pytest.mark.parametrize("name", ["euclidean", "sphere"])
def test_flat_and_sphere_pairwise_dist_on_cuda(fake, name: str) -> None:
    m = _cuda_manifold(name, False)
    x, y = m.random(5, 4, device=CUDA), m.random(3, 4, device=CUDA)
    d = m.pairwise_dist(x, y)
    assert d.device == CUDA and d.shape == (5, 3)


@pytest.mark.parametrize("name", ["lorentz", "poincare", "klein"])
@pytest.mark.xfail(strict=True, raises=DataDependentOutputException, reason=_SYNCS)
def test_hyperbolic_pairwise_dist_branches_on_values(fake, name: str) -> None:
    m = _cuda_manifold(name, False)
    m.pairwise_dist(m.random(5, 4, device=CUDA), m.random(3, 4, device=CUDA))


def test_a_cpu_point_beside_cuda_points_is_caught(fake) -> None:
    """The suite's premise: a mix-up raises as on a real GPU."""
    m = _cuda_manifold("lorentz", False)
    x = m.random(5, 4, device=CUDA)
    with pytest.raises((FakeTensorDeviceMismatchError, RuntimeError), match="device"):
        m.dist(x, m.random(5, 4))


def _layers() -> list[tuple[str, torch.nn.Module, torch.Tensor]]:
    lor, ball = M.Lorentz(1.0, learnable=True), M.PoincareBall(1.0, learnable=True)
    klein = M.Klein(1.0, learnable=True)
    x_lor = lor.random(6, 6)
    x_ball = ball.random(6, 4)
    return [
        ("ExpMapHead-lorentz", hnn.ExpMapHead(8, 4, "lorentz"), torch.randn(6, 8)),
        ("ExpMapHead-poincare", hnn.ExpMapHead(8, 4, "poincare"), torch.randn(6, 8)),
        ("LorentzLinear", hnn.LorentzLinear(5, 3, lor, activation=torch.nn.ReLU()), x_lor),
        ("LorentzMLR", hnn.LorentzMLR(5, 3, lor), x_lor),
        ("LorentzMidpoint", hnn.LorentzMidpoint(lor), x_lor),
        ("PoincareLinear", hnn.PoincareLinear(4, 3, ball), x_ball),
        ("MobiusLinear", hnn.MobiusLinear(4, 3, ball), x_ball),
        ("PoincareMLR", hnn.PoincareMLR(4, 3, ball), x_ball),
        ("PoincareMidpoint", hnn.PoincareMidpoint(ball), x_ball),
        ("EinsteinMidpoint", hnn.EinsteinMidpoint(klein), klein.random(6, 4)),
    ]


def test_every_layer_forward_and_backward_on_cuda(fake) -> None:
    with torch.device(CUDA):
        layers = _layers()
    for name, layer, x in layers:
        x = x.detach().requires_grad_(True)
        out = layer(x)
        assert out.device == CUDA, name
        sweep_backward(out.sum())
        assert x.grad is not None and x.grad.device == CUDA, name
        for pname, p in layer.named_parameters():
            assert p.grad is None or p.grad.device == CUDA, f"{name}.{pname}"


@pytest.mark.parametrize("manifold", ["lorentz", "poincare", "euclidean"])
def test_distance_similarity_on_cuda(fake, manifold: str) -> None:
    with torch.device(CUDA):
        sim = hnn.DistanceSimilarity(manifold, learn_c=True)
        m = sim.manifold
        x = m.random(4, 5).requires_grad_(True)
        y = m.random(3, 5)
    out = sim(x, y)
    assert out.device == CUDA and out.shape == (4, 3)
    sweep_backward(out.sum())
    assert x.grad.device == CUDA


def test_layer_midpoint_weights_on_cuda(fake) -> None:
    with torch.device(CUDA):
        lor = M.Lorentz(1.0)
        x = lor.random(3, 6, 5)
        w = torch.rand(3, 6)
    out = hnn.lorentz_midpoint(x, lor.c, w, dim=-2)
    assert out.device == CUDA and out.shape == (3, 5)
