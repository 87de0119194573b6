"""The built-in offline datasets: emoji (rendered Noto Color Emoji) and Fashion-MNIST."""

from __future__ import annotations

import gzip
from collections import defaultdict

import numpy as np
import pytest

from hypervldd.data import load_dataset, load_emoji, load_fashion_mnist, parse_emoji_test
from hypervldd.data.emoji import emoji_captions, emoji_splits
from hypervldd.data.fashion_mnist import FASHION_MNIST_CLASSES, read_idx

from ._helpers import needs_emoji, needs_fashion


# -- emoji ----------------------------------------------------------------------------------
@needs_emoji
def test_emoji_test_txt_has_3655_fully_qualified_in_9_groups():
    recs = parse_emoji_test()
    assert len(recs) == 3655
    groups = list(dict.fromkeys(r.group for r in recs))
    assert groups[0] == "Smileys & Emotion" and groups[-1] == "Flags" and len(groups) == 9
    assert recs[0].name == "grinning face" and recs[0].char == "\U0001f600"
    assert len({r.key for r in recs}) == 3655


@needs_emoji
def test_skin_tone_variants_are_parsed_as_children_of_their_base():
    by_name = {r.name: r for r in parse_emoji_test()}
    wave = by_name["waving hand: medium skin tone"]
    assert (wave.base_name, wave.skin_tone) == ("waving hand", "medium skin tone")
    assert wave.codepoints == (0x1F44B, 0x1F3FD)
    two = by_name["handshake: light skin tone, dark skin tone"]
    assert (two.base_name, two.skin_tone) == ("handshake", "light skin tone, dark skin tone")
    hair = by_name["man: medium skin tone, red hair"]
    assert (hair.base_name, hair.skin_tone) == ("man: red hair", "medium skin tone")
    flag = by_name["flag: Japan"]
    assert (flag.base_name, flag.skin_tone) == ("flag: Japan", None)
    kiss = by_name["kiss: person, person, light skin tone, dark skin tone"]
    assert kiss.base_name == "kiss"
    # Every variant hangs under an emoji of the file: 1,870 bases, 1,785 variants.
    variants = [r for r in by_name.values() if r.skin_tone is not None]
    assert all(r.base_name in by_name for r in variants)
    assert (len(by_name) - len(variants), len(variants)) == (1870, 1785)


@needs_emoji
def test_captions_use_name_subgroup_and_group():
    by_name = {r.name: r for r in parse_emoji_test()}
    caps = emoji_captions(by_name["grinning face with big eyes"])
    assert len(caps) == 5 and len(set(caps)) == 5
    assert caps[0] == "grinning face with big eyes"
    assert any("face smiling" in c for c in caps)  # subgroup face-smiling
    assert any("smileys and emotion" in c for c in caps)  # group
    tone = emoji_captions(by_name["waving hand: dark skin tone"])
    assert tone[0] == "waving hand with dark skin tone"
    assert emoji_captions(by_name["flag: Japan"])[0] == "flag of Japan"


@needs_emoji
def test_all_skin_tone_variants_of_an_emoji_share_a_split():
    recs = parse_emoji_test()
    splits = emoji_splits(recs)
    seen: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for r, s in zip(recs, splits, strict=True):
        seen[(r.group, r.subgroup, r.base_name)].add(s)
    assert all(len(v) == 1 for v in seen.values())
    assert sum(r.skin_tone is not None for r in recs) > 1000  # variants really exist
    fractions = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert 0.72 < fractions["train"] < 0.88 and 0.05 < fractions["test"] < 0.15


@needs_emoji
def test_small_emoji_set_renders_once_and_is_read_back(emoji_small):
    ds, cache = emoji_small
    assert ds.num_images == 12 and ds.num_captions == 60
    assert ds.metadata["multi_glyph"] == []  # every sequence drew as one glyph
    assert len(ds.metadata["groups"]) >= 5  # the evenly spaced subset spans the groups
    img = ds.load_image(0)
    assert img.size == (128, 128) and img.mode == "RGB"
    arr = np.asarray(img)
    assert (arr[0, 0] == 255).all() and arr.std() > 20  # white margin, a drawn glyph inside
    again = load_emoji(limit=12, cache_dir=cache, progress=False)
    assert again.metadata["rendered_now"] == 0
    assert again.image_digests == ds.image_digests
    assert np.array_equal(np.asarray(again.load_image(5)), np.asarray(ds.load_image(5)))
    # Hierarchy metadata: group > subgroup > base emoji > variant names.
    meta = ds.image_meta
    i = 3
    variants = ds.metadata["hierarchy"][meta["group"][i]][meta["subgroup"][i]][meta["base_name"][i]]
    assert meta["name"][i] in variants


@needs_emoji
def test_changed_cached_emoji_image_is_refused(tmp_path):
    ds = load_emoji(limit=2, cache_dir=tmp_path, progress=False)
    path = ds.image_paths[1]
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(OSError, match="changed on disk"):
        ds.load_image(1)


@needs_emoji
def test_emoji_missing_sources_name_the_debian_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="'unicode-data'"):
        load_emoji(limit=2, cache_dir=tmp_path, emoji_test_path=tmp_path / "no" / "emoji-test.txt")
    with pytest.raises(FileNotFoundError, match="'fonts-noto-color-emoji'"):
        load_emoji(limit=2, cache_dir=tmp_path, font_path=tmp_path / "NotoColorEmoji.ttf")
    with pytest.raises(ValueError, match="groups must be among"):
        load_emoji(limit=2, cache_dir=tmp_path, groups=["Dinosaurs"])
    with pytest.raises(ValueError, match="limit must be a positive int"):
        load_emoji(limit=0, cache_dir=tmp_path)


# -- Fashion-MNIST --------------------------------------------------------------------------
@needs_fashion
def test_fashion_mnist_subset_has_class_captions_and_three_splits():
    ds = load_dataset("fashion-mnist", limit=20)
    assert ds.summary() == {
        "name": "fashion-mnist",
        "train": {"images": 20, "captions": 60},
        "val": {"images": 20, "captions": 60},
        "test": {"images": 20, "captions": 60},
    }
    assert ds.metadata["class_level_proxy"] is True
    for cap, owner in zip(ds.captions, ds.caption_to_image, strict=True):
        assert ds.image_meta["class_name"][owner] in cap
    img = ds.load_image(0)
    assert img.size == (28, 28) and img.mode == "RGB"
    # The first official t10k label is class 9 (ankle boot).
    assert ds.split("test").image_meta["class_name"][0] == "ankle boot"


@needs_fashion
def test_fashion_mnist_full_counts_and_label_balance():
    ds = load_fashion_mnist(captions_per_image=1)
    assert ds.num_images == 70_000 and ds.num_captions == 70_000
    test = ds.split("test")
    assert test.num_images == 10_000
    assert np.bincount(test.image_meta["label"]).tolist() == [1000] * 10
    assert ds.split("train").num_images + ds.split("val").num_images == 60_000
    assert set(ds.metadata["classes"]) == set(FASHION_MNIST_CLASSES)


def test_fashion_mnist_missing_files_name_the_debian_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="'dataset-fashion-mnist'"):
        load_fashion_mnist(root=tmp_path / "missing")
    with pytest.raises(ValueError, match="name must be one of"):
        load_dataset("mnist")


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
    good = tmp_path / "x-idx1-ubyte.gz"
    with gzip.open(good, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([7, 8, 9]))
    assert read_idx(good).tolist() == [7, 8, 9]
    short = tmp_path / "short.gz"
    with gzip.open(short, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + bytes([7, 8, 9]))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(short)
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match="bad magic"):
        read_idx(foreign)


@needs_emoji
def test_a_truncated_cached_emoji_png_is_rendered_again(tmp_path):
    ds = load_emoji(limit=3, cache_dir=tmp_path, progress=False)
    good = [p.read_bytes() for p in ds.image_paths]
    ds.image_paths[1].write_bytes(good[1][: len(good[1]) // 2])
    ds.image_paths[2].write_bytes(b"")
    again = load_emoji(limit=3, cache_dir=tmp_path, progress=False)
    assert again.metadata["rendered_now"] == 2 and again.metadata["rerendered_bad_files"] == 2
    assert [p.read_bytes() for p in again.image_paths] == good
    assert again.image_digests == ds.image_digests
    assert np.array_equal(np.asarray(again.load_image(1)), np.asarray(ds.load_image(1)))
