"""torch.compile of a small model using every fused op runs and matches eager."""

from __future__ import annotations

import torch

import hypervldd.kernels as K
from hypervldd.manifolds import lorentz_math as L

from ._helpers import need_ext


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(6, 5)
        self.b = torch.nn.Linear(6, 5)
        self.log_c = torch.nn.Parameter(torch.zeros(()))

    def forward(self, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        c = self.log_c.exp()
        pad = torch.zeros_like(self.a(u)[:, :1])
        x = L.expmap0(torch.cat([pad, self.a(u)], 1), c)
        y = L.expmap0(torch.cat([pad, self.b(w)], 1), c)
        loss = K.contrastive_loss(x, y, c=c, tau=0.2)
        st = K.row_stats(x, y, c=c, tau=0.2, values=w[:, :2], rank_temperature=0.5)
        return loss + st.smooth_rank.mean() + st.weighted.sum() + K.pairwise_dist(x, y, c=c).mean()


def test_compile_matches_eager() -> None:
    need_ext()
    torch.manual_seed(0)
    model = Tiny()
    u, w = torch.randn(9, 6), torch.randn(9, 6)
    eager = model(u, w)
    ge = torch.autograd.grad(eager, list(model.parameters()))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=False)
    out = compiled(u, w)
    gc = torch.autograd.grad(out, list(model.parameters()))
    assert torch.allclose(out, eager, rtol=1e-5, atol=1e-6)
    for a, b in zip(gc, ge, strict=False):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
