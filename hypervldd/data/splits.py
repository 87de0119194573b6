"""Smaller and re-split views of a :class:`~hypervldd.data.dataset.PairedDataset`.

* :func:`limit_images` keeps a deterministic subset of images (with all their
  captions), spread evenly over each split, so a quick try encodes little.
* :func:`assign_split_ratios` gives a dataset that came without splits a
  train/val/test assignment by image id (captions follow their image); the
  ratios and seed are recorded in the metadata, hence in every fingerprint.

Both return new datasets; the input is not changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .dataset import SPLIT_ASSIGNMENT_KEY, PairedDataset, assign_splits

__all__ = ["subset_images", "limit_images", "assign_split_ratios", "parse_split_ratios"]

#: Split names given to 1, 2 or 3 ratios.
_RATIO_SPLITS = {1: ("train",), 2: ("train", "test"), 3: ("train", "val", "test")}


def subset_images(ds: PairedDataset, image_indices: Sequence[int]) -> PairedDataset:
    """The images ``image_indices`` of ``ds`` (in that order) with all their captions.

    Captions keep their order in ``ds``; ``caption_to_image`` is renumbered.

    >>> import numpy as np
    >>> from PIL import Image
    >>> ds = PairedDataset("toy", ["a", "b"], ["a1", "b1", "b2"], np.array([0, 1, 1]),
    ...                    ["train", "train"], lambda i: Image.new("RGB", (2, 2)), ["d0", "d1"])
    >>> subset_images(ds, [1]).captions
    ['b1', 'b2']
    """
    keep = np.asarray(list(image_indices), dtype=np.int64)
    if keep.size and (keep.min() < 0 or keep.max() >= ds.num_images):
        raise IndexError(f"image_indices must lie in [0, {ds.num_images}), got {keep.tolist()}")
    if np.unique(keep).size != keep.size:
        raise ValueError("image_indices must not repeat an image")
    local = np.full(ds.num_images, -1, dtype=np.int64)
    local[keep] = np.arange(keep.size)
    caps = np.nonzero(local[ds.caption_to_image] >= 0)[0]
    parent_loader = ds.image_loader
    picked = keep.tolist()
    paths = ds.image_paths
    return PairedDataset(
        name=ds.name,
        image_ids=[ds.image_ids[i] for i in picked],
        captions=[ds.captions[i] for i in caps],
        caption_to_image=local[ds.caption_to_image[caps]],
        image_splits=[ds.image_splits[i] for i in picked],
        image_loader=lambda i: parent_loader(picked[i]),
        image_digests=[ds.image_digests[i] for i in picked],
        image_meta={k: [v[i] for i in picked] for k, v in ds.image_meta.items()},
        metadata=dict(ds.metadata),
        image_paths=None if paths is None else [paths[i] for i in picked],
    )


def _even(n_have: int, n_keep: int) -> list[int]:
    """``n_keep`` indices spread evenly over ``range(n_have)`` (first and last included)."""
    if n_keep >= n_have:
        return list(range(n_have))
    if n_keep == 1:
        return [0]
    return np.round(np.linspace(0, n_have - 1, n_keep)).astype(np.int64).tolist()


def limit_images(ds: PairedDataset, limit: int | None) -> PairedDataset:
    """At most ``limit`` images of ``ds`` with all their captions, the same on every run.

    The images are shared among the splits in proportion to their sizes (largest
    remainders; every split keeps at least one image when ``limit`` allows), and
    within a split they are spread evenly over the dataset's order, so a subset
    covers the whole file rather than its first rows. Image splits are unchanged.
    ``None`` or a limit at least the dataset's size returns ``ds`` itself.

    >>> import numpy as np
    >>> from PIL import Image
    >>> ds = PairedDataset("toy", list("abcd"), ["a", "b", "c", "d"], np.arange(4),
    ...                    ["train"] * 4, lambda i: Image.new("RGB", (2, 2)), list("0123"))
    >>> limit_images(ds, 2).image_ids
    ['a', 'd']
    """
    if limit is None:
        return ds
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit must be a positive number of images or None, got {limit!r}")
    if limit >= ds.num_images:
        return ds
    members = {s: [i for i, x in enumerate(ds.image_splits) if x == s] for s in ds.splits}
    sizes = np.array([len(m) for m in members.values()], dtype=np.float64)
    quota = np.zeros(len(sizes), dtype=np.int64)
    if limit >= len(sizes):
        quota += 1  # each split represented, so train/val/test all exist in a small try
    spare = limit - int(quota.sum())
    share = sizes / sizes.sum() * spare
    quota += np.floor(share).astype(np.int64)
    # Largest remainders, ties to the earlier split: deterministic.
    for k in np.argsort(-(share - np.floor(share)), kind="stable")[: limit - int(quota.sum())]:
        quota[k] += 1
    keep: list[int] = []
    for (_, idx), q in zip(members.items(), quota.tolist(), strict=True):
        keep.extend(idx[j] for j in _even(len(idx), min(q, len(idx))))
    out = subset_images(ds, sorted(keep))
    out.metadata["limit"] = int(limit)
    return out


def parse_split_ratios(text: str | Sequence[float]) -> dict[str, float]:
    """``"0.8,0.1,0.1"`` -> ``{"train": 0.8, "val": 0.1, "test": 0.1}``.

    One, two or three positive ratios summing to 1 name ``train``, ``train,test``
    or ``train,val,test``.
    """
    if isinstance(text, str):
        try:
            values = [float(t) for t in text.split(",") if t.strip()]
        except ValueError as err:
            raise ValueError(
                f"split_ratios must be comma-separated numbers like 0.8,0.1,0.1, got {text!r}"
            ) from err
    else:
        values = [float(v) for v in text]
    if len(values) not in _RATIO_SPLITS:
        raise ValueError(
            f"split_ratios must give 1-3 ratios (train[,val],test), got {len(values)}: {text!r}"
        )
    if any(not v > 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"split_ratios must be positive and sum to 1, got {values}")
    return dict(zip(_RATIO_SPLITS[len(values)], values, strict=True))


def assign_split_ratios(
    ds: PairedDataset, ratios: str | Sequence[float], *, seed: int = 0
) -> PairedDataset:
    """``ds`` with splits assigned by hashing each image id (see ``assign_splits``).

    All captions of an image share its split; an image keeps its split when other
    images are added or removed. The assignment (ratios and seed) is stored in
    ``metadata["split_assignment"]`` and enters every split fingerprint, so caches
    of another assignment are never reused. Only a dataset with a single split
    (e.g. a table without a split column) is re-split.

    >>> import numpy as np
    >>> from PIL import Image
    >>> ds = PairedDataset("toy", [f"i{k}" for k in range(50)], [f"c{k}" for k in range(50)],
    ...                    np.arange(50), ["train"] * 50, lambda i: Image.new("RGB", (2, 2)),
    ...                    ["d"] * 50)
    >>> sorted(assign_split_ratios(ds, "0.8,0.1,0.1", seed=0).splits)
    ['test', 'train', 'val']
    """
    fractions = parse_split_ratios(ratios)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if len(ds.splits) > 1:
        raise ValueError(
            f"split_ratios applies to a dataset without splits, but {ds.name!r} has "
            f"{list(ds.splits)}; drop split_ratios or the dataset's split column"
        )
    splits = assign_splits(ds.image_ids, fractions, seed=int(seed))
    out = subset_images(ds, range(ds.num_images))
    out.image_splits = splits
    out.metadata[SPLIT_ASSIGNMENT_KEY] = {"ratios": fractions, "seed": int(seed), "by": "image_id"}
    return out
