"""Cross-architecture transfer: variants, the mean excluding the source, other encoders."""

from types import SimpleNamespace

import pytest
import torch

from hypervldd.eval import EvalProtocol, StudentConfig, evaluate
from hypervldd.eval.transfer import TransferTarget, pairs_in_features, student_variants, transfer
from tests._synth import clustered_features

TINY = EvalProtocol(
    student=StudentConfig(width=8), epochs=2, seeds=(0,), lr_decay_epochs=(), batch_size=32
)


def _res(mean):
    return SimpleNamespace(mean={"mean": mean, "TR@1": mean / 2}, std={"mean": 0.0, "TR@1": 0.0})


def test_student_variants_names_and_changes():
    src = StudentConfig(width=8)
    v = student_variants(src, widths=(4, 8), heads=("mlp",))
    names = list(v)
    assert names[0] == "lorentz-linear-w8" and v[names[0]].student == src
    assert set(names) == {
        "lorentz-linear-w8",
        "euclidean-linear-w8",
        "poincare-linear-w8",
        "lorentz-linear-w4",
        "lorentz-mlp-w8",
    }
    assert v["poincare-linear-w8"].student.width == 8
    assert v["lorentz-linear-w4"].student.geometry == "lorentz"


def test_mean_excludes_the_source():
    targets = {n: StudentConfig() for n in ("src", "a", "b")}
    results = {"src": _res(90.0), "a": _res(10.0), "b": _res(30.0)}
    out = transfer(None, None, TINY, targets, source="src", results=results)
    assert out.mean_excluding_source == {"mean": 20.0, "TR@1": 10.0}
    assert out.per_target["src"]["mean"] == 90.0 and out.source == "src"
    out = transfer(None, None, TINY, targets, source="a", results=results)
    assert out.mean_excluding_source["mean"] == 60.0


def test_transfer_runs_students_and_matches_evaluate():
    fs, _ = clustered_features(n_img=30, caps=1, d_img=12, d_txt=10, seed=1)
    test, _ = clustered_features(n_img=10, caps=2, d_img=12, d_txt=10, seed=2)
    pairs = fs.pairs()
    targets = student_variants(TINY.student, geometries=("euclidean", "poincare"))
    out = transfer(pairs, test, TINY, targets, source="lorentz-linear-w8")
    assert set(out.per_target) == {"lorentz-linear-w8", "euclidean-linear-w8", "poincare-linear-w8"}
    ref = evaluate(pairs, test, TINY.replace(student=StudentConfig(width=8, geometry="poincare")))
    assert out.per_target["poincare-linear-w8"] == ref.mean
    expect = 0.5 * (
        out.per_target["euclidean-linear-w8"]["mean"] + out.per_target["poincare-linear-w8"]["mean"]
    )
    assert out.mean_excluding_source["mean"] == pytest.approx(expect)


def test_other_encoder_features_for_a_coreset():
    fs, _ = clustered_features(n_img=10, caps=2, d_img=6, d_txt=5, seed=3)
    other, _ = clustered_features(n_img=10, caps=2, d_img=9, d_txt=7, seed=4)
    idx = torch.tensor([0, 5, 19])
    img, txt = pairs_in_features(idx, other)
    assert torch.equal(img, other.image[other.txt2img[idx]]) and torch.equal(txt, other.text[idx])
    with pytest.raises(ValueError, match="source_indices must lie"):
        pairs_in_features(torch.tensor([20]), other)
    test_other, _ = clustered_features(n_img=6, caps=2, d_img=9, d_txt=7, seed=5)
    targets = {
        "src": TransferTarget(TINY.student),
        "other-encoder": TransferTarget(TINY.student, (img, txt), test_other),
    }
    test, _ = clustered_features(n_img=6, caps=2, d_img=6, d_txt=5, seed=6)
    out = transfer((fs.pairs()[0][idx], fs.text[idx]), test, TINY, targets, source="src")
    assert out.mean_excluding_source == out.per_target["other-encoder"]


def test_bad_source_and_targets():
    with pytest.raises(ValueError, match="source must be one of"):
        transfer(None, None, TINY, {"a": StudentConfig(), "b": StudentConfig()}, source="c")
    with pytest.raises(ValueError, match="besides the source"):
        transfer(None, None, TINY, {"a": StudentConfig()}, source="a")
    with pytest.raises(TypeError, match="TransferTarget"):
        transfer(None, None, TINY, {"a": StudentConfig(), "b": 3}, source="a")
