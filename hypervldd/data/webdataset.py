"""webdataset tar shards (the open_clip / LAION layout) as a paired dataset.

A shard is an uncompressed tar whose members are grouped into samples by key:
the member name up to the first dot of its base name (``000123.jpg``,
``000123.txt`` and ``000123.json`` are one sample). A sample's image is the
member with an image extension; its captions are the non-empty lines of its
``.txt`` member, or a key of its ``.json`` member (a string or a list).

The shards are read with the standard :mod:`tarfile` module, never unpacked: one
pass records where each image's bytes start in its shard, and an image is read
from there when it is encoded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .dataset import PairedDataset
from .loaders import DigestMode, _open_rgb

__all__ = ["load_webdataset", "expand_shards", "IMAGE_EXTENSIONS"]

#: Member extensions read as images.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "ppm")

_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_shards(pattern: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Shard paths of a brace pattern ``data/{000000..000009}.tar`` (zero-padded as written).

    A list is returned as paths; a plain path is one shard.

    >>> [p.name for p in expand_shards("s/{08..10}.tar")]
    ['08.tar', '09.tar', '10.tar']
    """
    if not isinstance(pattern, (str, os.PathLike)):
        return [Path(p) for p in pattern]
    text = str(pattern)
    m = _BRACES.search(text)
    if m is None:
        return [Path(text)]
    lo, hi = int(m.group(1)), int(m.group(2))
    if hi < lo:
        raise ValueError(f"shard pattern {text!r} counts down ({lo} > {hi})")
    width = len(m.group(1))
    out: list[Path] = []
    for k in range(lo, hi + 1):
        out.extend(expand_shards(text[: m.start()] + f"{k:0{width}d}" + text[m.end() :]))
    return out


def _split_member(name: str) -> tuple[str, str]:
    """``("dir/000123", "jpg")`` for ``dir/000123.jpg``; extensions are lower-cased."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{head}/{stem}" if head else stem
    return key, ext.lower() if dot else ""


def _captions(sample: dict[str, Any], json_key: str | None, where: str) -> list[str]:
    if json_key is None:
        if "txt" not in sample:
            raise ValueError(f"sample {where} has no .txt caption")
        return [line.strip() for line in sample["txt"].splitlines() if line.strip()]
    if "json" not in sample:
        raise ValueError(f"sample {where} has no .json member (caption key {json_key!r})")
    value = sample["json"].get(json_key) if isinstance(sample["json"], dict) else None
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if not all(v.strip() for v in value):
            # An empty caption would be encoded as a real text and trained on as a pair.
            raise ValueError(f"caption key {json_key!r} of sample {where} holds a blank caption")
        return [v.strip() for v in value]
    raise ValueError(
        f"caption key {json_key!r} of sample {where} must be a string or a list of strings, "
        f"got {value!r}"
    )


def load_webdataset(
    shards: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    name: str | None = None,
    json_caption_key: str | None = None,
    split_key: str = "split",
    default_split: str = "train",
    digest: DigestMode = "stat",
) -> PairedDataset:
    """Paired dataset from webdataset tar shards (uncompressed ``.tar``).

    Args:
        shards: a shard, a list of shards, or a brace pattern
            ``/data/cc/{000000..000009}.tar``.
        json_caption_key: read captions from this key of each sample's ``.json``
            instead of the ``.txt`` lines.
        split_key: a key of the sample's ``.json`` giving its split, if present;
            otherwise ``default_split`` (assign splits with ``split_ratios``).
        digest: ``"stat"`` (shard size + mtime + the member's offset; cheap) or
            ``"content"`` (SHA-256 of the image bytes, read in the first pass).

    Per-image metadata: ``shard``, ``key``, and the scalar fields of the ``.json``.

    Example::

        ds = load_webdataset("/data/cc3m/{00000..00331}.tar")
    """
    if digest not in ("stat", "content"):
        raise ValueError(f"digest must be 'stat' or 'content', got {digest!r}")
    paths = expand_shards(shards)
    if not paths:
        raise ValueError("shards must name at least one tar file")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} shards are missing (first: {shown})"
        )
    ids: list[str] = []
    where: list[tuple[int, int, int]] = []  # shard, data offset, size
    splits: list[str] = []
    captions: list[str] = []
    owner: list[int] = []
    digests: list[str] = []
    meta: dict[str, list[Any]] = {"shard": [], "key": []}
    seen: dict[str, str] = {}
    for si, path in enumerate(paths):
        st = os.stat(path)
        shard_stat = f"{path.name}:{st.st_size}:{st.st_mtime_ns}"
        try:
            tar = tarfile.open(path, mode="r:")
        except tarfile.ReadError as e:
            raise ValueError(f"shard {path} is not an uncompressed tar file: {e}") from e
        with tar:
            samples: dict[str, dict[str, Any]] = {}
            for member in tar:
                if not member.isfile():
                    continue
                key, ext = _split_member(member.name)
                sample = samples.setdefault(key, {})
                if ext in IMAGE_EXTENSIONS:
                    sample["image"] = (member.offset_data, member.size)
                elif ext == "txt":
                    sample["txt"] = tar.extractfile(member).read().decode("utf-8")
                elif ext == "json":
                    try:
                        sample["json"] = json.loads(tar.extractfile(member).read())
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{member.name} in {path} is not valid JSON: {e}") from e
            for key, sample in samples.items():
                if "image" not in sample:
                    continue  # e.g. a stray text file: a sample needs an image to be one
                where_txt = f"{key!r} in {path}"
                caps = _captions(sample, json_caption_key, where_txt)
                if not caps:
                    raise ValueError(f"sample {where_txt} has no captions")
                if key in seen:
                    raise ValueError(f"sample key {key!r} is in both {seen[key]} and {path}")
                seen[key] = str(path)
                info = sample.get("json") if isinstance(sample.get("json"), dict) else {}
                k = len(ids)
                ids.append(key)
                offset, size = sample["image"]
                where.append((si, offset, size))
                split = info.get(split_key) if split_key else None
                splits.append(str(split) if split else default_split)
                captions.extend(caps)
                owner.extend([k] * len(caps))
                if digest == "content":
                    tar.fileobj.seek(offset)
                    digests.append("sha256:" + hashlib.sha256(tar.fileobj.read(size)).hexdigest())
                else:
                    digests.append(f"tar:{shard_stat}:{offset}")
                meta["shard"].append(path.name)
                meta["key"].append(key)
                for field, value in info.items():
                    if isinstance(value, (str, int, float, bool)) and field != json_caption_key:
                        meta.setdefault(field, [None] * k).append(value)
                for col in meta.values():
                    if len(col) == k:
                        col.append(None)
    if not ids:
        raise ValueError(f"no samples with an image ({', '.join(IMAGE_EXTENSIONS)}) in the shards")

    def loader(i: int) -> Image.Image:
        si, offset, size = where[i]
        with open(paths[si], "rb") as f:
            f.seek(offset)
            data = f.read(size)
        return _open_rgb(data, f"{ids[i]!r} in {paths[si]}")

    return PairedDataset(
        name=name or paths[0].parent.name or "webdataset",
        image_ids=ids,
        captions=captions,
        caption_to_image=np.asarray(owner, dtype=np.int64),
        image_splits=splits,
        image_loader=loader,
        image_digests=digests,
        image_meta=meta,
        metadata={"source": "webdataset", "shards": [str(p) for p in paths]},
    )
