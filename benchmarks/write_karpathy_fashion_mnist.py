"""Write the built-in fashion-mnist dataset as a Karpathy JSON with PNG images.

Command (from the repository root; needs the Debian package dataset-fashion-mnist):

    python benchmarks/write_karpathy_fashion_mnist.py OUT_DIR [--limit 1200]

Writes ``OUT_DIR/images/<id>.png`` and ``OUT_DIR/dataset.json`` (Karpathy layout:
``{"dataset", "images": [{"filename", "split", "imgid", "sentences": [{"raw"}]}]}``) with the
built-in reader's splits and captions, so that the same data can be read through the generic
Karpathy loader (``hypervldd prepare --dataset OUT_DIR/dataset.json --image-root
OUT_DIR/images``) instead of the built-in reader. ``--limit`` keeps the first ``limit``
images of each split (as the built-in reader's ``limit``). Refuses a non-empty ``OUT_DIR``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hypervldd.data import load_fashion_mnist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--limit", type=int, default=None, help="images per split (default all)")
    args = ap.parse_args()
    out: Path = args.out_dir
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"out_dir {out} is not empty: give a new folder")
    ds = load_fashion_mnist(limit=args.limit)
    captions: list[list[str]] = [[] for _ in ds.image_ids]
    for cap, img in zip(ds.captions, ds.caption_to_image.tolist(), strict=True):
        captions[img].append(cap)
    (out / "images").mkdir(parents=True)
    entries = []
    for i, (image_id, split) in enumerate(zip(ds.image_ids, ds.image_splits, strict=True)):
        name = f"{image_id}.png"
        ds.image_loader(i).save(out / "images" / name)
        entries.append(
            {
                "filename": name,
                "imgid": image_id,
                "split": split,
                "sentences": [{"raw": c} for c in captions[i]],
            }
        )
    doc = {"dataset": "fashion-mnist-karpathy", "images": entries}
    (out / "dataset.json").write_text(json.dumps(doc))
    print(f"wrote {len(entries)} images, {len(ds.captions)} captions to {out}")


if __name__ == "__main__":
    main()
