"""One entry point from a dataset string (what ``--dataset`` takes) to a paired dataset.

=======================================  ==========================================
``emoji``, ``fashion-mnist``             built-in (offline) datasets
``/a/dataset_flickr30k.json``            Karpathy JSON (``image_root`` required)
``/a/pairs.csv``, ``/a/pairs.jsonl``     caption table
``hf:/a/folder``                         ``datasets`` ``save_to_disk`` folder, or a
                                         folder of parquet files
``/a/train.parquet``                     parquet file
``/a/{000000..000009}.tar``, ``/a/x.tar``  webdataset shards
=======================================  ==========================================

Then, for every kind: ``split_ratios`` assigns splits to a dataset without any,
and ``limit`` keeps a deterministic subset of images (built-in datasets apply
their own documented ``limit``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dataset import PairedDataset
from .splits import assign_split_ratios, limit_images

__all__ = ["DatasetOptions", "open_dataset", "DATASET_KINDS"]

#: What a dataset string may be, for error messages and ``--help``.
DATASET_KINDS = (
    "emoji, fashion-mnist, a Karpathy .json (with image_root), a .csv/.jsonl caption table, "
    "hf:FOLDER (datasets save_to_disk or parquet files), a .parquet file, or webdataset "
    "shards (.tar or a pattern like shards/{000000..000009}.tar)"
)


@dataclass(frozen=True)
class DatasetOptions:
    """How to read a dataset string; every field is optional.

    Attributes:
        image_root: image folder of a Karpathy JSON or a table of paths.
        image_column / caption_column / split_column: column names of a table,
            ``datasets`` folder or parquet file (``None``: each loader's default).
            For webdataset shards ``caption_column`` is a key of the ``.json``
            member (default: the ``.txt`` lines).
        limit: keep this many images (see :func:`~hypervldd.data.splits.limit_images`).
        split_ratios: e.g. ``"0.8,0.1,0.1"``, for a dataset without splits.
        split_seed: seed of the split assignment.
        progress: progress bars where loading takes long (the emoji rendering).
    """

    image_root: str | os.PathLike | None = None
    image_column: str | None = None
    caption_column: str | None = None
    split_column: str | None = None
    limit: int | None = None
    split_ratios: str | None = None
    split_seed: int = 0
    progress: bool = True


def _columns(opts: DatasetOptions) -> dict[str, str]:
    names = {
        "image_column": opts.image_column,
        "caption_column": opts.caption_column,
        "split_column": opts.split_column,
    }
    return {k: v for k, v in names.items() if v is not None}


def _is_shards(text: str) -> bool:
    # A missing shard is reported by the webdataset loader, which names it.
    return text.lower().endswith(".tar")


def _read(spec: str, opts: DatasetOptions) -> PairedDataset:
    from . import BUILTIN_DATASETS, load_dataset
    from .loaders import load_caption_table, load_karpathy_json

    if spec in BUILTIN_DATASETS:
        kwargs: dict[str, Any] = {"limit": opts.limit}
        if spec == "emoji":
            kwargs["progress"] = opts.progress
        return load_dataset(spec, **kwargs)
    if spec.startswith("hf:"):
        from .hf import load_hf_dataset

        return load_hf_dataset(spec[3:], image_root=opts.image_root, **_columns(opts))
    if spec.lower().endswith(".parquet"):
        from .hf import load_parquet

        return load_parquet(spec, image_root=opts.image_root, **_columns(opts))
    if _is_shards(spec):
        from .webdataset import load_webdataset

        return load_webdataset(spec, json_caption_key=opts.caption_column)
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix == ".json" and path.is_file():
        if opts.image_root is None:
            raise ValueError(
                f"dataset {spec!r} is a Karpathy-style JSON: give its image folder (image_root, "
                "--image-root)"
            )
        return load_karpathy_json(path, opts.image_root)
    if suffix in {".csv", ".jsonl", ".ndjson"} and path.is_file():
        return load_caption_table(path, image_root=opts.image_root, **_columns(opts))
    raise ValueError(f"dataset must be one of: {DATASET_KINDS}; got {spec!r}")


def open_dataset(spec: str | PairedDataset, options: DatasetOptions | None = None) -> PairedDataset:
    """The paired dataset a dataset string names, re-split and limited as ``options`` ask.

    A :class:`PairedDataset` passes through (``split_ratios`` and ``limit`` apply).

    >>> ds = open_dataset("emoji", DatasetOptions(limit=10, progress=False))  # doctest: +SKIP
    >>> ds.num_images  # doctest: +SKIP
    10
    """
    from . import BUILTIN_DATASETS

    opts = options or DatasetOptions()
    ds = spec if isinstance(spec, PairedDataset) else _read(str(spec), opts)
    if opts.split_ratios is not None:
        ds = assign_split_ratios(ds, opts.split_ratios, seed=opts.split_seed)
    if not (isinstance(spec, str) and spec in BUILTIN_DATASETS):
        ds = limit_images(ds, opts.limit)
    return ds
