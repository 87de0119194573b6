"""Each new dataset format and encoder kind through the CLI: prepare, distill x2, evaluate.

The datasets and encoders are built small by each test (coloured squares, 1-layer
random models saved as users keep real ones); nothing is downloaded.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hypervldd.cli import main

from ._tiny_models import TINY_CLIP, save_bert, save_open_clip, save_timm, save_vit
from .test_formats import _add, png_bytes

pytest.importorskip("transformers")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

PROTOCOL = ["--protocol", '{"epochs": 2, "lr_decay_epochs": [1], "student": {"width": 16}}']
PROTOCOL += ["--seeds", "1"]


def _colours(n: int) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(1)
    return [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(n)]


def _captions(i: int) -> list[str]:
    return [f"a red square {i}", f"the blue picture {i}"]


def _run_all(data: list[str], tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> str:
    """prepare, distill (random, herding) and evaluate; returns prepare's output."""
    cache = ["--cache-dir", str(tmp_path / "features"), "--no-progress"]
    capfd.readouterr()  # what building the test's data and models printed
    assert main(["prepare", *data, *cache]) == 0
    out, err = capfd.readouterr()
    # --no-progress: no bars of ours, nor of the libraries that load the weights.
    assert "Loading weights" not in err and "it/s" not in err
    for method in ("random", "herding"):
        art = tmp_path / f"{method}.safetensors"
        argv = ["distill", *data, *cache, "--method", method, "--budget", "3", "--out", str(art)]
        assert main(argv) == 0
        assert art.is_file()
        argv = ["evaluate", *data, *cache, *PROTOCOL, "--artifact", str(art)]
        assert main(argv) == 0
        assert "TR@1" in capfd.readouterr().out
    return out


def test_hf_folder_with_timm_and_sentence_transformers(tmp_path, capfd):
    datasets = pytest.importorskip("datasets")
    colours = _colours(14)
    feats = datasets.Features(
        {"image": datasets.Image(), "caption": datasets.Sequence(datasets.Value("string"))}
    )

    def part(idx):
        return datasets.Dataset.from_dict(
            {
                "image": [Image.new("RGB", (12, 10), colours[i]) for i in idx],
                "caption": [_captions(i) for i in idx],
            },
            features=feats,
        )

    folder = tmp_path / "flickr_hf"
    datasets.DatasetDict(
        {"train": part(range(8)), "validation": part(range(8, 11)), "test": part(range(11, 14))}
    ).save_to_disk(str(folder))
    ckpt = save_timm(tmp_path / "timm")
    st = save_bert(tmp_path / "st", sentence_transformers=True)
    data = ["--dataset", f"hf:{folder}", "--image-encoder", "timm:resnet10t"]
    data += ["--timm-checkpoint", str(ckpt), "--text-encoder", f"hf:{st}"]
    out = _run_all(data, tmp_path, capfd)
    assert "train: 8 images x 512, 16 captions x 16" in out
    assert "val: 3 images" in out and "test: 3 images" in out


def test_parquet_without_splits_with_limit_and_hf_encoders(tmp_path, capfd):
    n = 30
    colours = _colours(n)
    rows = [(f"im{i}", png_bytes(colours[i]), c) for i in range(n) for c in _captions(i)]
    table = pa.table(
        {
            "image_id": [r[0] for r in rows],
            "jpg": [{"bytes": r[1], "path": None} for r in rows],
            "text": [r[2] for r in rows],
        }
    )
    path = tmp_path / "pairs.parquet"
    pq.write_table(table, path)
    vit = save_vit(tmp_path / "vit")
    bert = save_bert(tmp_path / "bert")
    data = ["--dataset", str(path), "--image-column", "jpg", "--caption-column", "text"]
    data += ["--image-encoder", f"hf:{vit}", "--text-encoder", f"hf:{bert}"]
    cache = ["--cache-dir", str(tmp_path / "features"), "--no-progress"]
    # Without splits, the error says how to assign them.
    assert main(["prepare", *data, *cache]) == 1
    assert "--split-ratios 0.8,0.1,0.1" in capfd.readouterr().err
    data += ["--split-ratios", "0.5,0.25,0.25", "--split-seed", "3", "--limit", "20"]
    out = _run_all(data, tmp_path, capfd)
    counts = {
        line.split(":")[0]: int(line.split()[1]) for line in out.splitlines() if "images x" in line
    }
    assert sum(counts.values()) == 20 and set(counts) == {"train", "val", "test"}
    assert f"{counts['train'] * 2} captions x 16" in out  # both captions of each image


def test_webdataset_shards_with_open_clip(tmp_path, capfd):
    pytest.importorskip("open_clip")
    colours = _colours(16)
    split_of = ["train"] * 10 + ["val"] * 3 + ["test"] * 3
    folder = tmp_path / "shards"
    folder.mkdir()
    for s in range(2):
        with tarfile.open(folder / f"{s:06d}.tar", "w") as tar:
            for i in range(8 * s, 8 * s + 8):
                key = f"{i:06d}"
                _add(tar, f"{key}.png", png_bytes(colours[i]))
                _add(tar, f"{key}.txt", "\n".join(_captions(i)).encode())
                _add(tar, f"{key}.json", json.dumps({"split": split_of[i]}).encode())
    ckpt = save_open_clip(tmp_path / "clip")
    data = ["--dataset", str(folder / "{000000..000001}.tar")]
    data += [
        "--image-encoder",
        f"open_clip:{TINY_CLIP}",
        "--text-encoder",
        f"open_clip:{TINY_CLIP}",
    ]
    data += ["--open-clip-checkpoint", str(ckpt)]
    out = _run_all(data, tmp_path, capfd)
    assert "train: 10 images x 16, 20 captions x 16" in out
    assert "test: 3 images x 16, 6 captions x 16" in out
