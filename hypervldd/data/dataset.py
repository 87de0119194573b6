"""The paired image-text dataset abstraction.

A :class:`PairedDataset` holds ``N_img`` images, ``N_txt`` captions, the image
each caption describes (``caption_to_image``, shape ``(N_txt,)``), the split each
image belongs to, per-image metadata columns and dataset-level metadata. Splits
are assigned per *image*, so all captions of an image are in the image's split.

Images are loaded lazily through :meth:`PairedDataset.load_image`; each image also
has a *digest* (a short string that changes when the pixels may have changed),
which makes the data fingerprint that feature caches are keyed by.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ._io import sha256_json

__all__ = [
    "PairedDataset",
    "PairedSplit",
    "assign_splits",
    "DEFAULT_SPLIT_FRACTIONS",
    "SPLIT_ASSIGNMENT_KEY",
]

#: Fractions of image groups for (train, val, test) used by the built-in datasets.
DEFAULT_SPLIT_FRACTIONS: Mapping[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}

#: ``metadata`` key recording how splits were assigned after loading (ratios, seed).
SPLIT_ASSIGNMENT_KEY = "split_assignment"

# Bumped when the meaning of a data fingerprint changes, so old caches stop matching.
_FINGERPRINT_VERSION = 1


def assign_splits(
    group_keys: Sequence[str],
    fractions: Mapping[str, float] = DEFAULT_SPLIT_FRACTIONS,
    *,
    seed: int = 0,
) -> list[str]:
    """Deterministic split per item, equal for all items that share a group key.

    Each distinct group key is hashed (SHA-256 of ``seed`` and the key) to a number
    in ``[0, 1)`` that picks the split from the cumulative ``fractions``. Because
    the choice depends only on the key, it does not change when other items are
    added or removed (a subset keeps the splits of the full set), and members of
    one group (e.g. skin-tone variants of one emoji) can never straddle splits.

    Args:
        group_keys: one key per item, length ``N``.
        fractions: split name -> fraction; positive, summing to 1.
        seed: changes the assignment as a whole.

    Returns:
        list of ``N`` split names.
    """
    if not fractions:
        raise ValueError("fractions must name at least one split, got an empty mapping")
    for name, frac in fractions.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"fractions keys must be non-empty split names, got {name!r}")
        if not (isinstance(frac, (int, float)) and frac > 0):
            raise ValueError(f"fractions[{name!r}] must be a positive number, got {frac!r}")
    total = float(sum(fractions.values()))
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {dict(fractions)} (sum {total})")
    names = list(fractions)
    edges = np.cumsum([fractions[n] / total for n in names])
    cache: dict[str, str] = {}
    out = []
    for key in group_keys:
        if key not in cache:
            digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
            u = int.from_bytes(digest[:8], "big") / 2.0**64
            idx = min(int(np.searchsorted(edges, u, side="right")), len(names) - 1)
            cache[key] = names[idx]
        out.append(cache[key])
    return out


# eq=False: fields hold numpy arrays, whose == is elementwise.
@dataclass(frozen=True, eq=False)
class PairedSplit:
    """One split of a :class:`PairedDataset`, with split-local indices.

    Attributes:
        dataset: the parent dataset.
        name: split name.
        image_indices: ``(N_img,)`` int64, indices of the split's images in the parent.
        caption_indices: ``(N_txt,)`` int64, indices of the split's captions in the parent.
        caption_to_image: ``(N_txt,)`` int64, for each caption the *split-local*
            index of its image (in ``[0, N_img)``).
    """

    dataset: PairedDataset
    name: str
    image_indices: np.ndarray
    caption_indices: np.ndarray
    caption_to_image: np.ndarray

    @property
    def num_images(self) -> int:
        return int(self.image_indices.shape[0])

    @property
    def num_captions(self) -> int:
        return int(self.caption_indices.shape[0])

    @property
    def image_ids(self) -> list[str]:
        """``N_img`` image ids, in split order."""
        return [self.dataset.image_ids[i] for i in self.image_indices]

    @property
    def captions(self) -> list[str]:
        """``N_txt`` captions, in split order."""
        return [self.dataset.captions[i] for i in self.caption_indices]

    @property
    def image_meta(self) -> dict[str, list[Any]]:
        """Per-image metadata columns restricted to this split (each of length ``N_img``)."""
        return {k: [v[i] for i in self.image_indices] for k, v in self.dataset.image_meta.items()}

    def load_image(self, i: int) -> Image.Image:
        """The split-local image ``i`` as an RGB PIL image."""
        if not 0 <= i < self.num_images:
            raise IndexError(
                f"image index {i} out of range for split {self.name!r} "
                f"with {self.num_images} images"
            )
        return self.dataset.load_image(int(self.image_indices[i]))

    def image_to_captions(self) -> list[np.ndarray]:
        """For each split-local image, the split-local indices of its captions."""
        order = np.argsort(self.caption_to_image, kind="stable")
        bounds = np.searchsorted(self.caption_to_image[order], np.arange(self.num_images + 1))
        return [order[bounds[i] : bounds[i + 1]] for i in range(self.num_images)]

    def _assignment(self) -> dict[str, Any]:
        # Present only for splits assigned after loading, so the keys of datasets whose
        # files carry their splits (and their feature caches) stay as they were.
        got = self.dataset.metadata.get(SPLIT_ASSIGNMENT_KEY)
        return {} if got is None else {"assignment": got}

    def image_fingerprint(self) -> str:
        """Hash of the split's images (ids + digests), in order, and any split assignment."""
        ds = self.dataset
        return sha256_json(
            {
                "v": _FINGERPRINT_VERSION,
                "dataset": ds.name,
                "images": [[ds.image_ids[i], ds.image_digest(int(i))] for i in self.image_indices],
                **self._assignment(),
            }
        )

    def text_fingerprint(self) -> str:
        """Hash of the split's captions, in order (the image pairing is not included)."""
        return sha256_json(
            {
                "v": _FINGERPRINT_VERSION,
                "dataset": self.dataset.name,
                "captions": self.captions,
                **self._assignment(),
            }
        )

    def fingerprint(self) -> str:
        """Hash of everything in the split: images, captions and their pairing."""
        return sha256_json(
            {
                "images": self.image_fingerprint(),
                "texts": self.text_fingerprint(),
                "pairs": hashlib.sha256(self.caption_to_image.astype("<i8").tobytes()).hexdigest(),
            }
        )


@dataclass(eq=False)
class PairedDataset:
    """Images with several captions each, split per image.

    Args:
        name: dataset name (part of every fingerprint).
        image_ids: ``N_img`` unique string ids.
        captions: ``N_txt`` caption strings.
        caption_to_image: ``(N_txt,)`` integer index of each caption's image.
        image_splits: ``N_img`` split names.
        image_loader: ``i -> PIL.Image`` for a global image index.
        image_digests: ``N_img`` strings that change when an image's pixels may change
            (a content hash, or file size + mtime for files on disk).
        image_meta: per-image metadata columns, each a list of length ``N_img``.
        metadata: free-form dataset-level metadata (e.g. a class list or a hierarchy).
        image_paths: optional ``N_img`` file paths, for datasets backed by files.
    """

    name: str
    image_ids: list[str]
    captions: list[str]
    caption_to_image: np.ndarray
    image_splits: list[str]
    image_loader: Callable[[int], Image.Image]
    image_digests: list[str]
    image_meta: dict[str, list[Any]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    image_paths: list[Path] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        n_img = len(self.image_ids)
        if len(set(self.image_ids)) != n_img:
            dup = _first_duplicate(self.image_ids)
            raise ValueError(f"image_ids must be unique, {dup!r} appears more than once")
        cti = np.asarray(self.caption_to_image)
        if cti.ndim != 1 or cti.shape[0] != len(self.captions):
            raise ValueError(
                f"caption_to_image must have shape ({len(self.captions)},) (one entry per "
                f"caption), got {cti.shape}"
            )
        if cti.size and not np.issubdtype(cti.dtype, np.integer):
            raise ValueError(f"caption_to_image must hold integers, got dtype {cti.dtype}")
        cti = cti.astype(np.int64)
        if cti.size and (cti.min() < 0 or cti.max() >= n_img):
            raise ValueError(
                f"caption_to_image values must lie in [0, {n_img}), "
                f"got range [{cti.min()}, {cti.max()}]"
            )
        self.caption_to_image = cti
        for attr in ("image_splits", "image_digests"):
            n = len(getattr(self, attr))
            if n != n_img:
                raise ValueError(f"{attr} must have one entry per image ({n_img}), got {n}")
        if self.image_paths is not None and len(self.image_paths) != n_img:
            raise ValueError(
                f"image_paths must have one entry per image ({n_img}), got {len(self.image_paths)}"
            )
        for key, col in self.image_meta.items():
            if len(col) != n_img:
                raise ValueError(
                    f"image_meta[{key!r}] must have one entry per image ({n_img}), got {len(col)}"
                )
        if not all(isinstance(c, str) for c in self.captions):
            raise ValueError("captions must all be strings")

    # -- sizes and splits ---------------------------------------------------------------
    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_captions(self) -> int:
        return len(self.captions)

    @property
    def splits(self) -> tuple[str, ...]:
        """Split names present, in first-seen order."""
        return tuple(dict.fromkeys(self.image_splits))

    def split(self, name: str) -> PairedSplit:
        """The split called ``name`` (see :attr:`splits`)."""
        if name not in self.splits:
            raise ValueError(
                f"split must be one of {self.splits} for dataset {self.name!r}, got {name!r}"
            )
        img = np.array([i for i, s in enumerate(self.image_splits) if s == name], dtype=np.int64)
        local = np.full(self.num_images, -1, dtype=np.int64)
        local[img] = np.arange(img.shape[0])
        cap = np.nonzero(local[self.caption_to_image] >= 0)[0].astype(np.int64)
        return PairedSplit(self, name, img, cap, local[self.caption_to_image[cap]])

    # -- images ------------------------------------------------------------------------
    def load_image(self, i: int) -> Image.Image:
        """Global image ``i`` as an RGB PIL image."""
        if not 0 <= i < self.num_images:
            raise IndexError(f"image index {i} out of range for {self.num_images} images")
        img = self.image_loader(i)
        return img if img.mode == "RGB" else img.convert("RGB")

    def image_digest(self, i: int) -> str:
        return self.image_digests[i]

    def fingerprint(self) -> str:
        """Hash of the whole dataset (all splits)."""
        return sha256_json({s: self.split(s).fingerprint() for s in self.splits})

    def summary(self) -> dict[str, Any]:
        """Counts per split: images and captions."""
        out: dict[str, Any] = {"name": self.name}
        for s in self.splits:
            sp = self.split(s)
            out[s] = {"images": sp.num_images, "captions": sp.num_captions}
        return out

    def __repr__(self) -> str:
        return (
            f"PairedDataset(name={self.name!r}, images={self.num_images}, "
            f"captions={self.num_captions}, splits={self.splits})"
        )


def _first_duplicate(items: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for x in items:
        if x in seen:
            return x
        seen.add(x)
    return None
