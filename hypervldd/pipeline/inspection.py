"""``inspect_artifact``: a saved set's manifest and its nearest real captions and images."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from .errors import PipelineError


def inspect_artifact(
    path: str | os.PathLike,
    real: Any = None,
    *,
    k: int = 3,
    grid_png: str | os.PathLike | None = None,
    dataset: Any = None,
    allow_mismatch: bool = False,
) -> dict[str, Any]:
    """Manifest, budget and, with real features, the nearest real captions of each synthetic text.

    With ``grid_png`` and the dataset, also writes a PNG grid of the nearest real
    image of each synthetic image feature (feature-space sets have no pixels).
    ``real`` must be the training features the set was distilled from (fingerprint and
    encoders; :func:`hypervldd.distill.check_provenance`); with ``allow_mismatch`` the
    differences are listed in ``info["provenance_mismatch"]`` and the grid is labelled.
    """
    from .._paths import check_output_file
    from ..distill import SyntheticSet, check_provenance

    if grid_png is not None:
        check_output_file(grid_png, what="grid_png", force=True)
    syn = SyntheticSet.load(path)
    info: dict[str, Any] = {
        "manifest": syn.manifest(),
        "pairs": syn.num_pairs,
        "storage_floats": syn.storage_floats(),
    }
    if real is None:
        return info
    found = check_provenance(syn, real, allow_mismatch=allow_mismatch, where=str(path))
    if found:
        info["provenance_mismatch"] = found
    txt = torch.nn.functional.normalize(real.text_features.float(), dim=-1)
    img = torch.nn.functional.normalize(real.image_features.float(), dim=-1)
    syn_txt = torch.nn.functional.normalize(syn.text.float(), dim=-1)
    syn_img = torch.nn.functional.normalize(syn.image.float(), dim=-1)
    if syn_txt.shape[-1] != txt.shape[-1] or syn_img.shape[-1] != img.shape[-1]:
        raise PipelineError("the artifact's feature dimensions do not match the real features")
    kk = min(k, txt.shape[0])
    near_txt = (syn_txt @ txt.T).topk(kk, dim=-1).indices
    info["nearest_captions"] = [[real.captions[int(j)] for j in row] for row in near_txt]
    near_img = (syn_img @ img.T).argmax(dim=-1)
    info["nearest_images"] = [real.image_ids[int(j)] for j in near_img]
    if grid_png is not None and dataset is not None:
        label = "PROVENANCE MISMATCH" if found else ""
        _image_grid(dataset, real, near_img.tolist(), Path(grid_png), label=label)
        info["grid_png"] = str(grid_png)
    return info


def _image_grid(dataset: Any, real: Any, indices: list[int], out: Path, *, label: str = "") -> None:
    from PIL import Image, ImageDraw

    from ..data._io import atomic_path

    split = real.metadata.get("split", "train") if isinstance(real.metadata, dict) else "train"
    images = [dataset.split(split).load_image(int(i)) for i in indices]
    side = 64
    cols = max(1, int(math.ceil(math.sqrt(len(images)))))
    rows = max(1, int(math.ceil(len(images) / cols)))
    canvas = Image.new("RGB", (cols * side, rows * side), "white")
    for n, im in enumerate(images):
        canvas.paste(
            im.convert("RGB").resize((side, side)), ((n % cols) * side, (n // cols) * side)
        )
    if label:  # a grid of mismatched data must say so wherever the PNG ends up
        band = Image.new("RGB", (max(canvas.width, 160), canvas.height + 14), (200, 0, 0))
        band.paste(canvas, (0, 14))
        ImageDraw.Draw(band).text((2, 1), label, fill="white")
        canvas = band
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")
