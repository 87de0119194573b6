import pytest
import torch

from hypervldd.eval import EvalProtocol, FeatureSet, StudentConfig, TrainPairs, evaluate

from .._synth import clustered_features

FAST = dict(epochs=15, batch_size=64, lr_decay_epochs=(10,), seeds=(0, 1))


@pytest.fixture(scope="module")
def data():
    train, _ = clustered_features(n_img=150, caps=1, seed=1)
    test, _ = clustered_features(n_img=60, caps=3, seed=2)
    return train, test


@pytest.mark.parametrize("geometry", ["lorentz", "poincare", "euclidean"])
def test_student_learns_in_every_geometry(data, geometry):
    train, test = data
    p = EvalProtocol(student=StudentConfig(geometry=geometry, width=32), **FAST)
    r = evaluate(train, test, p)
    # Chance mean recall is about (1 + 5 + 10) / 60 * 100 / 3 ~ 9; learned is far above.
    assert r.mean["mean"] > 40.0, r.summary()
    assert len(r.metrics_per_seed) == 2 and r.selection == "final-epoch"
    assert r.selected_epochs == [15, 15]
    assert set(r.mean) == {"TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "mean"}


def test_untrained_pairs_do_worse_than_matched_pairs(data):
    train, test = data
    p = EvalProtocol(student=StudentConfig(width=32), **FAST)
    img, txt = train.pairs()
    good = evaluate((img[:60], txt[:60]), test, p)
    shuffled = evaluate(
        (img[:60], txt[torch.randperm(60, generator=torch.Generator().manual_seed(0))]), test, p
    )
    assert good.mean["mean"] > shuffled.mean["mean"] + 15.0


def test_deterministic_per_seed(data):
    train, test = data
    p = EvalProtocol(student=StudentConfig(width=16), **{**FAST, "seeds": (5,)})
    a, b = evaluate(train, test, p), evaluate(train, test, p)
    assert a.metrics_per_seed == b.metrics_per_seed
    assert a.std["mean"] == 0.0


def test_selection_modes_are_labelled(data):
    train, test = data
    base = EvalProtocol(student=StudentConfig(width=16), **{**FAST, "seeds": (0,)})
    with pytest.raises(ValueError, match="val_features"):
        evaluate(train, test, base.replace(selection="validation"))
    with pytest.raises(ValueError, match="selection"):
        evaluate(train, test, base, val_features=test)
    r = evaluate(
        train, test, base.replace(selection="validation", eval_every=5), val_features=train
    )
    assert r.selection == "validation-selected" and r.selected_epochs[0] in (5, 10, 15)
    t = evaluate(train, test, base.replace(selection="test", eval_every=5))
    assert "TEST-SELECTED" in t.selection and "TEST-SELECTED" in t.summary()
    assert "TEST-SELECTED" in t.to_json()
    # Test selection can only help the test metric.
    f = evaluate(train, test, base)
    assert t.mean["mean"] >= f.mean["mean"] - 1e-9


def test_soft_targets_and_learned_rates_are_used(data):
    train, test = data
    img, txt = train.pairs()
    p = EvalProtocol(student=StudentConfig(width=16), **{**FAST, "seeds": (0,)})
    plain = evaluate(TrainPairs(img[:40], txt[:40]), test, p)
    # A uniform "similarity" erases all pairing information: recall must drop.
    uniform = TrainPairs(img[:40], txt[:40], similarity=torch.ones(40, 40))
    assert evaluate(uniform, test, p).mean["mean"] < plain.mean["mean"] - 10
    assert (
        evaluate(uniform, test, p.replace(use_soft_targets=False)).metrics_per_seed
        == plain.metrics_per_seed
    )
    # A learned rate is only used when the protocol asks for it.
    tiny = TrainPairs(img[:40], txt[:40], lr_image=1e-9, lr_text=1e-9)
    assert evaluate(tiny, test, p).metrics_per_seed == plain.metrics_per_seed
    assert (
        evaluate(tiny, test, p.replace(lr_source="learned")).mean["mean"] < plain.mean["mean"] - 10
    )


def test_bad_inputs(data):
    train, test = data
    img, txt = train.pairs()
    p = EvalProtocol(student=StudentConfig(width=8), **{**FAST, "seeds": (0,), "epochs": 1})
    with pytest.raises(ValueError, match="widths"):
        evaluate((img[:, :10], txt), test, p)
    with pytest.raises(ValueError, match="same number"):
        evaluate((img[:5], txt[:6]), test, p)
    bad = img[:5].clone()
    bad[0, 0] = torch.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate((bad, txt[:5]), test, p)
    with pytest.raises(ValueError, match="no caption"):
        FeatureSet(torch.rand(3, 2), torch.rand(2, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="empty"):
        FeatureSet(torch.rand(0, 2), torch.rand(0, 2), torch.zeros(0, dtype=torch.long))


def test_thread_count_is_set_for_the_call_and_restored(data, monkeypatch):
    import sys

    ev = sys.modules["hypervldd.eval.evaluate"]  # the package attribute is the function
    seen = []
    monkeypatch.setattr(ev, "_evaluate", lambda *a: seen.append(torch.get_num_threads()))
    train, test = data
    img, txt = train.pairs()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ev.evaluate((img, txt), test)  # small set: "auto" uses one thread
        ev.evaluate((img, txt), test, num_threads=None)
        ev.evaluate((img, txt), test, num_threads=3)
        assert seen == [1, 2, 3] and torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="num_threads"):
            ev.evaluate((img, txt), test, num_threads=0)
    finally:
        torch.set_num_threads(before)
