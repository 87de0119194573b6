"""Loaders for image-caption datasets stored as files on disk.

* :func:`load_karpathy_json`: Karpathy's ``dataset_{flickr8k,flickr30k,coco}.json``
  (one file, every image with a ``split`` and its ``sentences``).
* :func:`load_blip_json`: BLIP's per-split files (``flickr30k_{train,val,test}.json``,
  ``coco_karpathy_{train,val,test}.json``); train has one entry per caption, val
  and test one entry per image with a list of captions.
* :func:`load_caption_table`: a CSV or JSONL of ``(image, caption[, split])`` rows.

All of them point at a local image folder; nothing is downloaded. Missing image
files are reported up front (count and first few paths), not at encoding time.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from ._io import sha256_file
from .dataset import PairedDataset

__all__ = [
    "load_karpathy_json",
    "load_blip_json",
    "load_caption_table",
    "file_digest",
    "ImageFileError",
]

DigestMode = Literal["stat", "content"]

_BLIP_FILES = {
    "flickr30k": "flickr30k_{split}.json",
    "coco": "coco_karpathy_{split}.json",
}


def file_digest(path: Path, mode: DigestMode = "stat") -> str:
    """Digest of an image file: ``"stat"`` (size + mtime, cheap) or ``"content"`` (SHA-256).

    ``"stat"`` changes whenever the file is rewritten (so a stale feature cache is
    never reused) but also when it is merely copied with a new mtime (a harmless
    recomputation). ``"content"`` reads every byte.
    """
    if mode == "content":
        return "sha256:" + sha256_file(path)
    if mode == "stat":
        st = os.stat(path)
        return f"stat:{st.st_size}:{st.st_mtime_ns}"
    raise ValueError(f"digest must be 'stat' or 'content', got {mode!r}")


class ImageFileError(ValueError):
    """A dataset's image file exists but cannot be read as an image (corrupt, truncated, other)."""


def _open_rgb(path: Path | bytes, where: str | None = None) -> Image.Image:
    """Decode one image (a file, or the bytes of one named by ``where``) to RGB.

    Every loader opens its images here, so that a bad file is always reported the same
    way: :class:`ImageFileError` naming the file and what to do.
    """
    name = where if where is not None else f"file {path}"
    try:
        with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as im:
            return im.convert("RGB")  # decodes: a truncated file fails here, not later
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"image {name} is gone (moved or deleted after the dataset was loaded)"
        ) from err
    # PIL raises OSError (unidentified, truncated), SyntaxError, ValueError or its own
    # DecompressionBombError for files that are not valid images.
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageFileError(
            f"image {name} cannot be read as an image ({type(err).__name__}: {err}); "
            "replace it with a valid image, or remove it and its captions from the dataset"
        ) from err


def _build(
    name: str,
    records: Iterable[tuple[str, Path, str, list[str]]],
    *,
    digest: DigestMode,
    check_files: bool,
    metadata: dict,
    extra_meta: list[dict] | None = None,
) -> PairedDataset:
    """Make a dataset from ``(image_id, path, split, captions)`` records (one per image).

    ``extra_meta`` (filled while the records are consumed) holds one dict of further
    per-image fields per image; their union becomes ``image_meta`` columns (``None``
    where an image lacks a field).
    """
    ids: list[str] = []
    paths: list[Path] = []
    splits: list[str] = []
    captions: list[str] = []
    owner: list[int] = []
    for image_id, path, split, caps in records:
        if not caps:
            raise ValueError(f"image {image_id!r} ({path}) has no captions")
        blank = [j for j, c in enumerate(caps) if not c.strip()]
        if blank:
            # An empty caption would be encoded as a real text and trained on as a pair.
            raise ValueError(
                f"image {image_id!r} ({path}) has a blank caption (caption {blank[0]} of "
                f"{len(caps)}); remove it or give it text"
            )
        k = len(ids)
        ids.append(image_id)
        paths.append(path)
        splits.append(split)
        captions.extend(caps)
        owner.extend([k] * len(caps))
    if not ids:
        raise ValueError(f"dataset {name!r} has no images")
    if check_files:
        missing = [p for p in paths if not p.is_file()]
        if missing:
            shown = ", ".join(str(p) for p in missing[:3])
            raise FileNotFoundError(
                f"{len(missing)} of {len(paths)} image files of dataset {name!r} are missing "
                f"(first: {shown}); check image_root"
            )
        digests = [file_digest(p, digest) for p in paths]
    else:
        # Without the files the digest falls back to the path; documented in docs/data.md.
        digests = [f"path:{p}" for p in paths]

    def loader(i: int) -> Image.Image:
        return _open_rgb(paths[i])

    image_meta: dict[str, list] = {"path": [str(p) for p in paths]}
    for key in dict.fromkeys(k for row in extra_meta or [] for k in row):
        if key not in image_meta:
            image_meta[key] = [row.get(key) for row in extra_meta or []]
    return PairedDataset(
        name=name,
        image_ids=ids,
        captions=captions,
        caption_to_image=np.asarray(owner, dtype=np.int64),
        image_splits=splits,
        image_loader=loader,
        image_digests=digests,
        image_meta=image_meta,
        metadata=metadata,
        image_paths=paths,
    )


def _read_json(path: Path, what: str) -> object:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from e


def load_karpathy_json(
    json_path: str | os.PathLike,
    image_root: str | os.PathLike,
    *,
    name: str | None = None,
    restval: Literal["train", "val", "drop"] = "train",
    digest: DigestMode = "stat",
    check_files: bool = True,
) -> PairedDataset:
    """Load Karpathy's ``dataset_<name>.json`` (Flickr8k, Flickr30k, COCO).

    The file is ``{"dataset": ..., "images": [{"filename", "filepath"?, "split",
    "sentences": [{"raw": ...}, ...], "imgid"?, "cocoid"?}, ...]}``. Image paths are
    ``image_root / filepath / filename`` (``filepath`` is present for COCO only).

    Args:
        json_path: the Karpathy JSON file.
        image_root: folder holding the images (for COCO, the folder that contains
            ``train2014/`` and ``val2014/``).
        name: dataset name; defaults to the file's ``"dataset"`` field.
        restval: where COCO's ``restval`` images go: into ``"train"`` (the usual
            113k-image train split), ``"val"``, or ``"drop"``.
        digest: image digest mode, see :func:`file_digest`.
        check_files: require every image file to exist (and digest it).
    """
    json_path = Path(json_path)
    image_root = Path(image_root)
    if restval not in ("train", "val", "drop"):
        raise ValueError(f"restval must be 'train', 'val' or 'drop', got {restval!r}")
    data = _read_json(json_path, "Karpathy annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(
            f"json_path {json_path} must hold an object with an 'images' list (Karpathy layout)"
        )
    ds_name = name or str(data.get("dataset") or json_path.stem)
    fields: list[dict] = []

    def records() -> Iterable[tuple[str, Path, str, list[str]]]:
        for k, item in enumerate(data["images"]):
            try:
                filename = item["filename"]
                split = item["split"]
                caps = [s["raw"].strip() for s in item["sentences"]]
            except (KeyError, TypeError, AttributeError) as e:
                raise ValueError(
                    f"images[{k}] in {json_path} lacks 'filename', 'split' or 'sentences[].raw' "
                    "(a string)"
                ) from e
            if split == "restval":
                if restval == "drop":
                    continue
                split = restval
            sub = item.get("filepath", "")
            image_id = str(item.get("cocoid", item.get("imgid", Path(filename).stem)))
            # Every per-image field but the captions (imgid, cocoid, sentids, the file's
            # own split such as "restval", ...) stays available to evaluation and plots.
            fields.append({k: v for k, v in item.items() if k != "sentences"})
            yield image_id, image_root / sub / filename, split, caps

    return _build(
        ds_name,
        records(),
        digest=digest,
        check_files=check_files,
        metadata={"source": "karpathy", "annotations": str(json_path)},
        extra_meta=fields,
    )


def load_blip_json(
    ann_root: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset: Literal["flickr30k", "coco"],
    *,
    splits: Sequence[str] = ("train", "val", "test"),
    digest: DigestMode = "stat",
    check_files: bool = True,
) -> PairedDataset:
    """Load BLIP's Karpathy-split files for Flickr30k or COCO.

    Files: ``ann_root/flickr30k_{split}.json`` or ``ann_root/coco_karpathy_{split}.json``.
    Train files are lists of ``{"image", "caption": str, "image_id"}`` (one entry per
    caption); val/test files are lists of ``{"image", "caption": [str, ...]}`` (one
    entry per image). ``image`` is relative to ``image_root``.

    Args:
        ann_root: folder holding the JSON files.
        image_root: folder the ``image`` paths are relative to.
        dataset: ``"flickr30k"`` or ``"coco"``.
        splits: which split files to read (each must exist).
        digest: image digest mode, see :func:`file_digest`.
        check_files: require every image file to exist (and digest it).
    """
    if dataset not in _BLIP_FILES:
        raise ValueError(f"dataset must be one of {sorted(_BLIP_FILES)}, got {dataset!r}")
    ann_root = Path(ann_root)
    image_root = Path(image_root)
    by_image: dict[str, tuple[str, list[str]]] = {}
    order: list[str] = []
    for split in splits:
        path = ann_root / _BLIP_FILES[dataset].format(split=split)
        data = _read_json(path, f"BLIP {dataset} {split} annotation file")
        if not isinstance(data, list):
            raise ValueError(f"{path} must hold a JSON list of annotations (BLIP layout)")
        for k, item in enumerate(data):
            if not isinstance(item, dict) or "image" not in item or "caption" not in item:
                raise ValueError(
                    f"entry {k} of {path} must be an object with 'image' and 'caption'"
                )
            rel = item["image"]
            caps = item["caption"]
            caps = [caps] if isinstance(caps, str) else caps
            if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
                raise ValueError(
                    f"entry {k} of {path}: 'caption' must be a string or a list of strings, "
                    f"got {item['caption']!r}"
                )
            if rel in by_image:
                prev_split, prev_caps = by_image[rel]
                if prev_split != split:
                    raise ValueError(
                        f"image {rel!r} appears in both split {prev_split!r} and split {split!r}"
                    )
                prev_caps.extend(c.strip() for c in caps)
            else:
                by_image[rel] = (split, [c.strip() for c in caps])
                order.append(rel)

    def records() -> Iterable[tuple[str, Path, str, list[str]]]:
        for rel in order:
            split, caps = by_image[rel]
            yield rel, image_root / rel, split, caps

    return _build(
        dataset,
        records(),
        digest=digest,
        check_files=check_files,
        metadata={"source": "blip", "annotations": str(ann_root)},
    )


def _read_table(path: Path) -> list[tuple[int, dict]]:
    """The rows of a CSV or JSONL table, each with the line number it ends on."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            return [(reader.line_num, row) for row in reader]
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"line {line_no} of {path} is not valid JSON: {e}") from e
                if not isinstance(row, dict):
                    raise ValueError(f"line {line_no} of {path} must be a JSON object")
                rows.append((line_no, row))
        return rows
    raise ValueError(f"path must end in .csv, .jsonl or .ndjson, got {path.name!r}")


def load_caption_table(
    path: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    name: str | None = None,
    image_column: str = "image",
    caption_column: str = "caption",
    split_column: str = "split",
    default_split: str = "train",
    digest: DigestMode = "stat",
    check_files: bool = True,
) -> PairedDataset:
    """Load a CSV or JSONL of ``(image path, caption)`` rows, one row per caption.

    Rows with the same image path are captions of one image (captions are grouped
    per image, images in first-seen order). A ``split`` column is
    optional (rows without one go to ``default_split``); an image's rows must agree
    on the split. Relative image paths are resolved against ``image_root``
    (default: the table's folder).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"caption table not found: {path}")
    root = Path(image_root) if image_root is not None else path.parent
    rows = _read_table(path)
    by_image: dict[str, tuple[str, list[str]]] = {}
    for line_no, row in rows:
        img = row.get(image_column)
        cap = row.get(caption_column)
        if not isinstance(img, str) or not img or not isinstance(cap, str):
            raise ValueError(
                f"line {line_no} of {path} needs string columns {image_column!r} and "
                f"{caption_column!r}, got {row!r}"
            )
        if not cap.strip():
            raise ValueError(
                f"line {line_no} of {path}: the {caption_column!r} of image {img!r} is blank; "
                "remove the row or give it a caption"
            )
        split = row.get(split_column) or default_split
        if img in by_image:
            if by_image[img][0] != split:
                raise ValueError(
                    f"rows of image {img!r} in {path} disagree on the split "
                    f"({by_image[img][0]!r} vs {split!r})"
                )
            by_image[img][1].append(cap.strip())
        else:
            by_image[img] = (str(split), [cap.strip()])

    def records() -> Iterable[tuple[str, Path, str, list[str]]]:
        for img, (split, caps) in by_image.items():
            p = Path(img)
            yield img, (p if p.is_absolute() else root / p), split, caps

    return _build(
        name or path.stem,
        records(),
        digest=digest,
        check_files=check_files,
        metadata={"source": "table", "annotations": str(path)},
    )
