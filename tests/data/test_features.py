"""extract_features and the feature cache: hits, invalidation, refusal of damaged files."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hypervldd.data import (
    FeatureCacheError,
    PairedFeatures,
    extract_features,
    load_caption_table,
    load_feature_file,
    save_feature_file,
)
from hypervldd.data._io import atomic_path

from ._helpers import HashTextEncoder, MeanColourEncoder, make_png, needs_emoji


def _extract(ds, cache, ienc=None, tenc=None, split="train", **kw):
    return extract_features(
        ds,
        split,
        ienc or MeanColourEncoder(),
        tenc or HashTextEncoder(),
        cache,
        **{"progress": False, "batch_size": 2, "text_batch_size": 3, **kw},
    )


def test_extract_shapes_pairing_and_batching(tiny_dataset, tmp_path):
    ienc, tenc = MeanColourEncoder(), HashTextEncoder()
    f = _extract(tiny_dataset, tmp_path, ienc, tenc)
    assert isinstance(f, PairedFeatures)
    assert f.image_features.shape == (3, 8) and f.text_features.shape == (6, 6)
    assert f.caption_to_image.tolist() == [0, 0, 1, 1, 2, 2]
    assert f.image_ids == ["img/red.png", "img/green.png", "img/blue.png"]
    assert ienc.calls == 2 and tenc.calls == 2  # 3 images in batches of 2, 6 texts of 3
    # Batched features equal one-by-one encoding.
    sp = tiny_dataset.split("train")
    solo = torch.cat([ienc.encode_images([sp.load_image(i)]) for i in range(3)])
    assert torch.allclose(f.image_features, solo, atol=1e-6)
    solo_txt = torch.cat([tenc.encode_texts([c]) for c in f.captions])
    assert torch.allclose(f.text_features, solo_txt, atol=1e-6)  # batched by length, put back
    assert [x.tolist() for x in f.image_to_captions()] == [[0, 1], [2, 3], [4, 5]]
    assert f.metadata["image_dim"] == 8 and f.metadata["text_encoder"] == "hash-text"


def test_duplicate_captions_are_encoded_once(tmp_path):
    for k, name in enumerate("abc"):
        make_png(tmp_path / f"{name}.png", (40 * k, 10, 10))
    rows = ["image,caption"] + [f"{n}.png,the same words" for n in "abc"] + ["a.png,other"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    ds = load_caption_table(tmp_path / "t.csv")
    tenc = HashTextEncoder()
    f = _extract(ds, None, tenc=tenc, use_cache=False)
    assert tenc.calls == 1  # two unique captions fit one batch of 3
    assert torch.equal(f.text_features[0], f.text_features[2])
    assert not torch.equal(f.text_features[0], f.text_features[1])


def test_second_call_is_a_cache_hit_without_encoding(tiny_dataset, tmp_path):
    first = _extract(tiny_dataset, tmp_path)
    assert not first.metadata["image_cache_hit"] and not first.metadata["text_cache_hit"]
    ienc, tenc = MeanColourEncoder(), HashTextEncoder()
    second = _extract(tiny_dataset, tmp_path, ienc, tenc)
    assert second.metadata["image_cache_hit"] and second.metadata["text_cache_hit"]
    assert ienc.calls == 0 and tenc.calls == 0
    assert torch.equal(first.image_features, second.image_features)
    assert torch.equal(first.text_features, second.text_features)
    third = _extract(tiny_dataset, tmp_path, ienc, tenc, recompute=True)
    assert not third.metadata["image_cache_hit"] and ienc.calls > 0
    leftovers = [p for p in Path(tmp_path).rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def _hits(f: PairedFeatures) -> tuple[bool, bool]:
    return f.metadata["image_cache_hit"], f.metadata["text_cache_hit"]


def test_cache_invalidation_by_data_encoder_and_preprocessing(tiny_table, tmp_path):
    cache = tmp_path / "cache"
    ds = load_caption_table(tiny_table)
    base = _extract(ds, cache)
    assert _hits(_extract(ds, cache)) == (True, True)
    # A rewritten image file: the image side is recomputed, the text side reused.
    png = tiny_table.parent / "img" / "green.png"
    make_png(png, (0, 0, 0))
    st = os.stat(png)
    os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ds2 = load_caption_table(tiny_table)
    f = _extract(ds2, cache)
    assert _hits(f) == (False, True)
    assert not torch.equal(f.image_features[1], base.image_features[1])
    # A changed caption: only the text side is recomputed.
    tiny_table.write_text(tiny_table.read_text().replace("a red square", "a crimson square"))
    ds3 = load_caption_table(tiny_table)
    assert _hits(_extract(ds3, cache)) == (True, False)
    # Other weights, other preprocessing, other normalisation: recomputed.
    assert _hits(_extract(ds3, cache, ienc=MeanColourEncoder(seed=5)))[0] is False
    assert _hits(_extract(ds3, cache, ienc=MeanColourEncoder(size=12)))[0] is False
    tenc = HashTextEncoder()
    tenc.normalize = False
    assert _hits(_extract(ds3, cache, tenc=tenc))[1] is False
    # And the original inputs still hit their own (untouched) files.
    assert _hits(_extract(ds3, cache)) == (True, True)


def _cache_files(cache: Path, side: str) -> list[Path]:
    return sorted(cache.rglob(f"{side}-*.safetensors"))


def test_truncated_cache_file_is_refused(tiny_dataset, tmp_path):
    _extract(tiny_dataset, tmp_path)
    (path,) = _cache_files(tmp_path, "image")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20])
    with pytest.raises(FeatureCacheError, match="refused: not a readable safetensors file"):
        _extract(tiny_dataset, tmp_path)
    path.write_bytes(data[:5])
    with pytest.raises(FeatureCacheError, match=r"refused: .*Delete it to recompute"):
        _extract(tiny_dataset, tmp_path)


def test_flipped_bytes_in_features_are_refused(tiny_dataset, tmp_path):
    _extract(tiny_dataset, tmp_path)
    (path,) = _cache_files(tmp_path, "text")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # inside the last float of the tensor body
    path.write_bytes(bytes(data))
    with pytest.raises(FeatureCacheError, match="checksum mismatch"):
        _extract(tiny_dataset, tmp_path)


def test_foreign_and_misplaced_files_are_refused(tiny_dataset, tmp_path):
    _extract(tiny_dataset, tmp_path)
    (path,) = _cache_files(tmp_path, "image")
    # A valid safetensors file from elsewhere.
    save_file({"weight": torch.zeros(3, 8)}, str(path), metadata={"framework": "x"})
    with pytest.raises(FeatureCacheError, match="not a hypervldd.features file"):
        _extract(tiny_dataset, tmp_path)
    # Garbage bytes.
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(FeatureCacheError, match="not a readable safetensors file"):
        _extract(tiny_dataset, tmp_path)
    # A genuine feature file written for other inputs, copied under this name.
    save_feature_file(path, torch.zeros(3, 8), key="0" * 64, info={})
    with pytest.raises(FeatureCacheError, match="written for other data, encoder or preproc"):
        _extract(tiny_dataset, tmp_path)


def test_feature_file_shape_dtype_and_finiteness_checks(tmp_path):
    path = tmp_path / "f.safetensors"
    save_feature_file(path, torch.ones(4, 3), key="k", info={"note": "x"})
    feats, meta = load_feature_file(path, key="k", rows=4, dim=3)
    assert torch.equal(feats, torch.ones(4, 3)) and meta["note"] == "x"
    with pytest.raises(FeatureCacheError, match=r"shape \(4, 3\), expected \(5, 3\)"):
        load_feature_file(path, key="k", rows=5, dim=3)
    save_feature_file(path, torch.tensor([[1.0, float("nan")]]), key="k", info={})
    with pytest.raises(FeatureCacheError, match="NaN or inf"):
        load_feature_file(path, key="k", rows=1, dim=2)
    with pytest.raises(ValueError, match=r"features must be 2-D \(N, D\)"):
        save_feature_file(path, torch.ones(3), key="k", info={})


def test_atomic_write_leaves_nothing_behind_on_error(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half-writ")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_extract_features_argument_errors(tiny_dataset, tmp_path):
    with pytest.raises(TypeError, match="image_encoder must be an ImageEncoder"):
        extract_features(tiny_dataset, "train", HashTextEncoder(), HashTextEncoder(), tmp_path)
    with pytest.raises(TypeError, match="text_encoder must be a TextEncoder"):
        extract_features(tiny_dataset, "train", MeanColourEncoder(), MeanColourEncoder(), tmp_path)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        _extract(tiny_dataset, tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="split must be one of"):
        _extract(tiny_dataset, tmp_path, split="dev")


def test_paired_features_validation(tiny_dataset, tmp_path):
    f = _extract(tiny_dataset, tmp_path)
    bad = copy.copy(f)
    bad.caption_to_image = f.caption_to_image[:-1]
    with pytest.raises(ValueError, match=r"caption_to_image must be an int64 tensor of shape"):
        PairedFeatures(**vars(bad))
    with pytest.raises(ValueError, match=r"values must lie in \[0, 3\)"):
        PairedFeatures(**{**vars(f), "caption_to_image": f.caption_to_image + 1})


@needs_emoji
def test_real_encoders_on_emoji_end_to_end(emoji_small, efficientnet, minilm, tmp_path):
    ds, _ = emoji_small
    f = extract_features(ds, "train", efficientnet, minilm, tmp_path, progress=False)
    sp = ds.split("train")
    assert f.image_features.shape == (sp.num_images, 1280)
    assert f.text_features.shape == (sp.num_captions, 384)
    assert torch.allclose(f.text_features.norm(dim=1), torch.ones(sp.num_captions), atol=1e-5)
    assert f.image_meta["group"] == sp.image_meta["group"]
    # Each image's own name caption is the caption nearest to its other captions.
    owner = f.caption_to_image
    sims = f.text_features @ f.text_features.T
    first = torch.tensor([int(c[0]) for c in f.image_to_captions()])
    best = sims[first].clone()
    best[torch.arange(len(first)), first] = -2.0
    assert (owner[best.argmax(dim=1)] == torch.arange(len(first))).float().mean() > 0.9
    again = extract_features(ds, "train", efficientnet, minilm, tmp_path, progress=False)
    assert again.metadata["image_cache_hit"] and again.metadata["text_cache_hit"]
    assert torch.equal(again.image_features, f.image_features)
