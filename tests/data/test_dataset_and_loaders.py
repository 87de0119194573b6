"""PairedDataset, split assignment and the file loaders (Karpathy, BLIP, CSV/JSONL)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hypervldd.data import (
    PairedDataset,
    assign_splits,
    load_blip_json,
    load_caption_table,
    load_karpathy_json,
)

from ._helpers import COLOURS, make_png


def _blank(i: int) -> Image.Image:
    return Image.new("RGB", (4, 4), (i, i, i))


def _dataset(**over) -> PairedDataset:
    kw = dict(
        name="toy",
        image_ids=["a", "b", "c"],
        captions=["a1", "a2", "b1", "c1", "c2", "c3"],
        caption_to_image=np.array([0, 0, 1, 2, 2, 2]),
        image_splits=["train", "test", "train"],
        image_loader=_blank,
        image_digests=["d0", "d1", "d2"],
        image_meta={"colour": ["r", "g", "b"]},
    )
    kw.update(over)
    return PairedDataset(**kw)


# -- PairedDataset --------------------------------------------------------------------------
def test_split_has_local_indices_and_its_own_captions():
    ds = _dataset()
    assert ds.splits == ("train", "test")
    tr = ds.split("train")
    assert tr.image_ids == ["a", "c"]
    assert tr.captions == ["a1", "a2", "c1", "c2", "c3"]
    assert tr.caption_to_image.tolist() == [0, 0, 1, 1, 1]
    assert tr.image_meta == {"colour": ["r", "b"]}
    assert [x.tolist() for x in tr.image_to_captions()] == [[0, 1], [2, 3, 4]]
    assert tr.load_image(1).getpixel((0, 0)) == (2, 2, 2)
    te = ds.split("test")
    assert (te.image_ids, te.captions, te.caption_to_image.tolist()) == (["b"], ["b1"], [0])


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"image_ids": ["a", "a", "c"]}, "image_ids must be unique"),
        ({"caption_to_image": np.array([0, 0, 1, 2, 2])}, "caption_to_image must have shape"),
        ({"caption_to_image": np.array([0, 0, 1, 2, 2, 3])}, r"values must lie in \[0, 3\)"),
        ({"caption_to_image": np.array([0.0, 0, 1, 2, 2, 2])}, "must hold integers"),
        ({"image_splits": ["train", "test"]}, "image_splits must have one entry per image"),
        ({"image_meta": {"x": [1]}}, r"image_meta\['x'\] must have one entry per image"),
        ({"name": ""}, "name must be a non-empty string"),
    ],
)
def test_bad_dataset_arguments_are_named(over, message):
    with pytest.raises(ValueError, match=message):
        _dataset(**over)


def test_unknown_split_and_bad_index_are_clear_errors():
    ds = _dataset()
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\)"):
        ds.split("val")
    with pytest.raises(IndexError, match="out of range"):
        ds.split("test").load_image(1)


def test_fingerprints_follow_images_captions_and_pairing():
    base = _dataset().split("train")
    same = _dataset().split("train")
    assert base.fingerprint() == same.fingerprint()
    new_digest = _dataset(image_digests=["d0", "d1", "CHANGED"]).split("train")
    assert new_digest.image_fingerprint() != base.image_fingerprint()
    assert new_digest.text_fingerprint() == base.text_fingerprint()
    new_caption = _dataset(captions=["a1", "a2", "b1", "c1", "c2", "other"]).split("train")
    assert new_caption.text_fingerprint() != base.text_fingerprint()
    assert new_caption.image_fingerprint() == base.image_fingerprint()
    repaired = _dataset(caption_to_image=np.array([0, 2, 1, 2, 2, 0])).split("train")
    assert repaired.fingerprint() != base.fingerprint()


# -- assign_splits --------------------------------------------------------------------------
def test_assign_splits_is_deterministic_grouped_and_subset_stable():
    keys = [f"k{i // 3}" for i in range(3000)]  # 1000 groups of 3
    s1 = assign_splits(keys, seed=0)
    assert s1 == assign_splits(keys, seed=0)
    assert s1 != assign_splits(keys, seed=1)
    for g in range(1000):
        assert len(set(s1[3 * g : 3 * g + 3])) == 1
    counts = {s: s1.count(s) / 3000 for s in ("train", "val", "test")}
    assert abs(counts["train"] - 0.8) < 0.05 and abs(counts["val"] - 0.1) < 0.04
    # Dropping items never moves the others.
    sub = assign_splits(keys[::7], seed=0)
    assert sub == s1[::7]


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({}, "at least one split"),
        ({"train": 0.7, "test": 0.2}, "must sum to 1"),
        ({"train": 1.2, "test": -0.2}, r"fractions\['test'\] must be a positive number"),
    ],
)
def test_assign_splits_rejects_bad_fractions(fractions, message):
    with pytest.raises(ValueError, match=message):
        assign_splits(["a"], fractions)


# -- Karpathy JSON --------------------------------------------------------------------------
def _karpathy(tmp_path: Path, coco: bool) -> tuple[Path, Path]:
    root = tmp_path / "images"
    images = []
    for k, (name, colour) in enumerate(COLOURS.items()):
        sub = "val2014" if coco else ""
        make_png(root / sub / name, colour)
        item = {
            "filename": name,
            "imgid": k,
            "split": ["train", "restval", "val", "test", "test"][k],
            "sentences": [{"raw": f" A {name[:-4]} thing. ", "tokens": []}]
            + [{"raw": f"caption {j} of {name}", "tokens": []} for j in range(k % 3)],
        }
        if coco:
            item["filepath"] = sub
            item["cocoid"] = 1000 + k
        images.append(item)
    path = tmp_path / "dataset_x.json"
    path.write_text(json.dumps({"dataset": "coco" if coco else "flickr8k", "images": images}))
    return path, root


@pytest.mark.parametrize("coco", [False, True])
def test_karpathy_json_loads_splits_captions_and_paths(tmp_path, coco):
    path, root = _karpathy(tmp_path, coco)
    ds = load_karpathy_json(path, root)
    assert ds.name == ("coco" if coco else "flickr8k")
    assert ds.num_images == 5 and ds.num_captions == 5 + (0 + 1 + 2 + 0 + 1)
    assert ds.split("train").num_images == 2  # restval joined train
    assert ds.split("test").image_ids == (["1003", "1004"] if coco else ["3", "4"])
    assert ds.captions[0] == "A red thing."  # stripped, otherwise raw
    assert ds.split("val").captions == [
        "A blue thing.",
        "caption 0 of blue.png",
        "caption 1 of blue.png",
    ]
    # The image is read from image_root / filepath / filename.
    assert ds.split("test").load_image(0).getpixel((23, 0))[0] == 230
    dropped = load_karpathy_json(path, root, restval="drop")
    assert dropped.split("train").num_images == 1
    # Every per-image field but the sentences is kept, the file's own split included.
    assert ds.image_meta["imgid"] == [0, 1, 2, 3, 4]
    assert ds.image_meta["split"] == ["train", "restval", "val", "test", "test"]
    assert ds.image_meta["filename"][2] == "blue.png" and "sentences" not in ds.image_meta
    assert ds.image_meta.get("cocoid") == ([1000, 1001, 1002, 1003, 1004] if coco else None)
    assert dropped.image_meta["imgid"] == [0, 2, 3, 4]
    assert ds.split("test").image_meta["imgid"] == [3, 4]


def test_karpathy_json_missing_images_and_bad_layout(tmp_path):
    path, root = _karpathy(tmp_path, coco=False)
    os.remove(root / "green.png")
    with pytest.raises(FileNotFoundError, match=r"1 of 5 image files .* missing .*green.png"):
        load_karpathy_json(path, root)
    unchecked = load_karpathy_json(path, root, check_files=False)
    assert unchecked.num_images == 5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image": "x"}]))
    with pytest.raises(ValueError, match="must hold an object with an 'images' list"):
        load_karpathy_json(bad, root)
    with pytest.raises(FileNotFoundError, match="Karpathy annotation file not found"):
        load_karpathy_json(tmp_path / "nope.json", root)


def test_image_digest_changes_when_file_is_rewritten(tmp_path):
    path, root = _karpathy(tmp_path, coco=False)
    for shade, mode in ((10, "stat"), (90, "content")):
        before = load_karpathy_json(path, root, digest=mode).split("test").image_fingerprint()
        make_png(root / "yellow.png", (shade, shade, shade))
        st = os.stat(root / "yellow.png")
        os.utime(root / "yellow.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        after = load_karpathy_json(path, root, digest=mode).split("test").image_fingerprint()
        assert before != after, mode


# -- BLIP JSON ------------------------------------------------------------------------------
def test_blip_json_train_per_caption_and_test_per_image(tmp_path):
    root = tmp_path / "img"
    names = list(COLOURS)
    for n in names:
        make_png(root / "flickr30k-images" / n, COLOURS[n])
    train = [
        {"image": f"flickr30k-images/{n}", "caption": f"{n} cap {j}", "image_id": n}
        for n in names[:2]
        for j in range(3)
    ]
    val = [{"image": f"flickr30k-images/{names[2]}", "caption": ["v1", "v2"]}]
    test = [
        {"image": f"flickr30k-images/{n}", "caption": [f"{n} t{j}" for j in range(5)]}
        for n in names[3:]
    ]
    ann = tmp_path / "ann"
    ann.mkdir()
    for split, data in (("train", train), ("val", val), ("test", test)):
        (ann / f"flickr30k_{split}.json").write_text(json.dumps(data))
    ds = load_blip_json(ann, root, "flickr30k")
    assert ds.summary() == {
        "name": "flickr30k",
        "train": {"images": 2, "captions": 6},
        "val": {"images": 1, "captions": 2},
        "test": {"images": 2, "captions": 10},
    }
    assert ds.split("train").caption_to_image.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_blip_json(ann, root, "flickr8k")
    with pytest.raises(FileNotFoundError, match="coco_karpathy_train.json"):
        load_blip_json(ann, root, "coco")
    (ann / "flickr30k_val.json").write_text(json.dumps(test[:1]))
    with pytest.raises(ValueError, match="appears in both split 'val' and split 'test'"):
        load_blip_json(ann, root, "flickr30k")


# -- CSV / JSONL ----------------------------------------------------------------------------
def test_csv_table_groups_captions_per_image(tiny_table):
    ds = load_caption_table(tiny_table)
    assert ds.name == "pairs"
    assert ds.num_images == 5 and ds.num_captions == 10
    assert ds.split("train").num_images == 3
    assert ds.captions[1] == "a picture that is red, mostly"  # quoted comma survives
    assert ds.load_image(2).getpixel((23, 10)) == (20, 40, 230)


def test_jsonl_table_with_default_split_and_absolute_paths(tmp_path):
    a = make_png(tmp_path / "x" / "a.png", (1, 2, 3))
    b = make_png(tmp_path / "x" / "b.png", (4, 5, 6))
    rows = [
        {"image": str(a), "caption": "first"},
        {"image": str(b), "caption": "second"},
        {"image": str(a), "caption": "third"},
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ds = load_caption_table(path, default_split="test")
    assert ds.splits == ("test",)
    # Captions are grouped per image, images in first-seen order.
    assert ds.captions == ["first", "third", "second"]
    assert ds.caption_to_image.tolist() == [0, 0, 1]


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("image,text\nx.png,hi\n", ".csv", "needs string columns 'image' and 'caption'"),
        ('{"image": "x.png", "caption": "c"}\nnot json\n', ".jsonl", "line 2 .* not valid JSON"),
        ("image,caption,split\nx.png,a,train\nx.png,b,test\n", ".csv", "disagree on the split"),
        ("whatever", ".txt", r"must end in \.csv, \.jsonl or \.ndjson"),
    ],
)
def test_bad_tables_are_refused(tmp_path, content, suffix, message):
    make_png(tmp_path / "x.png", (0, 0, 0))
    path = tmp_path / f"t{suffix}"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_caption_table(path)


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("image,caption\nx.png,a cat\nx.png,\n", ".csv", r"line 3 of .*t\.csv.*'x\.png' is blank"),
        ("image,caption\nx.png,a cat\nx.png,   \n", ".csv", r"line 3 of .*is blank"),
        ('image,caption\nx.png,"a\nb"\nx.png,"\t"\n', ".csv", r"line 4 of .*is blank"),
        (
            '{"image": "x.png", "caption": "a cat"}\n\n{"image": "x.png", "caption": " "}\n',
            ".jsonl",
            r"line 3 of .*t\.jsonl.*is blank",
        ),
        ('{"image": "x.png", "caption": ""}\n', ".jsonl", r"line 1 of .*is blank"),
    ],
)
def test_blank_captions_in_a_table_are_refused_naming_the_line(tmp_path, content, suffix, message):
    make_png(tmp_path / "x.png", (0, 0, 0))
    path = tmp_path / f"t{suffix}"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_caption_table(path)


def test_blank_captions_in_a_karpathy_json_are_refused(tmp_path):
    make_png(tmp_path / "img" / "a.png", (0, 0, 0))
    ann = {
        "dataset": "t",
        "images": [
            {"filename": "a.png", "split": "train", "sentences": [{"raw": "a"}, {"raw": "  "}]}
        ],
    }
    path = tmp_path / "k.json"
    path.write_text(json.dumps(ann))
    with pytest.raises(ValueError, match=r"image 'a' .* blank caption \(caption 1 of 2\)"):
        load_karpathy_json(path, tmp_path / "img")


def test_corrupt_or_non_image_files_name_the_file_and_what_to_do(tmp_path):
    from hypervldd.data import ImageFileError

    make_png(tmp_path / "good.png", (0, 0, 0))
    raw = (tmp_path / "good.png").read_bytes()
    (tmp_path / "text.png").write_text("this is not an image")
    (tmp_path / "cut.png").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "t.csv").write_text(
        "image,caption\ngood.png,a black square\ntext.png,a note\ncut.png,half a square\n"
    )
    ds = load_caption_table(tmp_path / "t.csv")
    assert ds.load_image(0).size == Image.open(tmp_path / "good.png").size
    for i, name in ((1, "text.png"), (2, "cut.png")):
        with pytest.raises(ImageFileError, match=rf"image file .*{name} cannot be read .*replace"):
            ds.load_image(i)
    (tmp_path / "good.png").unlink()
    with pytest.raises(FileNotFoundError, match="good.png is gone"):
        ds.load_image(0)


def test_non_string_captions_in_json_files_are_refused(tmp_path):
    make_png(tmp_path / "a.png", (0, 0, 0))
    k = {"images": [{"filename": "a.png", "split": "train", "sentences": [{"raw": None}]}]}
    (tmp_path / "k.json").write_text(json.dumps(k))
    with pytest.raises(ValueError, match=r"images\[0\] .* 'sentences\[\]\.raw' \(a string\)"):
        load_karpathy_json(tmp_path / "k.json", tmp_path)
    (tmp_path / "flickr30k_train.json").write_text(json.dumps([{"image": "a.png", "caption": 5}]))
    with pytest.raises(ValueError, match=r"entry 0 of .*'caption' must be a string or a list"):
        load_blip_json(tmp_path, tmp_path, "flickr30k", splits=("train",))
    bad = [{"image": "a.png", "caption": ["fine", ""]}]
    (tmp_path / "flickr30k_train.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"image 'a\.png' .* blank caption \(caption 1 of 2\)"):
        load_blip_json(tmp_path, tmp_path, "flickr30k", splits=("train",))
