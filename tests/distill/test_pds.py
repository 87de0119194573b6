"""PDS: known answers for filtering, clustering, assignment, prototypes and images."""

from __future__ import annotations

import pytest
import torch

from hypervldd.distill import SyntheticSet, available_methods, get_distiller
from hypervldd.distill.decoders import (
    FEATURE_PROTOTYPE,
    CallableDecoder,
    NearestRealImageDecoder,
    UnCLIPDecoder,
)
from hypervldd.distill.pds import (
    _brute_force_assignment,
    drop_lowest,
    linear_assignment,
    max_cooccurrence_assignment,
    minibatch_kmeans,
)
from hypervldd.eval import FeatureSet

EXACT = {"normalize": False, "drop_fraction": 0.0, "n_init": 3, "max_iter": 20}


def _separated(k=4, per=5, d=6, noise=0.05, seed=0):
    """k far-apart clusters; pair p's image and text both belong to cluster p % k."""
    g = torch.Generator().manual_seed(seed)
    ci = 20.0 * torch.eye(d)[:k]
    ct = -20.0 * torch.eye(d)[torch.arange(k).flip(0)]
    label = torch.arange(k * per) % k
    img = ci[label] + noise * torch.randn(k * per, d, generator=g)
    txt = ct[label] + noise * torch.randn(k * per, d, generator=g)
    return FeatureSet(img, txt, torch.arange(k * per)), label


def _match_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Permutation p with a[p[i]] nearest b[i]."""
    return torch.cdist(b.double(), a.double()).argmin(1)


def test_registered():
    assert "pds" in available_methods()


def test_well_separated_clusters_give_the_exact_cluster_means():
    fs, label = _separated()
    syn = get_distiller("pds", EXACT).fit(fs, 4, seed=0)
    assert syn.num_pairs == 4 and syn.image_kind == "features"
    want_i = torch.stack([fs.image[label == c].mean(0) for c in range(4)])
    want_t = torch.stack([fs.text[label == c].mean(0) for c in range(4)])
    p = _match_rows(syn.image, want_i)
    assert sorted(p.tolist()) == [0, 1, 2, 3]
    torch.testing.assert_close(syn.image[p], want_i.float())
    # Image and text prototypes stay paired: the text of each pair is its cluster's mean.
    torch.testing.assert_close(syn.text[p], want_t.float())
    info = syn.history[0]["pds"]
    assert info["pairless"] == 0 and info["cooccurrence_matched"] == 20
    assert syn.config["resolved"]["image_source"] == FEATURE_PROTOTYPE


def test_kmeans_recovers_separated_clusters_and_is_seeded():
    fs, label = _separated(k=5, per=8, d=7)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    c1, l1 = minibatch_kmeans(fs.image, 5, g1, n_init=4, batch_size=16, max_iter=30)
    c2, l2 = minibatch_kmeans(fs.image, 5, g2, n_init=4, batch_size=16, max_iter=30)
    assert torch.equal(c1, c2) and torch.equal(l1, l2)
    # The partition equals the true one up to renaming.
    pairs = {(int(a), int(b)) for a, b in zip(l1, label, strict=True)}
    assert len(pairs) == 5
    with pytest.raises(ValueError, match="distinct"):
        minibatch_kmeans(torch.ones(10, 3), 2, torch.Generator())


@pytest.mark.parametrize("use_scipy", [False, True])
def test_assignment_matches_brute_force(use_scipy):
    if use_scipy:
        pytest.importorskip("scipy")
    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 3, 5, 6):
        for _ in range(5):
            s = torch.randint(0, 6, (n, n), generator=g)  # many ties
            rows, cols = linear_assignment(s, use_scipy=use_scipy)
            assert sorted(cols.tolist()) == list(range(n))
            assert float(s[rows, cols].sum()) == _brute_force_assignment(s)
            rows, cols = linear_assignment(s, maximize=False, use_scipy=use_scipy)
            assert float(s[rows, cols].sum()) == -_brute_force_assignment(-s)


def test_own_hungarian_equals_scipy_on_a_larger_case():
    pytest.importorskip("scipy")
    s = torch.rand(40, 40, generator=torch.Generator().manual_seed(1))
    r1, c1 = linear_assignment(s, use_scipy=False)
    r2, c2 = linear_assignment(s, use_scipy=True)
    assert torch.equal(c1, c2)


def test_cooccurrence_matrix_known_answer():
    li = torch.tensor([0, 0, 0, 1, 1, 2])
    lt = torch.tensor([1, 1, 0, 2, 2, 2])
    c, rows, cols = max_cooccurrence_assignment(li, lt, 3)
    assert c.tolist() == [[1, 2, 0], [0, 0, 2], [0, 0, 1]]
    # Best: 0->1 (2), 1->2 (2), 2->0 (0): total 4 (2->2 would leave row 1 with 0).
    assert cols.tolist() == [1, 2, 0]


def test_drop_removes_exactly_the_lowest_cosine_pairs():
    score = torch.tensor([0.5, -0.2, 0.9, 0.1, 0.1, 0.7, -0.9, 0.3, 0.0, 0.8])
    kept = drop_lowest(score, 0.2)  # floor(2) lowest: indices 6 (-0.9) and 1 (-0.2)
    assert kept.tolist() == [0, 2, 3, 4, 5, 7, 8, 9]
    kept = drop_lowest(score, 0.45)  # 4 lowest: 6, 1, 8, then the tie 3/4 -> 3 first
    assert kept.tolist() == [0, 2, 4, 5, 7, 9]
    assert drop_lowest(score, 0.0).tolist() == list(range(10))

    # Through PDS: with K equal to the kept pool, every kept pair is its own cluster,
    # so the prototypes are exactly the 8 highest-cosine pairs.
    g = torch.Generator().manual_seed(5)
    img = torch.randn(10, 4, generator=g)
    txt = img + torch.linspace(0.0, 3.0, 10)[:, None] * torch.randn(10, 4, generator=g)
    cos = torch.nn.functional.cosine_similarity(img, txt, dim=-1)
    fs = FeatureSet(img, txt, torch.arange(10))
    cfg = {**EXACT, "drop_fraction": 0.2, "alignment": "joint"}
    syn = get_distiller("pds", cfg).fit(fs, 8, seed=0)
    expect = drop_lowest(cos, 0.2)
    got = _match_rows(txt, syn.text)
    assert sorted(got.tolist()) == expect.tolist()
    torch.testing.assert_close(syn.text, txt[got])
    assert syn.history[0]["pds"]["dropped_pairs"] == 2
    # Ordered by decreasing image-text cosine.
    pc = syn.history[0]["pds"]["prototype_cosine"]
    assert pc == sorted(pc, reverse=True)


def test_budget_larger_than_the_pool_errors():
    fs, _ = _separated()  # 20 pairs, 20% dropped: pool 16
    with pytest.raises(ValueError, match="budget=17"):
        get_distiller("pds").fit(fs, 17)
    get_distiller("pds", n_init=1, max_iter=2).fit(fs, 16)  # the pool itself is fine


def _pairless_case():
    # Images: pairs 0-5 near A, pair 6 near B. Texts: pairs 0-4 and 6 near P, pair 5
    # near Q. Co-occurrence [[5, 1], [1, 0]]: the optimum 5 + 0 matches I_B with T_Q,
    # which share no pair.
    g = torch.Generator().manual_seed(0)
    a, b = torch.tensor([10.0, 0, 0]), torch.tensor([0, 10.0, 0])
    p, q = torch.tensor([0, 0, 10.0]), torch.tensor([10.0, 10.0, 0])
    img = torch.stack([a] * 6 + [b]) + 0.01 * torch.randn(7, 3, generator=g)
    txt = torch.stack([p] * 5 + [q, p]) + 0.01 * torch.randn(7, 3, generator=g)
    return FeatureSet(img, txt, torch.arange(7))


def test_pairless_clusters_take_cluster_means_or_are_dropped():
    fs = _pairless_case()
    syn = get_distiller("pds", {**EXACT, "pairless": "centroids"}).fit(fs, 2, seed=0)
    assert syn.num_pairs == 2 and syn.history[0]["pds"]["pairless"] == 1
    shared = (fs.image[:5].mean(0), fs.text[:5].mean(0))
    pairless = (fs.image[6], fs.text[5])  # the two clusters' own means (one member each)
    for im, tx in (shared, pairless):
        k = int(torch.cdist(im[None], syn.image).argmin())
        torch.testing.assert_close(syn.image[k], im)
        torch.testing.assert_close(syn.text[k], tx)
    auto = get_distiller("pds", EXACT).fit(fs, 2, seed=0)  # budget < 300: cluster means
    assert torch.equal(auto.image, syn.image) and auto.config["resolved"]["pairless"] == "centroids"
    dropped = get_distiller("pds", {**EXACT, "pairless": "drop"}).fit(fs, 2, seed=0)
    assert dropped.num_pairs == 1
    torch.testing.assert_close(dropped.image[0], shared[0])


def test_seeded_runs_are_identical_and_text_keeps_its_nearest_caption(tmp_path):
    fs, _ = _separated(k=3, per=6)
    a = get_distiller("pds", n_init=2, max_iter=5).fit(fs, 3, seed=4)
    b = get_distiller("pds", n_init=2, max_iter=5).fit(fs, 3, seed=4)
    assert torch.equal(a.image, b.image) and torch.equal(a.text, b.text)
    assert a.source_indices is not None
    near = (
        torch.nn.functional.normalize(fs.text, dim=-1)
        @ torch.nn.functional.normalize(a.text, dim=-1).T
    )
    assert a.source_indices.tolist() == near.argmax(0).tolist()
    assert a.history[0]["pds"]["nearest_caption_pair"] == a.source_indices.tolist()
    path = a.save(tmp_path / "pds.safetensors")
    assert SyntheticSet.load(path).config["resolved"]["alignment"] == "joint"


def test_linear_alignment_for_encoders_of_different_widths():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(30, 4, generator=g)
    fs = FeatureSet(
        z @ torch.randn(4, 9, generator=g), z @ torch.randn(4, 5, generator=g), torch.arange(30)
    )
    syn = get_distiller("pds", n_init=2, max_iter=5).fit(fs, 3, seed=0)
    assert syn.image.shape == (3, 9) and syn.text.shape == (3, 5)
    assert syn.config["resolved"]["alignment"] == "linear"
    with pytest.raises(ValueError, match="joint"):
        get_distiller("pds", alignment="joint").fit(fs, 3)


def test_pixels_nearest_real_image_and_a_decoder(tmp_path):
    fs, label = _separated(k=3, per=4, d=5)
    pixels = torch.rand(12, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    pds = get_distiller("pds", {**EXACT, "image_output": "pixels"})
    syn = pds.fit(fs, 3, seed=0, real_images=pixels)
    assert syn.image_kind == "pixels" and syn.image.shape == (3, 3, 8, 8)
    near = syn.history[0]["pds"]["nearest_image"]
    assert torch.equal(syn.image, pixels[near])
    assert [int(label[i]) for i in near] != [int(label[near[0]])] * 3  # distinct clusters
    assert syn.config["resolved"]["image_source"] == NearestRealImageDecoder.name
    loaded = SyntheticSet.load(syn.save(tmp_path / "px.safetensors"))
    assert loaded.image_kind == "pixels" and torch.equal(loaded.image, syn.image)

    # A user decoder (here an unCLIP-shaped fake pipeline) gets the prototypes and the
    # nearest real captions as prompts.
    seen = {}

    class FakePipeline:
        def __call__(self, prompt, image_embeds, generator, **kw):
            from PIL import Image

            seen.setdefault("prompts", []).append(prompt)
            seen["kw"] = kw
            shade = int(255 * float(image_embeds.abs().sum() > 0))
            return type("Out", (), {"images": [Image.new("RGB", (5, 5), (shade, 0, 0))]})()

    captions = [f"caption {i}" for i in range(12)]
    dec = UnCLIPDecoder(FakePipeline(), steps=3, image_size=8)
    syn = pds.fit(fs, 3, seed=0, decoder=dec, captions=captions)
    assert syn.image.shape == (3, 3, 8, 8) and float(syn.image[:, 0].min()) == 1.0
    assert seen["prompts"] == [captions[i] for i in syn.source_indices.tolist()]
    assert seen["kw"]["num_inference_steps"] == 3 and seen["kw"]["noise_level"] == 10
    assert syn.config["resolved"]["decoder"]["name"] == "unclip"

    def bad(e, p, g):
        return torch.zeros(e.shape[0] + 1, 3, 4, 4)

    with pytest.raises(ValueError, match="returned"):
        pds.fit(fs, 3, decoder=CallableDecoder(bad))


def test_bad_arguments():
    fs, _ = _separated()
    with pytest.raises(ValueError, match="drop_fraction"):
        get_distiller("pds", drop_fraction=1.0)
    with pytest.raises(ValueError, match="pairless"):
        get_distiller("pds", pairless="keep")
    with pytest.raises(ValueError, match="image_output"):
        get_distiller("pds").fit(fs, 2, decoder=CallableDecoder(lambda e, p, g: e))
    with pytest.raises(ValueError, match="real_images"):
        get_distiller("pds", image_output="pixels").fit(fs, 2)
    with pytest.raises(ValueError, match="captions"):
        get_distiller("pds").fit(fs, 2, captions=["a"])
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        UnCLIPDecoder("/nonexistent/unclip")
