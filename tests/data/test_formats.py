"""Hugging Face folders, parquet files and webdataset shards, built small by each test."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hypervldd.data.hf import load_hf_dataset, load_parquet
from hypervldd.data.sources import DatasetOptions, open_dataset
from hypervldd.data.webdataset import expand_shards, load_webdataset

from ._helpers import COLOURS, make_png

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

NAMES = list(COLOURS)  # red, green, blue, yellow, grey


def png_bytes(colour: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 5), colour).save(buf, format=fmt)
    return buf.getvalue()


def _caps(stem: str) -> list[str]:
    return [f"a {stem} square", f" something {stem} "]


# -- parquet ------------------------------------------------------------------------------
def test_parquet_one_row_per_image_with_image_structs_and_caption_lists(tmp_path):
    splits = ["train", "train", "validation", "test", "train"]
    table = pa.table(
        {
            "image": [{"bytes": png_bytes(c), "path": None} for c in COLOURS.values()],
            "caption": [_caps(n[:-4]) for n in NAMES],
            "split": splits,
            "img_id": [n[:-4] for n in NAMES],
            "width": [6] * 5,
        }
    )
    path = tmp_path / "pairs.parquet"
    pq.write_table(table, path, row_group_size=2)  # images span row groups
    ds = load_parquet(path)
    assert ds.name == "pairs"
    assert ds.image_ids == ["red", "green", "blue", "yellow", "grey"]
    assert ds.image_splits == ["train", "train", "val", "test", "train"]  # validation -> val
    assert ds.captions[:4] == ["a red square", "something red", "a green square", "something green"]
    assert ds.caption_to_image.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert ds.image_meta["width"] == [6] * 5 and "caption" not in ds.image_meta
    for i, colour in enumerate(COLOURS.values()):
        assert ds.load_image(i).getpixel((3, 2)) == colour
    # The digest follows the file: rewriting it gives new digests, hence new cache keys.
    before = ds.split("train").image_fingerprint()
    pq.write_table(table, path, row_group_size=2)
    assert load_parquet(path).split("train").image_fingerprint() != before
    content = load_parquet(path, digest="content")
    assert content.image_digests[0].startswith("sha256:")
    assert content.image_digests == load_parquet(path, digest="content").image_digests


def test_parquet_one_row_per_caption_with_paths_groups_by_image(tmp_path):
    for n, c in COLOURS.items():
        make_png(tmp_path / "img" / n, c)
    rows = [(f"img/{n}", f"{n[:-4]} caption {k}") for n in NAMES[:3] for k in range(3)]
    table = pa.table({"file": [r[0] for r in rows], "text": [r[1] for r in rows]})
    data = tmp_path / "data"
    data.mkdir()
    # Hub downloads name the split in the file name.
    pq.write_table(table.slice(0, 6), data / "train-00000-of-00001.parquet")
    pq.write_table(table.slice(6), data / "test-00000-of-00001.parquet")
    ds = load_parquet(
        data,
        image_column="file",
        caption_column="text",
        image_id_column="file",
        image_root=tmp_path,
    )
    assert ds.image_ids == ["img/blue.png", "img/red.png", "img/green.png"]  # test file first
    assert ds.image_splits == ["test", "train", "train"]
    assert ds.split("train").captions == [f"red caption {k}" for k in range(3)] + [
        f"green caption {k}" for k in range(3)
    ]
    assert ds.load_image(0).getpixel((0, 0))[2] > 100
    assert ds.image_digests[1].startswith("stat:")
    with pytest.raises(ValueError, match="caption_column 'caption' is not a column"):
        load_parquet(data, image_column="file", image_root=tmp_path)
    with pytest.raises(ValueError, match="image_column 'image' is not a column"):
        load_parquet(data)
    (tmp_path / "img" / "red.png").unlink()
    with pytest.raises(FileNotFoundError, match="1 of 3 image files .* missing .*red.png"):
        load_parquet(data, image_column="file", caption_column="text", image_root=tmp_path)
    with pytest.raises(FileNotFoundError, match="parquet file not found"):
        load_parquet(tmp_path / "absent.parquet")


# -- datasets save_to_disk ----------------------------------------------------------------
def test_hf_save_to_disk_dataset_dict_with_image_feature(tmp_path):
    datasets = pytest.importorskip("datasets")
    feats = datasets.Features(
        {
            "image": datasets.Image(),
            "caption": datasets.Sequence(datasets.Value("string")),
            "filename": datasets.Value("string"),
        }
    )

    def part(names):
        return datasets.Dataset.from_dict(
            {
                "image": [Image.new("RGB", (6, 5), COLOURS[n]) for n in names],
                "caption": [_caps(n[:-4]) for n in names],
                "filename": names,
            },
            features=feats,
        )

    dd = datasets.DatasetDict(
        {"train": part(NAMES[:3]), "validation": part(NAMES[3:4]), "test": part(NAMES[4:])}
    )
    dd.save_to_disk(str(tmp_path / "hfds"))
    ds = load_hf_dataset(tmp_path / "hfds")
    assert ds.splits == ("train", "val", "test")
    assert ds.image_ids == NAMES  # the filename column is the image id
    assert ds.split("val").captions == ["a yellow square", "something yellow"]
    assert ds.split("test").load_image(0).getpixel((1, 1)) == COLOURS["grey.png"]
    assert ds.load_image(2).getpixel((0, 0)) == COLOURS["blue.png"]
    with pytest.raises(ValueError, match="caption_column 'text' is not a column"):
        load_hf_dataset(tmp_path / "hfds", caption_column="text")
    # A single Dataset has no split names: the split column or the default decides.
    part(NAMES).save_to_disk(str(tmp_path / "single"))
    one = load_hf_dataset(tmp_path / "single")
    assert one.splits == ("train",) and one.num_captions == 10


def test_hf_folder_without_datasets_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "hfds").mkdir()
    (tmp_path / "hfds" / "dataset_dict.json").write_text('{"splits": ["train"]}')
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(ImportError, match=r"hypervldd\[hf\]"):
        load_hf_dataset(tmp_path / "hfds")
    with pytest.raises(FileNotFoundError, match="not a datasets save_to_disk folder"):
        load_hf_dataset(tmp_path)


# -- webdataset ---------------------------------------------------------------------------
def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder: Path, n_shards: int = 2, per_shard: int = 3) -> list[tuple]:
    """Shards ``folder/0000{k}.tar``; returns ``(key, colour, captions)`` per sample."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    samples = []
    for s in range(n_shards):
        with tarfile.open(folder / f"{s:05d}.tar", "w") as tar:
            for j in range(per_shard):
                key = f"{s:02d}{j:04d}"
                colour = tuple(int(x) for x in rng.integers(0, 256, 3))
                caps = [f"sample {key} first", f"sample {key} second"]
                ext = "png" if j % 2 == 0 else "jpg"
                _add(tar, f"{key}.{ext}", png_bytes(colour, "PNG" if ext == "png" else "JPEG"))
                _add(tar, f"{key}.txt", "\n".join(caps).encode() + b"\n")
                meta = {"caption": f"json caption {key}", "alt": [f"x {key}", f"y {key}"]}
                meta["source"] = "test"
                _add(tar, f"{key}.json", json.dumps(meta).encode())
                samples.append((key, colour, caps))
            _add(tar, "README.txt", b"not a sample")
    return samples


def test_expand_shards_keeps_zero_padding_and_rejects_a_reversed_range():
    assert [p.name for p in expand_shards("/d/{000008..000010}.tar")] == [
        "000008.tar",
        "000009.tar",
        "000010.tar",
    ]
    assert expand_shards(["a.tar", "b.tar"]) == [Path("a.tar"), Path("b.tar")]
    with pytest.raises(ValueError, match="counts down"):
        expand_shards("{3..1}.tar")


def test_webdataset_shards_stream_images_and_captions(tmp_path):
    samples = write_shards(tmp_path / "wds")
    before = sorted(p.name for p in (tmp_path / "wds").iterdir())
    ds = load_webdataset(str(tmp_path / "wds" / "{00000..00001}.tar"))
    assert ds.image_ids == [s[0] for s in samples]
    assert ds.captions[:2] == samples[0][2] and ds.num_captions == 12
    assert ds.image_meta["shard"][:4] == ["00000.tar"] * 3 + ["00001.tar"]
    assert ds.image_meta["source"] == ["test"] * 6
    for i, (_, colour, _) in enumerate(samples):
        got = ds.load_image(i).getpixel((2, 2))
        tol = 0 if i % 3 != 1 else 12  # JPEG samples are lossy
        assert max(abs(a - b) for a, b in zip(got, colour, strict=True)) <= tol
    # Never unpacked: the shard folder holds just the shards.
    assert sorted(p.name for p in (tmp_path / "wds").iterdir()) == before
    alt = load_webdataset(tmp_path / "wds" / "00000.tar", json_caption_key="alt")
    assert alt.captions[:2] == ["x 000000", "y 000000"] and alt.num_images == 3
    one = load_webdataset(tmp_path / "wds" / "00000.tar", json_caption_key="caption")
    assert one.captions == [f"json caption 00000{j}" for j in range(3)]
    content = load_webdataset(tmp_path / "wds" / "00000.tar", digest="content")
    assert content.image_digests[0].startswith("sha256:")
    with pytest.raises(ValueError, match="caption key 'title' of sample '000000'"):
        load_webdataset(tmp_path / "wds" / "00000.tar", json_caption_key="title")
    with pytest.raises(FileNotFoundError, match="1 of 3 shards are missing"):
        load_webdataset(str(tmp_path / "wds" / "{00000..00002}.tar"))
    (tmp_path / "bad.tar").write_bytes(b"not a tar at all" * 40)
    with pytest.raises(ValueError, match="not an uncompressed tar"):
        load_webdataset(tmp_path / "bad.tar")


# -- limit, split ratios, dispatch --------------------------------------------------------
def _table(tmp_path: Path, n: int = 40) -> Path:
    """A CSV without a split column: ``n`` images ``img<i>.png``, captions ``img<i> a/b``."""
    lines = ["image,caption"]
    for i in range(n):
        make_png(tmp_path / f"img{i}.png", (i, 2 * i, 3 * i), size=(3, 3 + i % 2))
        lines += [f"img{i}.png,img{i} a", f"img{i}.png,img{i} b"]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "t.csv"


def test_split_ratios_group_captions_and_enter_the_fingerprint(tmp_path):
    spec = str(_table(tmp_path))
    with pytest.raises(ValueError, match=r"splits .* not in|has no|split must be one of"):
        open_dataset(spec).split("val")
    a = open_dataset(spec, DatasetOptions(split_ratios="0.6,0.2,0.2", split_seed=0))
    b = open_dataset(spec, DatasetOptions(split_ratios="0.6,0.2,0.2", split_seed=0))
    c = open_dataset(spec, DatasetOptions(split_ratios="0.6,0.2,0.2", split_seed=1))
    assert set(a.splits) == {"train", "val", "test"}
    assert a.image_splits == b.image_splits and a.image_splits != c.image_splits
    assert a.metadata["split_assignment"] == {
        "ratios": {"train": 0.6, "val": 0.2, "test": 0.2},
        "seed": 0,
        "by": "image_id",
    }
    for s in a.splits:  # every caption is in its image's split
        sp = a.split(s)
        owners = [sp.image_ids[k] for k in sp.caption_to_image]
        assert [c.split()[0] + ".png" for c in sp.captions] == owners
        assert len(owners) == 2 * sp.num_images
    assert a.split("train").fingerprint() == b.split("train").fingerprint()
    # The same images with a different assignment record never share a cache key.
    ratios = open_dataset(spec, DatasetOptions(split_ratios="0.6,0.2,0.2", split_seed=0))
    ratios.metadata["split_assignment"] = dict(ratios.metadata["split_assignment"], seed=5)
    assert ratios.split("train").image_fingerprint() != a.split("train").image_fingerprint()
    # A dataset loaded with its own splits keeps its old fingerprint (no assignment).
    plain = open_dataset(spec)
    assert "split_assignment" not in plain.metadata
    with pytest.raises(ValueError, match="split_ratios must be positive and sum to 1"):
        open_dataset(spec, DatasetOptions(split_ratios="0.5,0.1,0.1"))
    with pytest.raises(ValueError, match="split_ratios must give 1-3 ratios"):
        open_dataset(spec, DatasetOptions(split_ratios="0.2,0.2,0.2,0.4"))
    with pytest.raises(ValueError, match="applies to a dataset without splits"):
        open_dataset(a, DatasetOptions(split_ratios="0.5,0.5"))


def test_limit_keeps_a_fixed_spread_subset_of_every_split(tmp_path):
    spec = str(_table(tmp_path))
    opts = DatasetOptions(split_ratios="0.6,0.2,0.2", limit=10)
    full = open_dataset(spec, DatasetOptions(split_ratios="0.6,0.2,0.2"))
    a = open_dataset(spec, opts)
    assert a.num_images == 10 and a.image_ids == open_dataset(spec, opts).image_ids
    assert set(a.splits) == set(full.splits)
    for s in full.splits:  # proportional shares (largest remainders), at least one each
        share = full.split(s).num_images / full.num_images * 10
        assert abs(a.split(s).num_images - share) <= 1
    # Every kept image keeps all its captions and its split; order is the dataset's.
    pos = [full.image_ids.index(i) for i in a.image_ids]
    assert pos == sorted(pos)
    for i, img in enumerate(a.image_ids):
        j = full.image_ids.index(img)
        assert a.image_splits[i] == full.image_splits[j]
        mine = [c for c, k in zip(a.captions, a.caption_to_image, strict=True) if k == i]
        theirs = [c for c, k in zip(full.captions, full.caption_to_image, strict=True) if k == j]
        assert mine == theirs
    assert a.load_image(1).size == full.load_image(full.image_ids.index(a.image_ids[1])).size
    assert a.metadata["limit"] == 10
    assert open_dataset(spec, DatasetOptions(limit=1000)).num_images == 40
    with pytest.raises(ValueError, match="limit must be a positive number"):
        open_dataset(spec, DatasetOptions(limit=0))


def test_dataset_strings_reach_every_loader(tmp_path):
    write_shards(tmp_path / "wds", n_shards=2, per_shard=2)
    assert open_dataset(str(tmp_path / "wds" / "{00000..00001}.tar")).num_images == 4
    assert open_dataset(str(tmp_path / "wds" / "00001.tar")).num_images == 2
    table = pa.table({"image": [png_bytes((1, 2, 3))], "caption": ["one"]})
    pq.write_table(table, tmp_path / "one.parquet")
    assert open_dataset(str(tmp_path / "one.parquet")).captions == ["one"]
    (tmp_path / "pq").mkdir()
    pq.write_table(table, tmp_path / "pq" / "x.parquet")
    renamed = pa.table({"img": [png_bytes((1, 2, 3))], "txt": ["two"]})
    pq.write_table(renamed, tmp_path / "pq2.parquet")
    assert open_dataset("hf:" + str(tmp_path / "pq")).captions == ["one"]
    opts = DatasetOptions(image_column="img", caption_column="txt")
    assert open_dataset(str(tmp_path / "pq2.parquet"), opts).captions == ["two"]
    with pytest.raises(ValueError, match="dataset must be one of: .*hf:FOLDER"):
        open_dataset(str(tmp_path / "x.txt"))


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    pq.write_table(
        pa.table({"image": [png_bytes((1, 2, 3))], "caption": ["a"]}), tmp_path / "a.parquet"
    )
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"hypervldd\[hf\]"):
        load_parquet(tmp_path / "a.parquet")


def test_a_split_column_wins_over_the_part_name(tmp_path):
    # Flickr30k on the Hub: one "test" part whose rows carry the Karpathy split.
    datasets = pytest.importorskip("datasets")
    part = datasets.Dataset.from_dict(
        {
            "image": [png_bytes(c) for c in COLOURS.values()],
            "caption": [_caps(n[:-4]) for n in NAMES],
            "split": ["train", "train", "val", "test", None],
        }
    )
    datasets.DatasetDict({"test": part}).save_to_disk(str(tmp_path / "hub"))
    ds = load_hf_dataset(tmp_path / "hub")
    assert ds.image_splits == ["train", "train", "val", "test", "test"]
    assert ds.load_image(4).getpixel((0, 0)) == COLOURS["grey.png"]
    with pytest.raises(FileNotFoundError, match="1 of 1 shards are missing"):
        open_dataset(str(tmp_path / "absent.tar"))


def test_blank_captions_and_bad_images_are_refused_in_every_new_format(tmp_path):
    from hypervldd.data.loaders import ImageFileError

    good, bad = png_bytes((255, 0, 0)), b"not an image at all"
    table = pa.table(
        {
            "image": [{"bytes": good, "path": None}, {"bytes": bad, "path": None}],
            "caption": [["a red square"], ["a broken file"]],
        }
    )
    pq.write_table(table, tmp_path / "ok.parquet")
    ds = load_parquet(tmp_path / "ok.parquet")
    assert ds.load_image(0).getpixel((0, 0)) == (255, 0, 0)
    with pytest.raises(ImageFileError, match="cannot be read as an image"):
        ds.load_image(1)
    blank = pa.table({"image": [{"bytes": good, "path": None}], "caption": [["fine", "  "]]})
    pq.write_table(blank, tmp_path / "blank.parquet")
    with pytest.raises(ValueError, match="row 0 of .* has a blank caption"):
        load_parquet(tmp_path / "blank.parquet")

    def shard(path: Path, members: dict[str, bytes]) -> Path:
        with tarfile.open(path, "w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path

    caps = json.dumps({"caption": ["a square", ""]}).encode()
    with pytest.raises(ValueError, match="blank caption"):
        load_webdataset(
            shard(tmp_path / "a.tar", {"000.png": good, "000.json": caps}),
            json_caption_key="caption",
        )
    ds = load_webdataset(shard(tmp_path / "b.tar", {"000.png": bad, "000.txt": b"a file"}))
    with pytest.raises(ImageFileError, match="'000' in .*b.tar cannot be read"):
        ds.load_image(0)
