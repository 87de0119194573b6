"""NaN in, NaN out: with validation off no loss turns a NaN feature into a finite value.

docs/geometry.md: NaN is never turned into a zero distance. A finite loss from a
NaN input would hide the fault (and train on garbage) whenever validation is
switched off for speed or under ``torch.compile``.
"""

from __future__ import annotations

import pytest
import torch

import hypervldd
from hypervldd.losses import EntailmentConeLoss, FullDatasetRankAlignment, HyperbolicContrastiveLoss
from hypervldd.manifolds import lorentz_math as lm


def _feats(n: int = 6, d: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, d, generator=g)
    b = torch.randn(n, d, generator=g)
    a[2, 1] = float("nan")
    return a, b


@pytest.mark.parametrize("geometry", ["lorentz", "poincare", "euclidean"])
@pytest.mark.parametrize("use_fused", [True, False])
def test_contrastive_loss_propagates_nan(geometry: str, use_fused: bool) -> None:
    a, b = _feats()
    loss = HyperbolicContrastiveLoss(geometry, use_fused=use_fused)
    with hypervldd.validation(False):
        assert torch.isnan(loss(a, b))
    # and a clean batch stays finite (the NaN comes from the input, not the loss)
    assert torch.isfinite(loss(torch.nan_to_num(a), b))


def test_entailment_cone_propagates_nan() -> None:
    a, b = _feats()
    pad = torch.zeros(a.shape[0], 1)
    x = lm.expmap0(torch.cat([pad, a], 1), 1.0)
    y = lm.expmap0(torch.cat([pad, b], 1), 1.0)
    with hypervldd.validation(False):
        assert torch.isnan(EntailmentConeLoss("lorentz")(x, y, 1.0))


@pytest.mark.parametrize("geometry", ["lorentz", "poincare"])
def test_rank_alignment_propagates_nan(geometry: str) -> None:
    a, b = _feats()
    if geometry == "lorentz":
        pad = torch.zeros(a.shape[0], 1)
        a, b = (lm.expmap0(torch.cat([pad, t], 1), 1.0) for t in (a, b))
    else:
        a, b = 0.1 * a, 0.1 * b
    loss = FullDatasetRankAlignment(geometry, chunk_size=4)
    clean_a = torch.nan_to_num(a)
    with hypervldd.validation(False):
        # NaN in a synthetic image, then NaN in a real image
        assert torch.isnan(loss(a[:3], b[:3], clean_a, b))
        assert torch.isnan(loss(clean_a[:3], b[:3], a, b))
