"""Encoders by name, datasets by name, and ``prepare``: a dataset's splits as features."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from .._device import resolve_device
from .errors import PipelineError

#: Image encoders available offline by name.
IMAGE_ENCODERS = ("efficientnet-lite0",)
#: Text encoders available offline by name.
TEXT_ENCODERS = ("minilm-l6-v2",)


def build_encoders(
    image: str = "efficientnet-lite0",
    text: str = "minilm-l6-v2",
    *,
    open_clip_checkpoint: str | os.PathLike | None = None,
    timm_checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    device: str | torch.device | None = "cpu",
) -> tuple[Any, Any]:
    """Image and text encoders by name, on ``device`` (``None``: CUDA when available).

    ``image``/``text`` are names from :data:`IMAGE_ENCODERS`/:data:`TEXT_ENCODERS`,
    or ``"open_clip:<architecture>"`` (both towers of an open_clip model whose
    weights come from ``open_clip_checkpoint``, a local file: nothing downloads),
    ``"timm:<name>"`` (weights from ``timm_checkpoint``) or ``"hf:<folder>"``
    (see :mod:`hypervldd.data.encoder_specs`). ``progress=False`` silences the
    loading bars of third-party libraries.
    """
    from .. import data
    from ..data.encoder_specs import build_encoder_pair, third_party_progress

    device = resolve_device(device)
    if any(x.startswith(("timm:", "hf:")) for x in (image, text)):
        try:
            return build_encoder_pair(
                image,
                text,
                open_clip_checkpoint=open_clip_checkpoint,
                timm_checkpoint=timm_checkpoint,
                progress=progress,
                device=device,
            )
        except ValueError as err:
            raise PipelineError(str(err)) from err
    if not progress:
        with third_party_progress(False):
            return build_encoders(
                image, text, open_clip_checkpoint=open_clip_checkpoint, device=device
            )

    if image.startswith("open_clip:") or text.startswith("open_clip:"):
        arch = (image if image.startswith("open_clip:") else text).split(":", 1)[1]
        if open_clip_checkpoint is None:
            raise PipelineError(
                f"open_clip:{arch} needs a local checkpoint file (--open-clip-checkpoint); "
                "nothing is downloaded at run time"
            )
        img_enc, txt_enc = data.load_open_clip(arch, open_clip_checkpoint, device=device)
        if not image.startswith("open_clip:"):
            img_enc = build_encoders(image, TEXT_ENCODERS[0], device=device)[0]
        if not text.startswith("open_clip:"):
            txt_enc = build_encoders(IMAGE_ENCODERS[0], text, device=device)[1]
        return img_enc, txt_enc
    if image not in IMAGE_ENCODERS:
        raise PipelineError(f"image encoder must be one of {IMAGE_ENCODERS} or open_clip:<arch>")
    if text not in TEXT_ENCODERS:
        raise PipelineError(f"text encoder must be one of {TEXT_ENCODERS} or open_clip:<arch>")
    return data.efficientnet_lite0(device=device), data.minilm_l6_v2(device=device)


def _load_dataset(
    dataset: Any,
    limit: int | None,
    progress: bool,
    image_root: str | os.PathLike | None = None,
    options: Any = None,
) -> Any:
    """The dataset ``--dataset`` names (see :mod:`hypervldd.data.sources`), limited and split.

    ``options`` (a :class:`~hypervldd.data.sources.DatasetOptions`) carries column names
    and ``split_ratios``; ``limit``, ``progress`` and a given ``image_root`` override it.
    """
    from dataclasses import replace

    from ..data.sources import DatasetOptions, open_dataset

    opts = replace(options or DatasetOptions(), limit=limit, progress=progress)
    if image_root is not None:
        opts = replace(opts, image_root=image_root)
    try:
        return open_dataset(dataset, opts)
    except PipelineError:
        raise
    except ValueError as err:
        raise PipelineError(str(err)) from err


def prepare(
    dataset: Any = "emoji",
    *,
    image_encoder: str = "efficientnet-lite0",
    text_encoder: str = "minilm-l6-v2",
    splits: Sequence[str] = ("train", "val", "test"),
    cache_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    open_clip_checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    image_root: str | os.PathLike | None = None,
    dataset_options: Any = None,
    timm_checkpoint: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Encode the requested splits of a dataset (cached): ``{split: PairedFeatures}``.

    ``image_root`` is the image folder of a Karpathy JSON or a caption table;
    ``dataset_options`` (:class:`~hypervldd.data.sources.DatasetOptions`) the column
    names and split ratios of the other formats. The encoders run on ``device``
    (``"cpu"``, ``"cuda"``, ``"cuda:N"``; default: CUDA when available, else the CPU);
    the features come back on the CPU.
    """
    from .. import data

    device = resolve_device(device)  # before any work: a bad device fails at once
    ds = _load_dataset(dataset, limit, progress, image_root, dataset_options)
    missing = [s for s in splits if s not in ds.splits]
    if missing:
        hint = " (assign them with --split-ratios 0.8,0.1,0.1)" if len(ds.splits) == 1 else ""
        raise PipelineError(
            f"splits {missing} are not in the dataset (it has {list(ds.splits)}){hint}"
        )
    from ..data.encoder_specs import third_party_progress

    # The memoised encoders are built when they first encode (a cache miss): keep the
    # libraries' loading bars off until the features are out when progress is off.
    with third_party_progress(progress):
        if image_encoder in IMAGE_ENCODERS and text_encoder in TEXT_ENCODERS:
            # Known by their recorded fingerprints: a warm cache builds no encoder.
            from ..data.encoder_memo import builtin_encoders

            img_enc, txt_enc = builtin_encoders(cache_dir, device=device)
        else:
            img_enc, txt_enc = build_encoders(
                image_encoder,
                text_encoder,
                open_clip_checkpoint=open_clip_checkpoint,
                timm_checkpoint=timm_checkpoint,
                progress=progress,
                device=device,
            )
        return {
            s: data.extract_features(ds, s, img_enc, txt_enc, cache_dir, progress=progress)
            for s in splits
        }
