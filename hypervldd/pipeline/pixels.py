"""The pixel protocol: pixel splits, pixel methods, and ``compare_pixels``."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .comparison import _with_protocol_student
from .distillation import distill
from .errors import PipelineError
from .evaluation import evaluate_set
from .features import _load_dataset
from .results import CompareResult, CompareRow, _result_stats, _write_compare

#: Methods that yield pixels: coresets (the real images of the selected pairs), PDS
#: (the nearest real image of each prototype, or a decoder) and ``pixel_match``
#: (optimised pixels).
PIXEL_METHODS = ("random", "herding", "kcenter", "forgetting", "pds", "pixel_match")
#: Pixel methods that run only when named: ``mtt_pixels`` (LoRA trajectory matching
#: through an open_clip tower) is too slow for a default comparison.
PIXEL_OPT_IN = ("mtt_pixels",)


def pixel_split(dataset: Any, features: Any, image_size: int = 32) -> Any:
    """The split of ``features`` as a :class:`~hypervldd.eval.pixel.PixelSet`.

    Images come from ``dataset`` (the one the features were extracted from),
    resized to ``image_size`` squared (bicubic) as ``(N_img, 3, S, S)`` in [0, 1];
    text and ``txt2img`` are the features' own.
    """
    import numpy as np
    from PIL import Image

    from ..eval.pixel import PixelSet

    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4:
        raise PipelineError(f"image_size must be an int >= 4, got {image_size!r}")
    meta = getattr(features, "metadata", None) or {}
    name = meta.get("split")
    if name is None:
        raise PipelineError("features carry no split name in their metadata")
    sp = dataset.split(name)
    if list(sp.image_ids) != list(features.image_ids):
        raise PipelineError(
            f"the dataset's {name!r} images differ from the features' (another dataset, "
            "limit or split seed?)"
        )
    arr = np.empty((sp.num_images, image_size, image_size, 3), dtype=np.float32)
    for i in range(sp.num_images):
        im = sp.load_image(i).convert("RGB")
        arr[i] = np.asarray(im.resize((image_size, image_size), Image.Resampling.BICUBIC))
    images = torch.from_numpy(arr).permute(0, 3, 1, 2).div_(255.0).contiguous()
    return PixelSet(images, features.text_features.float(), features.caption_to_image)


def distill_pixels(
    real: Any,
    real_images: torch.Tensor,
    method: str,
    budget: int,
    *,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    progress: bool = False,
) -> Any:
    """A synthetic set with pixel images (``image_kind == "pixels"``) by ``method``.

    ``real`` are the real features, ``real_images (N_img, C, H, W)`` their images'
    pixels in [0, 1]. Methods: :data:`PIXEL_METHODS` and :data:`PIXEL_OPT_IN`.
    """
    from ..distill import MTTPixels, PixelMatch, coreset_pixels, get_distiller

    cfg = dict(config or {})
    if method == "pixel_match":
        return PixelMatch(cfg).fit(real, budget, seed, real_images=real_images, progress=progress)
    if method == "mtt_pixels":
        return MTTPixels(cfg).fit(real, budget, seed, real_images=real_images, progress=progress)
    if method == "pds":
        captions = getattr(real, "captions", None)
        return get_distiller("pds", {**cfg, "image_output": "pixels"}).fit(
            real, budget, seed, real_images=real_images, captions=captions
        )
    if method not in PIXEL_METHODS:
        raise PipelineError(
            f"method {method!r} has no pixel path; pixel methods: {list(PIXEL_METHODS)}"
        )
    return coreset_pixels(distill(real, method, budget, seed=seed, config=cfg), real_images, real)


def compare_pixels(
    dataset: Any,
    features: dict[str, Any],
    methods: Sequence[str],
    budgets: Sequence[int],
    *,
    image_size: int = 32,
    protocol: Any = None,
    seed: int = 0,
    references: bool = True,
    method_configs: dict[str, dict[str, Any]] | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    log: Any = None,
) -> CompareResult:
    """:func:`compare` under the pixel protocol, on images resized to ``image_size``.

    ``features`` (from :func:`prepare` on ``dataset``) supply the selection and
    prototype spaces and the text side; every set is scored by the pixel student
    (``protocol.pixel``: a ConvNet by default) trained on pixels. The full-data
    reference trains on all real caption pairs' pixels.
    """
    from .._paths import check_output_dir
    from ..eval import EvalProtocol

    if out_dir is not None:  # before the work: a file here would lose every row at the end
        check_output_dir(out_dir, what="out_dir")

    if "train" not in features or "test" not in features:
        raise PipelineError("features must contain the 'train' and 'test' splits")
    bad = sorted(set(methods) - set(PIXEL_METHODS + PIXEL_OPT_IN))
    if bad:
        raise PipelineError(
            f"methods {bad} have no pixel path; pixel methods: {PIXEL_METHODS + PIXEL_OPT_IN}"
        )
    protocol = protocol or EvalProtocol()
    ds = _load_dataset(dataset, None, progress) if not hasattr(dataset, "split") else dataset
    train = features["train"]
    px = {s: pixel_split(ds, features[s], image_size) for s in ("train", "test")}
    val = (
        pixel_split(ds, features["val"], image_size) if protocol.selection == "validation" else None
    )
    rows: list[CompareRow] = []
    meta: dict[str, Any] = {"representation": "pixels", "image_size": int(image_size)}
    md = getattr(train, "metadata", None)
    if isinstance(md, dict):
        meta.update({k: md[k] for k in ("dataset", "split", "fingerprint") if k in md})
    selection = str(protocol.selection_label)

    def row_done() -> None:  # as in compare: a stopped run keeps its finished rows
        if out_dir is not None:
            result = CompareResult(list(rows), protocol.to_dict(), selection, meta)
            _write_compare(result, Path(out_dir), plot=False)

    if references:
        if log:  # the longest step of a run: say that it started
            n = getattr(train, "num_images", None) or len(getattr(train, "image_ids", []))
            log(f"full data: scoring the whole training split ({n} images) as the reference ...")
        t0 = time.perf_counter()
        res = evaluate_set(px["train"], px["test"], protocol, val=val)
        mean, std = _result_stats(res)
        rows.append(CompareRow("full data", None, None, mean, std, 0.0, time.perf_counter() - t0))
        if log:
            log(f"full data (pixels): mean recall {mean['mean']:.1f}")
        row_done()
    for budget in budgets:
        for method in methods:
            t0 = time.perf_counter()
            cfg = _with_protocol_student(method, (method_configs or {}).get(method), protocol)
            syn = distill_pixels(
                train,
                px["train"].images,
                method,
                int(budget),
                seed=seed,
                config=cfg,
                progress=progress,
            )
            t1 = time.perf_counter()
            res = evaluate_set(syn, px["test"], protocol, val=val)
            mean, std = _result_stats(res)
            rows.append(
                CompareRow(
                    method,
                    int(budget),
                    int(syn.storage_floats()),
                    mean,
                    std,
                    t1 - t0,
                    time.perf_counter() - t1,
                )
            )
            if log:
                log(f"{method} @ {budget} (pixels): mean recall {mean['mean']:.1f}")
            row_done()
    result = CompareResult(rows, protocol.to_dict(), selection, meta)
    if out_dir is not None:
        _write_compare(result, Path(out_dir))
    return result
