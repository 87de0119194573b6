"""Distillation fidelity: rank correlations, top-k overlap, trained and data-level measures."""

import pytest
import torch

from hypervldd.eval import EvalProtocol, FeatureSet, StudentConfig
from hypervldd.eval.fidelity import (
    bridge_scores,
    data_fidelity,
    kendall_tau,
    lift_features,
    ordering_agreement,
    spearman,
    topk_overlap,
    trained_fidelity,
)
from tests._synth import clustered_features

TINY = EvalProtocol(
    student=StudentConfig(width=8), epochs=2, seeds=(0, 1), lr_decay_epochs=(), batch_size=32
)


def test_identical_and_reversed_orderings():
    a = torch.randn(4, 25, generator=torch.Generator().manual_seed(1))
    for fn in (spearman, kendall_tau):
        assert torch.allclose(fn(a, a), torch.ones(4, dtype=torch.float64))
        assert torch.allclose(fn(a, -a), -torch.ones(4, dtype=torch.float64))
        # Any strictly increasing transform keeps the ordering.
        assert torch.allclose(fn(a, a.exp() * 3 + 1), torch.ones(4, dtype=torch.float64))
    assert torch.equal(topk_overlap(a, a, 5), torch.ones(4, dtype=torch.float64))


def test_known_values_and_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 5, (6, 40), generator=g).double()
    b = torch.randint(0, 5, (6, 40), generator=g).double()
    rho, tau = spearman(a, b), kendall_tau(a, b)
    for i in range(6):
        assert rho[i].item() == pytest.approx(stats.spearmanr(a[i], b[i]).statistic, abs=1e-12)
        assert tau[i].item() == pytest.approx(stats.kendalltau(a[i], b[i]).statistic, abs=1e-12)
    # One swapped adjacent pair among n = 4: tau = (5 - 1) / 6, rho = 1 - 6 * 2 / (4 * 15).
    x, y = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 2.0, 4.0, 3.0])
    assert kendall_tau(x, y).item() == pytest.approx(4 / 6)
    assert spearman(x, y).item() == pytest.approx(1 - 12 / 60)


def test_topk_overlap_known_and_constant_rows():
    a = torch.arange(10.0)
    assert topk_overlap(a, -a, 3).item() == 0.0
    b = torch.tensor([9.0, 8, 0, 1, 2, 3, 4, 5, 6, 7])  # top-3 of b: items 0, 1, 9
    assert topk_overlap(a, b, 3).item() == pytest.approx(1 / 3)
    const = torch.zeros(10)
    assert spearman(a, const).item() == 0.0 and kendall_tau(const, a).item() == 0.0
    with pytest.raises(ValueError, match="NaN"):
        spearman(a, torch.full((10,), float("nan")))
    with pytest.raises(ValueError, match="same shape"):
        kendall_tau(a, a[:5])
    with pytest.raises(ValueError, match="k must"):
        topk_overlap(a, a, 0)


def test_ordering_agreement_directions():
    s = torch.randn(7, 30, generator=torch.Generator().manual_seed(0))
    same = ordering_agreement(s, s.clone(), k=5)
    assert all(v == pytest.approx(1.0) for v in same.values())
    rev = ordering_agreement(s, -s, k=5)
    assert rev["spearman"] == pytest.approx(-1) and rev["kendall"] == pytest.approx(-1)
    assert rev["i2t_top5"] == 0.0  # disjoint heads among 30 captions
    # t2i ranks the 7 images per caption: the reversed top-5 overlaps in 3 of 5 items.
    assert rev["t2i_top5"] == pytest.approx(3 / 5)


def test_bridge_scores_are_co_assignment_probabilities():
    fs, _ = clustered_features(n_img=20, caps=1, seed=2)
    for geo in ("euclidean", "lorentz", "poincare"):
        q = lift_features(fs.image, geo)
        t = lift_features(fs.text, geo)
        r = bridge_scores(q, t, q, t, geometry=geo, tau=1e-3)
        # A sharp assignment pairs each image with its own caption only.
        assert torch.allclose(r, torch.eye(20, dtype=r.dtype), atol=1e-6)
        r1 = bridge_scores(q, t, q, t, geometry=geo, tau=0.5, chunk=3)
        assert bool((r1 > 0).all()) and bool((r1 <= 1).all())


def test_data_fidelity_identical_sets_give_one():
    fs, _ = clustered_features(n_img=40, caps=2, seed=4)
    test, _ = clustered_features(n_img=12, caps=2, seed=5)
    res = data_fidelity(fs, fs, test, k=5)
    assert set(res.per_item) == {"euclidean", "lorentz", "poincare"}
    for geo in res.per_item.values():
        assert geo["spearman"] == pytest.approx(1.0) and geo["kendall"] == pytest.approx(1.0)
        assert geo["top5"] == 1.0
    img, txt = fs.pairs()
    sub = data_fidelity((img[:6], txt[:6]), fs, test, k=5, geometries=("lorentz",))
    assert -1.0 <= sub.mean["spearman"] < 0.999


def test_trained_fidelity_same_training_set_is_one():
    fs, _ = clustered_features(n_img=30, caps=1, d_img=12, d_txt=10, seed=6)
    test, _ = clustered_features(n_img=10, caps=2, d_img=12, d_txt=10, seed=7)
    img, txt = fs.pairs()
    res = trained_fidelity((img, txt), (img, txt), test, TINY, k=3)
    assert set(res.per_item) == {"seed0", "seed1"}
    assert res.mean["spearman"] == pytest.approx(1.0)
    assert res.mean["kendall"] == pytest.approx(1.0) and res.mean["top3"] == 1.0
    other = trained_fidelity((img[:8], txt[:8]), (img, txt), test, TINY, k=3, kendall=False)
    assert "kendall" not in other.mean and other.mean["spearman"] < 0.999
    with pytest.raises(ValueError, match="one student per protocol seed"):
        trained_fidelity((img, txt), None, test, TINY, reference_students=[])


def test_feature_width_mismatch_is_named():
    fs = FeatureSet(torch.randn(5, 4), torch.randn(5, 3), torch.arange(5))
    test = FeatureSet(torch.randn(5, 6), torch.randn(5, 3), torch.arange(5))
    with pytest.raises(ValueError, match="widths"):
        data_fidelity(fs, fs, test, geometries=("euclidean",))
