"""RAHA and full-dataset rank alignment as distillers on the engine."""

from __future__ import annotations

import torch

from hypervldd.distill import SyntheticSet, get_distiller
from hypervldd.eval.features import FeatureSet


def _clustered(n: int = 120, k: int = 6, seed: int = 0) -> FeatureSet:
    g = torch.Generator().manual_seed(seed)
    ci, ct = torch.randn(k, 24, generator=g), torch.randn(k, 16, generator=g)
    lab = torch.randint(0, k, (n,), generator=g)
    img = ci[lab] + 0.3 * torch.randn(n, 24, generator=g)
    txt = ct[lab] + 0.3 * torch.randn(n, 16, generator=g)
    return FeatureSet(img, txt, torch.arange(n))


SMALL_STUDENT = {"width": 16}


def _fit(method: str, extra: dict, seed: int = 0) -> SyntheticSet:
    cfg = {"student": SMALL_STUDENT, "engine": {"iterations": 12, "real_batch_size": 32}, **extra}
    return get_distiller(method, cfg).fit(_clustered(), 6, seed)


def test_raha_distiller_runs_moves_the_pairs_and_is_deterministic() -> None:
    a = _fit("raha", {})
    b = _fit("raha", {})
    assert a.method == "raha" and a.num_pairs == 6
    assert torch.isfinite(a.image).all() and torch.isfinite(a.text).all()
    assert torch.equal(a.image, b.image) and torch.equal(a.text, b.text)
    short = _fit("raha", {"engine": {"iterations": 1, "real_batch_size": 32}})
    assert not torch.allclose(a.image, short.image)  # later steps keep changing the pairs
    faithful = _fit("raha", {"loss": {"faithful": True}})
    assert not torch.allclose(a.image, faithful.image)  # the corrections change the result


def test_rank_align_distiller_runs_and_records_its_config(tmp_path) -> None:  # noqa: ANN001
    s = _fit("rank_align", {"experts": 1, "expert_epochs": 2, "anchors": 16})
    assert s.method == "rank_align" and s.num_pairs == 6
    assert torch.isfinite(s.image).all()
    assert s.config["experts"] == 1
    path = s.save(tmp_path / "ra.safetensors")
    back = SyntheticSet.load(path)
    assert torch.equal(back.image, s.image) and back.method == "rank_align"
    pw = _fit("rank_align", {"experts": 1, "expert_epochs": 2, "variant": "pairwise"})
    assert not torch.allclose(pw.image, s.image)
