import pytest
import torch

from hypervldd.distill import get_distiller
from hypervldd.eval import FeatureSet

from .._synth import clustered_features

RAW = {"feature_space": "raw"}


def _separated(k=8, per=15, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 20.0 * torch.randn(k, 12, generator=g)
    label = torch.arange(k).repeat_interleave(per)
    # Uneven spread: a dense blob per cluster plus one stretched axis.
    img = centres[label] + torch.randn(k * per, 12, generator=g)
    txt = img[:, :6] + 0.1 * torch.randn(k * per, 6, generator=g)
    return FeatureSet(img, txt, torch.arange(k * per)), label


def test_kcenter_covers_every_cluster():
    fs, label = _separated()
    for seed in range(3):
        s = get_distiller("kcenter", **RAW).fit(fs, 8, seed=seed)
        assert sorted(label[s.source_indices].tolist()) == list(range(8))
    # Random selection misses clusters for most seeds (a sanity check of the test itself).
    missed = sum(
        len(set(label[get_distiller("random").fit(fs, 8, seed=s).source_indices].tolist())) < 8
        for s in range(10)
    )
    assert missed >= 5


def _mean_gap(fs, s):
    from hypervldd.distill.base import prepare_real
    from hypervldd.distill.coreset import _raw_space

    z = _raw_space(prepare_real(fs))
    return float((z[s.source_indices].mean(0) - z.mean(0)).norm())


def test_herding_matches_the_mean_better_than_random():
    fs, _ = clustered_features(n_img=300, caps=1, seed=4)
    herd = _mean_gap(fs, get_distiller("herding", **RAW).fit(fs, 10))
    rand = [_mean_gap(fs, get_distiller("random").fit(fs, 10, seed=s)) for s in range(10)]
    assert herd < 0.5 * min(rand)


def test_distinct_images_and_determinism():
    fs, _ = clustered_features(n_img=40, caps=3, seed=5)
    for name, kw in [
        ("random", {}),
        ("herding", RAW),
        ("kcenter", RAW),
        ("forgetting", {"epochs": 3, "batch_size": 32}),
    ]:
        a = get_distiller(name, **kw).fit(fs, 12, seed=1)
        b = get_distiller(name, **kw).fit(fs, 12, seed=1)
        assert torch.equal(a.source_indices, b.source_indices), name
        imgs = fs.txt2img[a.source_indices]
        assert len(set(imgs.tolist())) == 12, name
        assert torch.equal(a.image, fs.image[imgs]) and torch.equal(
            a.text, fs.text[a.source_indices]
        )
        assert a.method == name and a.data_fingerprint == fs.fingerprint()
        assert a.storage_floats() == 12 * (fs.image.shape[1] + fs.text.shape[1])


def test_forgetting_ranks_unlearnable_pairs_first():
    fs, _ = clustered_features(n_img=80, caps=1, seed=6)
    txt = fs.text.clone()
    noisy = torch.arange(0, 80, 8)  # 10 pairs get captions of random other pairs
    txt[noisy] = txt[torch.randperm(80, generator=torch.Generator().manual_seed(0))[:10]]
    bad = FeatureSet(fs.image, txt, fs.txt2img)
    s = get_distiller("forgetting", epochs=10, batch_size=16).fit(bad, 10, seed=0)
    hits = len(set(s.source_indices.tolist()) & set(noisy.tolist()))
    assert hits >= 4  # chance level would be about 1.25


def test_warmup_feature_space_runs():
    fs, label = _separated()
    s = get_distiller("kcenter", warmup_epochs=2, batch_size=32).fit(fs, 8, seed=0)
    assert len(set(label[s.source_indices].tolist())) >= 6


def test_clear_errors():
    fs, _ = clustered_features(n_img=10, caps=2)
    with pytest.raises(ValueError, match="budget=11 is larger"):
        get_distiller("herding", **RAW).fit(fs, 11)
    assert get_distiller("random", distinct_images=False).fit(fs, 20).num_pairs == 20
    with pytest.raises(ValueError, match="budget"):
        get_distiller("random").fit(fs, 0)
    nan = fs.image.clone()
    nan[2, 1] = torch.nan
    with pytest.raises(ValueError, match="NaN"):
        get_distiller("random").fit((nan, fs.text, fs.txt2img), 3)
    with pytest.raises(ValueError, match="empty"):
        get_distiller("random").fit(
            (torch.zeros(0, 3), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)), 1
        )
    with pytest.raises(ValueError, match="unknown method"):
        get_distiller("nope")
    with pytest.raises(ValueError, match="feature_space"):
        get_distiller("herding", feature_space="pixels")
    with pytest.raises(ValueError, match="unknown key"):
        get_distiller("herding", {"feature_spcae": "raw"})


def test_feature_cache_objects_are_accepted_and_encoders_recorded():
    from types import SimpleNamespace

    fs, _ = clustered_features(n_img=12, caps=2)
    cache = SimpleNamespace(
        image_features=fs.image,
        text_features=fs.text,
        caption_to_image=fs.txt2img,
        metadata={"image_encoder": "img-enc", "text_encoder": "txt-enc"},
    )
    s = get_distiller("random").fit(cache, 4, seed=0)
    assert s.encoders == {"image": "img-enc", "text": "txt-enc"}
    assert s.data_fingerprint == fs.fingerprint()


def test_warmup_training_runs_once_per_data_config_and_seed(monkeypatch):
    # compare runs one method at several budgets: the warm-up student (the slow part) is
    # trained once and the selections equal those of a fresh computation, bit for bit.
    from hypervldd.distill import coreset

    real, _ = clustered_features(n_img=40, caps=2, d_img=12, d_txt=8, k=4)
    cfg = {"warmup_epochs": 2, "student": {"width": 8}}
    forget = {"epochs": 2, "student": {"width": 8}}
    calls = []
    train = coreset._train_on_real

    def counted(*args, **kwargs):
        calls.append(args[2])  # epochs
        return train(*args, **kwargs)

    monkeypatch.setattr(coreset, "_train_on_real", counted)

    def run(method, budget, seed=0, data=real):
        return get_distiller(method, forget if method == "forgetting" else cfg).fit(
            data, budget, seed=seed
        )

    fresh = {}
    for m in ("herding", "kcenter", "forgetting"):
        for b in (3, 6):
            coreset._ONCE.clear()
            fresh[m, b] = run(m, b).source_indices
    assert len(calls) == 6
    coreset._ONCE.clear()
    calls.clear()
    for m in ("herding", "kcenter", "forgetting"):
        for b in (3, 6):
            assert torch.equal(run(m, b).source_indices, fresh[m, b]), (m, b)
    # herding and k-center share one warm-up (same fields, same seed); forgetting its own
    assert len(calls) == 2
    assert torch.equal(fresh["herding", 6][:3], fresh["herding", 3])  # a greedy prefix
    # another seed or other data content trains again
    run("herding", 3, seed=1)
    other = FeatureSet(real.image + 1e-3, real.text, real.txt2img)
    run("herding", 3, data=other)
    assert len(calls) == 4
    assert len(coreset._ONCE) <= coreset._ONCE_SIZE
    # a result above the memory bound is computed every time, never kept
    monkeypatch.setattr(coreset, "_ONCE_BYTES", 16)
    coreset._ONCE.clear()
    assert torch.equal(run("herding", 3).source_indices, fresh["herding", 3])
    assert torch.equal(run("herding", 3).source_indices, fresh["herding", 3])
    assert len(calls) == 6 and not coreset._ONCE
