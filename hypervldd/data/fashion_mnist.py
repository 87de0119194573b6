"""The built-in ``fashion-mnist`` dataset: a class-level image-text proxy.

Source: the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``),
70,000 grey 28 x 28 images of 10 clothing classes.

**This is a class-level proxy, not an instance-level benchmark.** Captions are
template sentences over the class name only ("a photo of a pullover"), so every
caption matches every image of its class equally well. Instance-level retrieval
recall (one image's own captions among all captions) is therefore capped far
below 1 for any encoder; use it for smoke tests and class-level metrics
(``image_meta["label"]``), never as a stand-in for Flickr30k/COCO numbers.

Splits: ``test`` is the official t10k set; the official train set is divided
per image into ``train`` and ``val`` by :func:`~hypervldd.data.assign_splits`
(``val_fraction``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ._io import sha256_json
from .dataset import PairedDataset, assign_splits

__all__ = ["FASHION_MNIST_ROOT", "FASHION_MNIST_CLASSES", "load_fashion_mnist", "read_idx"]

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
_TEMPLATES = (
    "a photo of {a} {c}",
    "a grayscale photo of {a} {c}",
    "a low resolution picture of {a} {c}",
    "{a} {c} on a black background",
    "a product image of {a} {c}",
    "a small image of {a} {c}, a piece of clothing",
    "a centered photo of {a} {c}",
    "a black and white picture showing {a} {c}",
)
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a (gzipped) IDX file (the MNIST format) into a uint8 array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic {data[:4]!r})")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    if len(data) != header + int(np.prod(shape)):
        raise ValueError(
            f"{path} is truncated: header says shape {shape}, "
            f"file has {len(data) - header} data bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def load_fashion_mnist(
    *,
    root: str | os.PathLike = FASHION_MNIST_ROOT,
    limit: int | None = None,
    captions_per_image: int = 3,
    val_fraction: float = 1 / 12,
    seed: int = 0,
) -> PairedDataset:
    """Fashion-MNIST as a paired dataset with template captions (a class-level proxy).

    Args:
        root: folder with the four ``*-ubyte.gz`` files (Debian ``dataset-fashion-mnist``).
        limit: keep at most ``limit`` images per split (the first ones), or all.
        captions_per_image: how many of the 8 templates each image gets (1-8); the
            templates are chosen per image deterministically from its index.
        val_fraction: fraction of the official train images that form ``val``.
        seed: seed of the train/val division.

    Returns:
        A :class:`PairedDataset` with splits ``train``, ``val``, ``test``;
        ``image_meta["label"]`` (int) and ``["class_name"]``; ``metadata["classes"]``.
    """
    root = Path(root)
    missing = [root / n for pair in _FILES.values() for n in pair if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files not found under {root} (missing {missing[0].name}). They come "
            "from the Debian package 'dataset-fashion-mnist' "
            "(sudo apt-get install dataset-fashion-mnist); or pass root= pointing at a copy."
        )
    if not (isinstance(captions_per_image, int) and 1 <= captions_per_image <= len(_TEMPLATES)):
        raise ValueError(
            f"captions_per_image must be an int in [1, {len(_TEMPLATES)}], "
            f"got {captions_per_image!r}"
        )
    if not (0.0 < val_fraction < 1.0):
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")

    images_parts, labels_parts, ids, splits = [], [], [], []
    for part, (img_file, lab_file) in _FILES.items():
        imgs = read_idx(root / img_file)
        labs = read_idx(root / lab_file)
        if imgs.ndim != 3 or labs.ndim != 1 or imgs.shape[0] != labs.shape[0]:
            raise ValueError(
                f"{root}: {img_file} and {lab_file} disagree: {imgs.shape} vs {labs.shape}"
            )
        part_ids = [f"{part}-{i:05d}" for i in range(imgs.shape[0])]
        if part == "train":
            part_splits = assign_splits(
                part_ids, {"train": 1.0 - val_fraction, "val": val_fraction}, seed=seed
            )
        else:
            part_splits = ["test"] * len(part_ids)
        keep = np.arange(imgs.shape[0])
        if limit is not None:
            chosen = []
            for s in dict.fromkeys(part_splits):
                chosen.extend([i for i, x in enumerate(part_splits) if x == s][:limit])
            keep = np.asarray(sorted(chosen), dtype=np.int64)
        images_parts.append(imgs[keep])
        labels_parts.append(labs[keep])
        ids.extend(part_ids[i] for i in keep)
        splits.extend(part_splits[i] for i in keep)
    images = np.concatenate(images_parts)
    labels = np.concatenate(labels_parts).astype(np.int64)
    if labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{root}: label {labels.max()} outside the 10 Fashion-MNIST classes")

    captions: list[str] = []
    owner: list[int] = []
    for i, lab in enumerate(labels):
        c = FASHION_MNIST_CLASSES[lab]
        start = i % len(_TEMPLATES)
        for k in range(captions_per_image):
            t = _TEMPLATES[(start + k) % len(_TEMPLATES)]
            captions.append(t.format(a=_article(c), c=c))
            owner.append(i)
    digests = ["sha256:" + hashlib.sha256(im.tobytes()).hexdigest() for im in images]

    def loader(i: int) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(images[i])).convert("RGB")

    return PairedDataset(
        name="fashion-mnist",
        image_ids=ids,
        captions=captions,
        caption_to_image=np.asarray(owner, dtype=np.int64),
        image_splits=splits,
        image_loader=loader,
        image_digests=digests,
        image_meta={
            "label": labels.tolist(),
            "class_name": [FASHION_MNIST_CLASSES[k] for k in labels],
        },
        metadata={
            "source": "fashion-mnist",
            "classes": list(FASHION_MNIST_CLASSES),
            "class_level_proxy": True,
            "templates": sha256_json(list(_TEMPLATES)),
        },
    )
