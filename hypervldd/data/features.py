"""Feature extraction with an on-disk cache that cannot be reused when stale.

:func:`extract_features` returns the complete feature set of one dataset split
as :class:`PairedFeatures`. Image and text features are cached in separate
safetensors files, each keyed by

* the data fingerprint of its side (image ids + per-image digests, or the
  captions in order), and
* the encoder fingerprint (weights, preprocessing, pooling, normalisation).

The key is part of the file name *and* stored inside the file; on load the file
must parse, carry this package's format tag, carry the expected key, hold one
float32 tensor of the expected shape whose bytes match the stored SHA-256, and be
finite. Anything else raises :class:`FeatureCacheError` naming the file and the
reason; nothing is silently recomputed over a damaged file, since that usually
means something else is wrong (a concurrent writer, a full disk, a foreign file).
Writes are atomic (temporary file + ``os.replace``).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ._io import atomic_path, default_cache_dir, sha256_json
from .dataset import PairedDataset, PairedSplit
from .encoders import ImageEncoder, TextEncoder

__all__ = [
    "PairedFeatures",
    "FeatureCacheError",
    "feature_cache_path",
    "save_feature_file",
    "load_feature_file",
    "extract_features",
]

_FORMAT = "hypervldd.features"
_FORMAT_VERSION = "1"
_TENSOR = "features"


class FeatureCacheError(ValueError):
    """A feature cache file is unreadable, damaged, foreign or for other inputs."""


@dataclass(eq=False)
class PairedFeatures:
    """Frozen-encoder features of one dataset split.

    Attributes:
        image_features: ``(N_img, D_i)`` float32.
        text_features: ``(N_txt, D_t)`` float32.
        caption_to_image: ``(N_txt,)`` int64, split-local image index of each caption.
        image_ids: ``N_img`` image ids.
        captions: ``N_txt`` captions (as stored in the dataset, before any cleaning).
        image_meta: per-image metadata columns, each of length ``N_img``.
        metadata: dataset, split, fingerprints, encoder ids and dims, cache files, timings.
    """

    image_features: torch.Tensor
    text_features: torch.Tensor
    caption_to_image: torch.Tensor
    image_ids: list[str]
    captions: list[str]
    image_meta: dict[str, list[Any]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("image_features", "text_features"):
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or t.dim() != 2 or not t.is_floating_point():
                raise ValueError(
                    f"{name} must be a 2-D floating tensor, got "
                    f"{getattr(t, 'shape', type(t).__name__)}"
                )
        n_img, n_txt = self.image_features.shape[0], self.text_features.shape[0]
        cti = self.caption_to_image
        if not isinstance(cti, torch.Tensor) or cti.shape != (n_txt,) or cti.dtype != torch.int64:
            raise ValueError(
                f"caption_to_image must be an int64 tensor of shape ({n_txt},), got "
                f"{getattr(cti, 'dtype', None)} {getattr(cti, 'shape', None)}"
            )
        if n_txt and (int(cti.min()) < 0 or int(cti.max()) >= n_img):
            raise ValueError(f"caption_to_image values must lie in [0, {n_img})")
        if len(self.image_ids) != n_img:
            raise ValueError(f"image_ids must have {n_img} entries, got {len(self.image_ids)}")
        if len(self.captions) != n_txt:
            raise ValueError(f"captions must have {n_txt} entries, got {len(self.captions)}")
        for k, col in self.image_meta.items():
            if len(col) != n_img:
                raise ValueError(f"image_meta[{k!r}] must have {n_img} entries, got {len(col)}")

    @property
    def num_images(self) -> int:
        return int(self.image_features.shape[0])

    @property
    def num_captions(self) -> int:
        return int(self.text_features.shape[0])

    def image_to_captions(self) -> list[torch.Tensor]:
        """For each image, the indices of its captions (int64 tensors)."""
        order = torch.argsort(self.caption_to_image, stable=True)
        counts = torch.bincount(self.caption_to_image, minlength=self.num_images)
        return list(torch.split(order, counts.tolist()))

    def to(self, device: str | torch.device) -> PairedFeatures:
        """A copy with the three tensors on ``device``."""
        return PairedFeatures(
            self.image_features.to(device),
            self.text_features.to(device),
            self.caption_to_image.to(device),
            self.image_ids,
            self.captions,
            self.image_meta,
            self.metadata,
        )


# ----------------------------------------------------------------------------------------
# Cache files
# ----------------------------------------------------------------------------------------
def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s)[:60]


def feature_cache_path(
    cache_dir: str | os.PathLike, dataset: str, split: str, side: str, encoder_id: str, key: str
) -> Path:
    """``cache_dir/<dataset>/<split>/<side>-<encoder id>-<key[:24]>.safetensors``."""
    return (
        Path(cache_dir)
        / _safe_name(dataset)
        / _safe_name(split)
        / f"{side}-{_safe_name(encoder_id)}-{key[:24]}.safetensors"
    )


def _tensor_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def save_feature_file(
    path: str | os.PathLike, features: torch.Tensor, *, key: str, info: dict[str, str]
) -> None:
    """Write ``(N, D)`` float32 features atomically with the key and a checksum."""
    feats = features.detach().to("cpu", torch.float32).contiguous()
    if feats.dim() != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {tuple(feats.shape)}")
    meta = {
        **{k: str(v) for k, v in info.items()},
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "key": key,
        "shape": f"{feats.shape[0]},{feats.shape[1]}",
        "sha256": _tensor_sha256(feats),
    }
    with atomic_path(path) as tmp:
        save_file({_TENSOR: feats}, str(tmp), metadata=meta)


def load_feature_file(
    path: str | os.PathLike, *, key: str, rows: int, dim: int
) -> tuple[torch.Tensor, dict[str, str]]:
    """Load and validate a feature file written by :func:`save_feature_file`.

    Raises:
        FeatureCacheError: when the file cannot be parsed (truncated, corrupt), is not
            a feature file of this package, was written for another key, or holds a
            tensor of the wrong dtype/shape/content.
    """
    path = Path(path)

    def refuse(reason: str) -> FeatureCacheError:
        return FeatureCacheError(
            f"feature cache file {path} refused: {reason}. Delete it to recompute the features."
        )

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            names = list(f.keys())
            if meta.get("format") != _FORMAT:
                raise refuse(f"not a {_FORMAT} file (format tag {meta.get('format')!r})")
            if meta.get("format_version") != _FORMAT_VERSION:
                raise refuse(
                    f"format version {meta.get('format_version')!r}, expected {_FORMAT_VERSION!r}"
                )
            if meta.get("key") != key:
                raise refuse(
                    "it was written for other data, encoder or preprocessing "
                    f"(key {str(meta.get('key'))[:16]}..., expected {key[:16]}...)"
                )
            if names != [_TENSOR]:
                raise refuse(f"expected one tensor {_TENSOR!r}, found {names}")
            feats = f.get_tensor(_TENSOR)
    except FeatureCacheError:
        raise
    except FileNotFoundError:
        raise
    except Exception as e:  # safetensors raises several types for a damaged header/body
        raise refuse(f"not a readable safetensors file (truncated or corrupt: {e})") from e
    if feats.dtype != torch.float32:
        raise refuse(f"dtype {feats.dtype}, expected torch.float32")
    if tuple(feats.shape) != (rows, dim):
        raise refuse(f"shape {tuple(feats.shape)}, expected ({rows}, {dim})")
    if _tensor_sha256(feats) != meta.get("sha256"):
        raise refuse("checksum mismatch (the tensor bytes were changed after writing)")
    if not bool(torch.isfinite(feats).all()):
        raise refuse("it holds NaN or inf values")
    return feats, meta


# ----------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------
def _cached(
    path: Path | None,
    key: str,
    rows: int,
    dim: int,
    info: dict[str, str],
    compute: Callable[[], torch.Tensor],
    recompute: bool,
) -> tuple[torch.Tensor, bool]:
    if path is not None and path.is_file() and not recompute:
        feats, _ = load_feature_file(path, key=key, rows=rows, dim=dim)
        return feats, True
    feats = compute()
    if tuple(feats.shape) != (rows, dim):
        raise RuntimeError(f"encoder produced shape {tuple(feats.shape)}, expected ({rows}, {dim})")
    if not bool(torch.isfinite(feats).all()):
        raise RuntimeError(f"encoder {info.get('encoder_id')} produced NaN or inf features")
    if path is not None:
        save_feature_file(path, feats, key=key, info=info)
    return feats, False


def _check_batch(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def extract_features(
    dataset: PairedDataset,
    split: str,
    image_encoder: ImageEncoder,
    text_encoder: TextEncoder,
    cache_dir: str | os.PathLike | None = None,
    *,
    batch_size: int = 64,
    text_batch_size: int = 256,
    use_cache: bool = True,
    recompute: bool = False,
    progress: bool = True,
) -> PairedFeatures:
    """The complete frozen-encoder feature set of one split, cached on disk.

    Args:
        dataset: the paired dataset.
        split: split name (one of ``dataset.splits``).
        image_encoder: an :class:`~hypervldd.data.encoders.ImageEncoder`.
        text_encoder: a :class:`~hypervldd.data.encoders.TextEncoder`.
        cache_dir: folder for feature files (default
            ``$HYPERVLDD_CACHE/features`` or ``~/.cache/hypervldd/features``).
        batch_size: images per encoder call.
        text_batch_size: captions per encoder call (duplicate captions are encoded once).
        use_cache: read and write the cache (``False``: compute, write nothing).
        recompute: ignore existing cache files and overwrite them.
        progress: tqdm bars while encoding.

    Returns:
        :class:`PairedFeatures` with image features ``(N_img, D_i)``, text features
        ``(N_txt, D_t)`` and ``caption_to_image`` ``(N_txt,)``.

    Raises:
        FeatureCacheError: an existing cache file for these inputs is damaged or foreign.
    """
    if not isinstance(dataset, PairedDataset):
        raise TypeError(f"dataset must be a PairedDataset, got {type(dataset).__name__}")
    if not isinstance(image_encoder, ImageEncoder):
        raise TypeError(
            f"image_encoder must be an ImageEncoder, got {type(image_encoder).__name__}"
        )
    if not isinstance(text_encoder, TextEncoder):
        raise TypeError(f"text_encoder must be a TextEncoder, got {type(text_encoder).__name__}")
    _check_batch("batch_size", batch_size)
    _check_batch("text_batch_size", text_batch_size)
    sp: PairedSplit = dataset.split(split)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "features"

    image_fp = sp.image_fingerprint()
    text_fp = sp.text_fingerprint()
    ienc_fp = image_encoder.fingerprint()
    tenc_fp = text_encoder.fingerprint()
    ikey = sha256_json(
        {"side": "image", "data": image_fp, "encoder": ienc_fp, "v": _FORMAT_VERSION}
    )
    tkey = sha256_json({"side": "text", "data": text_fp, "encoder": tenc_fp, "v": _FORMAT_VERSION})
    ipath = feature_cache_path(root, dataset.name, split, "image", image_encoder.id, ikey)
    tpath = feature_cache_path(root, dataset.name, split, "text", text_encoder.id, tkey)
    if not use_cache:
        ipath = tpath = None
    captions = sp.captions

    def encode_images() -> torch.Tensor:
        out = torch.empty(sp.num_images, image_encoder.dim)
        bar = tqdm(
            total=sp.num_images,
            desc=f"encode images ({image_encoder.id})",
            disable=not progress,
            unit="img",
        )
        with bar:
            for start in range(0, sp.num_images, batch_size):
                stop = min(start + batch_size, sp.num_images)
                imgs = [sp.load_image(i) for i in range(start, stop)]
                out[start:stop] = image_encoder.encode_images(imgs)
                bar.update(stop - start)
        return out

    def encode_texts() -> torch.Tensor:
        unique, inverse = np.unique(np.asarray(captions, dtype=object), return_inverse=True)
        # Batches of similar length waste little compute on padding tokens.
        by_length = np.argsort([len(c) for c in unique], kind="stable")
        feats = torch.empty(len(unique), text_encoder.dim)
        bar = tqdm(
            total=len(unique),
            desc=f"encode texts ({text_encoder.id})",
            disable=not progress,
            unit="txt",
        )
        with bar:
            for start in range(0, len(unique), text_batch_size):
                idx = by_length[start : start + text_batch_size]
                feats[torch.from_numpy(idx)] = text_encoder.encode_texts(list(unique[idx]))
                bar.update(len(idx))
        return feats[torch.from_numpy(inverse.reshape(-1).astype(np.int64))]

    common = {"dataset": dataset.name, "split": split}
    t0, c0 = time.perf_counter(), time.process_time()
    img_feats, img_hit = _cached(
        ipath,
        ikey,
        sp.num_images,
        image_encoder.dim,
        {
            **common,
            "side": "image",
            "encoder_id": image_encoder.id,
            "encoder_fingerprint": ienc_fp,
            "data_fingerprint": image_fp,
        },
        encode_images,
        recompute,
    )
    t1, c1 = time.perf_counter(), time.process_time()
    txt_feats, txt_hit = _cached(
        tpath,
        tkey,
        sp.num_captions,
        text_encoder.dim,
        {
            **common,
            "side": "text",
            "encoder_id": text_encoder.id,
            "encoder_fingerprint": tenc_fp,
            "data_fingerprint": text_fp,
        },
        encode_texts,
        recompute,
    )
    t2, c2 = time.perf_counter(), time.process_time()
    return PairedFeatures(
        image_features=img_feats,
        text_features=txt_feats,
        caption_to_image=torch.from_numpy(sp.caption_to_image.copy()),
        image_ids=sp.image_ids,
        captions=captions,
        image_meta=sp.image_meta,
        metadata={
            "dataset": dataset.name,
            "split": split,
            "data_fingerprint": sp.fingerprint(),
            "image_data_fingerprint": image_fp,
            "text_data_fingerprint": text_fp,
            "image_encoder": image_encoder.id,
            "image_encoder_fingerprint": ienc_fp,
            "image_dim": image_encoder.dim,
            "text_encoder": text_encoder.id,
            "text_encoder_fingerprint": tenc_fp,
            "text_dim": text_encoder.dim,
            "image_cache_file": str(ipath) if ipath else None,
            "text_cache_file": str(tpath) if tpath else None,
            "image_cache_hit": img_hit,
            "text_cache_hit": txt_hit,
            "image_seconds": t1 - t0,
            "text_seconds": t2 - t1,
            # CPU seconds of this process (all threads): less sensitive to other load.
            "image_cpu_seconds": c1 - c0,
            "text_cpu_seconds": c2 - c1,
            "dataset_metadata": dataset.metadata,
        },
    )
