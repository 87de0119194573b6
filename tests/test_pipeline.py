"""Dataset resolution of the pipeline: local files with their image folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from hypervldd.pipeline import PipelineError, _load_dataset


def _images(root: Path, n: int) -> list[str]:
    names = []
    for i in range(n):
        name = f"img{i}.png"
        Image.new("RGB", (8, 8), (10 * i, 0, 0)).save(root / name)
        names.append(name)
    return names


def test_caption_table_and_karpathy_json_load_with_their_image_folder(tmp_path: Path) -> None:
    names = _images(tmp_path, 4)
    table = tmp_path / "pairs.csv"
    table.write_text(
        "image,caption,split\n"
        + "".join(f"{n},a red square {i},train\n" for i, n in enumerate(names))
    )
    ds = _load_dataset(str(table), None, False, tmp_path)
    assert ds.num_images == 4 and ds.num_captions == 4

    kj = tmp_path / "dataset_tiny.json"
    entries = [
        {
            "filename": n,
            "split": "train" if i < 3 else "test",
            "sentences": [{"raw": f"square number {i}"}, {"raw": f"a picture {i}"}],
        }
        for i, n in enumerate(names)
    ]
    kj.write_text(json.dumps({"images": entries}))
    ds = _load_dataset(str(kj), None, False, tmp_path)
    assert ds.num_images == 4 and ds.num_captions == 8
    with pytest.raises(PipelineError, match="--image-root"):
        _load_dataset(str(kj), None, False, None)
    with pytest.raises(PipelineError, match="dataset must be one of"):
        _load_dataset(str(tmp_path / "nothing.txt"), None, False, None)
