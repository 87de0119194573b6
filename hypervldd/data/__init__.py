"""Paired image-text datasets, frozen encoders and the feature cache.

Data flows: a :class:`PairedDataset` (from a loader or a built-in dataset) ->
:func:`extract_features` with an :class:`ImageEncoder` and a :class:`TextEncoder`
-> :class:`PairedFeatures` (cached on disk, keyed by data + encoder fingerprints).
See ``docs/data.md``.
"""

from __future__ import annotations

from typing import Any

from ._io import default_cache_dir
from .dataset import DEFAULT_SPLIT_FRACTIONS, PairedDataset, PairedSplit, assign_splits
from .emoji import load_emoji, parse_emoji_test
from .encoders import (
    EfficientNetLite0Encoder,
    FrozenEncoder,
    HFImageEncoder,
    HFTextEncoder,
    ImageEncoder,
    ImagePreprocess,
    OpenCLIPImageEncoder,
    OpenCLIPTextEncoder,
    TextEncoder,
    TextPreprocess,
    TimmImageEncoder,
    efficientnet_lite0,
    load_open_clip,
    minilm_l6_v2,
)
from .fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from .features import (
    FeatureCacheError,
    PairedFeatures,
    extract_features,
    load_feature_file,
    save_feature_file,
)
from .hf import load_hf_dataset, load_parquet
from .loaders import ImageFileError, load_blip_json, load_caption_table, load_karpathy_json
from .sources import DatasetOptions, open_dataset
from .splits import assign_split_ratios, limit_images, subset_images
from .webdataset import load_webdataset

__all__ = [
    "BUILTIN_DATASETS",
    "DEFAULT_SPLIT_FRACTIONS",
    "PairedDataset",
    "PairedSplit",
    "assign_splits",
    "default_cache_dir",
    "load_dataset",
    "load_emoji",
    "parse_emoji_test",
    "load_fashion_mnist",
    "FASHION_MNIST_CLASSES",
    "load_karpathy_json",
    "load_blip_json",
    "load_caption_table",
    "load_hf_dataset",
    "load_parquet",
    "load_webdataset",
    "DatasetOptions",
    "open_dataset",
    "limit_images",
    "assign_split_ratios",
    "subset_images",
    "ImageFileError",
    "FrozenEncoder",
    "ImageEncoder",
    "TextEncoder",
    "ImagePreprocess",
    "TextPreprocess",
    "EfficientNetLite0Encoder",
    "TimmImageEncoder",
    "HFTextEncoder",
    "HFImageEncoder",
    "OpenCLIPImageEncoder",
    "OpenCLIPTextEncoder",
    "efficientnet_lite0",
    "minilm_l6_v2",
    "load_open_clip",
    "PairedFeatures",
    "FeatureCacheError",
    "extract_features",
    "save_feature_file",
    "load_feature_file",
]

#: Names accepted by :func:`load_dataset` for the datasets that work offline.
BUILTIN_DATASETS = ("emoji", "fashion-mnist")


def load_dataset(name: str, **kwargs: Any) -> PairedDataset:
    """A built-in dataset by name: ``"emoji"`` or ``"fashion-mnist"``.

    Keyword arguments go to :func:`load_emoji` or :func:`load_fashion_mnist`.
    """
    if name == "emoji":
        return load_emoji(**kwargs)
    if name == "fashion-mnist":
        return load_fashion_mnist(**kwargs)
    raise ValueError(
        f"name must be one of {BUILTIN_DATASETS}, got {name!r}; for Flickr30k/COCO "
        "use load_karpathy_json or load_blip_json"
    )
